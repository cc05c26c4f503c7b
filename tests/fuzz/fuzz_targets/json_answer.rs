//! What an `exchange-json` hook returns (any text), through the checks the engine applies
//! before an answer can touch a token. Whatever comes in, what comes out keeps the claim
//! policy: scopes are valid scope tokens without repeats, no claim is restricted or empty,
//! and the host's notices stay bounded.
#![no_main]

#[path = "answer_checks.rs"]
mod answer_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut log = hookd::hooks::HookLog::default();
    let checked = hookd::hooks::answer::check_json_answer(&text, 4096, &mut log);
    answer_checks::holds(checked, &log);
});
