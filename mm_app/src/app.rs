//! Assembling the matchmaker app from a validated configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    BucketSpec, NatsConnection, NatsSettings, connect, ensure_bucket, install_crypto_provider,
};

use crate::bridge::{ShutdownFlag, Wake, event_driven_runner};
use crate::core_plugin::{MatchmakerCorePlugin, PlacementConfig};
use crate::error::ConfigError;
use crate::fleet::edgegap::allocations::AllocationLog;
use crate::fleet::edgegap::checks::check_app;
use crate::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient};
use crate::fleet::edgegap::fleet::{EdgegapFleet, EdgegapFleetConfig, EdgegapMode};
use crate::fleet::edgegap::removals::RemovalQueue;
use crate::fleet::edgegap::retry::Backoff;
use crate::fleet::local::{LocalFleet, LocalFleetConfig};
use crate::fleet::static_list::StaticFleet;
use crate::fleet::{FleetBackend, FleetError};
use crate::fleet_driver::FleetDriverPlugin;
use crate::gameserver_auth::{
    EDGEGAP_CONTEXT_TIMEOUT, EdgegapContextCheck, GameServerAuth, GameServerAuthConfig,
    serve_callout,
};
use crate::health::HealthPlugin;
use crate::inspect::{InspectConfig, InspectPlugin};
use crate::intake::{Intake, IntakeAddress, IntakeConfig};
use crate::kv_bridge::{KvBridgePlugin, KvStores};
use crate::metrics::{Metrics, MetricsConfig, MetricsPlugin};
use crate::player_check::{PlayerCheck, PlayerCheckConfig};
use crate::presence::PresencePlugin;
use crate::runtime::AsyncRuntime;
use crate::tokens::TokenConfig;

/// Which fleet backend serves deployments.
#[derive(Debug, Clone)]
pub enum FleetChoice {
    /// Game server processes on this machine.
    Local(LocalFleetConfig),
    /// Servers run elsewhere; never started or stopped here.
    Static,
    /// Servers on Edgegap.
    Edgegap {
        /// How to reach the API.
        api: Box<EdgegapApiConfig>,
        /// How to start servers.
        fleet: Box<EdgegapFleetConfig>,
    },
}

/// Everything the matchmaker needs, validated (see [`crate::cli::Cli`]).
#[derive(Debug, Clone)]
pub struct MatchmakerConfig {
    /// Placement and lifecycle rules.
    pub placement: PlacementConfig,
    /// Token minting.
    pub tokens: TokenConfig,
    /// Client endpoints.
    pub intake: IntakeConfig,
    /// Inspection endpoint, if enabled.
    pub inspect: Option<InspectConfig>,
    /// NATS connection.
    pub nats: NatsSettings,
    /// Copies of each KV entry: 1 on a single NATS server, 3 in a three-node cluster (the
    /// matchmaker owns the buckets' settings).
    pub kv_replicas: usize,
    /// The fleet backend.
    pub fleet: FleetChoice,
    /// Longest sleep between updates when nothing arrives.
    pub idle_interval: Duration,
    /// How long a graceful stop may take (see [`crate::shutdown`]).
    pub shutdown_grace: Duration,
    /// Log filter (`RUST_LOG` syntax); `None` leaves logging to the caller.
    pub log_filter: Option<String>,
    /// Check a signed player token before serving a request (see [`crate::player_check`]).
    pub player_check: Option<PlayerCheckConfig>,
    /// Serve nats-server's auth callout, giving each game server a NATS user scoped to its own
    /// deployment (see [`crate::gameserver_auth`]).
    pub gameserver_auth: Option<GameServerAuthConfig>,
    /// Serve Prometheus metrics (see [`crate::metrics`]).
    pub metrics: Option<MetricsConfig>,
}

impl MatchmakerConfig {
    /// A matchmaker on loopback for tests, demos and benchmarks: clients on a free port of
    /// 127.0.0.1, inspection on `inspect_port`, default rules, one KV replica, a short idle tick
    /// and grace, no logging set up. Override what a caller needs with struct update syntax;
    /// `tokens` must be given (there is no default key).
    pub fn loopback(
        nats: NatsSettings,
        fleet: FleetChoice,
        tokens: TokenConfig,
        inspect_port: u16,
    ) -> Self {
        Self {
            placement: PlacementConfig::default(),
            tokens,
            intake: IntakeConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..IntakeConfig::default()
            },
            inspect: Some(InspectConfig::loopback(inspect_port)),
            nats,
            kv_replicas: 1,
            fleet,
            idle_interval: Duration::from_millis(2),
            shutdown_grace: Duration::from_secs(5),
            log_filter: None,
            player_check: None,
            gameserver_auth: None,
            metrics: None,
        }
    }
}

/// Builds the matchmaker app: connects to NATS, opens the buckets, binds the endpoints. Every
/// configuration problem surfaces here as a [`ConfigError`].
pub fn build_app(config: MatchmakerConfig) -> Result<App, ConfigError> {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins);
    if let Some(filter) = &config.log_filter {
        app.add_plugins(LogPlugin {
            filter: filter.clone(),
            ..default()
        });
    }
    app.add_plugins(TokioTasksPlugin::default());
    let handle = app
        .world()
        .resource::<TokioTasksRuntime>()
        .runtime()
        .handle()
        .clone();
    app.insert_resource(AsyncRuntime(handle.clone()));

    let names = AppNames::new(&config.placement.app_name)
        .map_err(|e| ConfigError::invalid("app-name", e.to_string()))?;
    install_crypto_provider();
    let nats = handle.block_on(connect(&config.nats, "bevygap-matchmaker"))?;
    let stores = handle.block_on(KvStores::open(&nats, &names, config.kv_replicas))?;

    let gameserver_auth = match &config.gameserver_auth {
        Some(auth) => {
            let mut auth = GameServerAuth::new(auth, names.clone())
                .map_err(|e| ConfigError::invalid("gameserver-auth-key", e.to_string()))?;
            if let FleetChoice::Edgegap { api, .. } = &config.fleet {
                auth = auth.with_edgegap(EdgegapContextCheck::new(
                    &api.base_url,
                    EDGEGAP_CONTEXT_TIMEOUT,
                ));
            }
            let auth = Arc::new(auth);
            handle
                .block_on(serve_callout(&nats, auth.clone()))
                .map_err(|e| ConfigError::invalid("gameserver-auth-key", e.to_string()))?;
            Some(auth)
        }
        None => None,
    };
    // Made before the fleet, which counts its provider's API calls in it.
    let metrics = config.metrics.map(|_| Metrics::default());
    if let Some(metrics) = &metrics {
        app.insert_resource(metrics.clone());
    }
    // This process's presence id: counted by the others, and the owner of its allocations.
    let instance = format!("mm-{:016x}", rand::random::<u64>());
    let backend: Arc<dyn FleetBackend> = match &config.fleet {
        FleetChoice::Local(local) => Arc::new(LocalFleet::new(LocalFleetConfig {
            credentials: gameserver_auth.clone(),
            ..local.clone()
        })?),
        FleetChoice::Static => Arc::new(StaticFleet),
        FleetChoice::Edgegap { api, fleet } => Arc::new(handle.block_on(open_edgegap(
            &nats,
            &names,
            EdgegapParts {
                api,
                fleet,
                versions: &config.placement.app_versions,
                stores: &stores,
                instance: &instance,
                metrics: metrics.clone(),
            },
        ))?),
    };
    info!(
        "matchmaker for {} {:?} with the {} fleet",
        config.placement.app_name,
        config.placement.app_versions,
        backend.name()
    );
    let mut placement = config.placement.clone();
    placement.scale_to_zero &= backend.stops_servers();
    app.add_plugins(MatchmakerCorePlugin {
        placement,
        tokens: config.tokens.clone(),
    })
    .add_plugins(FleetDriverPlugin {
        backend: backend.clone(),
    })
    .add_plugins(PresencePlugin {
        instance: instance.clone(),
        nats: nats.clone(),
        store: stores.matchmakers.clone(),
        fleet: backend,
    })
    .add_plugins(HealthPlugin);
    if !config.placement.queues.0.is_empty() {
        app.add_plugins(crate::queues::QueuePoolPlugin {
            instance,
            nats: nats.clone(),
            store: stores.queue_tickets.clone(),
        });
    }
    app.add_plugins(KvBridgePlugin { nats, stores });
    if let Some(check) = &config.player_check {
        app.insert_resource(PlayerCheck::new(check)?);
    }
    if let Some(metrics) = config.metrics {
        MetricsPlugin { config: metrics }.install(&mut app)?;
    }
    Intake {
        config: config.intake.clone(),
    }
    .install(&mut app)?;
    if let Some(inspect) = &config.inspect {
        InspectPlugin {
            config: inspect.clone(),
        }
        .install(&mut app)?;
    }
    app.init_resource::<ShutdownFlag>();
    app.set_runner(event_driven_runner(
        config.idle_interval,
        config.shutdown_grace,
    ));
    Ok(app)
}

/// Checks the Edgegap app and versions, opens the removal queue (resuming what a previous run left)
/// and builds the fleet. A wrong key, app or version stops the start with what to fix; an API that
/// cannot be reached only warns, since Edgegap may be back before the first player.
/// What [`open_edgegap`] works from.
struct EdgegapParts<'a> {
    api: &'a EdgegapApiConfig,
    fleet: &'a EdgegapFleetConfig,
    versions: &'a [String],
    stores: &'a KvStores,
    instance: &'a str,
    metrics: Option<Metrics>,
}

/// How often a matchmaker looks for allocations of matchmakers that died.
const TAKE_OVER_EVERY: Duration = Duration::from_secs(5);

async fn open_edgegap(
    nats: &NatsConnection,
    names: &AppNames,
    parts: EdgegapParts<'_>,
) -> Result<EdgegapFleet, ConfigError> {
    let EdgegapParts {
        api,
        fleet,
        versions,
        stores,
        instance,
        metrics,
    } = parts;
    let mut client = EdgegapClient::new(api).map_err(FleetError::from)?;
    if let Some(metrics) = metrics {
        client = client.with_metrics(metrics);
    }
    match check_app(&client, &fleet.application, versions).await {
        Ok(found) => info!(
            "Edgegap application `{}` is ready with versions {:?} at {}",
            fleet.application,
            found.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            client.base_url()
        ),
        Err(error) if error.is_transient() => {
            warn!("{error}; starting anyway, allocations will retry")
        }
        Err(error) => return Err(FleetError::Rejected(error.to_string()).into()),
    }
    if fleet.mode == EdgegapMode::Sessions {
        info!(
            "Edgegap seat sessions: deployments take their environment (NATS_*, LIGHTYEAR_PRIVATE_KEY) from the app version; set it there"
        );
    }
    let kv = ensure_bucket(nats.jetstream(), &BucketSpec::fleet_removals(names)).await?;
    let removals = RemovalQueue::open(client.clone(), kv, REMOVAL_RETRY).await?;
    let records = ensure_bucket(nats.jetstream(), &BucketSpec::fleet_allocations(names)).await?;
    let edgegap =
        EdgegapFleet::new(client, fleet.clone(), removals).with_allocation_log(AllocationLog {
            records,
            presence: stores.matchmakers.clone(),
            leases: stores.leases.clone(),
            owner: instance.to_owned(),
        });
    let sweeper = edgegap.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TAKE_OVER_EVERY).await;
            if let Err(error) = sweeper
                .take_over_allocations(BucketSpec::PRESENCE_TTL)
                .await
            {
                warn!("allocations of gone matchmakers not checked ({error}); retrying");
            }
        }
    });
    Ok(edgegap)
}

/// How a queued stop is retried: soon at first, then once a minute until Edgegap confirms it.
const REMOVAL_RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
    attempts: u32::MAX,
};

/// A matchmaker running on its own thread; stops when dropped.
pub struct MatchmakerHandle {
    /// Where clients connect (`ws://{addr}/ws` and `ws://{addr}/matchmaker/ws`).
    pub client_addr: SocketAddr,
    shutdown: ShutdownFlag,
    wake: Wake,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MatchmakerHandle {
    /// The simplenet URL.
    pub fn simplenet_url(&self) -> String {
        format!("ws://{}/ws", self.client_addr)
    }

    /// The seed-compatible JSON URL.
    pub fn seed_url(&self) -> String {
        format!("ws://{}/matchmaker/ws", self.client_addr)
    }
}

impl Drop for MatchmakerHandle {
    fn drop(&mut self) {
        self.shutdown.request();
        self.wake.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds and runs the matchmaker on a new thread (for tests, demos and benchmarks).
pub fn spawn_matchmaker(config: MatchmakerConfig) -> Result<MatchmakerHandle, ConfigError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("bevygap-matchmaker".into())
        .spawn(move || match build_app(config) {
            Ok(mut app) => {
                let world = app.world_mut();
                let addr = world.resource::<IntakeAddress>().0;
                let shutdown = world.resource::<ShutdownFlag>().clone();
                let wake = world.get_resource_or_insert_with(Wake::default).clone();
                let _ = tx.send(Ok((addr, shutdown, wake)));
                app.run();
            }
            Err(error) => {
                let _ = tx.send(Err(error));
            }
        })
        .map_err(|e| ConfigError::invalid("thread", e.to_string()))?;
    match rx.recv() {
        Ok(Ok((client_addr, shutdown, wake))) => Ok(MatchmakerHandle {
            client_addr,
            shutdown,
            wake,
            thread: Some(thread),
        }),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => Err(ConfigError::invalid(
            "thread",
            "the matchmaker thread died while starting",
        )),
    }
}
