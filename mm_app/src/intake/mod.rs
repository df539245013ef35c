//! Intake: the websocket endpoints clients use, both feeding the same tickets.
//!
//! One listener serves two paths:
//! - `/ws`: the `bevy_simplenet` channel ([`simplenet`]), for `bevygap_client_plugin`;
//! - `/matchmaker/ws`: the seed-compatible JSON ([`seed_ws`]), for existing clients and browsers.
//!
//! and beside them `/healthz` and `/readyz` ([`health`](crate::health)) and, unless turned off,
//! the status page.

pub mod limits;
pub mod seed_ws;
pub mod simplenet;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bevy::prelude::*;
use bevy_simplenet::{AcceptorConfig, Authenticator, RateLimitConfig, ServerConfig, ServerFactory};
use bevygap_shared::protocol::channel::{CHANNEL_PROTOCOL_VERSION, MatchmakerChannel};
use tokio::sync::mpsc;

use crate::bridge::{Inbox, add_inbox};
use crate::core_plugin::{CoreSystems, Placement};
use crate::error::ConfigError;
use crate::health::{self, HealthReport};
use crate::messages::{TicketCancelled, TicketRequested};
use crate::runtime::AsyncRuntime;
use crate::status_page::{self, PublishedStatus, StatusPagePlugin};
use limits::{ConnectionLimiter, Limits};
use seed_ws::{SeedEndpoint, seed_ws_handler};
use simplenet::{SimplenetClients, SimplenetServer, SimplenetUpdates};

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
        }
    }
}

/// The seed JSON sockets open now (a graceful stop waits for them to close, so every answer
/// written is also delivered).
#[derive(Resource, Debug, Clone)]
pub struct OpenSeedSockets(pub ConnectionLimiter);

/// The bound address of the client endpoints.
#[derive(Resource, Debug, Clone, Copy)]
pub struct IntakeAddress(pub SocketAddr);

/// The intake plugin's system sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntakeSystems {
    /// Simplenet events become tickets (in [`CoreSystems::Receive`]).
    Receive,
    /// Ticket updates go out to simplenet clients (in [`CoreSystems::Effects`]).
    Respond,
}

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
        let ticket_timeout = app.world().resource::<Placement>().0.ticket_timeout;
        let limits = self.config.limits.clone();
        let limiter = ConnectionLimiter::new(limits.max_connections, limits.max_connections_per_ip);
        app.insert_resource(OpenSeedSockets(limiter.clone()));
        let endpoint = SeedEndpoint {
            requests: app.world().resource::<Inbox<TicketRequested>>().sender(),
            cancels: app.world().resource::<Inbox<TicketCancelled>>().sender(),
            limiter,
            limits: limits.clone(),
            trusted_proxies: Arc::new(self.config.trusted_proxies.clone()),
            ticket_timeout,
            players: app
                .world()
                .get_resource::<crate::player_check::PlayerCheck>()
                .cloned(),
        };
        let mut router = axum::Router::new()
            .route("/matchmaker/ws", axum::routing::get(seed_ws_handler))
            .with_state(endpoint);
        if let Some(report) = app.world().get_resource::<HealthReport>() {
            router = router.merge(health::router(report));
        }
        if self.config.status_page {
            app.add_plugins(StatusPagePlugin);
            router = router.merge(status_page::router(
                app.world().resource::<PublishedStatus>(),
            ));
        }

        // Simplenet panics if it cannot bind: find out first, with a clear error.
        let probe =
            std::net::TcpListener::bind(self.config.listen).map_err(|e| ConfigError::Bind {
                addr: self.config.listen,
                reason: e.to_string(),
            })?;
        let addr = probe.local_addr().map_err(|e| ConfigError::Bind {
            addr: self.config.listen,
            reason: e.to_string(),
        })?;
        drop(probe);

        let server_config = ServerConfig {
            max_connections: u32::try_from(limits.max_connections).unwrap_or(u32::MAX),
            max_msg_size: u32::try_from(limits.max_message_bytes).unwrap_or(u32::MAX),
            rate_limit_config: RateLimitConfig {
                period: std::time::Duration::from_secs(1),
                max_count: limits.messages_per_second.max(1),
            },
            ..ServerConfig::default()
        };
        let acceptor = match &self.config.tls {
            None => AcceptorConfig::Default,
            Some(tls) => {
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
                AcceptorConfig::Rustls(config)
            }
        };
        let scheme = if self.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        let server = {
            let _guard = runtime.enter();
            ServerFactory::<MatchmakerChannel>::new(CHANNEL_PROTOCOL_VERSION)
                .new_server_with_router(
                    enfync::builtin::native::TokioHandle::from(runtime.clone()),
                    addr,
                    acceptor,
                    Authenticator::None,
                    server_config,
                    router,
                )
        };
        let (tx, rx) = mpsc::unbounded_channel();
        info!(
            "matchmaker: clients connect to {scheme}://{addr}/ws (simplenet) or {scheme}://{addr}/matchmaker/ws (JSON)"
        );
        app.insert_resource(SimplenetServer(server))
            .insert_resource(IntakeAddress(addr))
            .insert_resource(SimplenetUpdates { tx, rx })
            .init_resource::<SimplenetClients>()
            .configure_sets(Update, IntakeSystems::Receive.in_set(CoreSystems::Receive))
            .configure_sets(Update, IntakeSystems::Respond.in_set(CoreSystems::Effects))
            .add_systems(
                Update,
                simplenet::receive_simplenet.in_set(IntakeSystems::Receive),
            )
            .add_systems(
                Update,
                simplenet::send_simplenet_updates.in_set(IntakeSystems::Respond),
            );
        Ok(())
    }
}
