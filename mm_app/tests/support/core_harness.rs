//! A headless matchmaker core with manual time: write inbound messages, read outbound ones and
//! the clients' updates, advance the clock. No sockets, no sleeping.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevygap_matchmaker::deployment::{DeploymentIndex, DeploymentState, Seats};
use bevygap_shared::schema::{SeatHolder, SeatRecord};

use super::ledger_model::LedgerModel;
use bevygap_matchmaker::fleet::{Allocation, FleetError};
use bevygap_matchmaker::messages::*;
use bevygap_matchmaker::ticket::{TicketId, TicketResponder, TicketUpdate};
use bevygap_matchmaker::{MatchmakerCorePlugin, PlacementConfig, PrivateKey, TokenConfig};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{MatchResult, RegionPing};
use bevygap_shared::protocol::queue::QueueRequest;
use bevygap_shared::schema::{DeploymentLease, Location, Transport};
use tokio::sync::mpsc;

pub const GAME: &str = "spaceships";
pub const VERSION: &str = "1";

pub fn game() -> GameRef {
    GameRef::new(GAME, VERSION)
}

pub fn test_config() -> PlacementConfig {
    PlacementConfig {
        app_name: GAME.into(),
        app_versions: vec![VERSION.into()],
        ticket_timeout: Duration::from_secs(30),
        reservation_ttl: Duration::from_secs(10),
        empty_server_ttl: Duration::from_secs(60),
        allocation_timeout: Duration::from_secs(90),
        expected_capacity: 4,
        max_starting: 2,
        scale_to_zero: true,
        ..PlacementConfig::default()
    }
}

pub fn lease(id: &str, capacity: u32, port: u16) -> DeploymentLease {
    DeploymentLease {
        deployment_id: id.into(),
        game: GAME.into(),
        game_version: VERSION.into(),
        public_addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        fqdn: None,
        transport: Transport::Udp,
        cert_digest: None,
        capacity,
        players: 0,
        location: None,
        started_at_ms: 0,
        heartbeat_at_ms: 0,
        accepting: true,
        backfill: None,
    }
}

pub fn lease_in(id: &str, capacity: u32, region: &str) -> DeploymentLease {
    let mut l = lease(id, capacity, 7000);
    l.location = Some(Location {
        region: region.into(),
        ..Default::default()
    });
    l
}

pub struct CoreHarness {
    pub app: App,
    now: Instant,
    /// Model time in ms since start (for seat TTLs).
    pub elapsed_ms: u64,
    updates_tx: mpsc::UnboundedSender<(TicketId, TicketUpdate)>,
    updates_rx: mpsc::UnboundedReceiver<(TicketId, TicketUpdate)>,
    pub stored: Vec<StoreReservation>,
    pub allocations: Vec<AllocateDeployment>,
    pub stops: Vec<StopDeployment>,
    pub closes: Vec<CloseDeployment>,
    pub frees: Vec<FreeSeat>,
    pub purges: Vec<PurgeDeployment>,
    /// Writes to the pooled queue tickets (with the pool's core plugin).
    pub pool_writes: Vec<bevygap_matchmaker::queues::pool::PoolWrite>,
    /// The seat ledger this core writes to (its own, unless shared by a test).
    pub ledger: LedgerModel,
    /// How many of the ledger's changes this core has seen.
    seen: usize,
}

impl CoreHarness {
    pub fn new(config: PlacementConfig) -> Self {
        Self::with(config, |_| {})
    }

    /// A core with more plugins or resources, added by `extra` before the app is finished.
    pub fn with(config: PlacementConfig, extra: impl FnOnce(&mut App)) -> Self {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_plugins(MatchmakerCorePlugin {
                placement: config,
                tokens: TokenConfig {
                    protocol_id: 42,
                    private_key: PrivateKey::from_bytes([9; 32]),
                    expire_seconds: 10,
                    timeout_seconds: 5,
                },
            });
        extra(&mut app);
        let now = Instant::now();
        app.insert_resource(TimeUpdateStrategy::ManualInstant(now));
        app.finish();
        app.cleanup();
        app.update();
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let mut harness = Self {
            app,
            now,
            elapsed_ms: 0,
            updates_tx,
            updates_rx,
            stored: Vec::new(),
            allocations: Vec::new(),
            stops: Vec::new(),
            closes: Vec::new(),
            frees: Vec::new(),
            purges: Vec::new(),
            pool_writes: Vec::new(),
            ledger: LedgerModel::default(),
            seen: 0,
        };
        harness.sync(true);
        harness
    }

    /// Reports both KV mirrors listed (`true`) or re-listing (`false`).
    pub fn sync(&mut self, synced: bool) {
        for mirror in [MirrorOf::Leases, MirrorOf::Seats] {
            self.send(LedgerSync { mirror, synced });
        }
        self.tick();
    }

    /// Advances the clock by `by` and runs one update, collecting outbound messages.
    pub fn step(&mut self, by: Duration) {
        self.now += by;
        self.elapsed_ms += u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.app
            .insert_resource(TimeUpdateStrategy::ManualInstant(self.now));
        self.app.update();
        let world = self.app.world_mut();
        self.stored
            .extend(world.resource_mut::<Messages<StoreReservation>>().drain());
        self.allocations
            .extend(world.resource_mut::<Messages<AllocateDeployment>>().drain());
        self.stops
            .extend(world.resource_mut::<Messages<StopDeployment>>().drain());
        self.closes
            .extend(world.resource_mut::<Messages<CloseDeployment>>().drain());
        self.frees
            .extend(world.resource_mut::<Messages<FreeSeat>>().drain());
        self.purges
            .extend(world.resource_mut::<Messages<PurgeDeployment>>().drain());
        if let Some(mut writes) =
            world.get_resource_mut::<Messages<bevygap_matchmaker::queues::pool::PoolWrite>>()
        {
            self.pool_writes.extend(writes.drain());
        }
    }

    /// Delivers the ledger changes this core has not seen yet (its KV watch).
    pub fn deliver(&mut self) {
        let news: Vec<SeatChanged> = self.ledger.log[self.seen..].to_vec();
        self.seen = self.ledger.log.len();
        for change in news {
            self.send(change);
        }
    }

    /// Lets the clock run `by`, lapsing seats whose TTL is over, and delivers what changed.
    pub fn wait(&mut self, by: Duration) {
        let until = self.elapsed_ms + u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ledger.lapse(until);
        self.deliver();
        self.step(by);
    }

    pub fn tick(&mut self) {
        self.step(Duration::from_millis(10));
    }

    pub fn send<M: Message>(&mut self, message: M) {
        self.app.world_mut().write_message(message);
    }

    pub fn request(&mut self, ticket: &str) {
        self.request_with(ticket, game(), Vec::new());
    }

    pub fn request_with(&mut self, ticket: &str, game: GameRef, region_pings: Vec<RegionPing>) {
        self.send(TicketRequested {
            ticket_id: TicketId(ticket.into()),
            game,
            client_ip: None,
            region_pings,
            queue: None,
            responder: TicketResponder(self.updates_tx.clone()),
        });
    }

    /// A request to a matchmaking queue.
    pub fn request_queue(&mut self, ticket: &str, queue: QueueRequest) {
        self.send(TicketRequested {
            ticket_id: TicketId(ticket.into()),
            game: game(),
            client_ip: None,
            region_pings: Vec::new(),
            queue: Some(queue),
            responder: TicketResponder(self.updates_tx.clone()),
        });
    }

    /// Every update sent to clients since the last call.
    pub fn updates(&mut self) -> Vec<(String, TicketUpdate)> {
        let mut out = Vec::new();
        while let Ok((id, update)) = self.updates_rx.try_recv() {
            out.push((id.0, update));
        }
        out
    }

    /// Final results sent since the last call, by ticket id.
    pub fn results(&mut self) -> Vec<(String, MatchResult)> {
        self.updates()
            .into_iter()
            .filter_map(|(id, u)| match u {
                TicketUpdate::Result(r) => Some((id, r)),
                TicketUpdate::Status(_) => None,
            })
            .collect()
    }

    /// Applies every pending seat write to the ledger (compare-and-set), answers the core, and
    /// delivers the ledger's changes.
    pub fn store_all(&mut self) {
        for store in std::mem::take(&mut self.stored) {
            let outcome = self.ledger.store(&store, self.elapsed_ms);
            self.send(outcome);
        }
        self.tick();
        for free in std::mem::take(&mut self.frees) {
            self.ledger.free_at(&free);
        }
        self.deliver();
        self.tick();
    }

    /// Applies the pending seat writes and frees to the ledger and answers the core, without
    /// delivering the ledger's changes (a watch that lags behind the writes).
    pub fn apply_writes(&mut self) {
        for store in std::mem::take(&mut self.stored) {
            let outcome = self.ledger.store(&store, self.elapsed_ms);
            self.send(outcome);
        }
        for free in std::mem::take(&mut self.frees) {
            self.ledger.free_at(&free);
        }
    }

    /// A fresh core's first listing of the ledger: every live seat, then "synced".
    pub fn relist(&mut self) {
        self.sync(false);
        for change in self.ledger.listing() {
            self.send(change);
        }
        self.seen = self.ledger.log.len();
        self.sync(true);
    }

    /// A periodic re-list of the ledger (the KV bridge's reconcile): every live seat, and every
    /// seat the mirror holds that the ledger no longer has reported free.
    pub fn reconcile(&mut self) {
        let world = self.app.world_mut();
        let mirrored: Vec<(String, u32)> = world
            .query::<(&bevygap_matchmaker::deployment::DeploymentId, &Seats)>()
            .iter(world)
            .flat_map(|(id, seats)| {
                seats
                    .held_seats()
                    .map(|(seat, _)| (id.0.clone(), seat))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (deployment, seat) in mirrored {
            if self.ledger.current(&deployment, seat).1.is_none() {
                self.send(SeatChanged {
                    deployment_id: deployment,
                    seat,
                    revision: 0,
                    record: None,
                });
            }
        }
        for change in self.ledger.listing() {
            self.send(change);
        }
        self.seen = self.ledger.log.len();
        self.tick();
    }

    /// Another matchmaker sells `seat` of `deployment` to `client_id` (its write reaches the
    /// ledger; this core hears of it only through its watch). False if the seat was taken.
    pub fn sell_elsewhere(&mut self, deployment: &str, seat: u32, client_id: u64) -> bool {
        let expected = self.ledger.current(deployment, seat).0;
        let request = StoreReservation {
            reservation: Entity::PLACEHOLDER,
            record: SeatRecord {
                deployment_id: deployment.into(),
                seat,
                holder: SeatHolder::Reserved {
                    reservation_id: format!("r-elsewhere-{client_id}"),
                    client_id,
                    issued_at_ms: 0,
                    expires_at_ms: 10_000,
                },
            },
            expected_revision: expected,
            ttl: Duration::from_secs(15),
        };
        self.ledger.store(&request, self.elapsed_ms).result.is_ok()
    }

    /// A client connects on the seat of `record` (a game server writing reserved → connected).
    pub fn connect(&mut self, record: &SeatRecord) {
        assert!(self.ledger.connect(&record.deployment_id, record.seat));
        self.deliver();
        self.tick();
    }

    /// The client on the seat of `record` leaves (its game server frees the seat).
    pub fn disconnect(&mut self, record: &SeatRecord) {
        self.ledger.free(&record.deployment_id, record.seat);
        self.deliver();
        self.tick();
    }

    /// Carries out every pending close: each free seat is taken as closing; if one cannot be,
    /// the closed ones are given back.
    pub fn close_all(&mut self) {
        for close in std::mem::take(&mut self.closes) {
            let mut taken = Vec::new();
            let mut all = true;
            for (seat, expected) in &close.seats {
                let request = StoreReservation {
                    reservation: Entity::PLACEHOLDER,
                    record: SeatRecord {
                        deployment_id: close.deployment_id.clone(),
                        seat: *seat,
                        holder: SeatHolder::Closing { since_ms: 0 },
                    },
                    expected_revision: *expected,
                    ttl: Duration::from_secs(120),
                };
                match self.ledger.store(&request, self.elapsed_ms).result {
                    Ok(_) => taken.push(*seat),
                    Err(_) => all = false,
                }
            }
            if !all {
                for seat in taken {
                    self.ledger.free(&close.deployment_id, seat);
                }
            }
            self.send(DeploymentClosed {
                deployment: close.deployment,
                closed: all,
            });
        }
        self.deliver();
        self.tick();
    }

    /// The record written for the `index`-th pending seat write.
    pub fn pending_record(&self, index: usize) -> SeatRecord {
        self.stored[index].record.clone()
    }

    pub fn finish_allocation(&mut self, index: usize, result: Result<&str, FleetError>) {
        let request = &self.allocations[index];
        let deployment = request.deployment;
        self.send(AllocationFinished {
            deployment,
            result: result.map(|id| Allocation {
                deployment_id: id.into(),
                expected_capacity: None,
            }),
        });
        self.tick();
    }

    pub fn lease(&mut self, lease: DeploymentLease) {
        self.send(LeaseChanged::Updated(Box::new(lease)));
    }

    pub fn lease_gone(&mut self, deployment_id: &str) {
        self.send(LeaseChanged::Removed {
            deployment_id: deployment_id.into(),
        });
    }

    pub fn seats(&mut self, deployment_id: &str) -> Option<Seats> {
        let world = self.app.world();
        let entity = *world.resource::<DeploymentIndex>().0.get(deployment_id)?;
        world.get::<Seats>(entity).cloned()
    }

    pub fn deployment_state(&mut self, deployment_id: &str) -> Option<DeploymentState> {
        let world = self.app.world();
        let entity = *world.resource::<DeploymentIndex>().0.get(deployment_id)?;
        world.get::<DeploymentState>(entity).copied()
    }

    pub fn count<C: Component>(&mut self) -> usize {
        let world = self.app.world_mut();
        world.query::<&C>().iter(world).count()
    }
}
