//! The local demo: NATS, the matchmaker with the local fleet (or the Edgegap backend against the
//! offline Edgegap replica), and bots joining and leaving.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevygap_edgegap_replica::{AppSpec, Launcher, ReplicaConfig, ReplicaHandle, VersionSpec};
use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient};
use bevygap_matchmaker::fleet::edgegap::env::deployment_env;
use bevygap_matchmaker::fleet::edgegap::fleet::{EdgegapFleetConfig, EdgegapMode};
use bevygap_matchmaker::fleet::edgegap::operator::{ca_argument, with_ca_argument};
use bevygap_matchmaker::fleet::local::LocalFleetConfig;
use bevygap_matchmaker::gameserver_auth::{DEFAULT_JWT_TTL, GameServerAuthConfig};
use bevygap_matchmaker::queues::QueueProfiles;
use bevygap_matchmaker::{
    MatchmakerConfig, MatchmakerHandle, PlacementConfig, PrivateKey, TokenConfig, spawn_matchmaker,
};
use bevygap_shared::context_env;
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    BucketSpec, NatsSettings, WatchEvent, connect, ensure_bucket, spawn_watch,
};
use bevygap_shared::schema::{DeploymentLease, decode};
use bevygap_shared::secret::Secret;
use bevygap_test_support::{NatsServer, NatsServerOptions, TestPki, free_tcp_port, make_pki};

use crate::bot::{BotOutcome, run_bot};
use crate::{GAME, PROTOCOL_ID, VERSION};

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The game server binary the local fleet starts.
    pub server_binary: PathBuf,
    /// Bots to run.
    pub bots: usize,
    /// Seats per server.
    pub seats_per_server: u32,
    /// How long each bot stays.
    pub play_for: Duration,
    /// How long an empty server lives.
    pub empty_server_ttl: Duration,
    /// Token (and reservation) lifetime in seconds.
    pub token_expire_secs: u32,
    /// `udp` or `webtransport`: what the game servers listen on.
    pub transport: String,
    /// Where game servers come from.
    pub fleet: DemoFleet,
    /// Run NATS with Bevygap's role users (`assets/nats-auth.conf`): the matchmaker connects as
    /// `matchmaker`, game servers as `gameserver`.
    pub nats_roles: bool,
    /// Serve NATS over TLS with a throwaway CA. Local servers get the CA file; Edgegap servers
    /// get it only as the version's `--ca_contents` start argument, as on Edgegap.
    pub nats_tls: bool,
    /// The matchmaker's queue profiles (as a `--queues` file holds them); none by default.
    pub queues: QueueProfiles,
    /// The queue game servers ask for backfill when a matched player leaves
    /// (`EXAMPLE_BACKFILL_QUEUE`); none by default.
    pub backfill_queue: Option<String>,
}

/// The NATS users and permissions template shipped for operators.
pub const NATS_AUTH_TEMPLATE: &str = include_str!("../../assets/nats-auth.conf");

/// Random passwords for the role users of [`NATS_AUTH_TEMPLATE`].
#[derive(Debug, Clone)]
pub struct NatsRoles {
    /// The `matchmaker` user's password.
    pub matchmaker: String,
    /// The `gameserver` user's password.
    pub gameserver: String,
    /// The auth callout's key (the matchmaker signs game servers' users with it).
    pub callout_seed: Secret,
    /// Its public key (nats-server's `auth_callout.issuer`).
    pub callout_issuer: String,
}

impl NatsRoles {
    /// Fresh random passwords.
    pub fn generate() -> Self {
        let password = || hex_key(&std::array::from_fn(|_| rand_byte()));
        let (callout_seed, callout_issuer) = bevygap_matchmaker::gameserver_auth::new_key();
        Self {
            matchmaker: password(),
            gameserver: password(),
            callout_seed,
            callout_issuer,
        }
    }

    /// The environment nats-server reads the passwords from.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "BEVYGAP_MATCHMAKER_PASSWORD".to_owned(),
                self.matchmaker.clone(),
            ),
            (
                "BEVYGAP_GAMESERVER_PASSWORD".to_owned(),
                self.gameserver.clone(),
            ),
            (
                "BEVYGAP_CALLOUT_ISSUER".to_owned(),
                self.callout_issuer.clone(),
            ),
        ]
    }
}

/// Where the demo's game servers come from.
#[derive(Debug, Clone, Default)]
pub enum DemoFleet {
    /// The matchmaker's local fleet starts them.
    #[default]
    Local,
    /// The matchmaker's Edgegap backend, talking to the offline Edgegap replica, which starts them
    /// with the `ARBITRIUM_*` environment and serves their context API.
    EdgegapReplica(ReplicaOptions),
}

/// How the Edgegap replica behaves in the demo.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Time to `Status.READY`; `None` never becomes ready.
    pub ready_after: Option<Duration>,
    /// How long the matchmaker waits for ready before stopping the deployment.
    pub ready_timeout: Duration,
    /// v2 deployments or v1 seat sessions.
    pub mode: EdgegapMode,
    /// Start game server processes (off: deployments that never come up).
    pub launch_servers: bool,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            ready_after: Some(Duration::from_millis(300)),
            ready_timeout: Duration::from_secs(30),
            mode: EdgegapMode::Deployments,
            launch_servers: true,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Bots that connected and played.
    pub connected: usize,
    /// Bots that failed, with reasons.
    pub failed: Vec<String>,
    /// Request → token latencies.
    pub token_latencies: Vec<Duration>,
    /// Request → connected latencies.
    pub connect_latencies: Vec<Duration>,
    /// Deployments whose lease appeared.
    pub servers_started: usize,
    /// Deployments whose lease went away.
    pub servers_stopped: usize,
    /// Distinct clients the servers recorded as connected.
    pub clients_seen_by_servers: usize,
    /// Edgegap API calls the replica answered, by endpoint (with the replica fleet).
    pub edgegap_calls: Vec<(String, usize)>,
}

/// A running demo environment: NATS and the matchmaker, with KV observers.
pub struct DemoEnv {
    /// The NATS server.
    pub nats_server: NatsServer,
    /// The matchmaker.
    pub matchmaker: Option<MatchmakerHandle>,
    /// The token key (random per run), for tests that mint their own tokens.
    pub key: [u8; 32],
    /// The inspection port.
    pub inspect_port: u16,
    /// Leases seen (added) and removed, and clients connected, as the KV shows them.
    pub observed: Arc<Mutex<Observed>>,
    /// The Edgegap replica, with [`DemoFleet::EdgegapReplica`].
    pub replica: Option<ReplicaHandle>,
    /// The throwaway CA of a TLS NATS server.
    pub pki: Option<TestPki>,
    _pki_dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

/// What the demo saw in KV.
#[derive(Debug, Default)]
pub struct Observed {
    /// Deployments whose lease appeared.
    pub leases_added: HashSet<String>,
    /// The latest lease of each deployment.
    pub leases: HashMap<String, DeploymentLease>,
    /// Deployments whose lease went away.
    pub leases_removed: HashSet<String>,
    /// Connection keys ever seen.
    pub connections_seen: HashSet<String>,
    /// Connection keys now.
    pub connections_now: HashSet<String>,
}

impl DemoEnv {
    /// Starts NATS, the matchmaker with the local fleet, and the KV observers.
    pub fn start(config: &DemoConfig) -> anyhow::Result<Self> {
        let pki_dir = tempfile::tempdir()?;
        let mut options = NatsServerOptions::default();
        let pki = if config.nats_tls {
            let pki = make_pki(pki_dir.path(), "demo")?;
            options.tls = Some(pki.server.clone());
            Some(pki)
        } else {
            None
        };
        let roles = config.nats_roles.then(NatsRoles::generate);
        if let Some(roles) = &roles {
            options.extra_config = Some(NATS_AUTH_TEMPLATE.replace("APP_NAME", GAME));
            options.env = roles.server_env();
        }
        let nats_server = NatsServer::start_with(options)?;
        let mut nats = NatsSettings::insecure(nats_server.address());
        if let Some(pki) = &pki {
            let ca_file = pki_dir.path().join("ca.pem");
            std::fs::write(&ca_file, &pki.ca_pem)?;
            nats.insecure = false;
            nats.ca = Some(ca_file);
        }
        if let Some(roles) = &roles {
            nats.user = Some("matchmaker".into());
            nats.password = Some(Secret::new(roles.matchmaker.clone()));
        }
        let key: [u8; 32] = std::array::from_fn(|_| rand_byte());
        let inspect_port = free_tcp_port()?;
        // Each environment in this process gets its own ten ports.
        static NEXT_RANGE: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let range = u32::from(NEXT_RANGE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100);
        let first_port =
            u16::try_from(20_000 + (std::process::id() % 12) * 1000 + range * 10).unwrap_or(20_000);
        let mut env = vec![
            ("NATS_HOST".to_owned(), nats_server.address()),
            match &nats.ca {
                Some(ca) => ("NATS_CA".to_owned(), ca.display().to_string()),
                None => ("NATS_INSECURE".to_owned(), "true".to_owned()),
            },
            ("LIGHTYEAR_PRIVATE_KEY".to_owned(), hex_key(&key)),
            ("LIGHTYEAR_PROTOCOL_ID".to_owned(), PROTOCOL_ID.to_string()),
            ("BEVYGAP_TRANSPORT".to_owned(), config.transport.clone()),
        ];
        if roles.is_some() {
            // Local servers get their deployment's user from the local fleet; servers on the
            // Edgegap replica prove their deployment with its context.
            env.push((
                context_env::NATS_AUTH.to_owned(),
                context_env::NATS_AUTH_EDGEGAP_CONTEXT.to_owned(),
            ));
        }
        if let Some(queue) = &config.backfill_queue {
            env.push(("EXAMPLE_BACKFILL_QUEUE".to_owned(), queue.clone()));
        }
        env.push((
            "RUST_LOG".to_owned(),
            "warn,bevygap_server_plugin=info".to_owned(),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (fleet, replica) = match &config.fleet {
            DemoFleet::Local => (
                FleetChoice::Local(LocalFleetConfig {
                    command: vec![config.server_binary.display().to_string()],
                    ports: first_port..=first_port + 9,
                    capacity: config.seats_per_server,
                    env,
                    ..LocalFleetConfig::default()
                }),
                None,
            ),
            DemoFleet::EdgegapReplica(options) => {
                let ca_pem = pki.as_ref().map(|p| p.ca_pem.as_str());
                let (fleet, replica) =
                    runtime.block_on(edgegap_replica(config, options, first_port, &env, ca_pem))?;
                (fleet, Some(replica))
            }
        };
        let mm_config = MatchmakerConfig {
            placement: PlacementConfig {
                app_name: GAME.into(),
                app_versions: vec![VERSION.into()],
                reservation_ttl: Duration::from_secs(u64::from(config.token_expire_secs)),
                empty_server_ttl: config.empty_server_ttl,
                allocation_timeout: Duration::from_secs(60),
                expected_capacity: config.seats_per_server,
                queues: config.queues.clone(),
                ..PlacementConfig::default()
            },
            ..MatchmakerConfig::loopback(
                nats.clone(),
                fleet,
                TokenConfig {
                    protocol_id: PROTOCOL_ID,
                    private_key: PrivateKey::from_bytes(key),
                    expire_seconds: i32::try_from(config.token_expire_secs).unwrap_or(15),
                    timeout_seconds: 5,
                },
                inspect_port,
            )
        };
        // With the role users, local game servers get users of their own deployment from the
        // matchmaker's auth callout.
        let mm_config = MatchmakerConfig {
            gameserver_auth: roles.as_ref().map(|roles| GameServerAuthConfig {
                seed: roles.callout_seed.clone(),
                jwt_ttl: DEFAULT_JWT_TTL,
            }),
            ..mm_config
        };
        let matchmaker = spawn_matchmaker(mm_config)?;
        let observed = Arc::new(Mutex::new(Observed::default()));
        runtime.block_on(observe(nats, observed.clone()))?;
        Ok(Self {
            nats_server,
            matchmaker: Some(matchmaker),
            key,
            inspect_port,
            observed,
            replica,
            pki,
            _pki_dir: pki_dir,
            runtime,
        })
    }

    /// The matchmaker's simplenet URL.
    pub fn simplenet_url(&self) -> String {
        self.matchmaker
            .as_ref()
            .map(MatchmakerHandle::simplenet_url)
            .unwrap_or_default()
    }

    /// The matchmaker's seed JSON URL.
    pub fn seed_url(&self) -> String {
        self.matchmaker
            .as_ref()
            .map(MatchmakerHandle::seed_url)
            .unwrap_or_default()
    }

    /// The matchmaker's status page.
    pub fn status_url(&self) -> String {
        self.matchmaker
            .as_ref()
            .map(|m| format!("http://{}/status", m.client_addr))
            .unwrap_or_default()
    }

    /// Runs a future on the demo's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Reads what the observers saw.
    pub fn observed<T>(&self, read: impl FnOnce(&Observed) -> T) -> T {
        read(
            &self
                .observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Drop for DemoEnv {
    fn drop(&mut self) {
        drop(self.matchmaker.take());
    }
}

/// Starts the Edgegap replica (launching `config.server_binary` per deployment) and the matchmaker's
/// Edgegap fleet settings for it. Deployments inherit `env` through the deploy request, as on
/// Edgegap; the seats per server reach them as the app version's start arguments.
async fn edgegap_replica(
    config: &DemoConfig,
    options: &ReplicaOptions,
    first_port: u16,
    env: &[(String, String)],
    ca_pem: Option<&str>,
) -> anyhow::Result<(FleetChoice, ReplicaHandle)> {
    let api_key = hex_key(&std::array::from_fn(|_| rand_byte()));
    let mut version = VersionSpec::new(VERSION);
    version.arguments = Some(format!("--capacity {}", config.seats_per_server));
    if options.mode == EdgegapMode::Sessions {
        // Session requests carry no environment: on Edgegap it is set on the app version.
        version.envs = env.to_vec();
    }
    let launcher = options.launch_servers.then(|| Launcher {
        command: vec![config.server_binary.display().to_string()],
        ports: first_port..=first_port + 9,
        env: env
            .iter()
            .filter(|(k, _)| k == "RUST_LOG" || k == "BEVYGAP_TRANSPORT")
            .cloned()
            .collect(),
        // Servers' output is discarded unless asked for (it would interleave with test output).
        inherit_output: std::env::var_os("BEVYGAP_SHOW_SERVER_OUTPUT").is_some(),
        ..Launcher::default()
    });
    let replica = bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: api_key.clone(),
        apps: vec![AppSpec::new(GAME, vec![version])],
        ready_after: options.ready_after,
        sockets: config.seats_per_server,
        launcher,
        ..ReplicaConfig::default()
    })
    .await?;
    let mut api = EdgegapApiConfig::new(Secret::new(api_key));
    api.base_url = replica.url();
    if let Some(pem) = ca_pem {
        // What `bevygap_edgegap set-ca-argument` does: the CA rides in the version's arguments.
        let client = EdgegapClient::new(&api)?;
        let current = client.app_version(GAME, VERSION).await?;
        let arguments = with_ca_argument(current.arguments.as_deref(), &ca_argument(pem)?);
        client
            .set_version_arguments(GAME, VERSION, &arguments)
            .await?;
    }
    let mut fleet = EdgegapFleetConfig::new(GAME);
    fleet.mode = options.mode;
    fleet.ready_timeout = options.ready_timeout;
    fleet.poll_first = Duration::from_millis(50);
    fleet.poll_max = Duration::from_millis(500);
    // Simplenet does not tell the matchmaker the players' IPs.
    fleet.fallback_ips = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    fleet.env = deployment_env(env);
    Ok((
        FleetChoice::Edgegap {
            api: Box::new(api),
            fleet: Box::new(fleet),
        },
        replica,
    ))
}

async fn observe(settings: NatsSettings, observed: Arc<Mutex<Observed>>) -> anyhow::Result<()> {
    let nats = connect(&settings, "bevygap-demo-observer").await?;
    let names = AppNames::new(GAME)?;
    let leases = ensure_bucket(nats.jetstream(), &BucketSpec::leases(&names)).await?;
    let connections = ensure_bucket(nats.jetstream(), &BucketSpec::connections(&names)).await?;
    let mut lease_watch = spawn_watch(&nats, leases, ">", 256);
    let mut connection_watch = spawn_watch(&nats, connections, ">", 256);
    let lease_observed = observed.clone();
    tokio::spawn(async move {
        let _keep = nats;
        while let Some(event) = lease_watch.events.recv().await {
            let mut o = lease_observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                WatchEvent::Put { key, value, .. } => {
                    if let Ok(lease) = decode::<DeploymentLease>(&value) {
                        o.leases.insert(key.clone(), lease);
                    }
                    o.leases_added.insert(key);
                }
                WatchEvent::Removed { key, .. } => {
                    o.leases_removed.insert(key);
                }
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        while let Some(event) = connection_watch.events.recv().await {
            let mut o = observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                WatchEvent::Put { key, .. } => {
                    o.connections_seen.insert(key.clone());
                    o.connections_now.insert(key);
                }
                WatchEvent::Removed { key, .. } => {
                    o.connections_now.remove(&key);
                }
                _ => {}
            }
        }
    });
    Ok(())
}

fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() & 0xff) as u8
}

fn hex_key(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `bots` bots, `stagger` apart, each on its own thread.
pub fn run_bots(url: &str, bots: usize, play_for: Duration, stagger: Duration) -> Vec<BotOutcome> {
    let handles: Vec<_> = (0..bots)
        .map(|i| {
            let url = url.to_owned();
            std::thread::sleep(if i == 0 { Duration::ZERO } else { stagger });
            std::thread::spawn(move || run_bot(&url, play_for, Duration::from_secs(60)))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| BotOutcome::Failed("bot thread panicked".into()))
        })
        .collect()
}

/// Runs the whole demo and reports.
pub fn run_demo(config: &DemoConfig, progress: impl Fn(&str)) -> anyhow::Result<DemoReport> {
    progress(match config.fleet {
        DemoFleet::Local => "starting nats-server and the matchmaker (local fleet)",
        DemoFleet::EdgegapReplica(_) => {
            "starting nats-server, the Edgegap replica and the matchmaker (edgegap fleet)"
        }
    });
    let env = DemoEnv::start(config)?;
    progress(&format!(
        "matchmaker listening: {} and {}",
        env.simplenet_url(),
        env.seed_url()
    ));
    progress(&format!(
        "{} bots asking for seats ({} seats per server)",
        config.bots, config.seats_per_server
    ));
    let outcomes = run_bots(
        &env.simplenet_url(),
        config.bots,
        config.play_for,
        Duration::from_millis(200),
    );
    let mut report = DemoReport::default();
    for outcome in outcomes {
        match outcome {
            BotOutcome::Played {
                request_to_token,
                request_to_connected,
            } => {
                report.connected += 1;
                report.token_latencies.push(request_to_token);
                report.connect_latencies.push(request_to_connected);
            }
            BotOutcome::Failed(reason) => report.failed.push(reason),
        }
    }
    progress("bots left; waiting for the empty servers to be stopped");
    let deadline = Instant::now() + config.empty_server_ttl + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (added, removed) = env.observed(|o| (o.leases_added.len(), o.leases_removed.len()));
        if added > 0 && added == removed {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(replica) = &env.replica {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for call in replica.calls() {
            *counts.entry(format!("{:?}", call.route)).or_default() += 1;
        }
        report.edgegap_calls = counts.into_iter().collect();
    }
    env.observed(|o| {
        report.servers_started = o.leases_added.len();
        report.servers_stopped = o.leases_removed.len();
        report.clients_seen_by_servers = o.connections_seen.len();
    });
    Ok(report)
}
