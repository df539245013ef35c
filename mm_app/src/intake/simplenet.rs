//! The `bevy_simplenet` endpoint at `/ws`, used by `bevygap_client_plugin`.
//!
//! Simplenet's server is polled from the schedule: [`receive_simplenet`] turns its events into
//! tickets and cancellations; [`send_simplenet_updates`] pushes status messages and answers
//! requests. A client may have one request pending; disconnecting cancels it.
//!
//! Progress statuses wait [`STATUS_GRACE`] before they are sent, and are dropped when the answer
//! comes first: a seat on a running server is answered with the token alone. Besides sparing the
//! client a flicker of "Looking… / Seat reserved", this keeps the answer from queueing behind an
//! unacknowledged status on the long-lived websocket (Nagle's algorithm meets the client's
//! delayed ACK: about 40 ms per request otherwise).

use std::time::Duration;

use std::collections::HashMap;

use bevy::prelude::*;
use bevy_simplenet::{RequestToken, Server, ServerEvent, ServerReport};
use bevygap_shared::protocol::channel::{
    ClientHello, ClientMsg, MatchError, MatchResult, MatchStatus, MatchmakerChannel, ServerMsg,
};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::untrusted::Untrusted;
use tokio::sync::mpsc;

use crate::messages::{TicketCancelled, TicketRequested};
use crate::player_check::PlayerCheck;
use crate::ticket::{TicketId, TicketResponder, TicketUpdate};

/// The simplenet server.
#[derive(Resource)]
pub struct SimplenetServer(pub Server<MatchmakerChannel>);

/// Per-client state of the simplenet endpoint.
#[derive(Resource, Default)]
pub struct SimplenetClients {
    games: HashMap<u128, GameRef>,
    pending: HashMap<TicketId, (u128, RequestToken)>,
    by_client: HashMap<u128, TicketId>,
    /// The latest status of each ticket not yet sent, and since when statuses are held.
    held: HashMap<TicketId, (Duration, MatchStatus)>,
}

/// How long a status is held back in case the answer follows.
pub const STATUS_GRACE: Duration = Duration::from_millis(50);

/// Updates for simplenet tickets, from the core.
#[derive(Resource)]
pub struct SimplenetUpdates {
    /// Cloned into each ticket's responder.
    pub tx: mpsc::UnboundedSender<(TicketId, TicketUpdate)>,
    /// Drained by [`send_simplenet_updates`].
    pub rx: mpsc::UnboundedReceiver<(TicketId, TicketUpdate)>,
}

fn refuse(
    server: &Server<MatchmakerChannel>,
    token: RequestToken,
    code: ErrorCode,
    message: String,
) {
    server.respond(token, MatchResult::Failed(MatchError::new(code, message)));
}

/// Turns simplenet events into tickets and cancellations.
pub fn receive_simplenet(
    mut server: ResMut<SimplenetServer>,
    mut clients: ResMut<SimplenetClients>,
    updates: Res<SimplenetUpdates>,
    mut requests: MessageWriter<TicketRequested>,
    mut cancels: MessageWriter<TicketCancelled>,
    players: Option<Res<PlayerCheck>>,
) {
    while let Some((client, event)) = server.0.next() {
        match event {
            ServerEvent::Report(ServerReport::Connected(_, ClientHello { game, client_build })) => {
                debug!(
                    "simplenet client {client:x} connected ({})",
                    Untrusted(&client_build)
                );
                clients.games.insert(client, game);
            }
            ServerEvent::Report(ServerReport::Disconnected) => {
                clients.games.remove(&client);
                if let Some(ticket_id) = clients.by_client.remove(&client) {
                    clients.pending.remove(&ticket_id);
                    clients.held.remove(&ticket_id);
                    cancels.write(TicketCancelled { ticket_id });
                }
            }
            ServerEvent::Msg(ClientMsg::Cancel) => {
                if let Some(ticket_id) = clients.by_client.get(&client) {
                    cancels.write(TicketCancelled {
                        ticket_id: ticket_id.clone(),
                    });
                }
            }
            ServerEvent::Request(token, request) => {
                let Some(game) = clients.games.get(&client).cloned() else {
                    refuse(
                        &server.0,
                        token,
                        ErrorCode::BadRequest,
                        "connect first".into(),
                    );
                    continue;
                };
                if let Err(error) = game.validate() {
                    refuse(&server.0, token, ErrorCode::BadRequest, error.to_string());
                    continue;
                }
                if let Some(players) = &players
                    && let Err(refused) = players.verify(request.player_token.as_deref())
                {
                    debug!("simplenet client {client:x} refused: {refused}");
                    refuse(&server.0, token, refused.code(), refused.to_string());
                    continue;
                }
                if clients.by_client.contains_key(&client) {
                    refuse(
                        &server.0,
                        token,
                        ErrorCode::BadRequest,
                        "a request is already pending; cancel it first".into(),
                    );
                    continue;
                }
                let ticket_id = TicketId::generate();
                clients.by_client.insert(client, ticket_id.clone());
                clients.pending.insert(ticket_id.clone(), (client, token));
                requests.write(TicketRequested {
                    ticket_id,
                    game,
                    client_ip: None,
                    region_pings: request.region_pings,
                    responder: TicketResponder(updates.tx.clone()),
                });
            }
        }
    }
}

/// Sends statuses (after [`STATUS_GRACE`]) and results of simplenet tickets to their clients.
pub fn send_simplenet_updates(
    server: Res<SimplenetServer>,
    mut clients: ResMut<SimplenetClients>,
    mut updates: ResMut<SimplenetUpdates>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let clients = &mut *clients;
    while let Ok((ticket_id, update)) = updates.rx.try_recv() {
        match update {
            TicketUpdate::Status(status) => {
                if clients.pending.contains_key(&ticket_id) {
                    clients
                        .held
                        .entry(ticket_id)
                        .and_modify(|(_, held)| *held = status.clone())
                        .or_insert((now, status));
                }
            }
            TicketUpdate::Result(result) => {
                clients.held.remove(&ticket_id);
                if let Some((client, token)) = clients.pending.remove(&ticket_id) {
                    clients.by_client.remove(&client);
                    server.0.respond(token, result);
                }
            }
        }
    }
    let pending = &clients.pending;
    clients.held.retain(|ticket_id, (since, status)| {
        if now.saturating_sub(*since) < STATUS_GRACE {
            return true;
        }
        if let Some((client, _)) = pending.get(ticket_id) {
            server.0.send(*client, ServerMsg::Status(status.clone()));
        }
        false
    });
}
