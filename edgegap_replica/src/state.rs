//! The replica's shared state: calls, faults, rate limits, and the model behind them (apps in
//! [`crate::apps`], deployments in [`crate::deployments`], sessions in [`crate::sessions`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::ReplicaConfig;
use crate::apps::AppSpec;
use crate::deployments::Deployment;
use crate::faults::{Faults, RateLimits, Route};
use crate::launcher::Launcher;
use crate::sessions::Session;

/// A status answer: HTTP status and JSON body.
pub type Answer = (u16, Value);

// Edgegap's status strings.
pub(crate) const DEPLOYING: &str = "Status.DEPLOYING";
pub(crate) const READY: &str = "Status.READY";
pub(crate) const ERROR: &str = "Status.ERROR";
pub(crate) const TERMINATED: &str = "Status.TERMINATED";
pub(crate) const SEEKING: &str = "Status.SEEKING";

/// One call the replica answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The endpoint.
    pub route: Route,
    /// The path called.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// The model, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) apps: Vec<AppSpec>,
    pub(crate) deployments: BTreeMap<String, Deployment>,
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) calls: Vec<CallRecord>,
    pub(crate) ready_after: Option<Duration>,
}

/// Everything the replica knows; shared by its handlers.
#[derive(Debug)]
pub struct State {
    pub(crate) inner: Mutex<Inner>,
    /// Injected errors.
    pub faults: Faults,
    /// Edgegap's rate limits.
    pub limits: RateLimits,
    /// Whether rate limits answer 429.
    pub enforce_rate_limits: bool,
    pub(crate) api_key: String,
    pub(crate) fail_deployments: bool,
    pub(crate) sockets: u32,
    pub(crate) launcher: Option<Launcher>,
    pub(crate) max_page_size: usize,
    pub(crate) addr: SocketAddr,
}

pub(crate) fn message(text: impl Into<String>) -> Value {
    json!({ "message": text.into() })
}

pub(crate) fn random_id() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Edgegap's timestamp format, `2026-04-22 12:00:46.000000` (UTC).
pub(crate) fn timestamp(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl State {
    /// The state for `config`, serving on `addr`.
    pub fn new(config: ReplicaConfig, addr: SocketAddr) -> Self {
        Self {
            inner: Mutex::new(Inner {
                apps: config.apps,
                ready_after: config.ready_after,
                ..Inner::default()
            }),
            faults: Faults::default(),
            limits: RateLimits::default(),
            enforce_rate_limits: config.enforce_rate_limits,
            api_key: config.api_key,
            fail_deployments: config.fail_deployments,
            sockets: config.sockets.max(1),
            launcher: config.launcher,
            max_page_size: config.max_page_size.max(1),
            addr,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `authorization` is the management API key.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        authorization == Some(format!("token {}", self.api_key).as_str())
    }

    /// Records an answered call.
    pub fn record(&self, route: Route, path: String, status: u16) {
        self.lock().calls.push(CallRecord {
            route,
            path,
            status,
        });
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// Changes the time to ready of new deployments.
    pub fn set_ready_after(&self, ready_after: Option<Duration>) {
        self.lock().ready_after = ready_after;
    }

    /// Stops every game server process.
    pub fn stop_all_processes(&self) {
        for deployment in self.lock().deployments.values() {
            if let Some(process) = &deployment.process {
                process.stop();
            }
        }
    }

    pub(crate) fn public_ip(&self) -> IpAddr {
        self.launcher
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |l| l.public_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_edgegaps_format() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000000");
        assert_eq!(timestamp(1_776_859_246), "2026-04-22 12:00:46.000000");
    }
}
