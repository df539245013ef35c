//! Intake: the websocket endpoints clients use, both feeding the same tickets.
//!
//! One listener ([`listener`]) serves two paths:
//! - `/ws`: the `bevy_simplenet` channel ([`simplenet`]), for `bevygap_client_plugin`;
//! - `/matchmaker/ws`: the seed-compatible JSON ([`seed_ws`]), for existing clients and browsers.
//!
//! and beside them `/healthz` and `/readyz` ([`health`](crate::health)) and, unless turned off,
//! the status page. Both endpoints run each connection as its own task that sends tickets to the
//! app and receives their updates; nothing is polled from the schedule.

pub mod limits;
pub mod listener;
pub mod seed_ws;
pub mod simplenet;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bevy::prelude::*;

use crate::bridge::{Inbox, InboxSender, add_inbox};
use crate::core_plugin::Placement;
use crate::error::ConfigError;
use crate::health::{self, HealthReport};
use crate::messages::{TicketCancelled, TicketRequested};
use crate::runtime::AsyncRuntime;
use crate::status_page::{self, PublishedStatus, StatusPagePlugin};
use limits::{ConnectionLimiter, Limits};
use listener::ListenerTimeouts;
use seed_ws::seed_ws_handler;
use simplenet::simplenet_ws_handler;

/// Where and how clients are served.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Client limits.
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve the public status page (`/status`, `/status.json`).
    pub status_page: bool,
    /// Serve TLS (`wss://`, `https://`) with this certificate chain and key, PEM files.
    pub tls: Option<ListenerTls>,
    /// How long each phase of a connection may take.
    pub timeouts: ListenerTimeouts,
}

/// The client listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            status_page: true,
            tls: None,
            timeouts: ListenerTimeouts::default(),
        }
    }
}

/// What the connections of one websocket endpoint share.
#[derive(Clone)]
pub struct Endpoint {
    /// Where new tickets go.
    pub requests: InboxSender<TicketRequested>,
    /// Where cancellations go.
    pub cancels: InboxSender<TicketCancelled>,
    /// This endpoint's open connections, per address and in all.
    pub limiter: ConnectionLimiter,
    /// Limits.
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    /// How long a ticket may live, so a connection never outlives it by much.
    pub ticket_timeout: std::time::Duration,
    /// The player token check, when configured.
    pub players: Option<crate::player_check::PlayerCheck>,
    /// Where requests are counted and timed, when metrics are on.
    pub metrics: Option<crate::metrics::Metrics>,
}

/// The websockets open now, per endpoint.
#[derive(Resource, Debug, Clone)]
pub struct OpenSockets {
    /// `/matchmaker/ws`.
    pub seed: ConnectionLimiter,
    /// `/ws`.
    pub simplenet: ConnectionLimiter,
}

/// The bound address of the client endpoints.
#[derive(Resource, Debug, Clone, Copy)]
pub struct IntakeAddress(pub SocketAddr);

/// Serves clients over websockets (installed by [`Intake::install`]). Needs [`AsyncRuntime`] and the core plugin.
pub struct Intake {
    /// The configuration.
    pub config: IntakeConfig,
}

impl Intake {
    /// Binds the listener and starts both endpoints; a bind failure is a clear error.
    pub fn install(&self, app: &mut App) -> Result<(), ConfigError> {
        add_inbox::<TicketRequested>(app);
        add_inbox::<TicketCancelled>(app);
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        // A queue ticket waits up to its queue's max wait before its match gets a server.
        let placement = &app.world().resource::<Placement>().0;
        let ticket_timeout = placement.ticket_timeout + placement.queues.longest_wait();
        let limits = self.config.limits.clone();
        let limiter =
            || ConnectionLimiter::new(limits.max_connections, limits.max_connections_per_ip);
        let sockets = OpenSockets {
            seed: limiter(),
            simplenet: limiter(),
        };
        app.insert_resource(sockets.clone());
        let requests = app.world().resource::<Inbox<TicketRequested>>().sender();
        let cancels = app.world().resource::<Inbox<TicketCancelled>>().sender();
        let players = app
            .world()
            .get_resource::<crate::player_check::PlayerCheck>()
            .cloned();
        let metrics = app
            .world()
            .get_resource::<crate::metrics::Metrics>()
            .cloned();
        let seed = Endpoint {
            requests,
            cancels,
            limiter: sockets.seed,
            limits: limits.clone(),
            trusted_proxies: Arc::new(self.config.trusted_proxies.clone()),
            ticket_timeout,
            players,
            metrics,
        };
        let simplenet = Endpoint {
            limiter: sockets.simplenet,
            ..seed.clone()
        };
        let mut router = axum::Router::new()
            .route("/matchmaker/ws", axum::routing::get(seed_ws_handler))
            .with_state(seed)
            .merge(
                axum::Router::new()
                    .route("/ws", axum::routing::get(simplenet_ws_handler))
                    .with_state(simplenet),
            );
        if let Some(report) = app.world().get_resource::<HealthReport>() {
            router = router.merge(health::router(report));
        }
        if self.config.status_page {
            app.add_plugins(StatusPagePlugin);
            router = router.merge(status_page::router(
                app.world().resource::<PublishedStatus>(),
            ));
        }

        let bind_error = |e: std::io::Error| ConfigError::Bind {
            addr: self.config.listen,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(self.config.listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let tls = match &self.config.tls {
            None => None,
            Some(tls) => Some(load_tls(&runtime, tls)?),
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
        };
        runtime.spawn(listener::serve(
            listener,
            tls,
            router,
            limits,
            self.config.timeouts,
        ));
        info!(
            "matchmaker: clients connect to {scheme}://{addr}/ws (simplenet) or {scheme}://{addr}/matchmaker/ws (JSON)"
        );
        app.insert_resource(IntakeAddress(addr));
        Ok(())
    }
}

/// Reads the listener's certificate chain and key; HTTP/1.1 is the only protocol offered.
fn load_tls(
    runtime: &tokio::runtime::Handle,
    tls: &ListenerTls,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    bevygap_shared::nats::install_crypto_provider();
    let config = runtime
        .block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(
            &tls.cert, &tls.key,
        ))
        .map_err(|e| {
            ConfigError::invalid(
                "tls-cert",
                format!(
                    "{} and {} are not a usable certificate and key: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
        })?;
    let mut server = (*config.get_inner()).clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
