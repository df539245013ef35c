//! The core's systems, by phase: [`apply`] inbound messages, [`placement`], [`lifecycle`] timeouts.

pub mod apply;
pub mod lifecycle;
pub mod placement;

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::{MatchError, MatchResult};

use crate::deployment::Seats;
use crate::reservation::SeatReservation;
use crate::ticket::{Ticket, TicketIndex, TicketResponder, TicketUpdate};
use placement::ReservationIndex;

/// Answers a ticket with an error and despawns it.
pub(crate) fn fail_ticket(
    commands: &mut Commands,
    index: &mut TicketIndex,
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
    index.0.remove(&ticket.id);
    commands.entity(entity).despawn();
}

/// Releases a reservation's seat and despawns it.
pub(crate) fn release_reservation(
    commands: &mut Commands,
    reservations: &mut ReservationIndex,
    entity: Entity,
    reservation: &SeatReservation,
    seats: Option<&mut Seats>,
) {
    if let Some(seats) = seats {
        seats.reserved.remove(&reservation.client_id);
    }
    reservations.0.remove(&reservation.client_id);
    commands.entity(entity).despawn();
}
