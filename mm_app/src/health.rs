//! Health for orchestrators and load balancers, on the client listener:
//!
//! - `GET /healthz`: 200 while the main loop turns (it stamps every frame; an idle matchmaker
//!   still wakes at least every `--idle-tick-ms`), 503 when it has not for [`STALLED_AFTER`].
//! - `GET /readyz`: 200 when this matchmaker can sell seats — NATS connected, leases and the seat
//!   ledger listed, not stopping — otherwise 503; both answer with the parts as JSON, so a probe
//!   log says what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use bevy::prelude::*;
use bevygap_shared::nats::ConnectionState;
use bevygap_shared::time::now_millis;
use serde::Serialize;
use tokio::sync::watch;

use crate::core_plugin::CoreSystems;
use crate::kv_bridge::NatsHandle;
use crate::seats::LedgerReadiness;
use crate::shutdown::ShuttingDown;

/// How long the main loop may go without a frame before `/healthz` fails.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// What readiness is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// NATS is connected.
    pub nats_connected: bool,
    /// Leases and the seat ledger are listed into the world.
    pub ledger_listed: bool,
    /// The matchmaker is draining before it exits.
    pub stopping: bool,
}

impl Readiness {
    /// Seats can be sold here.
    pub fn ready(&self) -> bool {
        self.nats_connected && self.ledger_listed && !self.stopping
    }
}

/// The health the HTTP handlers read, written by the main loop.
#[derive(Resource, Clone)]
pub struct HealthReport {
    readiness: watch::Sender<Readiness>,
    /// Unix milliseconds of the last frame.
    beat: Arc<AtomicU64>,
}

impl Default for HealthReport {
    fn default() -> Self {
        Self {
            readiness: watch::channel(Readiness::default()).0,
            beat: Arc::new(AtomicU64::new(now_millis())),
        }
    }
}

/// Keeps [`HealthReport`] current (added by the app; the intake serves the routes).
pub struct HealthPlugin;

impl Plugin for HealthPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<HealthReport>()
            .add_systems(Update, report_health.in_set(CoreSystems::Effects));
    }
}

fn report_health(
    report: Res<HealthReport>,
    nats: Option<Res<NatsHandle>>,
    ledger: Res<LedgerReadiness>,
    stopping: Option<Res<ShuttingDown>>,
) {
    report.beat.store(now_millis(), Ordering::Relaxed);
    let now = Readiness {
        nats_connected: nats
            .is_some_and(|n| matches!(n.0.state(), ConnectionState::Connected { .. })),
        ledger_listed: ledger.ready(),
        stopping: stopping.is_some(),
    };
    report.readiness.send_if_modified(|current| {
        let changed = *current != now;
        if changed {
            if now.ready() {
                info!("matchmaker: ready");
            } else {
                info!("matchmaker: not ready ({now:?})");
            }
            *current = now;
        }
        changed
    });
}

/// The routes: `/healthz` and `/readyz`.
pub fn router(report: &HealthReport) -> axum::Router {
    let beat = report.beat.clone();
    let readiness = report.readiness.subscribe();
    axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || {
                let since = now_millis().saturating_sub(beat.load(Ordering::Relaxed));
                let stalled = since > STALLED_AFTER.as_millis() as u64;
                let status = if stalled {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                async move {
                    (
                        status,
                        axum::Json(
                            serde_json::json!({ "alive": !stalled, "last_frame_ms_ago": since }),
                        ),
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let now = *readiness.borrow();
                let status = if now.ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                async move {
                    let mut body = serde_json::to_value(now).unwrap_or_default();
                    body["ready"] = now.ready().into();
                    (status, axum::Json(body)).into_response()
                }
            }),
        )
}
