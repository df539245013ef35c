//! Placement: waiting tickets onto free seats, oldest first.
//!
//! A placement is a decision on the ledger mirror: the ticket gets a token for a seat index that
//! the mirror shows free, and the seat is taken in KV by compare-and-set
//! ([`StoreReservation`]). The client is answered only when the write wins
//! ([`crate::seats::apply_stored_reservations`]).

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::{MatchStage, SessionInfo};
use bevygap_shared::time::{add_millis, now_millis};
use bevygap_shared::token_data::TokenUserData;

use crate::core_plugin::{Placement, PlacementDirty};
use crate::deployment::{DeploymentId, DeploymentInfo, DeploymentState, Seats};
use crate::messages::StoreReservation;
use crate::seats::{SeatReservation, reserved_record};
use crate::ticket::{
    PendingSession, Ticket, TicketResponder, TicketState, fail_ticket, send_status,
};
use crate::tokens::TokenMinter;

/// How long a reserved seat outlives its token's expiry in the ledger. The game server admits a
/// token until its expiry; the seat is freed only this much later, so a client connecting in the
/// token's last moment never finds its seat sold to someone else (clocks may differ this much).
pub const SEAT_GRACE: Duration = Duration::from_secs(5);

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

/// Places waiting tickets, oldest first, on the best ready deployment with a free seat: picks
/// the seat, mints the token and asks for the seat to be taken in the ledger.
#[allow(clippy::too_many_arguments)]
pub fn place_tickets(
    mut commands: Commands,
    mut dirty: ResMut<PlacementDirty>,
    mut store: MessageWriter<StoreReservation>,
    placement: Res<Placement>,
    minter: Res<TokenMinter>,
    mut tickets: Query<
        (Entity, &Ticket, &mut TicketState, &TicketResponder),
        Without<crate::seats::RetryAt>,
    >,
    mut deployments: Query<
        (
            Entity,
            &DeploymentId,
            &DeploymentState,
            &DeploymentInfo,
            &mut Seats,
        ),
        Without<crate::queues::seating::MatchHost>,
    >,
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

    let ttl = placement.0.reservation_ttl;
    for (ticket_entity, ticket, mut state, responder) in waiting {
        let Some(best) = candidates
            .iter_mut()
            .filter(|c| c.free > 0 && c.info.game == ticket.game)
            .min_by_key(|c| rank(c, ticket))
        else {
            continue;
        };
        let Ok((_, _, _, _, mut seats)) = deployments.get_mut(best.entity) else {
            continue;
        };
        let Some(seat) = seats.start_taking() else {
            best.free = 0;
            continue;
        };
        let expected_revision = seats.expected_revision(seat);
        seats.empty_since = None;
        best.free -= 1;
        best.used += 1;

        let sale = sell_seat(
            &mut commands,
            &mut store,
            &minter,
            ttl,
            SeatToSell {
                deployment: best.entity,
                deployment_id: &best.id,
                info: &best.info,
                seat,
                expected_revision,
                ticket: (ticket_entity, &ticket.id),
                team: None,
            },
        );
        let sale = match sale {
            Ok(sale) => sale,
            Err(error) => {
                error!("ticket `{}`: {error}", ticket.id);
                seats.stop_taking(seat);
                fail_ticket(
                    &mut commands,
                    ticket_entity,
                    ticket,
                    responder,
                    ErrorCode::Internal,
                    "could not mint a connect token",
                );
                continue;
            }
        };
        *state = TicketState::Placed {
            reservation: sale.reservation,
        };
        commands
            .entity(ticket_entity)
            .insert(PendingSession(sale.session));
        send_status(responder, &ticket.id, MatchStage::Placed, "Seat reserved");
    }
}

/// A seat about to be sold: where it is, the revision its write expects, and for whom.
pub(crate) struct SeatToSell<'a> {
    /// The deployment entity.
    pub deployment: Entity,
    /// Its id.
    pub deployment_id: &'a str,
    /// What its lease says (address, transport, digest).
    pub info: &'a DeploymentInfo,
    /// The seat index, marked as being taken in the mirror.
    pub seat: u32,
    /// The seat key's revision as the mirror knows it.
    pub expected_revision: u64,
    /// The ticket entity and id the seat is for.
    pub ticket: (Entity, &'a crate::ticket::TicketId),
    /// The player's team, for a queue's match.
    pub team: Option<u32>,
}

/// A seat being sold: its reservation entity (the ledger write is asked for) and the session the
/// player gets once the write wins.
pub(crate) struct SeatSale {
    /// The [`SeatReservation`] entity.
    pub reservation: Entity,
    /// The session: token, address, transport, digest.
    pub session: SessionInfo,
}

/// Mints a token for a new client on `seat` and asks for the seat to be taken in the ledger by
/// compare-and-set (the seat flow and a queue's matches alike).
pub(crate) fn sell_seat(
    commands: &mut Commands,
    store: &mut MessageWriter<StoreReservation>,
    minter: &TokenMinter,
    ttl: Duration,
    seat: SeatToSell<'_>,
) -> Result<SeatSale, crate::tokens::MintError> {
    let client_id = rand::random::<u64>().max(1);
    let reservation_id = new_id("r");
    let issued_at_ms = now_millis();
    let expires_at_ms = add_millis(issued_at_ms, ttl);
    let data = TokenUserData {
        deployment_id: seat.deployment_id.to_owned(),
        reservation_id: reservation_id.clone(),
        expires_at_ms,
        team: seat.team,
    };
    let token = minter.mint(seat.info.public_addr, client_id, &data)?;
    let (ticket_entity, ticket_id) = seat.ticket;
    let reservation = commands
        .spawn((
            Name::new(format!("reservation {reservation_id}")),
            SeatReservation {
                id: reservation_id.clone(),
                client_id,
                deployment: seat.deployment,
                deployment_id: seat.deployment_id.to_owned(),
                seat: seat.seat,
                ticket: ticket_entity,
            },
        ))
        .id();
    store.write(StoreReservation {
        reservation,
        record: reserved_record(
            seat.deployment_id,
            seat.seat,
            &reservation_id,
            client_id,
            issued_at_ms,
            expires_at_ms,
        ),
        expected_revision: seat.expected_revision,
        ttl: ttl + SEAT_GRACE,
    });
    Ok(SeatSale {
        reservation,
        session: SessionInfo {
            ticket_id: ticket_id.0.clone(),
            connect_token: token,
            ip: seat.info.public_addr.ip(),
            port: seat.info.public_addr.port(),
            transport: seat.info.transport,
            cert_digest: seat.info.cert_digest,
        },
    })
}
