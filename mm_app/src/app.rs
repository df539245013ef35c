//! Assembling the matchmaker app from a validated configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{NatsSettings, connect, install_crypto_provider};

use crate::bridge::{ShutdownFlag, Wake, event_driven_runner};
use crate::core_plugin::{MatchmakerCorePlugin, PlacementConfig};
use crate::error::ConfigError;
use crate::fleet::FleetBackend;
use crate::fleet::local::{LocalFleet, LocalFleetConfig};
use crate::fleet::static_list::StaticFleet;
use crate::fleet_driver::FleetDriverPlugin;
use crate::inspect::{InspectConfig, InspectPlugin};
use crate::intake::{Intake, IntakeAddress, IntakeConfig};
use crate::kv_bridge::{KvBridgePlugin, KvStores};
use crate::runtime::AsyncRuntime;
use crate::tokens::TokenConfig;

/// Which fleet backend serves deployments.
#[derive(Debug, Clone)]
pub enum FleetChoice {
    /// Game server processes on this machine.
    Local(LocalFleetConfig),
    /// Servers run elsewhere; never started or stopped here.
    Static,
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
    /// The fleet backend.
    pub fleet: FleetChoice,
    /// Longest sleep between updates when nothing arrives.
    pub idle_interval: Duration,
    /// Log filter (`RUST_LOG` syntax); `None` leaves logging to the caller.
    pub log_filter: Option<String>,
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

    let names = AppNames::new(&config.placement.app_name).map_err(|e| ConfigError::Invalid {
        flag: "app-name",
        reason: e.to_string(),
    })?;
    install_crypto_provider();
    let nats = handle.block_on(connect(&config.nats, "bevygap-matchmaker"))?;
    let stores = handle.block_on(KvStores::open(
        &nats,
        &names,
        config.placement.reservation_ttl,
    ))?;

    let backend: Arc<dyn FleetBackend> = match &config.fleet {
        FleetChoice::Local(local) => Arc::new(LocalFleet::new(local.clone())?),
        FleetChoice::Static => Arc::new(StaticFleet),
    };
    info!(
        "matchmaker for {} {:?} with the {} fleet",
        config.placement.app_name,
        config.placement.app_versions,
        backend.name()
    );
    app.add_plugins(MatchmakerCorePlugin {
        placement: config.placement.clone(),
        tokens: config.tokens.clone(),
    })
    .add_plugins(FleetDriverPlugin { backend })
    .add_plugins(KvBridgePlugin { nats, stores });
    Intake {
        config: config.intake.clone(),
    }
    .install(&mut app)?;
    if let Some(inspect) = &config.inspect {
        app.add_plugins(InspectPlugin {
            config: inspect.clone(),
        });
    }
    app.init_resource::<ShutdownFlag>();
    app.set_runner(event_driven_runner(config.idle_interval));
    Ok(app)
}

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
        .map_err(|e| ConfigError::Invalid {
            flag: "thread",
            reason: e.to_string(),
        })?;
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
        Err(_) => Err(ConfigError::Invalid {
            flag: "thread",
            reason: "the matchmaker thread died while starting".into(),
        }),
    }
}
