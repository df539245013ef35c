//! The local fleet: game server processes on this machine, one per deployment.
//!
//! Each process gets its own port from a range and learns its context from environment variables
//! ([`bevygap_shared::context_env`]) plus whatever [`LocalFleetConfig::env`] adds (NATS settings).
//! Its stdout and stderr go to the matchmaker's log, tagged with the deployment id. Stopping sends
//! SIGTERM, so the server can remove its lease, and kills it after a grace period.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::ops::RangeInclusive;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bevygap_shared::context_env;
use bevygap_shared::names::KeyToken;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Allocation, AllocationRequest, EndedReporter, FleetBackend, FleetError};
use crate::gameserver_auth::GameServerAuth;

/// How the local fleet starts game servers.
#[derive(Debug, Clone)]
pub struct LocalFleetConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Ports handed out to servers, one each.
    pub ports: RangeInclusive<u16>,
    /// The IP clients dial and servers bind.
    pub public_ip: IpAddr,
    /// At most this many servers at once.
    pub max_servers: usize,
    /// Seats each server should offer (passed as `BEVYGAP_CAPACITY`).
    pub capacity: u32,
    /// Extra environment for every server (e.g. the NATS settings).
    pub env: Vec<(String, String)>,
    /// How long a server may take to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// Gives each server NATS credentials for its own deployment only (`NATS_USER` and
    /// `NATS_PASSWORD`, see [`crate::gameserver_auth`]) instead of `env`'s.
    pub credentials: Option<Arc<GameServerAuth>>,
}

impl Default for LocalFleetConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            ports: 6420..=6499,
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_servers: 8,
            capacity: 8,
            env: Vec::new(),
            stop_grace: Duration::from_secs(5),
            credentials: None,
        }
    }
}

#[derive(Debug)]
struct Running {
    pid: Option<u32>,
    port: u16,
    exited: watch::Receiver<bool>,
    /// Set when Bevygap asked it to stop (its exit is then no news).
    stopping: bool,
}

/// Starts and stops game server processes on this machine.
#[derive(Debug, Clone)]
pub struct LocalFleet {
    config: Arc<LocalFleetConfig>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Ids this fleet started that have exited (stopping them again is done, not unknown).
    ended_ids: Arc<Mutex<std::collections::HashSet<String>>>,
    counter: Arc<AtomicU64>,
    ended: Arc<Mutex<Option<EndedReporter>>>,
}

impl LocalFleet {
    /// A fleet that runs `config.command` per deployment. Fails if no command is configured.
    pub fn new(config: LocalFleetConfig) -> Result<Self, FleetError> {
        if config.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(FleetError::Rejected(
                "local fleet needs a game server command (--local-server-cmd)".into(),
            ));
        }
        if config.ports.is_empty() {
            return Err(FleetError::Rejected(
                "local fleet port range is empty".into(),
            ));
        }
        Ok(Self {
            config: Arc::new(config),
            running: Arc::default(),
            ended_ids: Arc::default(),
            counter: Arc::default(),
            ended: Arc::default(),
        })
    }

    /// Deployment ids of the processes running now.
    pub fn running(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Picks a port from the range that no server of ours uses and that binds on UDP now.
    fn pick_port(&self, running: &HashMap<String, Running>) -> Option<u16> {
        self.config.ports.clone().find(|port| {
            !running.values().any(|r| r.port == *port)
                && UdpSocket::bind((self.config.public_ip, *port)).is_ok()
        })
    }

    fn spawn(&self, request: &AllocationRequest) -> Result<Allocation, FleetError> {
        let mut running = self.lock();
        if running.len() >= self.config.max_servers {
            return Err(FleetError::NoCapacity(format!(
                "local fleet runs its maximum of {} servers",
                self.config.max_servers
            )));
        }
        let port = self.pick_port(&running).ok_or_else(|| {
            FleetError::NoCapacity(format!("no free port in {:?}", self.config.ports))
        })?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let deployment_id = format!("local-{}-{port}-{n}", std::process::id());

        let (program, args) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| FleetError::Rejected("empty game server command".into()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .env(context_env::DEPLOYMENT_ID, &deployment_id)
            .env(context_env::PUBLIC_IP, self.config.public_ip.to_string())
            .env(context_env::PORT, port.to_string())
            .env(context_env::APP_NAME, &request.game.game)
            .env(context_env::APP_VERSION, &request.game.version)
            .env(context_env::CAPACITY, self.config.capacity.to_string())
            .env(context_env::PARENT_PID, std::process::id().to_string());
        if let Some(auth) = &self.config.credentials {
            let deployment = KeyToken::new("deployment id", deployment_id.as_str())
                .map_err(|e| FleetError::Rejected(e.to_string()))?;
            let credentials = auth.credentials(&deployment);
            command
                .env("NATS_USER", credentials.user)
                .env("NATS_PASSWORD", credentials.password.expose())
                .env_remove("NATS_CREDS");
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            FleetError::Unavailable(format!(
                "could not start `{program}`: {e}; check --local-server-cmd"
            ))
        })?;
        let pid = child.id();
        info!("local fleet: started `{deployment_id}` (pid {pid:?}) on port {port}");
        forward_logs(&deployment_id, child.stdout.take());
        forward_logs(&deployment_id, child.stderr.take());
        let (exited_tx, exited) = watch::channel(false);
        running.insert(
            deployment_id.clone(),
            Running {
                pid,
                port,
                exited,
                stopping: false,
            },
        );
        tokio::spawn(reap(self.clone(), deployment_id.clone(), child, exited_tx));
        Ok(Allocation {
            deployment_id,
            expected_capacity: Some(self.config.capacity),
        })
    }

    async fn stop_process(self, deployment_id: String) -> Result<(), FleetError> {
        let Some((pid, mut exited)) = self.lock().get_mut(&deployment_id).map(|r| {
            r.stopping = true;
            (r.pid, r.exited.clone())
        }) else {
            let ended = self
                .ended_ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&deployment_id);
            return if ended {
                Ok(()) // started here, already gone
            } else {
                Err(FleetError::UnknownDeployment(deployment_id))
            };
        };
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let graceful = tokio::time::timeout(self.config.stop_grace, exited.wait_for(|e| *e))
            .await
            .is_ok();
        if !graceful {
            warn!(
                "local fleet: `{deployment_id}` ignored SIGTERM for {:?}; killing it",
                self.config.stop_grace
            );
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|e| *e)).await;
        }
        Ok(())
    }
}

/// Waits for a child to exit, logs how, and forgets it.
async fn reap(
    fleet: LocalFleet,
    deployment_id: String,
    mut child: Child,
    exited: watch::Sender<bool>,
) {
    let how = match child.wait().await {
        Ok(status) if status.success() => "exited cleanly".to_owned(),
        Ok(status) => format!("exited with {status}"),
        Err(e) => format!("could not be waited for: {e}"),
    };
    let asked = fleet
        .lock()
        .remove(&deployment_id)
        .is_some_and(|r| r.stopping);
    fleet
        .ended_ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(deployment_id.clone());
    exited.send_replace(true);
    if asked {
        info!("local fleet: `{deployment_id}` {how}");
        return;
    }
    warn!("local fleet: `{deployment_id}` {how} without being asked to stop");
    let reporter = fleet
        .ended
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(reporter) = reporter {
        reporter.report(deployment_id, how);
    }
}

/// Copies a child's output lines to the log, tagged with the deployment id.
fn forward_logs(deployment_id: &str, stream: Option<impl AsyncRead + Unpin + Send + 'static>) {
    let Some(stream) = stream else { return };
    let deployment_id = deployment_id.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            info!(target: "bevygap::gameserver", "`{deployment_id}`: {line}");
        }
    });
}

impl FleetBackend for LocalFleet {
    fn name(&self) -> &'static str {
        "local"
    }

    fn allocate(
        &self,
        request: AllocationRequest,
    ) -> BoxFuture<'static, Result<Allocation, FleetError>> {
        // Spawning needs the tokio runtime (child reaping, log forwarding): do it in the future.
        let fleet = self.clone();
        async move { fleet.spawn(&request) }.boxed()
    }

    fn stop(&self, deployment_id: String) -> BoxFuture<'static, Result<(), FleetError>> {
        self.clone().stop_process(deployment_id).boxed()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let fleet = self.clone();
        async move {
            let ids = fleet.running();
            if !ids.is_empty() {
                info!("local fleet: stopping {} servers on shutdown", ids.len());
            }
            futures::future::join_all(ids.into_iter().map(|id| fleet.clone().stop_process(id)))
                .await;
        }
        .boxed()
    }

    fn report_ended(&self, reporter: EndedReporter) {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(reporter);
    }
}
