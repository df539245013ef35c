//! Injected errors and Edgegap's documented rate limits.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// An endpoint of the replica, for fault injection and call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `POST /v2/deployments`.
    Deploy,
    /// `GET /v1/status/{request_id}`.
    Status,
    /// `DELETE /v1/stop/{request_id}`.
    Stop,
    /// `POST /v1/session`.
    CreateSession,
    /// `GET /v1/session/{id}`.
    GetSession,
    /// `DELETE /v1/session/{id}`.
    DeleteSession,
    /// `GET /v1/app/{app}`.
    App,
    /// `GET /v1/app/{app}/version/{version}`.
    Version,
    /// `PATCH /v1/app/{app}/version/{version}`.
    PatchVersion,
    /// `POST /v1/app/{app}/version`.
    CreateVersion,
    /// `GET /v1/deployments`.
    ListDeployments,
    /// `GET /v1/context/{request_id}/{n}`.
    Context,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|_| format!("unknown route `{text}`"))
    }
}

/// An injected answer: a status, and a raw body instead of the usual JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The HTTP status.
    pub status: u16,
    /// The raw body, if not `{"message": "injected …"}`.
    pub body: Option<String>,
}

/// Injected answers, consumed one per call.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Mutex<HashMap<Route, VecDeque<Injected>>>,
}

impl Faults {
    /// The next `count` calls of `route` answer `status`.
    pub fn inject(&self, route: Route, status: u16, count: usize) {
        self.inject_answer(route, Injected { status, body: None }, count);
    }

    /// The next `count` calls of `route` answer `answer`.
    pub fn inject_answer(&self, route: Route, answer: Injected, count: usize) {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        queued
            .entry(route)
            .or_default()
            .extend(std::iter::repeat_n(answer, count));
    }

    /// Removes every injected answer.
    pub fn clear(&self) {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The injected answer for this call of `route`, if any.
    pub fn take(&self, route: Route) -> Option<Injected> {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&route)
            .and_then(VecDeque::pop_front)
    }
}

/// Calls per second allowed by Edgegap's documentation, by the limit a route counts against.
fn limit_of(route: Route) -> Option<(usize, usize)> {
    // (bucket index, calls per second)
    match route {
        Route::Deploy => Some((0, 40)),
        Route::Status => Some((1, 20)),
        Route::ListDeployments => Some((2, 10)),
        _ => None,
    }
}

/// Sliding one-second windows of calls, one per limited route class.
#[derive(Debug, Default)]
pub struct RateLimits {
    windows: Mutex<[VecDeque<Instant>; 3]>,
}

impl RateLimits {
    /// Counts a call of `route`; false when it is over the limit (answer 429).
    pub fn admit(&self, route: Route, now: Instant) -> bool {
        let Some((bucket, per_second)) = limit_of(route) else {
            return true;
        };
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = &mut windows[bucket];
        while window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= per_second {
            return false;
        }
        window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_allows_twenty_calls_a_second() {
        let limits = RateLimits::default();
        let now = Instant::now();
        assert!((0..20).all(|_| limits.admit(Route::Status, now)));
        assert!(!limits.admit(Route::Status, now));
        assert!(
            limits.admit(Route::Deploy, now),
            "other limits are separate"
        );
        assert!(limits.admit(Route::Status, now + Duration::from_secs(1)));
    }

    #[test]
    fn faults_are_consumed_in_order() {
        let faults = Faults::default();
        faults.inject(Route::Deploy, 429, 2);
        faults.inject(Route::Deploy, 503, 1);
        let seen: Vec<_> = (0..4)
            .map(|_| faults.take(Route::Deploy).map(|i| i.status))
            .collect();
        assert_eq!(seen, [Some(429), Some(429), Some(503), None]);
        assert_eq!("create_session".parse::<Route>(), Ok(Route::CreateSession));
    }
}
