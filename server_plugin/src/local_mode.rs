//! Local mode: a game server run on its own for development, with no matchmaker and no NATS.
//!
//! `example_server --local --dev` (or [`ServerMode::Local`](crate::plugin::ServerMode::Local) in a
//! hand-built [`BevygapServerConfig`]) starts the same lightyear netcode server as under a fleet,
//! UDP or WebTransport with the same certificate, but:
//!
//! - tokens are checked against [`DEV_KEY`], the public all-zero key, so a client mints its own
//!   (`bevygap_client_plugin`'s `DirectServer`) and anyone who can reach the port can join:
//!   development only, which is why `--local` is refused without `--dev`;
//! - [`DevKeyGate`] admits any such client while fewer than the capacity play, and a client that
//!   completes its handshake beyond the capacity (two racing for the last seat) is let go;
//! - no lease, seat ledger or connection records: nothing talks to NATS, and
//!   [`BevygapServerStatus`] reports `listening` and `players` (`registered` and
//!   `nats_connected` stay false).

use std::net::SocketAddr;
use std::sync::Arc;

use bevy::prelude::*;
use bevy_tokio_tasks::TokioTasksRuntime;
use bevygap_shared::names::KeyToken;
use bevygap_shared::schema::Transport;
use lightyear::connection::shared::{ConnectionRequestHandler, DeniedReason};
use lightyear::prelude::server::*;
use lightyear::prelude::*;
use tokio::sync::watch;

use crate::BevygapServerSystems;
use crate::context::{ContextError, DeploymentContext};
use crate::lifetime::{Lifetime, exit_on_stop, wait_for_stop};
use crate::link_sweep::{LinkSweep, stamp_new_link, sweep_unconnected_links};
use crate::plugin::{
    BevygapServerConfig, BevygapServerStatus, spawn_netcode_server, webtransport_cert,
};

/// The netcode key of local mode: all zeros, public, so anyone can mint tokens with it.
pub const DEV_KEY: [u8; 32] = [0; 32];

/// The deployment id a local server reports in its logs.
pub const LOCAL_DEPLOYMENT_ID: &str = "local";

/// The deployment context of a local server: it binds `addr`, and clients' tokens name the same
/// address. No environment is read.
pub fn context(
    addr: SocketAddr,
    app_name: String,
    app_version: String,
    capacity: u32,
) -> Result<DeploymentContext, ContextError> {
    if capacity == 0 {
        return Err(ContextError::Invalid {
            name: "--capacity",
            reason: "must be at least 1".into(),
        });
    }
    let deployment_id =
        KeyToken::new("deployment id", LOCAL_DEPLOYMENT_ID).map_err(|e| ContextError::Invalid {
            name: "deployment id",
            reason: e.to_string(),
        })?;
    Ok(DeploymentContext {
        deployment_id,
        app_name,
        app_version,
        public_addr: addr,
        bind_addr: addr,
        capacity,
        fqdn: None,
        location: None,
        parent_pid: None,
    })
}

/// Admits any client whose token netcode could open with [`DEV_KEY`] (it checks that before
/// asking), while fewer than `capacity` players are connected; refuses with `ServerFull` beyond.
///
/// The count is the one the app publishes each frame from [`LocalPlayer`] entities, so a refused
/// client is told `ServerFull` at once. Two handshakes in flight at the same time can both pass
/// it: the connected client's observer counts again and lets go of one beyond the capacity, so
/// players never exceed it.
#[derive(Debug)]
pub struct DevKeyGate {
    capacity: u32,
    players: watch::Receiver<u32>,
}

impl DevKeyGate {
    /// A gate for `capacity` players, reading the count from `players`.
    pub fn new(capacity: u32, players: watch::Receiver<u32>) -> Self {
        Self { capacity, players }
    }
}

impl ConnectionRequestHandler for DevKeyGate {
    fn handle_request(&self, client_id: PeerId) -> Option<DeniedReason> {
        let PeerId::Netcode(id) = client_id else {
            return Some(DeniedReason::InvalidToken);
        };
        let players = *self.players.borrow();
        if players >= self.capacity {
            debug!(
                "bevygap: local server full ({players} of {} players); denied client {id}",
                self.capacity
            );
            return Some(DeniedReason::ServerFull);
        }
        None
    }
}

/// A client connected to a local server (counted as a player until it disconnects).
#[derive(Component, Debug, Clone, Copy)]
pub struct LocalPlayer {
    /// The netcode client id (the client chose it when it minted its token).
    pub client_id: u64,
}

/// The seats of a local server: how many, and the player count published to the [`DevKeyGate`].
#[derive(Resource)]
struct LocalSeats {
    capacity: u32,
    players: watch::Sender<u32>,
}

/// Players connected now.
type Playing = (With<LocalPlayer>, Without<Disconnected>);

/// Sets up the server for [`ServerMode::Local`](crate::plugin::ServerMode::Local) (called by
/// [`BevygapServerPlugin`](crate::BevygapServerPlugin) once the port is known to be free and a
/// tokio runtime exists).
pub(crate) fn build(app: &mut App, config: &BevygapServerConfig) {
    let context = &config.context;
    warn!(
        "bevygap: LOCAL MODE, for development only: no matchmaker and no NATS; any client holding a token for the public all-zero key may join (up to {} players)",
        context.capacity
    );
    if config.private_key != DEV_KEY {
        warn!("bevygap: local mode ignores the configured private key and uses the all-zero one");
    }
    let cert = webtransport_cert(context, config.transport);
    let transport = match &cert {
        Some(cert) => {
            // Not a secret: browsers and native clients pin the certificate by it.
            info!(
                "bevygap: WebTransport certificate digest {} (give it to clients as DirectServer::cert_digest)",
                cert.digest
            );
            Transport::WebTransport
        }
        None => Transport::Udp,
    };

    let (players_tx, players) = watch::channel(0u32);
    let netcode = lightyear::netcode::server_plugin::NetcodeConfig::default()
        .with_protocol_id(config.protocol_id)
        .with_key(DEV_KEY)
        .with_additional_expected_addresses([context.public_addr])
        .with_connection_request_handler(Arc::new(DevKeyGate::new(context.capacity, players)));
    let server = spawn_netcode_server(app, netcode, context.bind_addr, cert.as_ref());
    info!(
        "bevygap: local game server `{}` for {} {} on {} ({transport:?}, {} seats)",
        context.deployment_id,
        context.app_name,
        context.app_version,
        context.bind_addr,
        context.capacity
    );

    // Stop cleanly on SIGTERM or Ctrl-C. There is no lease: the switch turns nothing off and no
    // lease task is ever stored.
    let (terminate_tx, terminate) = watch::channel(false);
    app.world()
        .resource::<TokioTasksRuntime>()
        .runtime()
        .spawn(async move {
            wait_for_stop(None).await;
            terminate_tx.send_replace(true);
        });
    app.insert_resource(Lifetime {
        terminate,
        stop_lease: watch::channel(false).0,
        lease_task: Arc::default(),
    })
    .insert_resource(LocalSeats {
        capacity: context.capacity,
        players: players_tx,
    })
    .init_resource::<BevygapServerStatus>()
    .insert_resource(LinkSweep {
        ttl: config.unconnected_link_ttl,
    })
    .add_observer(stamp_new_link)
    .add_observer(on_local_client_connected)
    .add_observer(on_local_client_disconnected)
    .add_systems(Startup, move |mut commands: Commands| {
        commands.trigger(Start { entity: server });
    })
    .add_systems(
        Update,
        (update_local_status, exit_on_stop, sweep_unconnected_links)
            .in_set(BevygapServerSystems::Status),
    );
}

/// A client completed the handshake: count it as a player, or let it go when every seat is taken
/// (it passed the gate while another was connecting).
fn on_local_client_connected(
    trigger: On<Add, Connected>,
    clients: Query<&RemoteId, With<ClientOf>>,
    playing: Query<(), Playing>,
    seats: Res<LocalSeats>,
    mut commands: Commands,
) {
    let entity = trigger.event_target();
    let Ok(RemoteId(PeerId::Netcode(client_id))) = clients.get(entity) else {
        return;
    };
    // This client's marker lands with the next command flush: count it here.
    let players = playing.iter().count() + 1;
    if players > usize::try_from(seats.capacity).unwrap_or(usize::MAX) {
        info!(
            "bevygap: local client {client_id} refused after connecting: all {} seats are taken",
            seats.capacity
        );
        commands.trigger(Unlink {
            entity,
            reason: UnlinkReason::UserRequested(Some("the server is full".into())),
        });
        return;
    }
    info!("bevygap: local client {client_id} connected ({players} players)");
    commands.entity(entity).insert(LocalPlayer {
        client_id: *client_id,
    });
}

fn on_local_client_disconnected(
    trigger: On<Add, Disconnected>,
    clients: Query<&LocalPlayer>,
    playing: Query<(), Playing>,
) {
    let Ok(player) = clients.get(trigger.event_target()) else {
        return;
    };
    let players = playing.iter().count();
    info!(
        "bevygap: local client {} left ({players} players)",
        player.client_id
    );
}

/// Publishes the player count to the gate and the status.
fn update_local_status(
    playing: Query<(), Playing>,
    seats: Res<LocalSeats>,
    mut status: ResMut<BevygapServerStatus>,
    servers: Query<(), (With<NetcodeServer>, With<Linked>)>,
) {
    let players = u32::try_from(playing.iter().count()).unwrap_or(u32::MAX);
    seats.players.send_if_modified(|current| {
        let changed = *current != players;
        *current = players;
        changed
    });
    let next = BevygapServerStatus {
        listening: !servers.is_empty(),
        players,
        ..BevygapServerStatus::default()
    };
    if *status != next {
        *status = next;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_gate_admits_until_the_capacity_is_reached() {
        let (players, count) = watch::channel(0u32);
        let gate = DevKeyGate::new(2, count);
        assert_eq!(gate.handle_request(PeerId::Netcode(1)), None);
        players.send_replace(1);
        assert_eq!(gate.handle_request(PeerId::Netcode(2)), None);
        players.send_replace(2);
        assert_eq!(
            gate.handle_request(PeerId::Netcode(3)),
            Some(DeniedReason::ServerFull)
        );
        players.send_replace(1);
        assert_eq!(gate.handle_request(PeerId::Netcode(3)), None);
    }

    #[test]
    fn the_gate_refuses_peers_that_are_not_netcode_clients() {
        let (_players, count) = watch::channel(0u32);
        let gate = DevKeyGate::new(2, count);
        assert_eq!(
            gate.handle_request(PeerId::Local(1)),
            Some(DeniedReason::InvalidToken)
        );
    }

    #[test]
    fn the_local_context_binds_and_names_one_address_and_needs_a_seat() {
        let addr: SocketAddr = "127.0.0.1:6420".parse().unwrap();
        let context = context(addr, "g".into(), "1".into(), 4).unwrap();
        assert_eq!(context.deployment_id.as_str(), LOCAL_DEPLOYMENT_ID);
        assert_eq!((context.bind_addr, context.public_addr), (addr, addr));
        assert_eq!(context.parent_pid, None);
        assert!(matches!(
            super::context(addr, "g".into(), "1".into(), 0),
            Err(ContextError::Invalid { .. })
        ));
    }
}
