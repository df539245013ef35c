//! Handing a received session to lightyear and following the connection.

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::schema::Transport;
use lightyear::netcode::ConnectToken;
use lightyear::prelude::client::*;
use lightyear::prelude::*;

use bevygap_shared::protocol::channel::SessionInfo;

use crate::matchmaking::{ClientSettings, ReceivedSession};
use crate::state::BevygapClientState;

/// How often a connection the game server refused is tried again with the same token: the server
/// learns of a reservation through a KV watch, which can trail the matchmaker's answer (a NATS
/// node failing over), and a refused handshake does not use the token up.
const REFUSED_RETRIES: u32 = 8;

/// The pause before the first retry; each next one waits that much longer.
const REFUSED_PAUSE: Duration = Duration::from_millis(300);

/// The lightyear client entity the plugin created.
#[derive(Component, Debug)]
pub struct BevygapLightyearClient {
    started: Duration,
    session: SessionInfo,
    refused: u32,
}

/// A connection the game server refused, to be tried again at `at` (real elapsed time).
#[derive(Resource, Debug)]
pub struct RetryRefusedConnection {
    session: SessionInfo,
    started: Duration,
    refused: u32,
    at: Duration,
}

/// Spawns and connects the lightyear client for a received session.
pub fn connect_session(
    mut commands: Commands,
    session: Option<Res<ReceivedSession>>,
    mut state: ResMut<BevygapClientState>,
    existing: Query<Entity, With<BevygapLightyearClient>>,
    time: Res<Time<Real>>,
) {
    let Some(session) = session else { return };
    let session = session.0.clone();
    commands.remove_resource::<ReceivedSession>();
    commands.remove_resource::<RetryRefusedConnection>();
    spawn_client(
        &mut commands,
        session,
        time.elapsed(),
        0,
        &mut state,
        &existing,
    );
}

/// Tries a refused connection again once its pause is over (see [`REFUSED_RETRIES`]).
pub fn retry_refused_connection(
    mut commands: Commands,
    retry: Option<Res<RetryRefusedConnection>>,
    mut state: ResMut<BevygapClientState>,
    existing: Query<Entity, With<BevygapLightyearClient>>,
    time: Res<Time<Real>>,
) {
    let Some(retry) = retry else { return };
    if retry.at > time.elapsed() {
        return;
    }
    commands.remove_resource::<RetryRefusedConnection>();
    if *state != BevygapClientState::Connecting {
        return;
    }
    spawn_client(
        &mut commands,
        retry.session.clone(),
        retry.started,
        retry.refused,
        &mut state,
        &existing,
    );
}

/// Replaces any client entity of ours with one connecting with `session`'s token.
fn spawn_client(
    commands: &mut Commands,
    session: SessionInfo,
    started: Duration,
    refused: u32,
    state: &mut BevygapClientState,
    existing: &Query<Entity, With<BevygapLightyearClient>>,
) {
    for entity in existing {
        commands.entity(entity).despawn();
    }
    let token = match ConnectToken::try_from_bytes(&session.connect_token) {
        Ok(token) => token,
        Err(error) => {
            *state = BevygapClientState::Failed(format!(
                "the matchmaker sent an unusable token: {error:?}"
            ));
            return;
        }
    };
    let netcode = match NetcodeClient::new(
        Authentication::Token(token),
        lightyear::netcode::client_plugin::NetcodeConfig::default(),
    ) {
        Ok(netcode) => netcode,
        Err(error) => {
            *state = BevygapClientState::Failed(format!("netcode client: {error}"));
            return;
        }
    };
    let marker = BevygapLightyearClient {
        started,
        session: session.clone(),
        refused,
    };
    let entity = match (session.transport, session.cert_digest) {
        (Transport::WebTransport, Some(digest)) => commands
            .spawn((
                Name::new("bevygap client"),
                marker,
                netcode,
                WebTransportClientIo {
                    certificate_digest: digest.to_string(),
                    target: None,
                },
            ))
            .id(),
        (Transport::WebTransport, None) => {
            *state = BevygapClientState::Failed(
                "WebTransport server without a certificate digest".into(),
            );
            return;
        }
        #[cfg(not(target_arch = "wasm32"))]
        (Transport::Udp, _) => commands
            .spawn((
                Name::new("bevygap client"),
                marker,
                netcode,
                LocalAddr(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
                UdpIo::default(),
            ))
            .id(),
        #[cfg(target_arch = "wasm32")]
        (Transport::Udp, _) => {
            *state = BevygapClientState::Failed(
                "browsers cannot use UDP servers; use WebTransport".into(),
            );
            return;
        }
    };
    info!(
        "bevygap: connecting to {} over {:?}",
        session.server_addr(),
        session.transport
    );
    commands.trigger(Connect { entity });
}

/// The connection is up.
pub fn on_connected(
    trigger: On<Add, Connected>,
    ours: Query<(), With<BevygapLightyearClient>>,
    mut state: ResMut<BevygapClientState>,
) {
    if ours.contains(trigger.event_target()) {
        info!("bevygap: connected to the game server");
        *state = BevygapClientState::Connected;
    }
}

/// Whether the server refused the handshake (lightyear reports it only as text).
fn refused_by_server(reason: &DisconnectedReason) -> bool {
    matches!(reason, DisconnectedReason::TransportError(text) if text.contains("ConnectionDenied"))
}

/// The connection ended or failed. A refused handshake is tried again a few times within the
/// connect timeout (see [`REFUSED_RETRIES`]) before the state turns `Failed`.
pub fn on_disconnected(
    trigger: On<Insert, Disconnected>,
    ours: Query<(&Disconnected, &BevygapLightyearClient)>,
    mut state: ResMut<BevygapClientState>,
    settings: Res<ClientSettings>,
    time: Res<Time<Real>>,
    mut commands: Commands,
) {
    let Ok((disconnected, client)) = ours.get(trigger.event_target()) else {
        return;
    };
    if matches!(disconnected.reason, DisconnectedReason::Unknown) {
        return; // inserted when the entity is spawned
    }
    let pause = REFUSED_PAUSE * (client.refused + 1);
    if *state == BevygapClientState::Connecting
        && refused_by_server(&disconnected.reason)
        && client.refused < REFUSED_RETRIES
        && time.elapsed() + pause < client.started + settings.0.connect_timeout
    {
        info!(
            "bevygap: the game server refused the connection; trying again in {pause:?} (it may not have seen the reservation yet)"
        );
        commands.insert_resource(RetryRefusedConnection {
            session: client.session.clone(),
            started: client.started,
            refused: client.refused + 1,
            at: time.elapsed() + pause,
        });
        return;
    }
    let reason = disconnected.reason.to_string();
    *state = match *state {
        BevygapClientState::Connecting => {
            warn!("bevygap: connection refused or failed: {reason}");
            BevygapClientState::Failed(format!("could not connect to the game server: {reason}"))
        }
        BevygapClientState::Connected => {
            info!("bevygap: disconnected: {reason}");
            BevygapClientState::Idle
        }
        ref other => other.clone(),
    };
}

/// Fails a connection attempt that takes longer than the configured timeout.
pub fn time_out_connection(
    mut commands: Commands,
    clients: Query<(Entity, &BevygapLightyearClient)>,
    mut state: ResMut<BevygapClientState>,
    settings: Res<ClientSettings>,
    time: Res<Time<Real>>,
) {
    if *state != BevygapClientState::Connecting {
        return;
    }
    for (entity, client) in &clients {
        if time.elapsed().saturating_sub(client.started) > settings.0.connect_timeout {
            *state = BevygapClientState::Failed(format!(
                "no connection to the game server within {:?}",
                settings.0.connect_timeout
            ));
            commands.entity(entity).despawn();
        }
    }
}

/// Disconnects from the game server (what `bevygap_disconnect_client` does).
pub fn disconnect(world: &mut World) {
    world.remove_resource::<RetryRefusedConnection>();
    let mut query = world.query_filtered::<Entity, With<BevygapLightyearClient>>();
    let entities: Vec<Entity> = query.iter(world).collect();
    for entity in entities {
        world.trigger(Disconnect { entity });
    }
}
