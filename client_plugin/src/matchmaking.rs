//! Asking the matchmaker for a session over the `bevy_simplenet` channel.

use std::time::Duration;

use bevy::prelude::*;
use bevy_simplenet::{AuthRequest, Client, ClientConfig, ClientEvent, ClientFactory, ClientReport};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{
    CHANNEL_PROTOCOL_VERSION, ClientHello, ClientMsg, MatchMode, MatchRequest, MatchResult,
    MatchedSessions, MatchmakerChannel, ServerMsg, SessionInfo,
};

use crate::config::BevygapClientConfig;
use crate::state::BevygapClientState;

/// The plugin's configuration as a resource.
#[derive(Resource, Debug, Clone)]
pub struct ClientSettings(pub BevygapClientConfig);

/// An open matchmaking request.
#[derive(Resource)]
pub struct MatchmakerRequest {
    client: Client<MatchmakerChannel>,
    sent: bool,
    started: Duration,
}

/// A session received from the matchmaker, waiting to be connected.
#[derive(Resource, Debug, Clone)]
pub struct ReceivedSession(pub SessionInfo);

/// What a matchmaking queue matched this client into (with [`BevygapClientConfig::queue`]): its
/// team, and the sessions of the party's other players, for the game to hand to them (this
/// client connects with the first). Replaced by each match; removed by a new request.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct BevygapMatch {
    /// This ticket's team (0-based).
    pub team: u32,
    /// Teams in the match.
    pub teams: u32,
    /// Sessions for the other players of the party, in the party's order.
    pub party_sessions: Vec<SessionInfo>,
}

/// Hands a queue's match on: the first session to the connection, the rest to the game.
pub(crate) fn receive_match(
    commands: &mut Commands,
    state: &mut BevygapClientState,
    matched: MatchedSessions,
) -> Result<(), String> {
    let mut sessions = matched.sessions.into_iter();
    let Some(first) = sessions.next() else {
        return Err("the matchmaker sent a match without a session".into());
    };
    info!(
        "bevygap: matched on team {} of {}, server {}",
        matched.team,
        matched.teams,
        first.server_addr()
    );
    commands.insert_resource(BevygapMatch {
        team: matched.team,
        teams: matched.teams,
        party_sessions: sessions.collect(),
    });
    commands.insert_resource(ReceivedSession(first));
    *state = BevygapClientState::Connecting;
    Ok(())
}

/// Why a request ended without a session.
fn failure(state: &mut BevygapClientState, commands: &mut Commands, reason: String) {
    warn!("bevygap: matchmaking failed: {reason}");
    *state = BevygapClientState::Failed(reason);
    commands.remove_resource::<MatchmakerRequest>();
}

/// Opens the websocket and marks the state `Requesting` (what `bevygap_connect_client` does); with
/// a direct server, mints a token for it and marks the state `Connecting` instead.
pub fn start_request(world: &mut World) {
    let settings = world.resource::<ClientSettings>().0.clone();
    let now = world.resource::<Time<Real>>().elapsed();
    let state = world.resource::<BevygapClientState>().clone();
    if state.is_busy() || state == BevygapClientState::Connected {
        debug!("bevygap: a request is already under way ({state:?})");
        return;
    }
    world.remove_resource::<ReceivedSession>();
    world.remove_resource::<BevygapMatch>();
    world.remove_resource::<crate::connection::RetryRefusedConnection>();
    if let Some(server) = &settings.direct {
        crate::direct::start_direct(world, server);
        return;
    }
    let url = match settings.matchmaker_url.parse() {
        Ok(url) => url,
        Err(error) => {
            *world.resource_mut::<BevygapClientState>() = BevygapClientState::Failed(format!(
                "bad matchmaker URL {}: {error}",
                settings.matchmaker_url
            ));
            return;
        }
    };
    if settings.protocol == crate::config::MatchmakerProtocol::SeedJson {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let conversation = crate::seed_json_mode::start(
                settings.matchmaker_url.clone(),
                bevygap_shared::protocol::seed_json::SeedRequest {
                    game: GameRef::new(settings.game.clone(), settings.version.clone()),
                    player_token: settings
                        .player_token
                        .as_ref()
                        .map(|t| t.expose().to_owned()),
                    queue: settings.queue.as_ref().map(|q| q.queue.clone()),
                    attributes: settings.queue.as_ref().map(|q| q.attributes.clone()),
                    party: settings
                        .queue
                        .as_ref()
                        .map(|q| q.party.clone())
                        .unwrap_or_default(),
                },
                now,
            );
            world.insert_resource(conversation);
            *world.resource_mut::<BevygapClientState>() = BevygapClientState::Requesting;
        }
        #[cfg(target_arch = "wasm32")]
        {
            *world.resource_mut::<BevygapClientState>() = BevygapClientState::Failed(
                "the JSON endpoint mode is native only; use simplenet".into(),
            );
        }
        return;
    }
    let client = ClientFactory::<MatchmakerChannel>::new(CHANNEL_PROTOCOL_VERSION).new_client(
        enfync::builtin::Handle::default(),
        url,
        AuthRequest::None {
            client_id: rand::random::<u128>(),
        },
        ClientConfig {
            reconnect_on_disconnect: false,
            reconnect_on_server_close: false,
            max_initial_connect_attempts: 1,
            ..ClientConfig::default()
        },
        ClientHello {
            game: GameRef::new(settings.game.clone(), settings.version.clone()),
            client_build: settings.client_build.clone(),
        },
    );
    world.insert_resource(MatchmakerRequest {
        client,
        sent: false,
        started: now,
    });
    *world.resource_mut::<BevygapClientState>() = BevygapClientState::Requesting;
}

/// Drives the open request: sends it once connected, follows progress, stores the session.
pub fn poll_matchmaker(
    mut commands: Commands,
    request: Option<ResMut<MatchmakerRequest>>,
    mut state: ResMut<BevygapClientState>,
    settings: Res<ClientSettings>,
    time: Res<Time<Real>>,
) {
    let Some(mut request) = request else { return };
    if time.elapsed().saturating_sub(request.started) > settings.0.request_timeout {
        request.client.send(ClientMsg::Cancel);
        request.client.close();
        return failure(
            &mut state,
            &mut commands,
            format!(
                "no answer from the matchmaker within {:?}",
                settings.0.request_timeout
            ),
        );
    }
    while let Some(event) = request.client.next() {
        match event {
            ClientEvent::Report(ClientReport::Connected) => {
                if !request.sent {
                    request.client.request(MatchRequest {
                        player_token: settings
                            .0
                            .player_token
                            .as_ref()
                            .map(|t| t.expose().to_owned()),
                        mode: settings
                            .0
                            .queue
                            .clone()
                            .map_or(MatchMode::Seat, MatchMode::Queue),
                        ..MatchRequest::default()
                    });
                    request.sent = true;
                }
            }
            ClientEvent::Report(report) => {
                return failure(
                    &mut state,
                    &mut commands,
                    format!("the matchmaker connection ended without a result ({report:?})"),
                );
            }
            ClientEvent::Msg(ServerMsg::Status(status)) => {
                *state = BevygapClientState::Waiting(status.text);
            }
            ClientEvent::Response(MatchResult::Ready(session), _) => {
                info!(
                    "bevygap: session on {} ({:?})",
                    session.server_addr(),
                    session.transport
                );
                request.client.close();
                commands.remove_resource::<MatchmakerRequest>();
                commands.insert_resource(ReceivedSession(session));
                *state = BevygapClientState::Connecting;
                return;
            }
            ClientEvent::Response(MatchResult::Matched(matched), _) => {
                request.client.close();
                commands.remove_resource::<MatchmakerRequest>();
                if let Err(reason) = receive_match(&mut commands, &mut state, matched) {
                    return failure(&mut state, &mut commands, reason);
                }
                return;
            }
            ClientEvent::Response(MatchResult::Failed(error), _) => {
                request.client.close();
                return failure(&mut state, &mut commands, error.to_string());
            }
            ClientEvent::Reject(_) | ClientEvent::SendFailed(_) | ClientEvent::ResponseLost(_) => {
                return failure(
                    &mut state,
                    &mut commands,
                    "the matchmaker dropped the request".into(),
                );
            }
            ClientEvent::Ack(_) => {}
        }
    }
}

/// Drives an open JSON-endpoint conversation (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn poll_seed_json(
    mut commands: Commands,
    conversation: Option<Res<crate::seed_json_mode::SeedConversation>>,
    mut state: ResMut<BevygapClientState>,
    settings: Res<ClientSettings>,
    time: Res<Time<Real>>,
) {
    use crate::seed_json_mode::{SeedConversation, SeedEvent};
    let Some(conversation) = conversation else {
        return;
    };
    if time.elapsed().saturating_sub(conversation.started) > settings.0.request_timeout {
        commands.remove_resource::<SeedConversation>();
        warn!("bevygap: matchmaking timed out");
        *state = BevygapClientState::Failed(format!(
            "no answer from the matchmaker within {:?}",
            settings.0.request_timeout
        ));
        return;
    }
    let events = conversation
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        match events.try_recv() {
            Ok(SeedEvent::Progress(text)) => *state = BevygapClientState::Waiting(text),
            Ok(SeedEvent::Ready(session)) => {
                commands.remove_resource::<SeedConversation>();
                commands.insert_resource(ReceivedSession(session));
                *state = BevygapClientState::Connecting;
                return;
            }
            Ok(SeedEvent::Matched(matched)) => {
                commands.remove_resource::<SeedConversation>();
                if let Err(reason) = receive_match(&mut commands, &mut state, matched) {
                    warn!("bevygap: matchmaking failed: {reason}");
                    *state = BevygapClientState::Failed(reason);
                }
                return;
            }
            Ok(SeedEvent::Failed(reason)) => {
                commands.remove_resource::<SeedConversation>();
                warn!("bevygap: matchmaking failed: {reason}");
                *state = BevygapClientState::Failed(reason);
                return;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                commands.remove_resource::<SeedConversation>();
                *state = BevygapClientState::Failed("the matchmaker conversation ended".into());
                return;
            }
        }
    }
}
