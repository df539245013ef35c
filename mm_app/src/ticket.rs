//! Tickets: one per client request, from intake until a result is sent.

use std::net::IpAddr;
use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{MatchResult, MatchStatus, RegionPing};
use tokio::sync::mpsc;

/// A ticket's id: `t-` and 16 hex digits, unique per matchmaker run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Reflect)]
pub struct TicketId(pub String);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's request for a match.
#[derive(Component, Debug, Clone, Reflect)]
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
}

/// What the matchmaker tells the endpoint that owns a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketUpdate {
    /// Progress to show the player.
    Status(MatchStatus),
    /// The final answer; the ticket is gone after this.
    Result(MatchResult),
}

/// Where a ticket's updates go: a bounded channel owned by the client's endpoint.
#[derive(Component, Debug, Clone)]
pub struct TicketResponder(pub mpsc::Sender<(TicketId, TicketUpdate)>);

impl TicketResponder {
    /// Sends without waiting; a full or closed channel drops the update (the client is gone or
    /// too slow) and returns false.
    pub fn send(&self, ticket: &TicketId, update: TicketUpdate) -> bool {
        self.0.try_send((ticket.clone(), update)).is_ok()
    }
}

/// Finds tickets by id (for cancellation).
#[derive(Resource, Debug, Default)]
pub struct TicketIndex(pub std::collections::HashMap<TicketId, Entity>);

/// The session a placed ticket will receive once its reservation is stored.
#[derive(Component, Debug, Clone)]
pub struct PendingSession(pub bevygap_shared::protocol::channel::SessionInfo);

impl TicketId {
    /// A fresh random ticket id.
    pub fn generate() -> Self {
        Self(format!("t-{:016x}", rand::random::<u64>()))
    }
}
