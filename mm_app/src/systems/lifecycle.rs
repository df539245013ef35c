//! Timeouts: tickets nobody could serve, seats nobody used, servers nobody plays on.

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;

use super::placement::ReservationIndex;
use super::{fail_ticket, release_reservation};
use std::time::Duration;

use crate::core_plugin::{Placement, PlacementDirty};
use crate::deadlines::Deadlines;
use crate::deployment::{DeploymentId, DeploymentIndex, DeploymentInfo, DeploymentState, Seats};
use crate::messages::StopDeployment;
use crate::reservation::{ReservationState, SeatReservation};
use crate::ticket::{Ticket, TicketIndex, TicketResponder, TicketState};

/// Fails tickets still waiting at their deadline.
pub fn expire_tickets(
    mut commands: Commands,
    mut index: ResMut<TicketIndex>,
    mut deadlines: ResMut<Deadlines<Ticket>>,
    placement: Res<Placement>,
    time: Res<Time>,
    tickets: Query<(&Ticket, &TicketState, &TicketResponder)>,
) {
    let now = time.elapsed();
    while let Some(entity) = deadlines.pop_due(now) {
        let Ok((ticket, state, responder)) = tickets.get(entity) else {
            continue; // answered or cancelled already
        };
        if matches!(state, TicketState::Queued | TicketState::Allocating) {
            info!("ticket `{}` timed out waiting for a seat", ticket.id);
            fail_ticket(
                &mut commands,
                &mut index,
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
}

/// How long to look again at a reservation still being stored when it was due.
const STORING_RECHECK: Duration = Duration::from_secs(1);

/// Releases seats whose client never connected.
pub fn expire_reservations(
    mut commands: Commands,
    mut index: ResMut<ReservationIndex>,
    mut deadlines: ResMut<Deadlines<SeatReservation>>,
    mut dirty: ResMut<PlacementDirty>,
    time: Res<Time>,
    reservations: Query<(&SeatReservation, &ReservationState)>,
    mut seats: Query<&mut Seats>,
) {
    let now = time.elapsed();
    let mut later = Vec::new();
    while let Some(entity) = deadlines.pop_due(now) {
        let Ok((held, state)) = reservations.get(entity) else {
            continue; // used or released already
        };
        if *state != ReservationState::Issued {
            // Its KV write is still pending: the storing outcome decides, look again soon.
            later.push((now + STORING_RECHECK, entity));
            continue;
        }
        debug!(
            "reservation `{}` for client {} on `{}` expired unused",
            held.id, held.client_id, held.deployment_id
        );
        release_reservation(
            &mut commands,
            &mut index,
            entity,
            held,
            seats.get_mut(held.deployment).ok().as_deref_mut(),
        );
        dirty.0 = true;
    }
    for (at, entity) in later {
        deadlines.push(at, entity);
    }
}

/// Stops deployments empty past their TTL (scale to zero) and those that never became ready.
pub fn stop_idle_deployments(
    mut commands: Commands,
    mut index: ResMut<DeploymentIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut stop: MessageWriter<StopDeployment>,
    placement: Res<Placement>,
    time: Res<Time>,
    mut deployments: Query<(
        Entity,
        &DeploymentId,
        &mut DeploymentState,
        &mut Seats,
        Option<&DeploymentInfo>,
    )>,
) {
    let now = time.elapsed();
    for (entity, id, mut state, mut seats, info) in &mut deployments {
        match *state {
            DeploymentState::Ready => {
                let reported = info.map_or(0, |i| i.reported_players);
                if !seats.is_empty(reported) {
                    seats.empty_since = None;
                    continue;
                }
                let since = *seats.empty_since.get_or_insert(now);
                if now.saturating_sub(since) >= placement.0.empty_server_ttl {
                    info!(
                        "deployment `{}` empty for {}s: stopping it",
                        id.0,
                        placement.0.empty_server_ttl.as_secs()
                    );
                    *state = DeploymentState::Stopping;
                    stop.write(StopDeployment {
                        deployment_id: id.0.clone(),
                        reason: "empty past its TTL",
                    });
                }
            }
            DeploymentState::Starting { since }
                if now.saturating_sub(since) >= placement.0.allocation_timeout =>
            {
                warn!(
                    "deployment `{}` did not register within {}s: stopping it; check its logs and NATS settings",
                    id.0,
                    placement.0.allocation_timeout.as_secs()
                );
                // Forget it now: it holds no players, and waiting tickets may ask for another.
                stop.write(StopDeployment {
                    deployment_id: id.0.clone(),
                    reason: "never became ready",
                });
                index.0.remove(&id.0);
                commands.entity(entity).despawn();
                dirty.0 = true;
            }
            _ => {}
        }
    }
}
