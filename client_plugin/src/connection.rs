//! Handing a received session to lightyear and following the connection.

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::schema::Transport;
use lightyear::netcode::ConnectToken;
use lightyear::prelude::client::*;
use lightyear::prelude::*;

use crate::matchmaking::{ClientSettings, ReceivedSession};
use crate::state::BevygapClientState;

/// The lightyear client entity the plugin created.
#[derive(Component, Debug)]
pub struct BevygapLightyearClient {
    started: Duration,
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
    for entity in &existing {
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
        started: time.elapsed(),
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

/// The connection ended or failed.
pub fn on_disconnected(
    trigger: On<Insert, Disconnected>,
    ours: Query<&Disconnected, With<BevygapLightyearClient>>,
    mut state: ResMut<BevygapClientState>,
) {
    let Ok(disconnected) = ours.get(trigger.event_target()) else {
        return;
    };
    if matches!(disconnected.reason, DisconnectedReason::Unknown) {
        return; // inserted when the entity is spawned
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
    let mut query = world.query_filtered::<Entity, With<BevygapLightyearClient>>();
    let entities: Vec<Entity> = query.iter(world).collect();
    for entity in entities {
        world.trigger(Disconnect { entity });
    }
}
