//! Deployments: game servers known from their leases, or being started by the fleet.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::schema::{CertDigest, DeploymentLease, Transport};

/// A deployment's id (its lease key).
#[derive(Component, Debug, Clone, PartialEq, Eq, Hash, Reflect)]
#[reflect(Component)]
pub struct DeploymentId(pub String);

/// Where a deployment stands.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub enum DeploymentState {
    /// Requested from the fleet; its lease has not appeared yet.
    Starting {
        /// When it was requested (app elapsed time).
        since: Duration,
    },
    /// The lease is live: tickets can be placed here.
    Ready,
    /// Asked to stop (empty past its TTL, or never became ready).
    Stopping,
}

/// What the lease says about a ready deployment.
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct DeploymentInfo {
    /// The game and version it runs.
    #[reflect(ignore)]
    pub game: GameRef,
    /// The address clients dial.
    #[reflect(ignore, default = "unspecified_addr")]
    pub public_addr: SocketAddr,
    /// The transport it listens on.
    #[reflect(ignore)]
    pub transport: Transport,
    /// The WebTransport certificate digest.
    #[reflect(ignore)]
    pub cert_digest: Option<CertDigest>,
    /// The region it runs in, if known.
    pub region: Option<String>,
    /// Players the server itself reports.
    pub reported_players: u32,
    /// False while draining.
    pub accepting: bool,
}

fn unspecified_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

impl DeploymentInfo {
    /// The info of a lease.
    pub fn from_lease(lease: &DeploymentLease) -> Self {
        Self {
            game: GameRef::new(lease.game.clone(), lease.game_version.clone()),
            public_addr: lease.public_addr,
            transport: lease.transport,
            cert_digest: lease.cert_digest,
            region: lease.location.as_ref().map(|l| l.region.clone()),
            reported_players: lease.players,
            accepting: lease.accepting,
        }
    }
}

/// Seat accounting of a deployment.
#[derive(Component, Debug, Clone, Default, Reflect)]
#[reflect(Component)]
pub struct Seats {
    /// Seats in total (from the lease; the fleet's estimate while starting).
    pub capacity: u32,
    /// Client ids connected (from the connections bucket).
    pub connected: HashSet<u64>,
    /// Client ids holding a reservation not yet used.
    pub reserved: HashSet<u64>,
    /// Since when the deployment has had no player and no reservation (app elapsed time).
    pub empty_since: Option<Duration>,
}

impl Seats {
    /// Seats in use: connected players (or what the server reports, if more) plus reservations.
    pub fn used(&self, reported_players: u32) -> u32 {
        let connected = u32::try_from(self.connected.len()).unwrap_or(u32::MAX);
        connected
            .max(reported_players)
            .saturating_add(u32::try_from(self.reserved.len()).unwrap_or(u32::MAX))
    }

    /// Seats free now.
    pub fn free(&self, reported_players: u32) -> u32 {
        self.capacity.saturating_sub(self.used(reported_players))
    }

    /// Whether nobody is connected or reserved.
    pub fn is_empty(&self, reported_players: u32) -> bool {
        self.used(reported_players) == 0
    }
}

/// Finds deployments by id.
#[derive(Resource, Debug, Default)]
pub struct DeploymentIndex(pub HashMap<String, Entity>);

/// The game a starting deployment was requested for (until its lease brings [`DeploymentInfo`]).
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct StartingFor(#[reflect(ignore)] pub GameRef);
