//! Tickets: one per client request, from intake until a result is sent. Spawned from
//! [`TicketRequested`], gone when answered, cancelled or timed out.

use std::net::IpAddr;
use std::time::Duration;

use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::prelude::*;
use bevygap_shared::protocol::channel::{
    MatchError, MatchResult, MatchStage, MatchStatus, RegionPing,
};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::untrusted::Untrusted;
use tokio::sync::mpsc;

use crate::core_plugin::{Placement, PlacementDirty};
use crate::deadlines::Deadlines;
use crate::messages::{TicketCancelled, TicketRequested};
use crate::queues::tickets::{QueueTicket, Queues, admit};

/// A ticket's id: `t-` and 16 hex digits, unique per matchmaker run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Reflect)]
pub struct TicketId(pub String);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's request for a match. Filed in [`TicketIndex`] by its hooks.
#[derive(Component, Debug, Clone, Reflect)]
#[component(on_insert = index_ticket, on_discard = unindex_ticket)]
#[reflect(Component)]
pub struct Ticket {
    /// The ticket id, sent to the client and used in logs.
    pub id: TicketId,
    /// The game and version the client runs.
    #[reflect(ignore)]
    pub game: GameRef,
    /// The client's IP, if the endpoint knows it.
    #[reflect(ignore)]
    pub client_ip: Option<IpAddr>,
    /// Region pings the client measured, best first.
    #[reflect(ignore)]
    pub region_pings: Vec<RegionPing>,
    /// When the ticket was created (app elapsed time).
    pub created_at: Duration,
    /// When the ticket fails with a timeout (app elapsed time).
    pub deadline: Duration,
}

/// Where a ticket stands.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub enum TicketState {
    /// Waiting for a seat on a ready deployment.
    Queued,
    /// No seat was free; a deployment is being started for it (or for tickets before it).
    Allocating,
    /// A seat is reserved; waiting for the reservation to be stored before answering.
    Placed {
        /// The reservation entity.
        reservation: Entity,
    },
    /// Waiting in a matchmaking queue for a match ([`crate::queues`]).
    InQueue,
    /// In a match, waiting for the match's server and seats ([`crate::queues::seating`]).
    Matched {
        /// The match entity.
        with: Entity,
    },
}

/// What the matchmaker tells the endpoint that owns a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketUpdate {
    /// Progress to show the player.
    Status(MatchStatus),
    /// The final answer; the ticket is gone after this.
    Result(MatchResult),
}

/// Where a ticket's updates go: a channel owned by the client's endpoint.
///
/// The channel is unbounded so that no answer is ever dropped for want of room (a client left
/// with "a request is already pending" and a seat sold to nobody). What it can hold is bounded
/// all the same: a ticket gets one result and a status only when its stage changes, and tickets
/// are bounded by the endpoints' connection caps.
#[derive(Component, Debug, Clone)]
pub struct TicketResponder(pub mpsc::UnboundedSender<(TicketId, TicketUpdate)>);

impl TicketResponder {
    /// Sends without waiting; returns false when the client's endpoint is gone.
    pub fn send(&self, ticket: &TicketId, update: TicketUpdate) -> bool {
        self.0.send((ticket.clone(), update)).is_ok()
    }
}

/// Finds tickets by id (for cancellation); kept by [`Ticket`]'s hooks.
#[derive(Resource, Debug, Default)]
pub struct TicketIndex(pub std::collections::HashMap<TicketId, Entity>);

fn index_ticket(mut world: DeferredWorld, context: HookContext) {
    let Some(id) = world.get::<Ticket>(context.entity).map(|t| t.id.clone()) else {
        return;
    };
    if let Some(mut index) = world.get_resource_mut::<TicketIndex>() {
        index.0.insert(id, context.entity);
    }
}

fn unindex_ticket(mut world: DeferredWorld, context: HookContext) {
    let Some(id) = world.get::<Ticket>(context.entity).map(|t| t.id.clone()) else {
        return;
    };
    if let Some(mut index) = world.get_resource_mut::<TicketIndex>()
        && index.0.get(&id) == Some(&context.entity)
    {
        index.0.remove(&id);
    }
}

/// The session a placed ticket will receive once its reservation is stored.
#[derive(Component, Debug, Clone)]
pub struct PendingSession(pub bevygap_shared::protocol::channel::SessionInfo);

impl TicketId {
    /// A fresh random ticket id.
    pub fn generate() -> Self {
        Self(format!("t-{:016x}", rand::random::<u64>()))
    }
}

/// Answers a ticket with an error and despawns it.
pub(crate) fn fail_ticket(
    commands: &mut Commands,
    entity: Entity,
    ticket: &Ticket,
    responder: &TicketResponder,
    code: ErrorCode,
    message: impl Into<String>,
) {
    let message = message.into();
    debug!("ticket `{}` failed: {} {message}", ticket.id, code.code());
    responder.send(
        &ticket.id,
        TicketUpdate::Result(MatchResult::Failed(MatchError::new(code, message))),
    );
    commands.entity(entity).despawn();
}

/// Sends a progress update.
pub(crate) fn send_status(
    responder: &TicketResponder,
    ticket: &TicketId,
    stage: MatchStage,
    text: &str,
) {
    responder.send(
        ticket,
        TicketUpdate::Status(MatchStatus {
            ticket_id: ticket.0.clone(),
            stage,
            text: text.into(),
        }),
    );
}

/// Spawns a ticket per request for a game this matchmaker serves; refuses the others. A request
/// naming a queue joins it ([`TicketState::InQueue`]) when it fits the queue's profile.
#[allow(clippy::too_many_arguments)]
pub fn spawn_tickets(
    mut commands: Commands,
    mut requests: MessageReader<TicketRequested>,
    mut index: ResMut<TicketIndex>,
    mut dirty: ResMut<PlacementDirty>,
    placement: Res<Placement>,
    mut queues: ResMut<Queues>,
    shutting_down: Option<Res<crate::shutdown::ShuttingDown>>,
    time: Res<Time>,
) {
    let now = time.elapsed();
    for request in requests.read() {
        if shutting_down.is_some() {
            request.responder.send(
                &request.ticket_id,
                TicketUpdate::Result(MatchResult::Failed(MatchError::new(
                    ErrorCode::ShuttingDown,
                    crate::shutdown::SHUTDOWN_MESSAGE,
                ))),
            );
            continue;
        }
        if !placement.0.serves(&request.game) {
            debug!(
                "ticket `{}`: refused unknown game {} {}",
                request.ticket_id,
                Untrusted(&request.game.game),
                Untrusted(&request.game.version)
            );
            request.responder.send(
                &request.ticket_id,
                TicketUpdate::Result(MatchResult::Failed(MatchError::new(
                    ErrorCode::UnknownGame,
                    format!(
                        "this matchmaker serves {} version {}; not {} version {}",
                        placement.0.app_name,
                        placement.0.app_versions.join(" or "),
                        Untrusted(&request.game.game),
                        Untrusted(&request.game.version)
                    ),
                ))),
            );
            continue;
        }
        if index.0.contains_key(&request.ticket_id) {
            warn!(
                "ticket `{}` requested twice; ignoring the repeat",
                request.ticket_id
            );
            continue;
        }
        let queued = match &request.queue {
            None => None,
            Some(queue) => match admit(&queues.profiles, &request.game, queue) {
                Ok(index) => Some(QueueTicket {
                    queue: index,
                    request: queue.clone(),
                    enqueued_at: now,
                    key: queues.next_key(),
                    told: None,
                }),
                Err(refused) => {
                    debug!("ticket `{}`: {refused}", request.ticket_id);
                    request.responder.send(
                        &request.ticket_id,
                        TicketUpdate::Result(MatchResult::Failed(MatchError::new(
                            ErrorCode::BadRequest,
                            refused.to_string(),
                        ))),
                    );
                    continue;
                }
            },
        };
        // A queue ticket's own deadline is its queue's max wait (see `crate::queues`); this one
        // only bounds it.
        let longest = queued
            .as_ref()
            .map_or(Duration::ZERO, |q| queues.profiles.0[q.queue].max_wait);
        let ticket = Ticket {
            id: request.ticket_id.clone(),
            game: request.game.clone(),
            client_ip: request.client_ip,
            region_pings: request.region_pings.clone(),
            created_at: now,
            deadline: now + longest + placement.0.ticket_timeout,
        };
        let mut spawned = commands.spawn((
            Name::new(format!("ticket {}", ticket.id)),
            request.responder.clone(),
        ));
        match queued {
            None => {
                send_status(
                    &request.responder,
                    &ticket.id,
                    MatchStage::Queued,
                    "Looking for a game server",
                );
                spawned.insert((ticket, TicketState::Queued));
            }
            Some(queued) => {
                send_status(
                    &request.responder,
                    &ticket.id,
                    MatchStage::Queued,
                    &format!("In queue {}", queues.profiles.0[queued.queue].name),
                );
                spawned.insert((ticket, TicketState::InQueue, queued));
                queues.dirty = true;
            }
        }
        let entity = spawned.id();
        // Filed now as well as by the hook, so a repeat within this frame is caught.
        index.0.insert(request.ticket_id.clone(), entity);
        dirty.0 = true;
    }
}

/// Cancels tickets whose client asked to, or went away. A seat being taken for one is left to
/// its reservation's TTL (the write may already have won); placement is woken either way.
pub fn cancel_tickets(
    mut commands: Commands,
    mut cancels: MessageReader<TicketCancelled>,
    mut dirty: ResMut<PlacementDirty>,
    index: Res<TicketIndex>,
    tickets: Query<(&Ticket, &TicketResponder)>,
) {
    for cancel in cancels.read() {
        let Some(&entity) = index.0.get(&cancel.ticket_id) else {
            continue;
        };
        let Ok((ticket, responder)) = tickets.get(entity) else {
            continue;
        };
        info!("ticket `{}` cancelled", ticket.id);
        fail_ticket(
            &mut commands,
            entity,
            ticket,
            responder,
            ErrorCode::Cancelled,
            "cancelled",
        );
        dirty.0 = true;
    }
}

/// How long to look again at a ticket whose seat write was in flight at its deadline (a lost
/// race puts it back in the queue, where it must still time out).
const PLACED_RECHECK: Duration = Duration::from_secs(1);

/// Fails tickets still waiting at their deadline.
pub fn expire_tickets(
    mut commands: Commands,
    mut deadlines: ResMut<Deadlines<Ticket>>,
    placement: Res<Placement>,
    time: Res<Time>,
    tickets: Query<(&Ticket, &TicketState, &TicketResponder)>,
) {
    let now = time.elapsed();
    let mut later = Vec::new();
    while let Some(entity) = deadlines.pop_due(now) {
        let Ok((ticket, state, responder)) = tickets.get(entity) else {
            continue; // answered or cancelled already
        };
        if matches!(state, TicketState::Placed { .. }) {
            later.push(entity);
            continue;
        }
        if matches!(state, TicketState::Queued | TicketState::Allocating) {
            info!("ticket `{}` timed out waiting for a seat", ticket.id);
            fail_ticket(
                &mut commands,
                entity,
                ticket,
                responder,
                ErrorCode::Timeout,
                format!(
                    "no game server became ready within {}s; try again",
                    placement.0.ticket_timeout.as_secs()
                ),
            );
        }
    }
    for entity in later {
        deadlines.push(now + PLACED_RECHECK, entity);
    }
}
