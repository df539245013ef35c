//! Systems that apply inbound messages to tickets, deployments and reservations.

use bevy::prelude::*;
use bevygap_shared::protocol::channel::{MatchResult, MatchStage, MatchStatus};
use bevygap_shared::protocol::{ErrorCode, GameRef};

use super::placement::ReservationIndex;
use super::{fail_ticket, release_reservation};
use crate::core_plugin::{Placement, PlacementDirty};
use crate::deployment::{
    DeploymentId, DeploymentIndex, DeploymentInfo, DeploymentState, Seats, StartingFor,
};
use crate::messages::{
    AllocationFinished, ConnectionClosed, ConnectionOpened, DeploymentEnded, LeaseRemoved,
    LeaseUpdated, ReservationStored, TicketCancelled, TicketRequested,
};
use crate::reservation::{ReservationState, SeatReservation};
use crate::ticket::{
    PendingSession, Ticket, TicketIndex, TicketResponder, TicketState, TicketUpdate,
};

/// Spawns a ticket per request for a game this matchmaker serves; refuses the others.
pub fn spawn_tickets(
    mut commands: Commands,
    mut requests: MessageReader<TicketRequested>,
    mut index: ResMut<TicketIndex>,
    mut dirty: ResMut<PlacementDirty>,
    placement: Res<Placement>,
    time: Res<Time>,
) {
    let now = time.elapsed();
    for request in requests.read() {
        if !placement.0.serves(&request.game) {
            debug!(
                "ticket `{}`: refused unknown game {} {}",
                request.ticket_id, request.game.game, request.game.version
            );
            request.responder.send(
                &request.ticket_id,
                TicketUpdate::Result(MatchResult::Failed(
                    bevygap_shared::protocol::channel::MatchError::new(
                        ErrorCode::UnknownGame,
                        format!(
                            "this matchmaker serves {} version {}; not {} version {}",
                            placement.0.app_name,
                            placement.0.app_versions.join(" or "),
                            request.game.game,
                            request.game.version
                        ),
                    ),
                )),
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
        let ticket = Ticket {
            id: request.ticket_id.clone(),
            game: request.game.clone(),
            client_ip: request.client_ip,
            region_pings: request.region_pings.clone(),
            created_at: now,
            deadline: now + placement.0.ticket_timeout,
        };
        request.responder.send(
            &ticket.id,
            TicketUpdate::Status(MatchStatus {
                ticket_id: ticket.id.0.clone(),
                stage: MatchStage::Queued,
                text: "Looking for a game server".into(),
            }),
        );
        let entity = commands
            .spawn((
                Name::new(format!("ticket {}", ticket.id)),
                ticket,
                TicketState::Queued,
                request.responder.clone(),
            ))
            .id();
        index.0.insert(request.ticket_id.clone(), entity);
        dirty.0 = true;
    }
}

/// Cancels tickets whose client asked to, or went away; releases a seat already reserved.
pub fn cancel_tickets(
    mut commands: Commands,
    mut cancels: MessageReader<TicketCancelled>,
    mut index: ResMut<TicketIndex>,
    mut reservation_index: ResMut<ReservationIndex>,
    tickets: Query<(&Ticket, &TicketState, &TicketResponder)>,
    reservations: Query<&SeatReservation>,
    mut seats: Query<&mut Seats>,
) {
    for cancel in cancels.read() {
        let Some(&entity) = index.0.get(&cancel.ticket_id) else {
            continue;
        };
        let Ok((ticket, state, responder)) = tickets.get(entity) else {
            continue;
        };
        if let TicketState::Placed { reservation } = *state
            && let Ok(held) = reservations.get(reservation)
        {
            release_reservation(
                &mut commands,
                &mut reservation_index,
                reservation,
                held,
                seats.get_mut(held.deployment).ok().as_deref_mut(),
            );
        }
        info!("ticket `{}` cancelled", ticket.id);
        fail_ticket(
            &mut commands,
            &mut index,
            entity,
            ticket,
            responder,
            ErrorCode::Cancelled,
            "cancelled",
        );
    }
}

/// Creates, refreshes and removes deployments from lease events.
#[allow(clippy::too_many_arguments)]
pub fn apply_leases(
    mut commands: Commands,
    mut updated: MessageReader<LeaseUpdated>,
    mut removed: MessageReader<LeaseRemoved>,
    mut index: ResMut<DeploymentIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut reservation_index: ResMut<ReservationIndex>,
    mut deployments: Query<(
        &mut DeploymentState,
        &mut Seats,
        Option<&mut DeploymentInfo>,
    )>,
    reservations: Query<(Entity, &SeatReservation, &ReservationState)>,
    mut tickets: Query<&mut TicketState>,
    time: Res<Time>,
) {
    for LeaseUpdated(lease) in updated.read() {
        let info = DeploymentInfo::from_lease(lease);
        match index.0.get(&lease.deployment_id).copied() {
            Some(entity) => {
                let Ok((mut state, mut seats, existing)) = deployments.get_mut(entity) else {
                    continue;
                };
                if let DeploymentState::Starting { since } = *state {
                    info!(
                        "deployment `{}` ready after {:.1?}",
                        lease.deployment_id,
                        time.elapsed().saturating_sub(since)
                    );
                    *state = DeploymentState::Ready;
                }
                if seats.capacity != lease.capacity {
                    seats.capacity = lease.capacity;
                }
                match existing {
                    Some(mut existing) => *existing = info,
                    None => {
                        commands.entity(entity).insert(info).remove::<StartingFor>();
                    }
                }
            }
            None => {
                info!(
                    "deployment `{}` ready at {} ({} seats)",
                    lease.deployment_id, lease.public_addr, lease.capacity
                );
                let entity = commands
                    .spawn((
                        Name::new(format!("deployment {}", lease.deployment_id)),
                        DeploymentId(lease.deployment_id.clone()),
                        DeploymentState::Ready,
                        info,
                        Seats {
                            capacity: lease.capacity,
                            ..default()
                        },
                    ))
                    .id();
                index.0.insert(lease.deployment_id.clone(), entity);
            }
        }
        dirty.0 = true;
    }
    for LeaseRemoved { deployment_id } in removed.read() {
        let Some(entity) = index.0.remove(deployment_id) else {
            continue;
        };
        info!("deployment `{deployment_id}` is gone (lease removed or lapsed)");
        // Seats held there are lost: re-queue tickets still waiting for them.
        for (held_entity, held, state) in &reservations {
            if held.deployment != entity {
                continue;
            }
            if let ReservationState::Storing { ticket } = *state
                && let Ok(mut ticket_state) = tickets.get_mut(ticket)
            {
                *ticket_state = TicketState::Queued;
                commands.entity(ticket).remove::<PendingSession>();
            }
            release_reservation(
                &mut commands,
                &mut reservation_index,
                held_entity,
                held,
                None,
            );
        }
        commands.entity(entity).despawn();
        dirty.0 = true;
    }
}

/// Moves seats from reserved to connected and back as clients join and leave.
pub fn apply_connections(
    mut commands: Commands,
    mut opened: MessageReader<ConnectionOpened>,
    mut closed: MessageReader<ConnectionClosed>,
    index: Res<DeploymentIndex>,
    mut reservation_index: ResMut<ReservationIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut seats: Query<&mut Seats>,
) {
    for ConnectionOpened {
        deployment_id,
        client_id,
    } in opened.read()
    {
        if let Some(reservation) = reservation_index.0.remove(client_id) {
            commands.entity(reservation).despawn();
        }
        let Some(mut seats) = index
            .0
            .get(deployment_id)
            .and_then(|e| seats.get_mut(*e).ok())
        else {
            debug!("connection of client {client_id} to unknown deployment `{deployment_id}`");
            continue;
        };
        seats.reserved.remove(client_id);
        seats.connected.insert(*client_id);
        debug!("client {client_id} connected to `{deployment_id}`");
    }
    for ConnectionClosed {
        deployment_id,
        client_id,
    } in closed.read()
    {
        let Some(mut seats) = index
            .0
            .get(deployment_id)
            .and_then(|e| seats.get_mut(*e).ok())
        else {
            continue;
        };
        if seats.connected.remove(client_id) {
            debug!("client {client_id} left `{deployment_id}`; seat freed");
            dirty.0 = true;
        }
    }
}

/// Records which deployment the fleet started, or fails the tickets that were waiting on it.
#[allow(clippy::too_many_arguments)]
pub fn apply_allocations(
    mut commands: Commands,
    mut finished: MessageReader<AllocationFinished>,
    mut index: ResMut<DeploymentIndex>,
    mut ticket_index: ResMut<TicketIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut seats: Query<&mut Seats>,
    starting: Query<(Entity, &StartingFor)>,
    tickets: Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
) {
    for AllocationFinished { deployment, result } in finished.read() {
        match result {
            Ok(allocation) => {
                if index.0.contains_key(&allocation.deployment_id) {
                    // Its lease arrived first: that entity is the deployment now.
                    commands.entity(*deployment).despawn();
                    continue;
                }
                info!(
                    "fleet is starting deployment `{}`",
                    allocation.deployment_id
                );
                index
                    .0
                    .insert(allocation.deployment_id.clone(), *deployment);
                commands.entity(*deployment).insert((
                    DeploymentId(allocation.deployment_id.clone()),
                    Name::new(format!("deployment {}", allocation.deployment_id)),
                ));
                if let (Some(capacity), Ok(mut seats)) =
                    (allocation.expected_capacity, seats.get_mut(*deployment))
                {
                    seats.capacity = capacity;
                }
            }
            Err(error) => {
                let Ok((_, game)) = starting.get(*deployment) else {
                    continue;
                };
                let game = game.0.clone();
                commands.entity(*deployment).despawn();
                warn!(
                    "fleet could not start a server for {} {}: {error}",
                    game.game, game.version
                );
                let code = match error {
                    crate::fleet::FleetError::NoCapacity(_) => ErrorCode::NoCapacity,
                    _ => ErrorCode::FleetError,
                };
                fail_tickets_waiting_for(
                    &mut commands,
                    &mut ticket_index,
                    &starting,
                    &tickets,
                    *deployment,
                    &game,
                    code,
                    &format!("no game server available: {error}"),
                );
            }
        }
        dirty.0 = true;
    }
}

/// Answers placed tickets once their reservation is stored; on failure frees the seat.
#[allow(clippy::too_many_arguments)]
pub fn apply_stored_reservations(
    mut commands: Commands,
    mut stored: MessageReader<ReservationStored>,
    mut ticket_index: ResMut<TicketIndex>,
    mut reservation_index: ResMut<ReservationIndex>,
    mut reservations: Query<(&SeatReservation, &mut ReservationState)>,
    tickets: Query<(&Ticket, &TicketResponder, Option<&PendingSession>)>,
    mut seats: Query<&mut Seats>,
) {
    for ReservationStored {
        reservation,
        result,
    } in stored.read()
    {
        let Ok((held, mut state)) = reservations.get_mut(*reservation) else {
            continue;
        };
        let ReservationState::Storing {
            ticket: ticket_entity,
        } = *state
        else {
            continue;
        };
        let ticket = tickets.get(ticket_entity).ok();
        match (result, ticket) {
            (Ok(()), Some((ticket, responder, Some(PendingSession(session))))) => {
                *state = ReservationState::Issued;
                info!(
                    "ticket `{}`: client {} placed on `{}`",
                    ticket.id, held.client_id, held.deployment_id
                );
                responder.send(
                    &ticket.id,
                    TicketUpdate::Result(MatchResult::Ready(session.clone())),
                );
                ticket_index.0.remove(&ticket.id);
                commands.entity(ticket_entity).despawn();
            }
            (Ok(()), _) => {
                // The ticket was cancelled meanwhile; the seat goes back.
                release_reservation(
                    &mut commands,
                    &mut reservation_index,
                    *reservation,
                    held,
                    seats.get_mut(held.deployment).ok().as_deref_mut(),
                );
            }
            (Err(error), ticket) => {
                warn!(
                    "reservation `{}` could not be stored ({error}); is NATS up?",
                    held.id
                );
                release_reservation(
                    &mut commands,
                    &mut reservation_index,
                    *reservation,
                    held,
                    seats.get_mut(held.deployment).ok().as_deref_mut(),
                );
                if let Some((ticket, responder, _)) = ticket {
                    fail_ticket(
                        &mut commands,
                        &mut ticket_index,
                        ticket_entity,
                        ticket,
                        responder,
                        ErrorCode::Internal,
                        "the matchmaker could not store your seat; try again shortly",
                    );
                }
            }
        }
    }
}

/// Fails the tickets waiting for a server of `game` when `failed` was the only one starting for
/// it (another starting server may still serve them).
#[allow(clippy::too_many_arguments)]
fn fail_tickets_waiting_for(
    commands: &mut Commands,
    ticket_index: &mut TicketIndex,
    starting: &Query<(Entity, &StartingFor)>,
    tickets: &Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
    failed: Entity,
    game: &GameRef,
    code: ErrorCode,
    text: &str,
) {
    if starting.iter().any(|(e, g)| e != failed && g.0 == *game) {
        return;
    }
    for (entity, ticket, state, responder) in tickets {
        if *state == TicketState::Allocating && ticket.game == *game {
            fail_ticket(
                commands,
                ticket_index,
                entity,
                ticket,
                responder,
                code,
                text.to_owned(),
            );
        }
    }
}

/// A server that ended while starting: forget it and tell its waiting players why at once,
/// instead of at the allocation timeout. One that ended after registering is dropped as if its
/// lease were gone (players still waiting for a seat there are queued again).
#[allow(clippy::too_many_arguments)]
pub fn apply_ended_deployments(
    mut commands: Commands,
    mut ended: MessageReader<DeploymentEnded>,
    mut gone: MessageWriter<LeaseRemoved>,
    mut index: ResMut<DeploymentIndex>,
    mut ticket_index: ResMut<TicketIndex>,
    mut dirty: ResMut<PlacementDirty>,
    states: Query<&DeploymentState>,
    starting: Query<(Entity, &StartingFor)>,
    tickets: Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
) {
    for DeploymentEnded {
        deployment_id,
        reason,
    } in ended.read()
    {
        let Some(&entity) = index.0.get(deployment_id) else {
            continue;
        };
        if !matches!(states.get(entity), Ok(DeploymentState::Starting { .. })) {
            // Its lease would linger until its TTL: forget it now, as if the lease were gone,
            // so no new player is sent to a dead server.
            warn!("deployment `{deployment_id}` ended ({reason}); dropping its seats now");
            gone.write(LeaseRemoved {
                deployment_id: deployment_id.clone(),
            });
            continue;
        }
        warn!(
            "deployment `{deployment_id}` ended while starting ({reason}); check the game server's log"
        );
        if let Ok((_, game)) = starting.get(entity) {
            fail_tickets_waiting_for(
                &mut commands,
                &mut ticket_index,
                &starting,
                &tickets,
                entity,
                &game.0.clone(),
                ErrorCode::FleetError,
                &format!(
                    "the game server `{deployment_id}` stopped while starting ({reason}); try again"
                ),
            );
        }
        index.0.remove(deployment_id);
        commands.entity(entity).despawn();
        dirty.0 = true;
    }
}
