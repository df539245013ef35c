//! A headless matchmaker core with manual time: write inbound messages, read outbound ones and
//! the clients' updates, advance the clock. No sockets, no sleeping.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevygap_matchmaker::deployment::{DeploymentIndex, DeploymentState, Seats};
use bevygap_matchmaker::fleet::{Allocation, FleetError};
use bevygap_matchmaker::messages::*;
use bevygap_matchmaker::ticket::{TicketId, TicketResponder, TicketUpdate};
use bevygap_matchmaker::{MatchmakerCorePlugin, PlacementConfig, PrivateKey, TokenConfig};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{MatchResult, RegionPing};
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
    updates_tx: mpsc::Sender<(TicketId, TicketUpdate)>,
    updates_rx: mpsc::Receiver<(TicketId, TicketUpdate)>,
    pub stored: Vec<StoreReservation>,
    pub allocations: Vec<AllocateDeployment>,
    pub stops: Vec<StopDeployment>,
}

impl CoreHarness {
    pub fn new(config: PlacementConfig) -> Self {
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
        let now = Instant::now();
        app.insert_resource(TimeUpdateStrategy::ManualInstant(now));
        app.finish();
        app.cleanup();
        app.update();
        let (updates_tx, updates_rx) = mpsc::channel(1024);
        Self {
            app,
            now,
            updates_tx,
            updates_rx,
            stored: Vec::new(),
            allocations: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// Advances the clock by `by` and runs one update, collecting outbound messages.
    pub fn step(&mut self, by: Duration) {
        self.now += by;
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

    /// Acknowledges every pending reservation write as stored.
    pub fn store_all(&mut self) {
        for store in std::mem::take(&mut self.stored) {
            self.send(ReservationStored {
                reservation: store.reservation,
                result: Ok(()),
            });
        }
        self.tick();
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
