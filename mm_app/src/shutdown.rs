//! Graceful stop: on SIGTERM or SIGINT (or [`ShutdownFlag`](crate::bridge::ShutdownFlag)) the
//! matchmaker stops taking requests, answers every ticket still waiting with
//! [`ErrorCode::ShuttingDown`] (the client retries, and another matchmaker serves it), lets the
//! seat writes in flight finish so no sold seat goes unanswered, stops the local fleet's servers
//! (they remove their leases), then exits — within the grace period at the latest. Seed JSON
//! clients see their socket closed with 1001 (going away).

use std::time::Instant;

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;

use crate::bridge::{ShutdownFlag, Wake};
use crate::seats::SeatReservation;
use crate::ticket::{Ticket, TicketResponder, TicketState, fail_ticket};

/// Present while the matchmaker drains before exiting.
#[derive(Resource, Debug, Clone, Copy)]
pub struct ShuttingDown {
    /// When the drain gives up and the process exits anyway.
    pub deadline: Instant,
}

/// The message waiting clients get.
pub const SHUTDOWN_MESSAGE: &str = "this matchmaker is shutting down; try again";

/// Fails every ticket still waiting for a seat; tickets whose seat write is in flight get their
/// answer when it lands.
pub fn drain_waiting_tickets(
    mut commands: Commands,
    shutting_down: Option<Res<ShuttingDown>>,
    tickets: Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
) {
    if shutting_down.is_none() {
        return;
    }
    for (entity, ticket, state, responder) in &tickets {
        if matches!(
            state,
            TicketState::Queued | TicketState::Allocating | TicketState::InQueue
        ) {
            fail_ticket(
                &mut commands,
                entity,
                ticket,
                responder,
                ErrorCode::ShuttingDown,
                SHUTDOWN_MESSAGE,
            );
        }
    }
}

/// Whether nothing is left to answer: no ticket, no seat write in flight, and no seed JSON socket
/// still open (each closes right after writing its answer, so an answer written is also
/// delivered before the process exits).
pub fn drained(world: &mut World) -> bool {
    world.query::<&Ticket>().iter(world).next().is_none()
        && world
            .query::<&SeatReservation>()
            .iter(world)
            .next()
            .is_none()
        && world
            .get_resource::<crate::intake::OpenSockets>()
            .is_none_or(|sockets| sockets.seed.open() == 0)
}

/// The last step before exiting: the fleet stops servers that cannot outlive this process (local
/// ones, which then remove their leases), within what is left of the grace period.
pub fn stop_fleet(world: &mut World, deadline: Instant) {
    let (Some(fleet), Some(runtime)) = (
        world.get_resource::<crate::fleet_driver::Fleet>().cloned(),
        world
            .get_resource::<crate::runtime::AsyncRuntime>()
            .cloned(),
    ) else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let stopped = runtime
        .0
        .block_on(async move { tokio::time::timeout(left, fleet.0.shutdown()).await });
    if stopped.is_err() {
        warn!("the fleet's servers did not all stop within the grace period");
    }
}

/// Requests the graceful stop on SIGTERM or SIGINT. Must be called inside a tokio runtime.
pub fn stop_on_signals(flag: ShutdownFlag, wake: Wake) {
    tokio::spawn(async move {
        bevygap_shared::signals::termination().await;
        info!("termination requested: draining (new requests are refused)");
        flag.request();
        wake.wake();
    });
}
