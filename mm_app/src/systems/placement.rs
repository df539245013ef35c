//! Placing tickets on free seats, and asking the fleet for servers when there are none.

use std::collections::HashMap;

use bevy::prelude::*;
use bevygap_shared::protocol::channel::{MatchStage, MatchStatus, SessionInfo};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::schema::Reservation;
use bevygap_shared::time::{add_millis, now_millis};
use bevygap_shared::token_data::TokenUserData;

use super::fail_ticket;
use crate::core_plugin::{Placement, PlacementDirty};
use crate::deployment::{DeploymentId, DeploymentInfo, DeploymentState, Seats, StartingFor};
use crate::fleet::AllocationRequest;
use crate::messages::{AllocateDeployment, StoreReservation};
use crate::reservation::{ReservationState, SeatReservation};
use crate::ticket::{
    PendingSession, Ticket, TicketIndex, TicketResponder, TicketState, TicketUpdate,
};
use crate::tokens::TokenMinter;

/// Live reservations by netcode client id (client ids are unique among them).
#[derive(Resource, Debug, Default)]
pub struct ReservationIndex(pub HashMap<u64, Entity>);

/// A ready deployment that may take tickets, as seen by one placement pass.
struct Candidate {
    entity: Entity,
    id: String,
    info: DeploymentInfo,
    free: u32,
    used: u32,
}

/// Ranks a deployment for a ticket: the fullest that fits first, then the nearest region.
fn rank(candidate: &Candidate, ticket: &Ticket) -> (u32, usize) {
    let region = candidate
        .info
        .region
        .as_ref()
        .and_then(|r| ticket.region_pings.iter().position(|p| &p.region == r))
        .unwrap_or(usize::MAX);
    (u32::MAX - candidate.used, region)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Places waiting tickets, oldest first, on the best ready deployment with a free seat: mints the
/// token, reserves the seat and asks for the reservation to be stored.
#[allow(clippy::too_many_arguments)]
pub fn place_tickets(
    mut commands: Commands,
    mut dirty: ResMut<PlacementDirty>,
    mut reservation_index: ResMut<ReservationIndex>,
    mut ticket_index: ResMut<TicketIndex>,
    mut store: MessageWriter<StoreReservation>,
    placement: Res<Placement>,
    minter: Res<TokenMinter>,
    time: Res<Time>,
    mut tickets: Query<(Entity, &Ticket, &mut TicketState, &TicketResponder)>,
    mut deployments: Query<(
        Entity,
        &DeploymentId,
        &DeploymentState,
        &DeploymentInfo,
        &mut Seats,
    )>,
) {
    if !std::mem::take(&mut dirty.0) {
        return;
    }
    let mut candidates: Vec<Candidate> = deployments
        .iter()
        .filter(|(_, _, state, info, _)| **state == DeploymentState::Ready && info.accepting)
        .filter_map(|(entity, id, _, info, seats)| {
            let free = seats.free(info.reported_players);
            (free > 0).then(|| Candidate {
                entity,
                id: id.0.clone(),
                info: info.clone(),
                free,
                used: seats.used(info.reported_players),
            })
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    let mut waiting: Vec<_> = tickets
        .iter_mut()
        .filter(|(_, _, state, _)| matches!(**state, TicketState::Queued | TicketState::Allocating))
        .collect();
    waiting.sort_by_key(|(_, ticket, _, _)| ticket.created_at);

    let now = time.elapsed();
    let ttl = placement.0.reservation_ttl;
    for (ticket_entity, ticket, mut state, responder) in waiting {
        let Some(best) = candidates
            .iter_mut()
            .filter(|c| c.free > 0 && c.info.game == ticket.game)
            .min_by_key(|c| rank(c, ticket))
        else {
            continue;
        };
        let mut client_id = rand::random::<u64>();
        while client_id == 0 || reservation_index.0.contains_key(&client_id) {
            client_id = rand::random::<u64>();
        }
        let issued_at_ms = now_millis();
        let record = Reservation {
            reservation_id: new_id("r"),
            deployment_id: best.id.clone(),
            client_id,
            issued_at_ms,
            expires_at_ms: add_millis(issued_at_ms, ttl),
        };
        let data = TokenUserData {
            deployment_id: record.deployment_id.clone(),
            reservation_id: record.reservation_id.clone(),
            expires_at_ms: record.expires_at_ms,
        };
        let token = match minter.mint(best.info.public_addr, client_id, &data) {
            Ok(token) => token,
            Err(error) => {
                error!("ticket `{}`: {error}", ticket.id);
                fail_ticket(
                    &mut commands,
                    &mut ticket_index,
                    ticket_entity,
                    ticket,
                    responder,
                    ErrorCode::Internal,
                    "could not mint a connect token",
                );
                continue;
            }
        };
        best.free -= 1;
        best.used += 1;
        if let Ok((_, _, _, _, mut seats)) = deployments.get_mut(best.entity) {
            seats.reserved.insert(client_id);
            seats.empty_since = None;
        }
        let reservation = commands
            .spawn((
                Name::new(format!("reservation {}", record.reservation_id)),
                SeatReservation {
                    id: record.reservation_id.clone(),
                    client_id,
                    deployment: best.entity,
                    deployment_id: best.id.clone(),
                    expires_at: now + ttl,
                },
                ReservationState::Storing {
                    ticket: ticket_entity,
                },
            ))
            .id();
        reservation_index.0.insert(client_id, reservation);
        *state = TicketState::Placed { reservation };
        commands
            .entity(ticket_entity)
            .insert(PendingSession(SessionInfo {
                ticket_id: ticket.id.0.clone(),
                connect_token: token,
                ip: best.info.public_addr.ip(),
                port: best.info.public_addr.port(),
                transport: best.info.transport,
                cert_digest: best.info.cert_digest,
            }));
        responder.send(
            &ticket.id,
            TicketUpdate::Status(MatchStatus {
                ticket_id: ticket.id.0.clone(),
                stage: MatchStage::Placed,
                text: "Seat reserved".into(),
            }),
        );
        store.write(StoreReservation {
            reservation,
            record,
        });
    }
}

/// Player IPs passed to the fleet for placement at most (the provider needs a sample, not all).
const MAX_PLACEMENT_IPS: usize = 32;

/// Asks the fleet for new deployments when waiting tickets outnumber the seats being started.
pub fn request_deployments(
    mut commands: Commands,
    mut allocate: MessageWriter<AllocateDeployment>,
    placement: Res<Placement>,
    time: Res<Time>,
    mut tickets: Query<(&Ticket, &mut TicketState, &TicketResponder)>,
    starting: Query<(&StartingFor, &Seats, &DeploymentState)>,
) {
    let mut waiting: HashMap<GameRef, (u32, Vec<std::net::IpAddr>, Option<String>)> =
        HashMap::new();
    for (ticket, state, _) in &tickets {
        if matches!(*state, TicketState::Queued | TicketState::Allocating) {
            // Look up before inserting: cloning the game per ticket per frame adds up.
            if !waiting.contains_key(&ticket.game) {
                waiting.insert(ticket.game.clone(), Default::default());
            }
            let Some(entry) = waiting.get_mut(&ticket.game) else {
                continue;
            };
            entry.0 += 1;
            if entry.1.len() < MAX_PLACEMENT_IPS {
                entry.1.extend(ticket.client_ip);
            }
            if entry.2.is_none() {
                entry.2 = ticket.region_pings.first().map(|p| p.region.clone());
            }
        }
    }
    if waiting.is_empty() {
        return;
    }
    let mut starting_count = starting
        .iter()
        .filter(|(_, _, s)| matches!(s, DeploymentState::Starting { .. }))
        .count();
    for (game, (count, client_ips, region_hint)) in waiting {
        let mut seats_coming: u32 = starting
            .iter()
            .filter(|(g, _, s)| g.0 == game && matches!(s, DeploymentState::Starting { .. }))
            .map(|(_, seats, _)| seats.capacity)
            .sum();
        while count > seats_coming && starting_count < placement.0.max_starting {
            let capacity = placement.0.expected_capacity.max(1);
            let deployment = commands
                .spawn((
                    Name::new(format!(
                        "starting deployment for {} {}",
                        game.game, game.version
                    )),
                    StartingFor(game.clone()),
                    DeploymentState::Starting {
                        since: time.elapsed(),
                    },
                    Seats {
                        capacity,
                        ..default()
                    },
                ))
                .id();
            info!(
                "no free seat for {} {}: asking the fleet for a server",
                game.game, game.version
            );
            allocate.write(AllocateDeployment {
                deployment,
                request: AllocationRequest {
                    game: game.clone(),
                    client_ips: client_ips.clone(),
                    region_hint: region_hint.clone(),
                },
            });
            seats_coming += capacity;
            starting_count += 1;
        }
    }
    for (ticket, mut state, responder) in &mut tickets {
        if *state == TicketState::Queued {
            *state = TicketState::Allocating;
            responder.send(
                &ticket.id,
                TicketUpdate::Status(MatchStatus {
                    ticket_id: ticket.id.0.clone(),
                    stage: MatchStage::Allocating,
                    text: "Starting a game server".into(),
                }),
            );
        }
    }
}
