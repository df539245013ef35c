//! A real matchmaker on a real nats-server, with helpers to act as a game server (write a lease,
//! open a connection key) and as seed JSON clients.

use std::net::SocketAddr;
use std::time::Duration;

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::IntakeConfig;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_matchmaker::{
    MatchmakerConfig, MatchmakerHandle, PrivateKey, TokenConfig, spawn_matchmaker,
};
use bevygap_shared::names::{AppNames, KeyToken, seat_key};
use bevygap_shared::nats::{BucketSpec, NatsConnection, NatsSettings, connect};
use bevygap_shared::protocol::seed_json::SeedResponse;
use bevygap_shared::schema::{DeploymentLease, SeatHolder, SeatRecord, encode};
use bevygap_test_support::{NatsServer, free_tcp_port};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::core_harness::{GAME, test_config};

pub const WAIT: Duration = Duration::from_secs(20);

pub struct AppHarness {
    pub nats_server: NatsServer,
    pub nats: NatsConnection,
    pub stores: KvStores,
    pub matchmaker: Option<MatchmakerHandle>,
    pub inspect_port: u16,
}

pub fn app_config(
    nats: &NatsServer,
    limits: Limits,
    inspect_port: u16,
    fleet: FleetChoice,
) -> MatchmakerConfig {
    MatchmakerConfig {
        placement: test_config(),
        intake: IntakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits,
            ..IntakeConfig::default()
        },
        ..MatchmakerConfig::loopback(
            NatsSettings::insecure(nats.address()),
            fleet,
            TokenConfig {
                protocol_id: 7,
                private_key: PrivateKey::from_bytes([3; 32]),
                expire_seconds: 10,
                timeout_seconds: 5,
            },
            inspect_port,
        )
    }
}

impl AppHarness {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> Self {
        Self::start_with_fleet(limits, FleetChoice::Static).await
    }

    pub async fn start_with_fleet(limits: Limits, fleet: FleetChoice) -> Self {
        Self::start_adjusted(limits, fleet, |_| {}).await
    }

    /// Starts with the test configuration, changed by `adjust` first.
    pub async fn start_adjusted(
        limits: Limits,
        fleet: FleetChoice,
        adjust: impl FnOnce(&mut MatchmakerConfig),
    ) -> Self {
        let nats_server = NatsServer::start().expect("start nats-server");
        let inspect_port = free_tcp_port().expect("port");
        let mut config = app_config(&nats_server, limits, inspect_port, fleet);
        adjust(&mut config);
        let matchmaker = tokio::task::spawn_blocking(move || spawn_matchmaker(config))
            .await
            .expect("join")
            .expect("matchmaker starts");
        let nats = connect(
            &NatsSettings::insecure(nats_server.address()),
            "test-gameserver",
        )
        .await
        .expect("connect");
        let names = AppNames::new(GAME).expect("name");
        let stores = KvStores::open(&nats, &names, 1).await.expect("buckets");
        Self {
            nats_server,
            nats,
            stores,
            matchmaker: Some(matchmaker),
            inspect_port,
        }
    }

    pub fn mm(&self) -> &MatchmakerHandle {
        self.matchmaker.as_ref().expect("running")
    }

    /// Writes a lease as a game server would.
    pub async fn put_lease(&self, lease: &DeploymentLease) {
        self.stores
            .leases
            .put(lease.deployment_id.as_str(), encode(lease).into())
            .await
            .expect("put lease");
    }

    /// Takes a seat for a connected client, as a game server does when a client connects.
    pub async fn open_connection(&self, deployment: &str, seat: u32, client_id: u64) {
        let key = seat_key(&KeyToken::new("d", deployment).expect("token"), seat);
        let current = self.stores.seats.current(&key).await.expect("read seat");
        let record = SeatRecord {
            deployment_id: deployment.into(),
            seat,
            holder: SeatHolder::Connected {
                reservation_id: "r".into(),
                client_id,
                connected_at_ms: 0,
            },
        };
        self.stores
            .seats
            .take(&record, current.revision, None)
            .await
            .expect("take seat");
    }

    /// Frees a connected client's seat, as a game server does when it leaves.
    pub async fn close_connection(&self, deployment: &str, seat: u32) {
        let key = seat_key(&KeyToken::new("d", deployment).expect("token"), seat);
        let current = self.stores.seats.current(&key).await.expect("read seat");
        self.stores
            .seats
            .free(&key, current.revision, BucketSpec::MARKER_TTL)
            .await
            .expect("free seat");
    }
}

impl Drop for AppHarness {
    fn drop(&mut self) {
        // Stop the matchmaker off the async runtime (it joins a thread).
        if let Some(mm) = self.matchmaker.take() {
            std::thread::spawn(move || drop(mm)).join().ok();
        }
    }
}

/// A seed JSON client: sends one text frame, collects every reply until the server closes.
pub async fn seed_conversation(url: &str, request: &str) -> (Vec<SeedResponse>, bool) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::Text(request.into())).await.expect("send");
    let mut replies = Vec::new();
    let mut closed_normally = false;
    loop {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("reply before deadline");
        match next {
            Some(Ok(Message::Text(text))) => {
                replies.push(SeedResponse::parse(text.as_str()).expect("well-formed reply"))
            }
            Some(Ok(Message::Close(frame))) => {
                closed_normally = frame.is_none_or(|f| u16::from(f.code) == 1000);
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    (replies, closed_normally)
}

/// Calls the inspection endpoint (see [`bevygap_test_support::json_rpc`]).
pub async fn rpc(port: u16, method: &str, params: serde_json::Value) -> serde_json::Value {
    bevygap_test_support::json_rpc(port, method, params)
        .await
        .expect("the inspection endpoint answers")
}
