//! The checks a hook's answer passes before it can touch a token, as functions of plain data:
//! what the engine runs on every answer, exposed for the fuzz targets in `tests/fuzz`.

use super::bindings::json_answer;
use super::claims::{RawChanges, validate};
use super::{HookError, HookLog, TokenChanges};

/// An answer of the `exchange-json` world (the JSON text the guest returned), as the engine
/// reads it: parsed, then the claim policy and `max_output_bytes` applied.
pub fn check_json_answer(
    text: &str,
    max_output_bytes: u64,
    log: &mut HookLog,
) -> Result<TokenChanges, HookError> {
    let raw = json_answer(text, max_output_bytes)?;
    Ok(validate(raw, max_output_bytes, log)?)
}

/// An answer of the typed world: the scope list and the claims as (name, JSON text) pairs the
/// guest returned, with the claim policy and `max_output_bytes` applied.
pub fn check_typed_answer(
    scope: Option<Vec<String>>,
    claims: Vec<(String, String)>,
    max_output_bytes: u64,
    log: &mut HookLog,
) -> Result<TokenChanges, HookError> {
    Ok(validate(
        RawChanges { scope, claims },
        max_output_bytes,
        log,
    )?)
}
