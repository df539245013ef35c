//! What flows into and out of the matchmaker's core systems, as Bevy messages.
//!
//! Inbound messages come from intake endpoints, the KV bridge and the fleet driver; outbound
//! messages are effects the core asks of them. The core itself does no I/O, so headless tests
//! drive it by writing inbound messages and reading outbound ones.

use std::net::IpAddr;

use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::RegionPing;
use bevygap_shared::schema::{DeploymentLease, Reservation};

use crate::fleet::{Allocation, AllocationRequest, FleetError};
use crate::ticket::{TicketId, TicketResponder};

/// A client asked for a match.
#[derive(Message, Debug, Clone)]
pub struct TicketRequested {
    /// The id the endpoint assigned.
    pub ticket_id: TicketId,
    /// The game and version (validated by the endpoint).
    pub game: GameRef,
    /// The client's IP, if known.
    pub client_ip: Option<IpAddr>,
    /// Region pings, best first.
    pub region_pings: Vec<RegionPing>,
    /// Where updates go.
    pub responder: TicketResponder,
}

/// A client cancelled its ticket, or went away.
#[derive(Message, Debug, Clone)]
pub struct TicketCancelled {
    /// The ticket.
    pub ticket_id: TicketId,
}

/// A lease was written (new deployment or heartbeat).
#[derive(Message, Debug, Clone)]
pub struct LeaseUpdated(pub DeploymentLease);

/// A lease is gone: deleted on shutdown, lapsed, or missing after a re-list.
#[derive(Message, Debug, Clone)]
pub struct LeaseRemoved {
    /// The deployment id.
    pub deployment_id: String,
}

/// A client connected to a deployment (its active-connection key appeared).
#[derive(Message, Debug, Clone)]
pub struct ConnectionOpened {
    /// The deployment id.
    pub deployment_id: String,
    /// The netcode client id.
    pub client_id: u64,
}

/// A client left a deployment (its active-connection key is gone).
#[derive(Message, Debug, Clone)]
pub struct ConnectionClosed {
    /// The deployment id.
    pub deployment_id: String,
    /// The netcode client id.
    pub client_id: u64,
}

/// Outcome of a [`StoreReservation`].
#[derive(Message, Debug, Clone)]
pub struct ReservationStored {
    /// The reservation entity.
    pub reservation: Entity,
    /// `Err` with a description when KV refused or was unreachable.
    pub result: Result<(), String>,
}

/// Outcome of an [`AllocateDeployment`].
#[derive(Message, Debug, Clone)]
pub struct AllocationFinished {
    /// The starting-deployment entity.
    pub deployment: Entity,
    /// What the fleet said.
    pub result: Result<Allocation, FleetError>,
}

/// A deployment ended without being asked to (reported by the fleet backend).
#[derive(Message, Debug, Clone)]
pub struct DeploymentEnded {
    /// The deployment id.
    pub deployment_id: String,
    /// What happened, for the log and the waiting players.
    pub reason: String,
}

/// Effect: write this reservation to KV, then answer with [`ReservationStored`].
#[derive(Message, Debug, Clone)]
pub struct StoreReservation {
    /// The reservation entity.
    pub reservation: Entity,
    /// The record to write.
    pub record: Reservation,
}

/// Effect: ask the fleet for a deployment, then answer with [`AllocationFinished`].
#[derive(Message, Debug, Clone)]
pub struct AllocateDeployment {
    /// The starting-deployment entity.
    pub deployment: Entity,
    /// What to start.
    pub request: AllocationRequest,
}

/// Effect: ask the fleet to stop a deployment.
#[derive(Message, Debug, Clone)]
pub struct StopDeployment {
    /// The deployment id.
    pub deployment_id: String,
    /// Why (for logs).
    pub reason: &'static str,
}

/// Registers every message type of this module.
pub(crate) fn add_messages(app: &mut App) {
    app.add_message::<TicketRequested>()
        .add_message::<TicketCancelled>()
        .add_message::<LeaseUpdated>()
        .add_message::<LeaseRemoved>()
        .add_message::<ConnectionOpened>()
        .add_message::<ConnectionClosed>()
        .add_message::<ReservationStored>()
        .add_message::<AllocationFinished>()
        .add_message::<DeploymentEnded>()
        .add_message::<StoreReservation>()
        .add_message::<AllocateDeployment>()
        .add_message::<StopDeployment>();
}
