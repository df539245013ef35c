//! Wall-clock timestamps as they appear in KV records: milliseconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as stored in KV records.
pub type UnixMillis = u64;

/// The current wall-clock time in [`UnixMillis`] (0 if the clock is before 1970).
pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `at + duration` in [`UnixMillis`], saturating.
pub fn add_millis(at: UnixMillis, duration: Duration) -> UnixMillis {
    at.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}
