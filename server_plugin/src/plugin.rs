//! [`BevygapServerPlugin`]: runs a lightyear netcode server that only admits clients holding a
//! token the matchmaker issued for this deployment, and keeps the lease and connections in KV.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    NatsConnection, NatsSettings, SeatLedger, connect, install_crypto_provider, open_bucket,
};
use bevygap_shared::schema::Transport;
use bevygap_shared::time::now_millis;
use lightyear::connection::shared::{ConnectionRequestHandler, DeniedReason};
use lightyear::prelude::server::*;
use lightyear::prelude::*;
use tokio::sync::watch;

use crate::admission::Admission;
use crate::cert::WebTransportCert;
use crate::context::DeploymentContext;
use crate::kv_tasks::{
    ConnectionRecorder, SeatCommand, SeatLost, SharedAdmission, lease_for, lock, run_lease,
    run_recorder, watch_seats,
};
use crate::link_sweep::{LinkSweep, stamp_new_link, sweep_unconnected_links};

/// How the game server runs under Bevygap.
#[derive(Clone)]
pub struct BevygapServerConfig {
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

/// Internal shared state.
#[derive(Resource, Clone)]
struct ServerShared {
    admission: SharedAdmission,
    players: Arc<AtomicU32>,
    /// Seat changes for the recorder task (queued until NATS is up: nobody is admitted before).
    seat_commands: tokio::sync::mpsc::UnboundedSender<SeatCommand>,
    registered: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    lease_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    terminate: Arc<std::sync::atomic::AtomicBool>,
}

/// Clients whose seat could not be taken in the ledger, reported by the recorder task.
#[derive(Resource)]
struct LostSeats(tokio::sync::mpsc::UnboundedReceiver<SeatLost>);

/// Admits a client id only with a live, unused reservation (see [`Admission::check`]).
#[derive(Debug)]
struct ReservationGate(SharedAdmission);

impl ConnectionRequestHandler for ReservationGate {
    fn handle_request(&self, client_id: PeerId) -> Option<DeniedReason> {
        let PeerId::Netcode(id) = client_id else {
            return Some(DeniedReason::InvalidToken);
        };
        match lock(&self.0).check(id, now_millis()) {
            Ok(()) => None,
            Err(denied) => {
                debug!("denied client {id}: {denied}");
                Some(match denied {
                    crate::admission::AdmissionDenied::AlreadyUsed(_) => {
                        DeniedReason::TokenAlreadyUsed
                    }
                    _ => DeniedReason::InvalidToken,
                })
            }
        }
    }
}

impl Plugin for BevygapServerPlugin {
    fn build(&self, app: &mut App) {
        // lightyear panics when its socket cannot bind: find out first, say why, and exit with an
        // error so the fleet sees a failed start rather than a crash.
        if let Err(error) = std::net::UdpSocket::bind(self.config.context.bind_addr) {
            error!(
                "bevygap: cannot listen on {}: {error}; another process holds the port or the address is not this machine's. Stop it or give this server another port; exiting",
                self.config.context.bind_addr
            );
            app.add_systems(Startup, |mut exit: MessageWriter<AppExit>| {
                exit.write(AppExit::error());
            });
            return;
        }
        if !app.world().contains_resource::<TokioTasksRuntime>() {
            app.add_plugins(TokioTasksPlugin::default());
        }
        let config = self.config.clone();
        let admission: SharedAdmission = Arc::new(Mutex::new(Admission::new(
            config.context.deployment_id.to_string(),
        )));
        let (registered_tx, registered) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let (seat_commands, seat_commands_rx) = tokio::sync::mpsc::unbounded_channel();
        let (lost_tx, lost_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = ServerShared {
            admission: admission.clone(),
            players: Arc::default(),
            seat_commands,
            registered,
            stop,
            lease_task: Arc::default(),
            terminate: Arc::default(),
        };

        let cert = match config.transport {
            Transport::WebTransport => {
                let names = vec![
                    config.context.public_addr.ip().to_string(),
                    "localhost".to_owned(),
                ];
                match WebTransportCert::generate(&names, Duration::from_secs(13 * 24 * 3600)) {
                    Ok(cert) => Some(cert),
                    Err(error) => {
                        error!("{error}; falling back to UDP");
                        None
                    }
                }
            }
            Transport::Udp => None,
        };
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
        let terminate = shared.terminate.clone();
        let parent_pid = config.context.parent_pid;
        runtime.spawn(async move {
            tokio::select! {
                () = bevygap_shared::signals::termination() => {}
                () = wait_for_orphaning(parent_pid) => {
                    warn!("bevygap: the matchmaker that started this server is gone; stopping");
                }
            }
            terminate.store(true, Ordering::Release);
        });
        runtime.spawn(run_nats(
            config.clone(),
            transport,
            cert.as_ref().map(|c| c.digest),
            shared.clone(),
            registered_tx,
            stop_rx,
            (seat_commands_rx, lost_tx),
        ));

        let netcode = lightyear::netcode::server_plugin::NetcodeConfig::default()
            .with_protocol_id(config.protocol_id)
            .with_key(config.private_key)
            .with_additional_expected_addresses([config.context.public_addr])
            .with_connection_request_handler(Arc::new(ReservationGate(admission)));
        let mut server = app.world_mut().spawn((
            Name::new("bevygap game server"),
            NetcodeServer::new(netcode),
            LocalAddr(config.context.bind_addr),
        ));
        match cert {
            Some(cert) => match webtransport_identity(&cert) {
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
        let server = server.id();
        info!(
            "bevygap: game server `{}` for {} {} on {} ({transport:?}, {} seats)",
            config.context.deployment_id,
            config.context.app_name,
            config.context.app_version,
            config.context.bind_addr,
            config.context.capacity
        );
        app.insert_resource(shared)
            .insert_resource(LostSeats(lost_rx))
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
                    update_status,
                    exit_on_signal,
                    sweep_unconnected_links,
                    unlink_lost_seats,
                )
                    .in_set(BevygapServerSystems::Status),
            )
            .add_systems(Last, remove_lease_on_exit);
    }
}

fn webtransport_identity(cert: &WebTransportCert) -> Result<Identity, String> {
    let certificate =
        wtransport::tls::Certificate::from_der(cert.cert_der.clone()).map_err(|e| e.to_string())?;
    Ok(wtransport::Identity::new(
        wtransport::tls::CertificateChain::single(certificate),
        wtransport::tls::PrivateKey::from_der_pkcs8(cert.key_der.clone()),
    ))
}

/// The recorder's queues: seat commands in, lost seats out.
type RecorderChannels = (
    tokio::sync::mpsc::UnboundedReceiver<SeatCommand>,
    tokio::sync::mpsc::UnboundedSender<SeatLost>,
);

/// Connects to NATS (retrying forever, also while the matchmaker has not made the buckets yet),
/// then keeps the lease, feeds admission and records seats.
async fn run_nats(
    config: BevygapServerConfig,
    transport: Transport,
    digest: Option<bevygap_shared::schema::CertDigest>,
    shared: ServerShared,
    registered: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    (seat_commands, lost): RecorderChannels,
) {
    install_crypto_provider();
    let mut attempt = 0u32;
    let (nats, stores) = loop {
        match connect_and_open(&config).await {
            Ok(done) => break done,
            Err(error) => {
                attempt = attempt.saturating_add(1);
                let delay =
                    Duration::from_millis(200u64.saturating_mul(u64::from(attempt.min(25))));
                warn!(
                    "bevygap: NATS not ready ({error}); retrying in {delay:?}. Players can't be placed here until it is."
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    let recorder = ConnectionRecorder {
        connections: stores.2.clone(),
        seats: stores.1.clone(),
        context: config.context.clone(),
    };
    tokio::spawn(run_recorder(recorder, seat_commands, lost));
    tokio::spawn(watch_seats(
        nats.clone(),
        stores.1.clone(),
        config.context.clone(),
        shared.admission.clone(),
    ));
    let lease = lease_for(&config.context, transport, digest);
    let task = tokio::spawn(run_lease(
        stores.0,
        lease,
        shared.players.clone(),
        config.heartbeat,
        registered,
        stop,
    ));
    *shared
        .lease_task
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
}

type Stores = (
    async_nats::jetstream::kv::Store,
    SeatLedger,
    async_nats::jetstream::kv::Store,
);

async fn connect_and_open(
    config: &BevygapServerConfig,
) -> Result<(NatsConnection, Stores), String> {
    let nats = connect(
        &config.nats,
        &format!("bevygap-server-{}", config.context.deployment_id),
    )
    .await
    .map_err(|e| e.to_string())?;
    let names = AppNames::new(&config.context.app_name).map_err(|e| e.to_string())?;
    // The matchmaker owns the buckets and their settings: use them as they are.
    let js = nats.jetstream();
    let leases = open_bucket(js, &names.leases_bucket())
        .await
        .map_err(|e| e.to_string())?;
    let seats = open_bucket(js, &names.reservations_bucket())
        .await
        .map_err(|e| e.to_string())?;
    let connections = open_bucket(js, &names.connections_bucket())
        .await
        .map_err(|e| e.to_string())?;
    let ledger = SeatLedger::new(seats, js.clone());
    Ok((nats, (leases, ledger, connections)))
}

/// A client completed the handshake: verify its token's user data, consume its reservation,
/// record the connection. A client that fails the check is unlinked.
fn on_client_connected(
    trigger: On<Add, Connected>,
    clients: Query<(&RemoteId, Option<&TokenUserData>), With<ClientOf>>,
    shared: Res<ServerShared>,
    mut commands: Commands,
) {
    let entity = trigger.event_target();
    let Ok((remote, user_data)) = clients.get(entity) else {
        return;
    };
    let PeerId::Netcode(client_id) = remote.0 else {
        return;
    };
    let data = user_data.and_then(|d| bevygap_shared::token_data::TokenUserData::decode(&d.0).ok());
    match lock(&shared.admission).admit(client_id, data.as_ref(), now_millis()) {
        Ok(admitted) => {
            let players = shared.players.fetch_add(1, Ordering::Relaxed) + 1;
            info!(
                "bevygap: client {client_id} connected on seat {} ({players} players)",
                admitted.seat
            );
            commands.entity(entity).insert(AdmittedClient {
                client_id,
                seat: admitted.seat,
            });
            let _ = shared.seat_commands.send(SeatCommand::Opened {
                client_id,
                reservation_id: admitted.reservation_id,
                seat: admitted.seat,
                revision: admitted.revision,
            });
        }
        Err(denied) => {
            info!("bevygap: client {client_id} refused after connecting: {denied}");
            commands.trigger(Unlink {
                entity,
                reason: UnlinkReason::UserRequested(Some(denied.to_string())),
            });
        }
    }
}

/// Marks a client admitted through a reservation (so its disconnect frees its seat).
#[derive(Component, Debug, Clone, Copy)]
pub struct AdmittedClient {
    /// The netcode client id.
    pub client_id: u64,
    /// The seat it holds.
    pub seat: u32,
}

fn on_client_disconnected(
    trigger: On<Add, Disconnected>,
    clients: Query<&AdmittedClient>,
    shared: Res<ServerShared>,
) {
    let Ok(admitted) = clients.get(trigger.event_target()) else {
        return;
    };
    let players = shared
        .players
        .fetch_sub(1, Ordering::Relaxed)
        .saturating_sub(1);
    info!(
        "bevygap: client {} left ({players} players)",
        admitted.client_id
    );
    let _ = shared.seat_commands.send(SeatCommand::Closed {
        client_id: admitted.client_id,
        seat: admitted.seat,
    });
}

/// Lets go of clients whose seat could not be taken in the ledger (it lapsed or was closed
/// before they connected): keeping them would hold more players than the seats sold.
fn unlink_lost_seats(
    mut lost: ResMut<LostSeats>,
    clients: Query<(Entity, &AdmittedClient)>,
    mut commands: Commands,
) {
    while let Ok(seat) = lost.0.try_recv() {
        if let Some((entity, _)) = clients.iter().find(|(_, c)| c.client_id == seat.client_id) {
            commands.trigger(Unlink {
                entity,
                reason: UnlinkReason::UserRequested(Some(seat.to_string())),
            });
        }
    }
}

fn update_status(
    shared: Res<ServerShared>,
    mut status: ResMut<BevygapServerStatus>,
    servers: Query<(), (With<NetcodeServer>, With<Linked>)>,
) {
    let next = BevygapServerStatus {
        registered: *shared.registered.borrow(),
        listening: !servers.is_empty(),
        players: shared.players.load(Ordering::Relaxed),
    };
    if *status != next {
        *status = next;
    }
}

/// On exit, stops the heartbeat and waits briefly for the lease to be removed.
fn remove_lease_on_exit(
    mut exits: MessageReader<AppExit>,
    shared: Res<ServerShared>,
    runtime: Res<TokioTasksRuntime>,
) {
    if exits.read().next().is_none() {
        return;
    }
    shared.stop.send_replace(true);
    let task = shared
        .lease_task
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(task) = task {
        let _ = runtime
            .runtime()
            .block_on(async { tokio::time::timeout(Duration::from_secs(2), task).await });
    }
}

/// Resolves when `parent` is no longer this process's parent (it died and the server was
/// re-parented); never when there is no parent to watch.
async fn wait_for_orphaning(parent: Option<u32>) {
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    #[cfg(unix)]
    loop {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    #[cfg(not(unix))]
    {
        let _ = parent;
        std::future::pending().await
    }
}

/// Exits the app after a termination signal, so the lease is removed on the way out.
fn exit_on_signal(shared: Res<ServerShared>, mut exit: MessageWriter<AppExit>) {
    if shared.terminate.swap(false, Ordering::AcqRel) {
        info!("bevygap: termination requested; shutting down");
        exit.write(AppExit::Success);
    }
}
