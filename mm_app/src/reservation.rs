//! Reservations: connect tokens issued for a seat, until used or expired.

use std::time::Duration;

use bevy::prelude::*;

/// A seat held for one client on one deployment.
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct SeatReservation {
    /// The reservation id (in the token's user data and the KV record).
    pub id: String,
    /// The netcode client id in the token.
    pub client_id: u64,
    /// The deployment entity holding the seat.
    pub deployment: Entity,
    /// The deployment id.
    pub deployment_id: String,
    /// When the seat is released if the client has not connected (app elapsed time).
    pub expires_at: Duration,
}

/// Whether the reservation is stored in KV yet.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub enum ReservationState {
    /// Being written to KV; the client has not been answered.
    Storing {
        /// The ticket waiting for it.
        ticket: Entity,
    },
    /// Stored and sent to the client; waiting for the client to connect.
    Issued,
}
