//! A match gets its server and its seats: an empty ready server with room for every player (or a
//! fresh one from the fleet), then one seat per player taken in the seat ledger by
//! compare-and-set, each player's token carrying its team. Tickets are answered only when every
//! seat of the match is stored; a seat lost to another matchmaker frees the match's other seats
//! and the match looks for a server again on the fresh state.

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::{MatchResult, MatchStage, MatchedSessions, SessionInfo};

use super::matching::{Match, MatchMembers, Team};
use super::tickets::QueueTicket;
use crate::core_plugin::{Placement, PlacementDirty};
use crate::deployment::{DeploymentId, DeploymentInfo, DeploymentState, Seats, StartingFor};
use crate::fleet::AllocationRequest;
use crate::messages::{
    AllocateDeployment, FreeSeat, ReservationStored, SeatStoreError, StoreReservation,
};
use crate::placement::{SeatToSell, sell_seat};
use crate::seats::{LedgerStats, SeatReservation, mirror_seat_write};
use crate::ticket::{Ticket, TicketResponder, TicketUpdate, fail_ticket, send_status};
use crate::tokens::TokenMinter;
use bevygap_shared::schema::BackfillSlot;

/// Where a match stands.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub enum MatchState {
    /// Claiming its pooled tickets (see [`super::pool`]) before it looks for a server.
    Claiming {
        /// Claims still in flight.
        pending: u32,
        /// Whether a claim was lost (the match is then dissolved).
        lost: bool,
    },
    /// Looking for an empty ready server with room for every player, or asking for one.
    NeedsServer,
    /// The fleet is starting a server for it.
    Starting {
        /// The starting deployment.
        deployment: Entity,
    },
    /// Its seats are being written on `deployment`.
    Seating {
        /// The deployment.
        deployment: Entity,
        /// Seat writes still in flight.
        pending: u32,
        /// Whether a write was lost or failed (the match then frees its seats and tries again).
        lost: bool,
    },
}

/// A deployment a match has claimed: seat-flow tickets are not placed on it while the match
/// takes its seats.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
#[relationship(relationship_target = MatchServer)]
pub struct ServesMatch(pub Entity);

/// The deployment a match has claimed.
#[derive(Component, Debug, Default, PartialEq, Eq, Reflect)]
#[reflect(Component)]
#[relationship_target(relationship = ServesMatch)]
pub struct MatchServer(Vec<Entity>);

/// A deployment that has hosted a match: seat-flow tickets are never placed on it (its free
/// seats belong to its match's teams), though a later match may take it once it is empty.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default, Reflect)]
#[reflect(Component)]
pub struct MatchHost;

/// A match that fills a running server's backfill: the server and the seats it named, each for
/// a team.
#[derive(Component, Debug, Clone)]
pub struct BackfillFor {
    /// The deployment asking for players.
    pub deployment: Entity,
    /// Its open slots.
    pub slots: Vec<BackfillSlot>,
}

/// On a seat reservation taken for one player of a matched ticket.
#[derive(Component, Debug, Clone)]
pub struct MatchSeat {
    /// The match.
    pub of: Entity,
    /// The player's index in its ticket's party.
    pub player: usize,
    /// The player's session, sent once every seat of the match is stored.
    pub session: SessionInfo,
}

/// A seat of a matched ticket stored in the ledger.
#[derive(Debug, Clone)]
pub struct StoredSeat {
    /// The player's session.
    pub session: SessionInfo,
    /// Where the seat is (to free it if the match has to try again).
    pub deployment_id: String,
    /// The seat index.
    pub seat: u32,
    /// The revision it was written at.
    pub revision: u64,
}

/// The seats a matched ticket holds so far, one per player.
#[derive(Component, Debug, Clone, Default)]
pub struct StoredSeats(pub Vec<Option<StoredSeat>>);

/// How long a match that lost a seat race waits for a server with room before it asks the fleet
/// for a new one: the server it lost usually comes back within milliseconds, when the other
/// matchmaker's match frees the seats it won there (both lost one), and a new server costs.
pub const SEAT_RACE_SETTLE: Duration = Duration::from_secs(1);

/// On a match that lost a seat race: when (app elapsed time).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub struct LostSeatRace(pub Duration);

/// A ready deployment a match may take, as seen by one pass.
struct Room {
    entity: Entity,
    capacity: u32,
}

type MatchQuery<'a> = (
    Entity,
    &'a Match,
    &'a mut MatchState,
    Option<&'a MatchMembers>,
    Option<&'a BackfillFor>,
    Option<&'a LostSeatRace>,
);
type DeploymentQuery<'a> = (
    Entity,
    Option<&'a DeploymentId>,
    &'a DeploymentState,
    Option<&'a DeploymentInfo>,
    &'a mut Seats,
    Option<&'a ServesMatch>,
);

/// Finds (or starts) each waiting match's server, and takes its seats once the server is ready.
#[allow(clippy::too_many_arguments)]
pub fn seat_matches(
    mut commands: Commands,
    mut store: MessageWriter<StoreReservation>,
    mut allocate: MessageWriter<AllocateDeployment>,
    placement: Res<Placement>,
    minter: Res<TokenMinter>,
    time: Res<Time>,
    mut matches: Query<MatchQuery<'_>>,
    mut deployments: Query<DeploymentQuery<'_>>,
    members: Query<(&Ticket, &QueueTicket, &Team, &TicketResponder)>,
) {
    let now = time.elapsed();
    for (match_entity, matched, mut state, tickets, backfill, lost_race) in &mut matches {
        let tickets: Vec<Entity> = tickets.map(|m| m.iter().collect()).unwrap_or_default();
        if tickets.is_empty() {
            // Every ticket left (cancelled): nothing to seat.
            commands.entity(match_entity).despawn();
            continue;
        }
        if now.saturating_sub(matched.formed_at) > placement.0.ticket_timeout
            && !matches!(*state, MatchState::Seating { .. })
        {
            warn!(
                "match `{}`: no game server within {}s",
                matched.id,
                placement.0.ticket_timeout.as_secs()
            );
            fail_match(
                &mut commands,
                match_entity,
                &tickets,
                &members,
                ErrorCode::Timeout,
                "no game server became ready for the match; try again",
            );
            continue;
        }
        match *state {
            MatchState::Seating { .. } | MatchState::Claiming { .. } => {}
            MatchState::Starting { deployment } => match deployments.get(deployment) {
                Err(_) => fail_match(
                    &mut commands,
                    match_entity,
                    &tickets,
                    &members,
                    ErrorCode::FleetError,
                    "no game server could be started for the match; try again",
                ),
                Ok((_, _, DeploymentState::Ready, ..)) => *state = MatchState::NeedsServer,
                Ok(_) => {}
            },
            MatchState::NeedsServer if backfill.is_some() => {
                let Some(backfill) = backfill else { continue };
                let open = deployments.get(backfill.deployment).is_ok_and(
                    |(_, id, state, info, seats, _)| {
                        id.is_some()
                            && *state == DeploymentState::Ready
                            && info.is_some_and(|i| i.accepting)
                            && backfill.slots.iter().all(|slot| seats.is_free(slot.seat))
                    },
                );
                if open {
                    *state = take_seats(
                        &mut commands,
                        &mut store,
                        &placement,
                        &minter,
                        match_entity,
                        matched,
                        &tickets,
                        &members,
                        backfill.deployment,
                        Some(&backfill.slots),
                        &mut deployments,
                    );
                } else {
                    dissolve(
                        &mut commands,
                        match_entity,
                        matched,
                        &tickets,
                        Some(backfill),
                        "the backfill it was filling changed",
                    );
                }
            }
            MatchState::NeedsServer => {
                let room = deployments
                    .iter()
                    .filter(|(_, id, s, info, seats, serving)| {
                        id.is_some()
                            && **s == DeploymentState::Ready
                            && serving.is_none_or(|s| s.0 == match_entity)
                            && info.is_some_and(|i| {
                                i.accepting
                                    && i.game == matched.game
                                    && seats.is_empty(i.reported_players)
                                    && seats.free(i.reported_players) >= matched.players
                            })
                    })
                    .map(|(entity, _, _, _, seats, _)| Room {
                        entity,
                        capacity: seats.capacity,
                    })
                    // The smallest server that fits; among equals, one that depends on the
                    // match, so the matches of several matchmakers rarely race for one server.
                    .min_by_key(|room| (room.capacity, spread(&matched.id, room.entity)));
                match room {
                    Some(room) => {
                        *state = take_seats(
                            &mut commands,
                            &mut store,
                            &placement,
                            &minter,
                            match_entity,
                            matched,
                            &tickets,
                            &members,
                            room.entity,
                            None,
                            &mut deployments,
                        );
                    }
                    None if lost_race
                        .is_some_and(|at| now.saturating_sub(at.0) < SEAT_RACE_SETTLE) =>
                    {
                        // The server it lost may come back: wait a moment before a new one.
                    }
                    None => {
                        let capacity = placement.0.expected_capacity.max(matched.players);
                        let deployment = commands
                            .spawn((
                                Name::new(format!("starting deployment for match {}", matched.id)),
                                StartingFor(matched.game.clone()),
                                DeploymentState::Starting { since: now },
                                Seats::with_capacity(capacity),
                                ServesMatch(match_entity),
                                MatchHost,
                            ))
                            .id();
                        info!(
                            "match `{}`: no empty server with {} seats; asking the fleet for one",
                            matched.id, matched.players
                        );
                        let client_ips = tickets
                            .iter()
                            .filter_map(|t| members.get(*t).ok())
                            .filter_map(|(ticket, ..)| ticket.client_ip)
                            .collect();
                        allocate.write(AllocateDeployment {
                            deployment,
                            request: AllocationRequest {
                                game: matched.game.clone(),
                                client_ips,
                                region_hint: None,
                            },
                        });
                        for (ticket, _, _, responder) in
                            tickets.iter().filter_map(|t| members.get(*t).ok())
                        {
                            send_status(
                                responder,
                                &ticket.id,
                                MatchStage::Allocating,
                                "Starting a game server for your match",
                            );
                        }
                        *state = MatchState::Starting { deployment };
                    }
                }
            }
        }
    }
}

/// A number that orders rooms of equal capacity differently for each match.
fn spread(match_id: &str, room: Entity) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (match_id, room.index()).hash(&mut hasher);
    hasher.finish()
}

/// Claims `deployment` for the match and asks for one seat per player, each player's token
/// carrying its team. Returns the match's new state.
#[allow(clippy::too_many_arguments)]
fn take_seats(
    commands: &mut Commands,
    store: &mut MessageWriter<StoreReservation>,
    placement: &Placement,
    minter: &TokenMinter,
    match_entity: Entity,
    matched: &Match,
    tickets: &[Entity],
    members: &Query<(&Ticket, &QueueTicket, &Team, &TicketResponder)>,
    deployment: Entity,
    backfill: Option<&[BackfillSlot]>,
    deployments: &mut Query<DeploymentQuery<'_>>,
) -> MatchState {
    let Ok((_, Some(id), _, Some(info), mut seats, _)) = deployments.get_mut(deployment) else {
        return MatchState::NeedsServer;
    };
    let deployment_id = id.0.clone();
    let info = info.clone();
    commands
        .entity(deployment)
        .insert((ServesMatch(match_entity), MatchHost));
    let ttl = placement.0.reservation_ttl;
    let mut pending = 0;
    let mut lost = false;
    // A backfill's players take the seats it named for their team; a fresh match any free seat.
    let mut slots: Vec<BackfillSlot> = backfill.map(<[BackfillSlot]>::to_vec).unwrap_or_default();
    let mut next_seat = |seats: &mut Seats, team: u32| match backfill {
        None => seats.start_taking(),
        Some(_) => {
            let at = slots.iter().position(|s| s.team == team)?;
            let slot = slots.remove(at);
            seats.start_taking_seat(slot.seat).then_some(slot.seat)
        }
    };
    for ticket_entity in tickets {
        let Ok((ticket, queued, team, _)) = members.get(*ticket_entity) else {
            continue;
        };
        let players = queued.request.players() as usize;
        commands
            .entity(*ticket_entity)
            .insert(StoredSeats(vec![None; players]));
        for player in 0..players {
            let Some(seat) = next_seat(&mut seats, team.0) else {
                lost = true;
                break;
            };
            let expected_revision = seats.expected_revision(seat);
            seats.empty_since = None;
            let sale = sell_seat(
                commands,
                store,
                minter,
                ttl,
                SeatToSell {
                    deployment,
                    deployment_id: &deployment_id,
                    info: &info,
                    seat,
                    expected_revision,
                    ticket: (*ticket_entity, &ticket.id),
                    team: Some(team.0),
                },
            );
            match sale {
                Ok(sale) => {
                    commands.entity(sale.reservation).insert(MatchSeat {
                        of: match_entity,
                        player,
                        session: sale.session,
                    });
                }
                Err(error) => {
                    error!("match `{}`: {error}", matched.id);
                    seats.stop_taking(seat);
                    lost = true;
                    break;
                }
            }
            pending += 1;
        }
    }
    debug!(
        "match `{}`: taking {pending} seats on `{deployment_id}`",
        matched.id
    );
    MatchState::Seating {
        deployment,
        pending,
        lost,
    }
}

/// Applies the outcome of each match seat write; answers a match's tickets once all its seats
/// are stored, or frees them and lets the match look again when one was lost.
#[allow(clippy::too_many_arguments)]
pub fn apply_match_seats(
    mut commands: Commands,
    time: Res<Time>,
    mut stored: MessageReader<ReservationStored>,
    mut free: MessageWriter<FreeSeat>,
    mut dirty: ResMut<PlacementDirty>,
    mut stats: ResMut<LedgerStats>,
    reservations: Query<(&SeatReservation, &MatchSeat)>,
    mut matches: Query<(
        &Match,
        &mut MatchState,
        Option<&MatchMembers>,
        Option<&BackfillFor>,
    )>,
    mut tickets: Query<(&Ticket, &Team, &TicketResponder, &mut StoredSeats)>,
    mut seats: Query<&mut Seats>,
) {
    let mut finished: Vec<Entity> = Vec::new();
    for ReservationStored {
        reservation,
        result,
    } in stored.read()
    {
        let Ok((held, match_seat)) = reservations.get(*reservation) else {
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
        let Ok((_, mut state, ..)) = matches.get_mut(match_seat.of) else {
            continue;
        };
        let MatchState::Seating { pending, lost, .. } = &mut *state else {
            continue;
        };
        *pending = pending.saturating_sub(1);
        match result {
            Ok(revision) => {
                let kept = tickets
                    .get_mut(held.ticket)
                    .ok()
                    .and_then(|(.., mut stored)| {
                        let slot = stored.0.get_mut(match_seat.player)?;
                        *slot = Some(StoredSeat {
                            session: match_seat.session.clone(),
                            deployment_id: held.deployment_id.clone(),
                            seat: held.seat,
                            revision: *revision,
                        });
                        Some(())
                    });
                if kept.is_none() {
                    // Its ticket is gone (cancelled): the seat goes back.
                    free.write(FreeSeat {
                        deployment_id: held.deployment_id.clone(),
                        seat: held.seat,
                        revision: *revision,
                    });
                }
            }
            Err(SeatStoreError::Lost(_)) => *lost = true,
            Err(SeatStoreError::Unavailable(error)) => {
                *lost = true;
                warn!(
                    "seat {} of `{}` for a match not taken: {error}",
                    held.seat, held.deployment_id
                );
            }
        }
        if *pending == 0 && !finished.contains(&match_seat.of) {
            finished.push(match_seat.of);
        }
    }
    for match_entity in finished {
        let Ok((matched, mut state, members, backfill)) = matches.get_mut(match_entity) else {
            continue;
        };
        let MatchState::Seating {
            deployment, lost, ..
        } = *state
        else {
            continue;
        };
        let members: Vec<Entity> = members.map(|m| m.iter().collect()).unwrap_or_default();
        if lost {
            info!(
                "match `{}`: a seat went to another matchmaker; freeing its seats and looking again",
                matched.id
            );
            for member in &members {
                if let Ok((.., mut stored)) = tickets.get_mut(*member) {
                    for seat in stored.0.drain(..).flatten() {
                        free.write(FreeSeat {
                            deployment_id: seat.deployment_id,
                            seat: seat.seat,
                            revision: seat.revision,
                        });
                    }
                }
            }
            commands.entity(deployment).remove::<ServesMatch>();
            commands
                .entity(match_entity)
                .insert(LostSeatRace(time.elapsed()));
            if backfill.is_some() {
                // Its seats went elsewhere: the server asks again with what is still open.
                dissolve(
                    &mut commands,
                    match_entity,
                    matched,
                    &members,
                    backfill,
                    "the backfill it was filling changed",
                );
            } else {
                *state = MatchState::NeedsServer;
            }
            continue;
        }
        info!(
            "match `{}`: {} players seated on one server",
            matched.id, matched.players
        );
        for member in &members {
            let Ok((ticket, team, responder, stored)) = tickets.get(*member) else {
                continue;
            };
            let sessions: Vec<SessionInfo> = stored
                .0
                .iter()
                .flatten()
                .map(|s| s.session.clone())
                .collect();
            responder.send(
                &ticket.id,
                TicketUpdate::Result(MatchResult::Matched(MatchedSessions {
                    team: team.0,
                    teams: matched.teams,
                    sessions,
                })),
            );
            commands.entity(*member).despawn();
        }
        commands.entity(match_entity).despawn();
    }
}

/// Puts a match's tickets back in their queue and ends the match (a backfill that can no longer
/// be filled as it was asked, or a pooled ticket claimed by another matchmaker first).
pub(crate) fn dissolve(
    commands: &mut Commands,
    match_entity: Entity,
    matched: &Match,
    tickets: &[Entity],
    backfill: Option<&BackfillFor>,
    reason: &str,
) {
    info!("match `{}`: {reason}; its tickets wait again", matched.id);
    for ticket in tickets {
        commands
            .entity(*ticket)
            .insert(crate::ticket::TicketState::InQueue)
            .remove::<(super::matching::MemberOf, Team, StoredSeats)>();
    }
    if let Some(backfill) = backfill {
        commands.entity(backfill.deployment).remove::<ServesMatch>();
    }
    commands.entity(match_entity).despawn();
}

/// Fails every ticket of a match and the match.
fn fail_match(
    commands: &mut Commands,
    match_entity: Entity,
    tickets: &[Entity],
    members: &Query<(&Ticket, &QueueTicket, &Team, &TicketResponder)>,
    code: ErrorCode,
    message: &str,
) {
    for entity in tickets {
        if let Ok((ticket, _, _, responder)) = members.get(*entity) {
            fail_ticket(commands, *entity, ticket, responder, code, message);
        }
    }
    commands.entity(match_entity).despawn();
}
