//! The public status page: `/status` (HTML, `assets/status.html`) and `/status.json` on the client
//! listener, for players and operators without access to the inspection endpoint.
//!
//! The JSON is the inspection summary without server addresses (a public list of game server IPs
//! helps nobody but attackers), refreshed at most every [`REFRESH`] so a busy matchmaker does not
//! pay for it per frame.

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use bevy::prelude::*;
use serde_json::Value;
use tokio::sync::watch;

use crate::core_plugin::CoreSystems;
use crate::inspect::SummaryParams;

/// How often the published status is refreshed.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The page, from `assets/status.html`.
const PAGE: &str = include_str!("../../assets/status.html");

/// The latest public status, shared with the HTTP handlers.
#[derive(Resource, Clone)]
pub struct PublishedStatus(pub watch::Sender<Value>);

/// Publishes the public status and serves the page (added by the intake when enabled).
pub struct StatusPagePlugin;

impl Plugin for StatusPagePlugin {
    fn build(&self, app: &mut App) {
        let (sender, _) = watch::channel(Value::Null);
        app.insert_resource(PublishedStatus(sender))
            .add_systems(Update, publish_status.in_set(CoreSystems::Effects));
    }
}

/// The summary without addresses, ticket ids or match ids: queues keep their sizes and waits.
pub fn public_status(mut summary: Value) -> Value {
    if let Some(deployments) = summary["deployments"].as_array_mut() {
        for deployment in deployments {
            if let Some(fields) = deployment.as_object_mut() {
                fields.remove("address");
            }
        }
    }
    if let Some(queues) = summary["queues"].as_array_mut() {
        for queue in queues {
            if let Some(fields) = queue.as_object_mut() {
                fields.remove("tickets");
            }
        }
    }
    if let Some(fields) = summary.as_object_mut() {
        let forming = fields
            .remove("matches")
            .and_then(|m| m.as_array().map(Vec::len))
            .unwrap_or_default();
        fields.insert("matches_forming".into(), forming.into());
    }
    summary
}

fn publish_status(
    params: SummaryParams,
    published: Res<PublishedStatus>,
    time: Res<Time<Real>>,
    mut last: Local<Option<Duration>>,
) {
    let now = time.elapsed();
    if last.is_some_and(|at| now.saturating_sub(at) < REFRESH) {
        return;
    }
    *last = Some(now);
    published.0.send_replace(public_status(params.summary()));
}

/// The routes: `/status` and `/status.json`.
pub fn router(published: &PublishedStatus) -> axum::Router {
    let status = published.0.subscribe();
    axum::Router::new()
        .route(
            "/status",
            axum::routing::get(|| async {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
            }),
        )
        .route(
            "/status.json",
            axum::routing::get(move || {
                let body = status.borrow().clone();
                async move {
                    (
                        [(header::CACHE_CONTROL, "no-store")],
                        axum::Json(body),
                    )
                        .into_response()
                }
            }),
        )
}
