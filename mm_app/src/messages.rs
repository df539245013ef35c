//! What flows into and out of the matchmaker's core systems, as Bevy messages.
//!
//! Inbound messages come from intake endpoints, the KV bridge and the fleet driver; outbound
//! messages are effects the core asks of them. The core itself does no I/O, so headless tests
//! drive it by writing inbound messages and reading outbound ones.

use std::net::IpAddr;

use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::RegionPing;
use bevygap_shared::protocol::queue::QueueRequest;
use bevygap_shared::schema::{DeploymentLease, SeatRecord};

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
    /// The matchmaking queue asked for (validated for size by the endpoint); `None`: any seat.
    pub queue: Option<QueueRequest>,
    /// Where updates go.
    pub responder: TicketResponder,
}

/// A client cancelled its ticket, or went away.
#[derive(Message, Debug, Clone)]
pub struct TicketCancelled {
    /// The ticket.
    pub ticket_id: TicketId,
}

/// A lease changed. Puts and removals arrive in one message type so they apply in the order
/// KV wrote them (a removal and a re-put of one id in the same frame keep the server).
#[derive(Message, Debug, Clone)]
pub enum LeaseChanged {
    /// A lease was written (new deployment or heartbeat).
    Updated(Box<DeploymentLease>),
    /// A lease is gone: deleted on shutdown, lapsed, or missing after a re-list.
    Removed {
        /// The deployment id.
        deployment_id: String,
    },
}

/// A seat of the seat ledger changed (or was listed at start and after a reconnect).
#[derive(Message, Debug, Clone)]
pub struct SeatChanged {
    /// The deployment id.
    pub deployment_id: String,
    /// The seat index.
    pub seat: u32,
    /// The key's revision (0 when a re-list no longer shows it).
    pub revision: u64,
    /// Who holds it now; `None` when it is free.
    pub record: Option<SeatRecord>,
}

/// Which mirror of KV a [`LedgerSync`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Reflect)]
pub enum MirrorOf {
    /// The leases bucket (deployments).
    Leases,
    /// The seat ledger.
    Seats,
}

/// A KV watch began listing (`synced: false`: the mirror may be stale until it is done) or
/// finished (`synced: true`: the mirror equals KV as of the listing).
#[derive(Message, Debug, Clone, Copy)]
pub struct LedgerSync {
    /// The mirror.
    pub mirror: MirrorOf,
    /// Whether the listing is complete.
    pub synced: bool,
}

/// Why a seat write did not take the seat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeatStoreError {
    /// Another writer took the seat first: its state now, to decide again on (`None` when the
    /// re-read failed too).
    #[error("another matchmaker took the seat first")]
    Lost(Option<(u64, Option<SeatRecord>)>),
    /// KV could not be written (NATS down or refusing): retryable, and ours.
    #[error("the seat ledger is unavailable: {0}")]
    Unavailable(String),
}

/// Outcome of a [`StoreReservation`].
#[derive(Message, Debug, Clone)]
pub struct ReservationStored {
    /// The reservation entity.
    pub reservation: Entity,
    /// The seat's new revision, or why the seat was not taken.
    pub result: Result<u64, SeatStoreError>,
}

/// Outcome of a [`CloseDeployment`].
#[derive(Message, Debug, Clone)]
pub struct DeploymentClosed {
    /// The deployment entity.
    pub deployment: Entity,
    /// `true` when every seat is closed (the deployment can be stopped); `false` when a seat was
    /// sold meanwhile or KV failed (the closed seats were given back).
    pub closed: bool,
}

/// A stop the fleet could not carry out after its retries (the deployment keeps running).
#[derive(Message, Debug, Clone)]
pub struct StopFailed {
    /// The deployment id.
    pub deployment_id: String,
    /// The last error, for the log.
    pub reason: String,
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

/// Effect: take a seat in the ledger by compare-and-set, then answer with [`ReservationStored`].
#[derive(Message, Debug, Clone)]
pub struct StoreReservation {
    /// The reservation entity.
    pub reservation: Entity,
    /// The seat record to write.
    pub record: SeatRecord,
    /// The seat key's revision as the mirror knows it (0: never written or purged).
    pub expected_revision: u64,
    /// When the seat lapses if nobody connects (a little past the token's expiry).
    pub ttl: std::time::Duration,
}

/// Effect: close every seat of an empty deployment before stopping it (scale to zero through
/// the same compare-and-set as selling), then answer with [`DeploymentClosed`].
#[derive(Message, Debug, Clone)]
pub struct CloseDeployment {
    /// The deployment entity.
    pub deployment: Entity,
    /// Its id.
    pub deployment_id: String,
    /// Every seat with the revision the mirror knows (all free).
    pub seats: Vec<(u32, u64)>,
}

/// Effect: free a seat this matchmaker took for a client that went away before its answer.
#[derive(Message, Debug, Clone)]
pub struct FreeSeat {
    /// The deployment id.
    pub deployment_id: String,
    /// The seat index.
    pub seat: u32,
    /// The revision it was taken at (a seat written since is left alone).
    pub revision: u64,
}

/// Effect: remove a gone deployment's seats and connection records from KV, history included.
#[derive(Message, Debug, Clone)]
pub struct PurgeDeployment {
    /// The deployment id.
    pub deployment_id: String,
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
        .add_message::<LeaseChanged>()
        .add_message::<SeatChanged>()
        .add_message::<LedgerSync>()
        .add_message::<ReservationStored>()
        .add_message::<DeploymentClosed>()
        .add_message::<StopFailed>()
        .add_message::<CloseDeployment>()
        .add_message::<PurgeDeployment>()
        .add_message::<FreeSeat>()
        .add_message::<AllocationFinished>()
        .add_message::<DeploymentEnded>()
        .add_message::<StoreReservation>()
        .add_message::<AllocateDeployment>()
        .add_message::<StopDeployment>();
}
