//! Per-hook resource limits: what one invocation may consume before it is stopped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits one invocation of a hook runs under. Every field has a default; operators
/// override them per hook. Exceeding any of them ends the call with its own [`HookError`]
/// variant.
///
/// [`HookError`]: super::HookError
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookLimits {
    /// Fuel (roughly, WebAssembly instructions) one call may burn. The Rust seed hook uses
    /// about 20 thousand; a JavaScript hook's first call on a fresh instance about 1.4 million.
    pub fuel: u64,
    /// Largest linear memory the hook may grow to, in bytes. Growing beyond it traps.
    pub memory_bytes: u64,
    /// Wall-clock limit for one call, in milliseconds, including time the hook spends waiting
    /// (sleeping, timers).
    pub timeout_ms: u64,
    /// Largest input (the event's strings added up) the hook is given, in bytes.
    pub max_input_bytes: u64,
    /// Largest output (custom claims' names and JSON values plus scopes) accepted, in bytes.
    /// Auth0 caps custom claims at 100 KB per token.
    pub max_output_bytes: u64,
    /// How many bytes of stdout and stderr are kept as the hook's log; the rest is dropped.
    pub max_log_bytes: u64,
}

impl HookLimits {
    /// The largest memory limit any hook may ask for; the instance pool reserves this much
    /// address space per slot.
    pub const MAX_MEMORY_BYTES: u64 = 512 << 20;
    /// The longest wall-clock limit any hook may ask for (Auth0's webtask limit).
    pub const MAX_TIMEOUT_MS: u64 = 20_000;
    /// The largest input any hook may be given (the event is copied into the hook).
    pub const MAX_INPUT_BYTES: u64 = 1 << 20;
    /// The largest output any hook may be allowed (it is copied into every token).
    pub const MAX_OUTPUT_BYTES: u64 = 1 << 20;
    /// The most log any hook may keep per call: the hook log keeps 200 calls per hook, so
    /// this bounds what one hook's log can hold to 50 MiB.
    pub const MAX_LOG_BYTES: u64 = 256 << 10;

    /// The wall-clock limit as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks that every limit is usable: non-zero, and within hookd's ceilings (memory, time,
    /// input, output and log). The message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("fuel", self.fuel),
            ("memory_bytes", self.memory_bytes),
            ("timeout_ms", self.timeout_ms),
            ("max_input_bytes", self.max_input_bytes),
            ("max_output_bytes", self.max_output_bytes),
            ("max_log_bytes", self.max_log_bytes),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, value)| *value == 0) {
            return Err(format!("limit `{name}` must be greater than zero"));
        }
        let ceilings = [
            ("memory_bytes", self.memory_bytes, Self::MAX_MEMORY_BYTES),
            ("timeout_ms", self.timeout_ms, Self::MAX_TIMEOUT_MS),
            (
                "max_input_bytes",
                self.max_input_bytes,
                Self::MAX_INPUT_BYTES,
            ),
            (
                "max_output_bytes",
                self.max_output_bytes,
                Self::MAX_OUTPUT_BYTES,
            ),
            ("max_log_bytes", self.max_log_bytes, Self::MAX_LOG_BYTES),
        ];
        if let Some((name, value, ceiling)) =
            ceilings.iter().find(|(_, value, ceiling)| value > ceiling)
        {
            return Err(format!(
                "limit `{name}` is {value}, above the ceiling of {ceiling}"
            ));
        }
        Ok(())
    }
}

impl Default for HookLimits {
    fn default() -> Self {
        HookLimits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            timeout_ms: 1_000,
            max_input_bytes: 128 << 10,
            max_output_bytes: 100_000,
            max_log_bytes: 16 << 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(HookLimits::default().validate(), Ok(()));
    }

    #[test]
    fn zero_and_oversized_limits_name_the_field() {
        let zero_fuel = HookLimits {
            fuel: 0,
            ..HookLimits::default()
        };
        assert!(zero_fuel.validate().unwrap_err().contains("`fuel`"));
        let huge_memory = HookLimits {
            memory_bytes: HookLimits::MAX_MEMORY_BYTES + 1,
            ..HookLimits::default()
        };
        assert!(
            huge_memory
                .validate()
                .unwrap_err()
                .contains("`memory_bytes`")
        );
    }

    #[test]
    fn every_size_limit_has_a_ceiling() {
        for (name, limits) in [
            (
                "max_input_bytes",
                HookLimits {
                    max_input_bytes: u64::MAX,
                    ..HookLimits::default()
                },
            ),
            (
                "max_output_bytes",
                HookLimits {
                    max_output_bytes: HookLimits::MAX_OUTPUT_BYTES + 1,
                    ..HookLimits::default()
                },
            ),
            (
                "max_log_bytes",
                HookLimits {
                    max_log_bytes: 1 << 40,
                    ..HookLimits::default()
                },
            ),
        ] {
            let error = limits.validate().unwrap_err();
            assert!(error.contains(&format!("`{name}`")), "{error}");
        }
    }

    #[test]
    fn partial_json_overrides_keep_defaults() {
        let limits: HookLimits = serde_json::from_str(r#"{"fuel": 5}"#).unwrap();
        assert_eq!(limits.fuel, 5);
        assert_eq!(limits.timeout_ms, HookLimits::default().timeout_ms);
        assert!(serde_json::from_str::<HookLimits>(r#"{"fule": 5}"#).is_err());
    }
}
