//! The wall clock: the one place hookd reads the time. Everything below the binaries and the
//! HTTP front end takes `now` as a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
