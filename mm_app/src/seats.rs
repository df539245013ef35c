//! Seats: the ledger mirror on each deployment, seats being taken, and stops that close seats.
//!
//! The seat ledger in KV is the truth ([`SeatRecord`]); [`Seats`] on each deployment mirrors it
//! through the KV watch ([`SeatChanged`]). Placement decides on the mirror and takes a seat with
//! a compare-and-set write ([`StoreReservation`]); the decision holds only when the write wins.
//! A lost race puts the ticket back in the queue on the fresh state the loser read back.

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::MatchResult;
use bevygap_shared::schema::SeatRecord;

use crate::core_plugin::PlacementDirty;
use crate::deployment::{DeploymentId, DeploymentIndex, DeploymentState, Holder, Seats, holder_of};
use crate::messages::{
    DeploymentClosed, FreeSeat, LedgerSync, MirrorOf, ReservationStored, SeatChanged,
    SeatStoreError, StopDeployment,
};
use crate::ticket::{
    PendingSession, Ticket, TicketResponder, TicketState, TicketUpdate, fail_ticket,
};

/// A seat being taken for a ticket: the ledger write is in flight. Gone once the write is
/// answered (the seat then shows in the deployment's [`Seats`]).
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct SeatReservation {
    /// The reservation id (in the token's user data and the seat record).
    pub id: String,
    /// The netcode client id in the token.
    pub client_id: u64,
    /// The deployment entity.
    pub deployment: Entity,
    /// The deployment id.
    pub deployment_id: String,
    /// The seat index.
    pub seat: u32,
    /// The ticket waiting for it.
    pub ticket: Entity,
}

/// How long a ticket waits before trying again when the ledger could not be written.
pub const SEAT_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// A ticket whose seat write failed on NATS waits until then (app elapsed time) before it is
/// placed again, so an unreachable ledger is not hammered every frame.
#[derive(Component, Debug, Clone, Copy, Reflect)]
#[reflect(Component)]
pub struct RetryAt(pub std::time::Duration);

/// Lets tickets whose retry is due be placed again.
pub fn release_retries(
    mut commands: Commands,
    mut dirty: ResMut<PlacementDirty>,
    time: Res<Time>,
    waiting: Query<(Entity, &RetryAt)>,
) {
    let now = time.elapsed();
    for (entity, retry) in &waiting {
        if retry.0 <= now {
            commands.entity(entity).remove::<RetryAt>();
            dirty.0 = true;
        }
    }
}

/// Whether the KV mirrors are complete. Until both are, nothing is sold or stopped: a restarted
/// matchmaker first learns every seat sold before it.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq, Reflect)]
#[reflect(Resource)]
pub struct LedgerReadiness {
    /// The leases are listed.
    pub leases: bool,
    /// The seat ledger is listed.
    pub seats: bool,
}

impl LedgerReadiness {
    /// Both mirrors are complete.
    pub fn ready(&self) -> bool {
        self.leases && self.seats
    }
}

/// Run condition: the mirrors are complete.
pub fn ledger_ready(readiness: Res<LedgerReadiness>) -> bool {
    readiness.ready()
}

/// Counts of ledger writes, for inspection and benchmarks.
#[derive(Resource, Debug, Clone, Copy, Default, Reflect)]
#[reflect(Resource)]
pub struct LedgerStats {
    /// Seats taken.
    pub taken: u64,
    /// Seat writes lost to another writer (retried on fresh state).
    pub conflicts: u64,
    /// Seat writes that failed on NATS.
    pub failed: u64,
}

/// Tracks whether the mirrors are complete.
pub fn apply_ledger_sync(
    mut syncs: MessageReader<LedgerSync>,
    mut readiness: ResMut<LedgerReadiness>,
    mut dirty: ResMut<PlacementDirty>,
) {
    for sync in syncs.read() {
        let flag = match sync.mirror {
            MirrorOf::Leases => &mut readiness.leases,
            MirrorOf::Seats => &mut readiness.seats,
        };
        if *flag != sync.synced {
            *flag = sync.synced;
            if sync.synced {
                info!("{:?} mirror in sync with KV", sync.mirror);
            } else {
                info!("{:?} mirror re-listing from KV", sync.mirror);
            }
        }
        dirty.0 |= sync.synced;
    }
}

/// Mirrors ledger changes onto deployments. Seats of a deployment whose lease has not arrived
/// yet are kept on an entity with only its id, so nothing is lost to ordering.
pub fn apply_seat_changes(
    mut commands: Commands,
    mut changes: MessageReader<SeatChanged>,
    mut index: ResMut<DeploymentIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut seats: Query<(&mut Seats, Option<&DeploymentState>)>,
) {
    let mut listed = Vec::new();
    for change in changes.read() {
        let holder = change.record.as_ref().map(holder_of);
        let entity = match index.0.get(&change.deployment_id) {
            Some(&entity) => entity,
            None if holder.is_none() => continue,
            None => {
                let mut mirror = Seats::with_capacity(0);
                mirror.apply(change.seat, change.revision, holder);
                let entity = commands
                    .spawn((
                        Name::new(format!("deployment {} (seats only)", change.deployment_id)),
                        DeploymentId(change.deployment_id.clone()),
                        mirror,
                    ))
                    .id();
                index.0.insert(change.deployment_id.clone(), entity);
                continue;
            }
        };
        let Ok((mut mirror, state)) = seats.get_mut(entity) else {
            // Spawned this frame: its commands are not applied yet.
            listed.push((entity, change.clone()));
            continue;
        };
        if mirror.apply(change.seat, change.revision, holder) {
            dirty.0 = true;
        }
        if state.is_none() && mirror.held_seats().next().is_none() {
            // Known only from seats, and none is left.
            commands.entity(entity).despawn();
        }
    }
    for (entity, change) in listed {
        let holder = change.record.as_ref().map(holder_of);
        commands.queue(move |world: &mut World| {
            if let Some(mut mirror) = world.get_mut::<Seats>(entity) {
                mirror.apply(change.seat, change.revision, holder);
            }
        });
    }
}

/// Answers placed tickets once their seat is taken. A lost race re-queues the ticket on the fresh
/// state at once; a ledger NATS could not write re-queues it after [`SEAT_RETRY`], and fails it
/// with a retryable error only when its deadline is near.
#[allow(clippy::too_many_arguments)]
pub fn apply_stored_reservations(
    mut commands: Commands,
    mut stored: MessageReader<ReservationStored>,
    mut dirty: ResMut<PlacementDirty>,
    mut stats: ResMut<LedgerStats>,
    mut free: MessageWriter<FreeSeat>,
    reservations: Query<&SeatReservation, Without<crate::queues::seating::MatchSeat>>,
    mut tickets: Query<(
        &Ticket,
        &mut TicketState,
        &TicketResponder,
        Option<&PendingSession>,
    )>,
    mut seats: Query<&mut Seats>,
    time: Res<Time>,
) {
    for ReservationStored {
        reservation,
        result,
    } in stored.read()
    {
        let Ok(held) = reservations.get(*reservation) else {
            continue;
        };
        commands.entity(*reservation).despawn();
        dirty.0 = true;
        mirror_seat_write(
            seats.get_mut(held.deployment).ok().as_deref_mut(),
            held,
            result,
            &mut stats,
        );
        let ticket = tickets.get_mut(held.ticket).ok();
        match result {
            Ok(revision) => match ticket {
                Some((ticket, _, responder, Some(PendingSession(session)))) => {
                    info!(
                        "ticket `{}`: client {} placed on `{}` seat {}",
                        ticket.id, held.client_id, held.deployment_id, held.seat
                    );
                    responder.send(
                        &ticket.id,
                        TicketUpdate::Result(MatchResult::Ready(session.clone())),
                    );
                    commands.entity(held.ticket).despawn();
                }
                _ => {
                    debug!(
                        "seat {} of `{}` taken for a ticket that is gone; freeing it",
                        held.seat, held.deployment_id
                    );
                    free.write(FreeSeat {
                        deployment_id: held.deployment_id.clone(),
                        seat: held.seat,
                        revision: *revision,
                    });
                }
            },
            Err(SeatStoreError::Lost(_)) => {
                if let Some((ticket, mut state, responder, _)) = ticket {
                    if time.elapsed() >= ticket.deadline {
                        fail_ticket(
                            &mut commands,
                            held.ticket,
                            ticket,
                            responder,
                            ErrorCode::Timeout,
                            "no seat could be reserved in time; try again",
                        );
                        continue;
                    }
                    debug!(
                        "ticket `{}`: seat {} of `{}` went to another matchmaker; placing again",
                        ticket.id, held.seat, held.deployment_id
                    );
                    *state = TicketState::Queued;
                    commands.entity(held.ticket).remove::<PendingSession>();
                }
            }
            Err(error @ SeatStoreError::Unavailable(_)) => {
                let Some((ticket, mut state, responder, _)) = ticket else {
                    continue;
                };
                if time.elapsed() + SEAT_RETRY >= ticket.deadline {
                    warn!(
                        "ticket `{}`: seat {} of `{}` could not be taken ({error}) before its deadline; check the NATS connection",
                        ticket.id, held.seat, held.deployment_id
                    );
                    fail_ticket(
                        &mut commands,
                        held.ticket,
                        ticket,
                        responder,
                        ErrorCode::Internal,
                        "the matchmaker could not record your seat; try again",
                    );
                    continue;
                }
                // NATS is away (a reconnect, a JetStream leader election): try again shortly.
                debug!(
                    "ticket `{}`: seat {} of `{}` not taken ({error}); retrying in {SEAT_RETRY:?}",
                    ticket.id, held.seat, held.deployment_id
                );
                *state = TicketState::Queued;
                commands
                    .entity(held.ticket)
                    .remove::<PendingSession>()
                    .insert(RetryAt(time.elapsed() + SEAT_RETRY));
            }
        }
    }
}

/// Brings a deployment's mirror up to a seat write's outcome and counts it: the seat is no
/// longer being taken; a won write shows it reserved, a lost one shows what the ledger holds.
pub(crate) fn mirror_seat_write(
    mirror: Option<&mut Seats>,
    held: &SeatReservation,
    result: &Result<u64, SeatStoreError>,
    stats: &mut LedgerStats,
) {
    match result {
        Ok(_) => stats.taken += 1,
        Err(SeatStoreError::Lost(_)) => stats.conflicts += 1,
        Err(SeatStoreError::Unavailable(_)) => stats.failed += 1,
    }
    let Some(mirror) = mirror else { return };
    mirror.stop_taking(held.seat);
    match result {
        Ok(revision) => {
            mirror.apply(
                held.seat,
                *revision,
                Some(Holder::Reserved {
                    client_id: held.client_id,
                }),
            );
            mirror.empty_since = None;
        }
        Err(SeatStoreError::Lost(Some((revision, record)))) => {
            mirror.apply(held.seat, *revision, record.as_ref().map(holder_of));
        }
        Err(_) => {}
    }
}

/// Finishes a stop once its seats are closed, or reopens the deployment when one was sold.
pub fn apply_closed_deployments(
    mut closed: MessageReader<DeploymentClosed>,
    mut stop: MessageWriter<StopDeployment>,
    mut dirty: ResMut<PlacementDirty>,
    mut deployments: Query<(&DeploymentId, &mut DeploymentState, &mut Seats)>,
) {
    for DeploymentClosed { deployment, closed } in closed.read() {
        let Ok((id, mut state, mut seats)) = deployments.get_mut(*deployment) else {
            continue;
        };
        if *state != DeploymentState::Closing {
            continue;
        }
        if *closed {
            info!("deployment `{}`: every seat closed; stopping it", id.0);
            *state = DeploymentState::Stopping;
            stop.write(StopDeployment {
                deployment_id: id.0.clone(),
                reason: "empty past its TTL",
            });
        } else {
            info!(
                "deployment `{}`: a seat was taken while closing; keeping it",
                id.0
            );
            *state = DeploymentState::Ready;
            seats.empty_since = None;
            dirty.0 = true;
        }
    }
}

/// The seat record a matchmaker writes for a fresh reservation.
pub fn reserved_record(
    deployment_id: &str,
    seat: u32,
    reservation_id: &str,
    client_id: u64,
    issued_at_ms: u64,
    expires_at_ms: u64,
) -> SeatRecord {
    SeatRecord {
        deployment_id: deployment_id.to_owned(),
        seat,
        holder: bevygap_shared::schema::SeatHolder::Reserved {
            reservation_id: reservation_id.to_owned(),
            client_id,
            issued_at_ms,
            expires_at_ms,
        },
    }
}
