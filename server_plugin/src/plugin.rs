//! [`BevygapServerPlugin`]: runs a lightyear netcode server that only admits clients holding a
//! token the matchmaker issued for this deployment, and keeps the lease and connections in KV
//! (or, in [`ServerMode::Local`], the same server alone for development: [`crate::local_mode`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use bevygap_shared::nats::NatsSettings;
use bevygap_shared::schema::Transport;
use lightyear::prelude::server::*;
use lightyear::prelude::*;
use tokio::sync::watch;

use crate::admission::Admission;
use crate::cert::WebTransportCert;
use crate::clients::{
    LostSeats, PlayerCount, Seating, gate, on_client_connected, on_client_disconnected,
    publish_player_count, unlink_lost_seats,
};
use crate::context::DeploymentContext;
use crate::kv_tasks::SharedAdmission;
use crate::lifetime::{Lifetime, exit_on_stop, remove_lease_on_exit, wait_for_stop};
use crate::link_sweep::{LinkSweep, stamp_new_link, sweep_unconnected_links};
use crate::nats_link::{LinkChannels, run_nats};

/// Whether the server runs under a matchmaker or on its own for development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerMode {
    /// Under a matchmaker: a lease in NATS KV, and clients admitted only with a reservation in the
    /// seat ledger, signed with the shared private key.
    #[default]
    Fleet,
    /// On its own, for development only: no NATS and no matchmaker; any client holding a token for
    /// the public all-zero key is admitted, up to the capacity (see [`crate::local_mode`]).
    /// [`BevygapServerConfig::private_key`] and [`BevygapServerConfig::nats`] are not used.
    Local,
}

/// How the game server runs under Bevygap.
#[derive(Clone)]
pub struct BevygapServerConfig {
    /// Under a matchmaker ([`ServerMode::Fleet`]) or alone for development ([`ServerMode::Local`]).
    pub mode: ServerMode,
    /// NATS connection settings.
    pub nats: NatsSettings,
    /// Who this server is.
    pub context: DeploymentContext,
    /// UDP or WebTransport (one per process).
    pub transport: Transport,
    /// The lightyear protocol id (shared with the matchmaker).
    pub protocol_id: u64,
    /// The netcode private key (shared with the matchmaker). Never logged.
    pub private_key: [u8; 32],
    /// How often the lease is refreshed.
    pub heartbeat: Duration,
    /// How long a peer may send packets without finishing the handshake before its link is
    /// dropped (see [`crate::link_sweep`]).
    pub unconnected_link_ttl: Duration,
}

impl std::fmt::Debug for BevygapServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BevygapServerConfig")
            .field("mode", &self.mode)
            .field("context", &self.context)
            .field("transport", &self.transport)
            .field("protocol_id", &self.protocol_id)
            .finish_non_exhaustive()
    }
}

/// What the game can read to decide when it is ready.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct BevygapServerStatus {
    /// The lease is in KV: the matchmaker can place players here.
    pub registered: bool,
    /// The netcode server is listening.
    pub listening: bool,
    /// Players connected now.
    pub players: u32,
    /// NATS is connected. While it is not, connected players play on and new ones are admitted
    /// from reservations already seen; their records are written when it returns.
    pub nats_connected: bool,
    /// Clients whose seat or connection record waits for NATS (written when it returns).
    pub unsaved_records: usize,
}

/// The server plugin's system sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BevygapServerSystems {
    /// Status updates (in `Update`).
    Status,
}

/// Runs the game server under Bevygap. Add it after lightyear's `ServerPlugins`.
pub struct BevygapServerPlugin {
    /// The configuration.
    pub config: BevygapServerConfig,
}

/// What the NATS link reports: the lease in KV, the connection, records waiting.
#[derive(Resource)]
struct LinkStatus {
    registered: watch::Receiver<bool>,
    nats_connected: watch::Receiver<bool>,
    unsaved_records: watch::Receiver<usize>,
}

impl Plugin for BevygapServerPlugin {
    fn build(&self, app: &mut App) {
        if !port_is_free(app, self.config.context.bind_addr) {
            return;
        }
        if !app.world().contains_resource::<TokioTasksRuntime>() {
            app.add_plugins(TokioTasksPlugin::default());
        }
        if self.config.mode == ServerMode::Local {
            crate::local_mode::build(app, &self.config);
            return;
        }
        let config = self.config.clone();
        let admission: SharedAdmission = Arc::new(Mutex::new(Admission::new(
            config.context.deployment_id.to_string(),
        )));
        let lookups = Arc::new(tokio::sync::Notify::new());
        let (registered_tx, registered) = watch::channel(false);
        let (nats_connected_tx, nats_connected) = watch::channel(false);
        let (unsaved_tx, unsaved_records) = watch::channel(0usize);
        let (stop_lease, stop_lease_rx) = watch::channel(false);
        let (terminate_tx, terminate) = watch::channel(false);
        let (players_tx, players) = watch::channel(0u32);
        let (backfill_tx, backfill) = watch::channel(None);
        let (seat_commands, seat_commands_rx) = tokio::sync::mpsc::unbounded_channel();
        let (lost_tx, lost_rx) = tokio::sync::mpsc::unbounded_channel();

        let cert = webtransport_cert(&config.context, config.transport);
        let transport = if cert.is_some() {
            Transport::WebTransport
        } else {
            Transport::Udp
        };

        let runtime = app
            .world()
            .resource::<TokioTasksRuntime>()
            .runtime()
            .handle()
            .clone();
        let parent_pid = config.context.parent_pid;
        runtime.spawn(async move {
            wait_for_stop(parent_pid).await;
            terminate_tx.send_replace(true);
        });
        let lease_task = Arc::new(tokio::sync::Mutex::new(None));
        let link = run_nats(
            config.clone(),
            transport,
            cert.as_ref().map(|c| c.digest),
            LinkChannels {
                registered: registered_tx,
                stop: stop_lease_rx,
                players,
                backfill,
                seat_commands: seat_commands_rx,
                lost: lost_tx,
                admission: admission.clone(),
                lookups: lookups.clone(),
                nats_connected: nats_connected_tx,
                unsaved_records: unsaved_tx,
            },
        );
        let slot = lease_task.clone();
        runtime.spawn(async move {
            let task = link.await;
            *slot.lock().await = Some(task);
        });

        let netcode = lightyear::netcode::server_plugin::NetcodeConfig::default()
            .with_protocol_id(config.protocol_id)
            .with_key(config.private_key)
            .with_additional_expected_addresses([config.context.public_addr])
            .with_connection_request_handler(gate(admission.clone(), lookups));
        let server = spawn_netcode_server(app, netcode, config.context.bind_addr, cert.as_ref());
        info!(
            "bevygap: game server `{}` for {} {} on {} ({transport:?}, {} seats)",
            config.context.deployment_id,
            config.context.app_name,
            config.context.app_version,
            config.context.bind_addr,
            config.context.capacity
        );
        app.insert_resource(Seating {
            admission,
            seat_commands,
        })
        .insert_resource(LostSeats(lost_rx))
        .insert_resource(PlayerCount(players_tx))
        .init_resource::<crate::backfill::BevygapBackfill>()
        .insert_resource(crate::backfill::BackfillPublisher {
            sender: backfill_tx,
            capacity: config.context.capacity,
        })
        .insert_resource(LinkStatus {
            registered,
            nats_connected,
            unsaved_records,
        })
        .insert_resource(Lifetime {
            terminate,
            stop_lease,
            lease_task,
        })
        .init_resource::<BevygapServerStatus>()
        .insert_resource(LinkSweep {
            ttl: config.unconnected_link_ttl,
        })
        .add_observer(stamp_new_link)
        .add_observer(on_client_connected)
        .add_observer(on_client_disconnected)
        .add_systems(Startup, move |mut commands: Commands| {
            commands.trigger(Start { entity: server });
        })
        .add_systems(
            Update,
            (
                publish_player_count,
                crate::backfill::publish_backfill,
                update_status,
                exit_on_stop,
                sweep_unconnected_links,
                unlink_lost_seats,
            )
                .in_set(BevygapServerSystems::Status),
        )
        .add_systems(Last, remove_lease_on_exit);
    }
}

/// lightyear panics when its socket cannot bind: finds out first, says why, and makes the app exit
/// with an error, so whoever started the server sees a failed start rather than a crash.
fn port_is_free(app: &mut App, bind_addr: std::net::SocketAddr) -> bool {
    let Err(error) = std::net::UdpSocket::bind(bind_addr) else {
        return true;
    };
    error!(
        "bevygap: cannot listen on {bind_addr}: {error}; another process holds the port or the address is not this machine's. Stop it or give this server another port; exiting"
    );
    app.add_systems(Startup, |mut exit: MessageWriter<AppExit>| {
        exit.write(AppExit::error());
    });
    false
}

/// The WebTransport certificate when `transport` asks for one (for the public address and
/// `localhost`); `None` for UDP, or when it cannot be made (the server then falls back to UDP).
pub(crate) fn webtransport_cert(
    context: &DeploymentContext,
    transport: Transport,
) -> Option<WebTransportCert> {
    match transport {
        Transport::WebTransport => {
            let names = vec![context.public_addr.ip().to_string(), "localhost".to_owned()];
            match WebTransportCert::generate(&names, Duration::from_secs(13 * 24 * 3600)) {
                Ok(cert) => Some(cert),
                Err(error) => {
                    error!("{error}; falling back to UDP");
                    None
                }
            }
        }
        Transport::Udp => None,
    }
}

/// Spawns the lightyear netcode server on `bind_addr`: WebTransport with `cert`, UDP without.
/// It starts listening when `Start` is triggered on the returned entity.
pub(crate) fn spawn_netcode_server(
    app: &mut App,
    netcode: lightyear::netcode::server_plugin::NetcodeConfig,
    bind_addr: std::net::SocketAddr,
    cert: Option<&WebTransportCert>,
) -> Entity {
    let mut server = app.world_mut().spawn((
        Name::new("bevygap game server"),
        NetcodeServer::new(netcode),
        LocalAddr(bind_addr),
    ));
    match cert {
        Some(cert) => match webtransport_identity(cert) {
            Ok(identity) => {
                server.insert(WebTransportServerIo {
                    certificate: identity,
                });
            }
            Err(error) => error!("WebTransport identity: {error}"),
        },
        None => {
            server.insert(ServerUdpIo::default());
        }
    }
    server.id()
}

fn webtransport_identity(cert: &WebTransportCert) -> Result<Identity, String> {
    let certificate =
        wtransport::tls::Certificate::from_der(cert.cert_der.clone()).map_err(|e| e.to_string())?;
    Ok(wtransport::Identity::new(
        wtransport::tls::CertificateChain::single(certificate),
        wtransport::tls::PrivateKey::from_der_pkcs8(cert.key_der.clone()),
    ))
}

fn update_status(
    link: Res<LinkStatus>,
    players: Res<PlayerCount>,
    mut status: ResMut<BevygapServerStatus>,
    servers: Query<(), (With<NetcodeServer>, With<Linked>)>,
) {
    let next = BevygapServerStatus {
        registered: *link.registered.borrow(),
        listening: !servers.is_empty(),
        players: *players.0.borrow(),
        nats_connected: *link.nats_connected.borrow(),
        unsaved_records: *link.unsaved_records.borrow(),
    };
    if *status != next {
        *status = next;
    }
}
