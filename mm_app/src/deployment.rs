//! Deployments: game servers known from their leases, or being started by the fleet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::schema::{CertDigest, DeploymentLease, SeatHolder, SeatRecord, Transport};

/// A deployment's id (its lease key). Filed in [`DeploymentIndex`] by its hooks: despawning the
/// entity is what removes it from the index.
#[derive(Component, Debug, Clone, PartialEq, Eq, Hash, Reflect)]
#[component(on_insert = index_deployment, on_discard = unindex_deployment)]
#[reflect(Component)]
pub struct DeploymentId(pub String);

fn index_deployment(mut world: DeferredWorld, context: HookContext) {
    let Some(id) = world
        .get::<DeploymentId>(context.entity)
        .map(|d| d.0.clone())
    else {
        return;
    };
    if let Some(mut index) = world.get_resource_mut::<DeploymentIndex>() {
        index.0.insert(id, context.entity);
    }
}

fn unindex_deployment(mut world: DeferredWorld, context: HookContext) {
    let Some(id) = world
        .get::<DeploymentId>(context.entity)
        .map(|d| d.0.clone())
    else {
        return;
    };
    if let Some(mut index) = world.get_resource_mut::<DeploymentIndex>()
        && index.0.get(&id) == Some(&context.entity)
    {
        index.0.remove(&id);
    }
}

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
    /// Empty past its TTL: its free seats are being closed in the ledger, so that no matchmaker
    /// sells one while it stops. Goes on to `Stopping`, or back to `Ready` if a seat was sold.
    Closing,
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
    /// The players it asks a queue for (backfill), if any.
    #[reflect(ignore)]
    pub backfill: Option<bevygap_shared::schema::LeaseBackfill>,
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
            backfill: lease.backfill.clone(),
        }
    }
}

/// Who holds a seat, as the mirror of the seat ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A token was issued for it.
    Reserved {
        /// The netcode client id.
        client_id: u64,
    },
    /// The client is connected.
    Connected {
        /// The netcode client id.
        client_id: u64,
    },
    /// A matchmaker is stopping the deployment.
    Closing,
}

impl From<&SeatHolder> for Holder {
    fn from(holder: &SeatHolder) -> Self {
        match holder {
            SeatHolder::Reserved { client_id, .. } => Self::Reserved {
                client_id: *client_id,
            },
            SeatHolder::Connected { client_id, .. } => Self::Connected {
                client_id: *client_id,
            },
            SeatHolder::Closing { .. } => Self::Closing,
        }
    }
}

/// A held seat with the revision of its ledger key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldSeat {
    /// The key's revision.
    pub revision: u64,
    /// Who holds it.
    pub holder: Holder,
}

/// A deployment's seats: its capacity, and its keys of the seat ledger as this matchmaker last
/// saw them (kept current by the KV watch; the ledger is the truth, see
/// [`SeatRecord`](bevygap_shared::schema::SeatRecord)).
#[derive(Component, Debug, Clone, Default, Reflect)]
#[reflect(Component)]
pub struct Seats {
    /// Seats in total (from the lease; the fleet's estimate while starting).
    pub capacity: u32,
    /// Seats held by a connected client.
    pub connected: u32,
    /// Seats held by an issued token not yet used.
    pub reserved: u32,
    /// Seats closed by a stop in progress.
    pub closing: u32,
    /// Seats this matchmaker is taking right now (its write is in flight).
    pub selling: u32,
    /// Since when the deployment has had no player and no reservation (app elapsed time).
    pub empty_since: Option<Duration>,
    /// The held seats by index.
    #[reflect(ignore)]
    held: BTreeMap<u32, HeldSeat>,
    /// Revisions of free seat keys that still have a delete marker (the revision to write over).
    #[reflect(ignore)]
    freed: HashMap<u32, u64>,
    /// Seat indices being taken by this matchmaker.
    #[reflect(ignore)]
    taking: HashSet<u32>,
    /// Where the next free-seat search starts (spreads matchmakers over different seats).
    #[reflect(ignore)]
    cursor: u32,
}

impl Seats {
    /// A deployment with `capacity` seats, none held.
    pub fn with_capacity(capacity: u32) -> Self {
        Self {
            capacity,
            cursor: rand::random::<u32>(),
            ..Default::default()
        }
    }

    /// Seats in use: held in the ledger or being taken (or what the server reports, if more).
    pub fn used(&self, reported_players: u32) -> u32 {
        let held = u32::try_from(self.held.len()).unwrap_or(u32::MAX);
        let connected_or_reported = self.connected.max(reported_players);
        held.saturating_sub(self.connected)
            .saturating_add(connected_or_reported)
            .saturating_add(self.selling)
    }

    /// Seats free now.
    pub fn free(&self, reported_players: u32) -> u32 {
        self.capacity.saturating_sub(self.used(reported_players))
    }

    /// Whether nobody is connected, reserved, or being placed.
    pub fn is_empty(&self, reported_players: u32) -> bool {
        self.used(reported_players) == 0
    }

    /// The held seat at `seat`, if any.
    pub fn held(&self, seat: u32) -> Option<&HeldSeat> {
        self.held.get(&seat)
    }

    /// Every held seat, by index.
    pub fn held_seats(&self) -> impl Iterator<Item = (u32, &HeldSeat)> {
        self.held.iter().map(|(seat, held)| (*seat, held))
    }

    /// The revision to write a free seat over (0 when its key has no history).
    pub fn expected_revision(&self, seat: u32) -> u64 {
        self.freed.get(&seat).copied().unwrap_or(0)
    }

    /// Applies the ledger's state of `seat` at `revision`; older news than what is known is
    /// ignored (a write's own acknowledgement and its watch event may arrive in either order).
    /// Returns whether the seat went from held to free.
    pub fn apply(&mut self, seat: u32, revision: u64, holder: Option<Holder>) -> bool {
        let known = self
            .held
            .get(&seat)
            .map(|h| h.revision)
            .or_else(|| self.freed.get(&seat).copied())
            .unwrap_or(0);
        // Revision 0 is a re-list saying the key is gone: always news.
        if revision != 0 && revision < known {
            return false;
        }
        let was_held = match self.held.remove(&seat) {
            Some(old) => {
                self.count(old.holder, false);
                true
            }
            None => false,
        };
        self.freed.remove(&seat);
        match holder {
            Some(holder) => {
                self.count(holder, true);
                self.held.insert(seat, HeldSeat { revision, holder });
                false
            }
            None => {
                if revision != 0 {
                    self.freed.insert(seat, revision);
                }
                was_held
            }
        }
    }

    fn count(&mut self, holder: Holder, add: bool) {
        let counter = match holder {
            Holder::Reserved { .. } => &mut self.reserved,
            Holder::Connected { .. } => &mut self.connected,
            Holder::Closing => &mut self.closing,
        };
        *counter = if add {
            counter.saturating_add(1)
        } else {
            counter.saturating_sub(1)
        };
    }

    /// Picks a free seat index and marks it as being taken; `None` when every seat is held.
    pub fn start_taking(&mut self) -> Option<u32> {
        if self.capacity == 0 {
            return None;
        }
        let start = self.cursor % self.capacity;
        let seat = (0..self.capacity)
            .map(|i| (start + i) % self.capacity)
            .find(|s| !self.held.contains_key(s) && !self.taking.contains(s))?;
        self.cursor = seat.wrapping_add(1);
        self.taking.insert(seat);
        self.selling = self.selling.saturating_add(1);
        Some(seat)
    }

    /// Marks `seat` as being taken when the mirror shows it free (a backfill names its seats);
    /// false when it is held or being taken.
    pub fn start_taking_seat(&mut self, seat: u32) -> bool {
        if seat >= self.capacity || self.held.contains_key(&seat) || self.taking.contains(&seat) {
            return false;
        }
        self.taking.insert(seat);
        self.selling = self.selling.saturating_add(1);
        true
    }

    /// Whether `seat` is free in the mirror (not held, not being taken).
    pub fn is_free(&self, seat: u32) -> bool {
        seat < self.capacity && !self.held.contains_key(&seat) && !self.taking.contains(&seat)
    }

    /// The write for `seat` is over (taken or lost).
    pub fn stop_taking(&mut self, seat: u32) {
        if self.taking.remove(&seat) {
            self.selling = self.selling.saturating_sub(1);
        }
    }

    /// Seats not held, with the revision to write each over (for closing them all).
    pub fn free_seats(&self) -> Vec<(u32, u64)> {
        (0..self.capacity)
            .filter(|s| !self.held.contains_key(s) && !self.taking.contains(s))
            .map(|s| (s, self.expected_revision(s)))
            .collect()
    }

    /// Forgets every seat (the deployment's keys were purged).
    pub fn clear(&mut self) {
        let capacity = self.capacity;
        let cursor = self.cursor;
        *self = Self {
            capacity,
            cursor,
            ..Default::default()
        };
    }
}

/// The holder recorded by a seat record.
pub fn holder_of(record: &SeatRecord) -> Holder {
    Holder::from(&record.holder)
}

/// Finds deployments by id.
#[derive(Resource, Debug, Default)]
pub struct DeploymentIndex(pub HashMap<String, Entity>);

/// The game a starting deployment was requested for (until its lease brings [`DeploymentInfo`]).
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct StartingFor(#[reflect(ignore)] pub GameRef);
