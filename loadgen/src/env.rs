//! A warm fleet for load tests and benchmarks: a real nats-server, one or more matchmakers
//! (static fleet) on it, and leases written as game servers would write them, with plenty of free seats.

use std::time::Duration;

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::IntakeConfig;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_matchmaker::{
    MatchmakerConfig, MatchmakerHandle, PlacementConfig, PrivateKey, TokenConfig, spawn_matchmaker,
};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{NatsConnection, NatsSettings, connect};
use bevygap_shared::schema::{DeploymentLease, Transport, encode};
use bevygap_test_support::{NatsServer, free_tcp_port, wait_until_async};

/// How often the warm leases are refreshed (the lease TTL is 10 s).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The game the warm fleet serves.
pub const GAME: &str = "bevygap-demo";
/// Its version.
pub const VERSION: &str = "1";

/// NATS, the matchmakers and warm leases.
pub struct WarmFleet {
    /// The NATS server.
    pub nats_server: NatsServer,
    /// A client connection (acting as the game servers).
    pub nats: NatsConnection,
    /// The buckets.
    pub stores: KvStores,
    /// The matchmakers, all serving the same game on the same NATS.
    pub matchmakers: Vec<MatchmakerHandle>,
    /// The first matchmaker's inspection port.
    pub inspect_port: u16,
    /// Every matchmaker's inspection port.
    pub inspect_ports: Vec<u16>,
    /// Refreshes the leases, as the game servers' heartbeats would.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl WarmFleet {
    /// Starts everything with one matchmaker and `servers` leases of `seats` seats each.
    pub async fn start(servers: usize, seats: u32) -> anyhow::Result<Self> {
        Self::start_many(1, servers, seats).await
    }

    /// Starts `matchmakers` matchmakers on one NATS, and `servers` leases of `seats` seats each.
    pub async fn start_many(
        matchmakers: usize,
        servers: usize,
        seats: u32,
    ) -> anyhow::Result<Self> {
        let nats_server = NatsServer::start()?;
        let mut handles = Vec::new();
        let mut inspect_ports = Vec::new();
        for _ in 0..matchmakers.max(1) {
            let inspect_port = free_tcp_port()?;
            let config = matchmaker_config(&nats_server, inspect_port);
            handles.push(tokio::task::spawn_blocking(move || spawn_matchmaker(config)).await??);
            inspect_ports.push(inspect_port);
        }
        let nats = connect(&NatsSettings::insecure(nats_server.address()), "warm-fleet").await?;
        let stores = KvStores::open(&nats, &AppNames::new(GAME)?, 1).await?;
        let mut fleet = Self {
            nats_server,
            nats,
            stores,
            inspect_port: inspect_ports[0],
            matchmakers: handles,
            inspect_ports,
            heartbeat: None,
        };
        let leases: Vec<DeploymentLease> = (0..servers)
            .map(|i| warm_lease(&format!("warm-{i}"), seats, 7000 + i as u16))
            .collect();
        for lease in &leases {
            fleet.put_lease_record(lease).await?;
        }
        // Leases lapse without heartbeats (10 s): refresh them like game servers do, or a run
        // longer than that would find every server gone.
        let store = fleet.stores.leases.clone();
        fleet.heartbeat = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                for lease in &leases {
                    let _ = store
                        .put(lease.deployment_id.as_str(), encode(lease).into())
                        .await;
                }
            }
        }));
        // Ready when a request gets a session from every matchmaker.
        for url in fleet.matchmakers.iter().map(MatchmakerHandle::seed_url) {
            wait_until_async(
                "the warm fleet to be placeable",
                Duration::from_secs(20),
                || {
                    let url = url.clone();
                    async move {
                        let request = format!(r#"{{"game":"{GAME}","version":"{VERSION}"}}"#);
                        let outcome = crate::seed_client::seed_request(
                            &url,
                            &request,
                            Duration::from_secs(5),
                        )
                        .await;
                        matches!(outcome, crate::Outcome::Ready(_)).then_some(())
                    }
                },
            )
            .await;
        }
        Ok(fleet)
    }

    /// Writes a lease as a game server would (not refreshed: it lapses after the lease TTL).
    pub async fn put_lease(&self, id: &str, seats: u32, port: u16) -> anyhow::Result<()> {
        self.put_lease_record(&warm_lease(id, seats, port)).await
    }

    async fn put_lease_record(&self, lease: &DeploymentLease) -> anyhow::Result<()> {
        self.stores
            .leases
            .put(lease.deployment_id.as_str(), encode(lease).into())
            .await?;
        Ok(())
    }

    /// The seed JSON URLs of every matchmaker, comma-separated (load workers spread over them).
    pub fn seed_url(&self) -> String {
        self.urls(MatchmakerHandle::seed_url)
    }

    /// The simplenet URLs of every matchmaker, comma-separated.
    pub fn simplenet_url(&self) -> String {
        self.urls(MatchmakerHandle::simplenet_url)
    }

    fn urls(&self, url: fn(&MatchmakerHandle) -> String) -> String {
        self.matchmakers
            .iter()
            .map(url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for WarmFleet {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        let matchmakers = std::mem::take(&mut self.matchmakers);
        std::thread::spawn(move || drop(matchmakers)).join().ok();
    }
}

/// A matchmaker of the warm fleet: static fleet, limits raised for load clients.
fn matchmaker_config(nats_server: &NatsServer, inspect_port: u16) -> MatchmakerConfig {
    MatchmakerConfig {
        placement: PlacementConfig {
            app_name: GAME.into(),
            app_versions: vec![VERSION.into()],
            reservation_ttl: Duration::from_secs(30),
            ..PlacementConfig::default()
        },
        intake: IntakeConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            limits: Limits {
                max_connections_per_ip: 100_000,
                max_connections: 100_000,
                // Load clients send back to back; real clients send one request each.
                messages_per_second: 1_000_000,
                ..Limits::default()
            },
            ..IntakeConfig::default()
        },
        ..MatchmakerConfig::loopback(
            NatsSettings::insecure(nats_server.address()),
            FleetChoice::Static,
            TokenConfig {
                protocol_id: 1,
                private_key: PrivateKey::from_bytes(std::array::from_fn(|i| i as u8 + 1)),
                expire_seconds: 30,
                timeout_seconds: 5,
            },
            inspect_port,
        )
    }
}

/// A lease for a warm server with `seats` free seats.
fn warm_lease(id: &str, seats: u32, port: u16) -> DeploymentLease {
    DeploymentLease {
        deployment_id: id.into(),
        game: GAME.into(),
        game_version: VERSION.into(),
        public_addr: ([127, 0, 0, 1], port).into(),
        fqdn: None,
        transport: Transport::Udp,
        cert_digest: None,
        capacity: seats,
        players: 0,
        location: None,
        started_at_ms: 0,
        heartbeat_at_ms: 0,
        accepting: true,
        backfill: None,
    }
}
