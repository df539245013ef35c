//! Prometheus metrics on an operator port (`--metrics-port`, loopback by default, never on the
//! public listener): `GET /metrics` in Prometheus' text format.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `bevygap_tickets` | gauge | `state` (queued, allocating, placed) |
//! | `bevygap_deployments` | gauge | `state` (starting, ready, closing, stopping) |
//! | `bevygap_seats` | gauge | `fleet`, `state` (free, used) |
//! | `bevygap_websocket_connections` | gauge | `endpoint` (`/ws`, `/matchmaker/ws`) |
//! | `bevygap_request_to_token_seconds` | histogram | `endpoint` |
//! | `bevygap_requests_failed_total` | counter | `endpoint`, `code` (the answer's error code) |
//! | `bevygap_connections_refused_total` | counter | `endpoint` (per-address or total cap) |
//! | `bevygap_seat_writes_total` | counter | `outcome` (taken, conflict, failed) |
//! | `bevygap_players_refused_total` | counter | — (player check) |
//! | `bevygap_matchmakers` | gauge | — (live on this app) |
//! | `bevygap_allocation_seconds` | histogram | — (a server asked of the fleet → its lease) |
//! | `bevygap_edgegap_api_calls_total` | counter | `route` (method and first path segments), `status` (0: no answer) |
//! | `bevygap_kv_watch_lag_seconds` | gauge | — (age of the newest lease heartbeat when the watch delivered it) |
//!
//! The gauges are sampled from the world once a second ([`sample_metrics`]), so a scrape costs
//! the app nothing; the endpoints count and time their own requests as they answer them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use bevy::prelude::*;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::deployment::{DeploymentInfo, DeploymentState, Seats};
use crate::error::ConfigError;
use crate::runtime::AsyncRuntime;
use crate::ticket::TicketState;

/// Where metrics are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The operator address (loopback unless the operator says otherwise).
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeatLabels {
    fleet: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    endpoint: &'static str,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCallLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

struct Inner {
    registry: Registry,
    tickets: Family<StateLabel, Gauge>,
    deployments: Family<StateLabel, Gauge>,
    seats: Family<SeatLabels, Gauge>,
    websockets: Family<EndpointLabel, Gauge>,
    request_to_token: Family<EndpointLabel, Histogram>,
    failed: Family<FailedLabels, Counter>,
    refused: Family<EndpointLabel, Counter>,
    seat_writes: Family<OutcomeLabel, Counter>,
    /// What the seat-write counters last showed (the ledger keeps running totals).
    seat_writes_seen: [AtomicU64; 3],
    players_refused: Counter,
    players_refused_seen: AtomicU64,
    matchmakers: Gauge,
    allocation: Histogram,
    edgegap_calls: Family<ApiCallLabels, Counter>,
    watch_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    queue_waiting: Family<QueueLabel, Gauge>,
    queue_typical_wait: Family<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_matches: Family<QueueLabel, Counter>,
    queue_expired: Family<QueueLabel, Counter>,
    /// What the queue counters last showed, per queue: (matches, expired).
    queue_seen: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
}

/// The matchmaker's metrics; cheap to clone into endpoints.
#[derive(Resource, Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The two websocket endpoints, as metric labels.
pub const SIMPLENET: &str = "/ws";
/// The seed JSON endpoint's label.
pub const SEED_JSON: &str = "/matchmaker/ws";

fn histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new([
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bevygap");
        let inner = Inner {
            tickets: Family::default(),
            deployments: Family::default(),
            seats: Family::default(),
            websockets: Family::default(),
            request_to_token: Family::new_with_constructor(histogram),
            failed: Family::default(),
            refused: Family::default(),
            seat_writes: Family::default(),
            seat_writes_seen: Default::default(),
            players_refused: Counter::default(),
            players_refused_seen: AtomicU64::new(0),
            matchmakers: Gauge::default(),
            allocation: Histogram::new([
                0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
            ]),
            edgegap_calls: Family::default(),
            watch_lag: Gauge::default(),
            queue_waiting: Family::default(),
            queue_typical_wait: Family::default(),
            queue_matches: Family::default(),
            queue_expired: Family::default(),
            queue_seen: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "queue_waiting_players",
            "Players waiting in each matchmaking queue",
            inner.queue_waiting.clone(),
        );
        registry.register(
            "queue_typical_wait_seconds",
            "Each queue's recent wait from joining to a match (weighted toward the newest)",
            inner.queue_typical_wait.clone(),
        );
        registry.register(
            "queue_matches",
            "Matches formed by each queue",
            inner.queue_matches.clone(),
        );
        registry.register(
            "queue_expired",
            "Tickets that waited their queue's max wait without a match",
            inner.queue_expired.clone(),
        );
        registry.register("tickets", "Tickets by state", inner.tickets.clone());
        registry.register(
            "deployments",
            "Deployments by state",
            inner.deployments.clone(),
        );
        registry.register("seats", "Seats on ready deployments", inner.seats.clone());
        registry.register(
            "websocket_connections",
            "Open websocket connections",
            inner.websockets.clone(),
        );
        registry.register(
            "request_to_token_seconds",
            "From a request to its connect token",
            inner.request_to_token.clone(),
        );
        registry.register(
            "requests_failed",
            "Requests answered with an error, by code",
            inner.failed.clone(),
        );
        registry.register(
            "connections_refused",
            "Websocket connections refused by a connection cap",
            inner.refused.clone(),
        );
        registry.register(
            "seat_writes",
            "Seat ledger writes by outcome",
            inner.seat_writes.clone(),
        );
        registry.register(
            "players_refused",
            "Requests refused by the player check",
            inner.players_refused.clone(),
        );
        registry.register(
            "matchmakers",
            "Matchmakers live on this app",
            inner.matchmakers.clone(),
        );
        registry.register(
            "allocation_seconds",
            "From asking the fleet for a server to its lease",
            inner.allocation.clone(),
        );
        registry.register(
            "edgegap_api_calls",
            "Edgegap API calls by route and status",
            inner.edgegap_calls.clone(),
        );
        registry.register(
            "kv_watch_lag_seconds",
            "Age of the newest lease heartbeat when the KV watch delivered it",
            inner.watch_lag.clone(),
        );
        Self(Arc::new(Inner { registry, ..inner }))
    }
}

impl Metrics {
    /// A request answered with a token after `elapsed`.
    pub fn token_issued(&self, endpoint: &'static str, elapsed: Duration) {
        self.0
            .request_to_token
            .get_or_create(&EndpointLabel { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// A request answered with the error `code`.
    pub fn request_failed(&self, endpoint: &'static str, code: u16) {
        self.0
            .failed
            .get_or_create(&FailedLabels { endpoint, code })
            .inc();
    }

    /// A server the fleet started registered its lease `elapsed` after it was asked for.
    pub fn allocated(&self, elapsed: Duration) {
        self.0.allocation.observe(elapsed.as_secs_f64());
    }

    /// An Edgegap API call to `method path` answered `status` (0: no answer).
    pub fn edgegap_call(&self, method: &str, path: &str, status: u16) {
        // The method and the first two path segments: ids stay out of the labels.
        let route: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
        self.0
            .edgegap_calls
            .get_or_create(&ApiCallLabels {
                route: format!("{method} /{}", route.join("/")),
                status,
            })
            .inc();
    }

    /// A lease heartbeat was delivered `lag` after it was written.
    pub fn watch_lag(&self, lag: Duration) {
        self.0.watch_lag.set(lag.as_secs_f64());
    }

    /// A websocket refused by a connection cap.
    pub fn connection_refused(&self, endpoint: &'static str) {
        self.0
            .refused
            .get_or_create(&EndpointLabel { endpoint })
            .inc();
    }

    /// The text a scrape gets: Prometheus' text format (version 0.0.4), which every scraper and
    /// `promtool check metrics` read.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.0.registry);
        classic_text(&text)
    }

    fn set(family: &Family<StateLabel, Gauge>, state: &'static str, value: usize) {
        family
            .get_or_create(&StateLabel { state })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Adds to `counter` what a running total grew by since last seen.
    fn catch_up(counter: &Counter, seen: &AtomicU64, total: u64) {
        let before = seen.swap(total, Ordering::Relaxed);
        counter.inc_by(total.saturating_sub(before));
    }
}

/// Samples each queue: players waiting, its typical wait, and its matches and expiries so far.
fn sample_queues(
    m: &Inner,
    queues: &crate::queues::Queues,
    queued: &Query<
        (&TicketState, &crate::queues::QueueTicket),
        Without<crate::queues::RemoteTicket>,
    >,
) {
    let mut waiting = vec![0u32; queues.profiles.0.len()];
    for (state, ticket) in queued {
        if *state == TicketState::InQueue
            && let Some(players) = waiting.get_mut(ticket.queue)
        {
            *players += ticket.request.players();
        }
    }
    let mut seen = m
        .queue_seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for ((profile, stats), players) in queues.profiles.0.iter().zip(&queues.stats).zip(waiting) {
        let label = QueueLabel {
            queue: profile.name.clone(),
        };
        m.queue_waiting
            .get_or_create(&label)
            .set(i64::from(players));
        m.queue_typical_wait
            .get_or_create(&label)
            .set(stats.typical_wait.map_or(0.0, |w| w.as_secs_f64()));
        let (matches, expired) = seen.entry(profile.name.clone()).or_default();
        m.queue_matches
            .get_or_create(&label)
            .inc_by(stats.matches.saturating_sub(*matches));
        m.queue_expired
            .get_or_create(&label)
            .inc_by(stats.expired.saturating_sub(*expired));
        *matches = stats.matches;
        *expired = stats.expired;
    }
}

/// Rewrites the OpenMetrics text `prometheus-client` writes into Prometheus' classic text format:
/// a counter family `x` is announced as `x_total` (its samples' name), and `# EOF` goes.
fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(held) = help.replace(line) {
                out.push_str(held);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let counter = rest
                .strip_suffix(" counter")
                .filter(|name| !name.ends_with("_total"));
            if let Some(held) = help.take() {
                match counter {
                    Some(name) => {
                        let text = held.strip_prefix(&format!("# HELP {name}")).unwrap_or("");
                        out.push_str(&format!("# HELP {name}_total{text}\n"));
                    }
                    None => {
                        out.push_str(held);
                        out.push('\n');
                    }
                }
            }
            match counter {
                Some(name) => out.push_str(&format!("# TYPE {name}_total counter\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            continue;
        }
        if let Some(held) = help.take() {
            out.push_str(held);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// How often the gauges are sampled from the world.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples the gauges (once a second: counting tickets walks them all).
#[allow(clippy::too_many_arguments)]
pub fn sample_metrics(
    metrics: Res<Metrics>,
    time: Res<Time<Real>>,
    mut last: Local<Option<Duration>>,
    tickets: Query<&TicketState, Without<crate::queues::RemoteTicket>>,
    deployments: Query<(&DeploymentState, &Seats, Option<&DeploymentInfo>)>,
    sockets: Option<Res<crate::intake::OpenSockets>>,
    stats: Option<Res<crate::seats::LedgerStats>>,
    players: Option<Res<crate::player_check::PlayerCheck>>,
    live: Option<Res<crate::presence::LiveMatchmakers>>,
    fleet: Option<Res<crate::fleet_driver::Fleet>>,
    queues: Option<Res<crate::queues::Queues>>,
    queued: Query<
        (&TicketState, &crate::queues::QueueTicket),
        Without<crate::queues::RemoteTicket>,
    >,
) {
    let now = time.elapsed();
    if last.is_some_and(|at| now.saturating_sub(at) < SAMPLE_EVERY) {
        return;
    }
    *last = Some(now);
    let m = &metrics.0;
    if let Some(queues) = queues {
        sample_queues(m, &queues, &queued);
    }
    let (mut queued, mut allocating, mut placed) = (0, 0, 0);
    let (mut in_queue, mut matched) = (0, 0);
    for state in &tickets {
        match state {
            TicketState::Queued => queued += 1,
            TicketState::Allocating => allocating += 1,
            TicketState::Placed { .. } => placed += 1,
            TicketState::InQueue => in_queue += 1,
            TicketState::Matched { .. } => matched += 1,
        }
    }
    Metrics::set(&m.tickets, "queued", queued);
    Metrics::set(&m.tickets, "allocating", allocating);
    Metrics::set(&m.tickets, "placed", placed);
    Metrics::set(&m.tickets, "in_queue", in_queue);
    Metrics::set(&m.tickets, "matched", matched);
    let (mut starting, mut ready, mut closing, mut stopping) = (0, 0, 0, 0);
    let (mut free, mut used) = (0u64, 0u64);
    for (state, seats, info) in &deployments {
        match state {
            DeploymentState::Starting { .. } => starting += 1,
            DeploymentState::Ready => {
                ready += 1;
                let reported = info.map_or(0, |i| i.reported_players);
                free += u64::from(seats.free(reported));
                used += u64::from(seats.used(reported));
            }
            DeploymentState::Closing => closing += 1,
            DeploymentState::Stopping => stopping += 1,
        }
    }
    Metrics::set(&m.deployments, "starting", starting);
    Metrics::set(&m.deployments, "ready", ready);
    Metrics::set(&m.deployments, "closing", closing);
    Metrics::set(&m.deployments, "stopping", stopping);
    let fleet_name = fleet.map_or("none", |f| f.0.name()).to_owned();
    for (state, value) in [("free", free), ("used", used)] {
        m.seats
            .get_or_create(&SeatLabels {
                fleet: fleet_name.clone(),
                state,
            })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
    if let Some(sockets) = sockets {
        for (endpoint, open) in [
            (SIMPLENET, sockets.simplenet.open()),
            (SEED_JSON, sockets.seed.open()),
        ] {
            m.websockets
                .get_or_create(&EndpointLabel { endpoint })
                .set(i64::try_from(open).unwrap_or(i64::MAX));
        }
    }
    if let Some(stats) = stats {
        for (i, (outcome, total)) in [
            ("taken", stats.taken),
            ("conflict", stats.conflicts),
            ("failed", stats.failed),
        ]
        .into_iter()
        .enumerate()
        {
            let counter = m
                .seat_writes
                .get_or_create(&OutcomeLabel { outcome })
                .clone();
            Metrics::catch_up(&counter, &m.seat_writes_seen[i], total);
        }
    }
    if let Some(players) = players {
        Metrics::catch_up(
            &m.players_refused,
            &m.players_refused_seen,
            players.refused(),
        );
    }
    m.matchmakers
        .set(live.map_or(1, |l| i64::try_from(l.0).unwrap_or(i64::MAX)));
}

/// Serves `/metrics` on its own port and samples the gauges.
pub struct MetricsPlugin {
    /// Where.
    pub config: MetricsConfig,
}

impl MetricsPlugin {
    /// Binds the port (a clear error if it cannot) and adds the sampling system.
    pub fn install(&self, app: &mut App) -> Result<(), ConfigError> {
        let metrics = app
            .world_mut()
            .get_resource_or_insert_with(Metrics::default)
            .clone();
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        let bind_error = |e: std::io::Error| ConfigError::Bind {
            addr: self.config.listen,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(self.config.listen).map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
        };
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        );
        runtime.spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                warn!("metrics endpoint stopped: {error}");
            }
        });
        info!("matchmaker: Prometheus metrics on http://{bound}/metrics");
        app.insert_resource(MetricsAddress(bound))
            .add_systems(Last, sample_metrics);
        Ok(())
    }
}

/// Where `/metrics` is served.
#[derive(Resource, Debug, Clone, Copy)]
pub struct MetricsAddress(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_announced_by_their_samples_name_and_eof_goes() {
        let openmetrics = "# HELP bevygap_x Things.\n# TYPE bevygap_x counter\nbevygap_x_total 3\n\
                           # HELP bevygap_g Now.\n# TYPE bevygap_g gauge\nbevygap_g 1\n# EOF\n";
        assert_eq!(
            classic_text(openmetrics),
            "# HELP bevygap_x_total Things.\n# TYPE bevygap_x_total counter\nbevygap_x_total 3\n\
             # HELP bevygap_g Now.\n# TYPE bevygap_g gauge\nbevygap_g 1\n"
        );
    }

    #[test]
    fn a_fresh_registry_renders_every_family() {
        let text = Metrics::default().render();
        for family in ["bevygap_players_refused_total", "bevygap_matchmakers"] {
            assert!(text.contains(&format!("# TYPE {family}")), "{text}");
        }
    }
}
