//! The replica's model: apps, deployments and sessions, and their status lifecycles.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::ReplicaConfig;
use crate::faults::{Faults, RateLimits, Route};
use crate::launcher::{LaunchSpec, Launcher, PortAssignment, Process, location};

/// A status answer: HTTP status and JSON body.
pub type Answer = (u16, Value);

const DEPLOYING: &str = "Status.DEPLOYING";
const READY: &str = "Status.READY";
const ERROR: &str = "Status.ERROR";
const TERMINATED: &str = "Status.TERMINATED";
const SEEKING: &str = "Status.SEEKING";

/// An application that exists in the replica.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub is_active: bool,
    /// Its versions.
    pub versions: Vec<VersionSpec>,
}

impl AppSpec {
    /// An active app with `versions`.
    pub fn new(name: impl Into<String>, versions: Vec<VersionSpec>) -> Self {
        Self {
            name: name.into(),
            is_active: true,
            versions,
        }
    }
}

/// A version of an application.
#[derive(Debug, Clone)]
pub struct VersionSpec {
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub is_active: bool,
    /// Ports: name, container port, protocol.
    pub ports: Vec<(String, u16, String)>,
    /// Start arguments appended to the server command.
    pub arguments: Option<String>,
    /// Environment of every deployment of this version.
    pub envs: Vec<(String, String)>,
}

impl VersionSpec {
    /// An active version with one UDP port named `gameport`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            is_active: true,
            ports: vec![("gameport".into(), 6420, "UDP".into())],
            arguments: None,
            envs: Vec::new(),
        }
    }
}

/// One call the replica answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The endpoint.
    pub route: Route,
    /// The path called.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// A deployment as tests see it.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    /// Its id.
    pub request_id: String,
    /// The application.
    pub app: String,
    /// The version.
    pub version: String,
    /// Its `current_status`.
    pub status: String,
    /// Whether a stop was requested.
    pub stopped: bool,
    /// Its environment variables: key, value, hidden.
    pub env: Vec<(String, String, bool)>,
    /// Its users' IPs.
    pub user_ips: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its ports: name, internal, external.
    pub ports: Vec<(String, u16, u16)>,
}

#[derive(Debug)]
struct Deployment {
    request_id: String,
    app: String,
    version: String,
    created: Instant,
    created_unix: u64,
    ready_after: Option<Duration>,
    fail: bool,
    stopped: bool,
    ports: BTreeMap<String, PortAssignment>,
    tags: Vec<String>,
    env: Vec<(String, String, bool)>,
    user_ips: Vec<String>,
    arguments: Option<String>,
    context_token: String,
    context_path: String,
    process: Option<Process>,
    relays: Vec<crate::relay::Relay>,
}

impl Deployment {
    fn status(&self, now: Instant) -> &'static str {
        let due = self
            .ready_after
            .is_some_and(|after| now.saturating_duration_since(self.created) >= after);
        // A container that exits on its own ends the deployment in error, as on Edgegap.
        let crashed = self.process.as_ref().is_some_and(Process::has_exited);
        match (self.stopped, self.fail || crashed, due || crashed) {
            (true, _, _) => TERMINATED,
            (false, true, true) => ERROR,
            (false, false, true) => READY,
            (false, _, false) => DEPLOYING,
        }
    }
}

#[derive(Debug)]
struct Session {
    app: String,
    version: String,
    ips: Vec<String>,
    deployment: String,
    created: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    apps: Vec<AppSpec>,
    deployments: BTreeMap<String, Deployment>,
    sessions: BTreeMap<String, Session>,
    calls: Vec<CallRecord>,
    ready_after: Option<Duration>,
}

/// Everything the replica knows; shared by its handlers.
#[derive(Debug)]
pub struct State {
    inner: Mutex<Inner>,
    /// Injected errors.
    pub faults: Faults,
    /// Edgegap's rate limits.
    pub limits: RateLimits,
    /// Whether rate limits answer 429.
    pub enforce_rate_limits: bool,
    api_key: String,
    fail_deployments: bool,
    sockets: u32,
    launcher: Option<Launcher>,
    max_page_size: usize,
    addr: SocketAddr,
}

fn message(text: impl Into<String>) -> Value {
    json!({ "message": text.into() })
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Edgegap's timestamp format, `2026-04-22 12:00:46.000000` (UTC).
fn timestamp(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl State {
    /// The state for `config`, serving on `addr`.
    pub fn new(config: ReplicaConfig, addr: SocketAddr) -> Self {
        Self {
            inner: Mutex::new(Inner {
                apps: config.apps,
                ready_after: config.ready_after,
                ..Inner::default()
            }),
            faults: Faults::default(),
            limits: RateLimits::default(),
            enforce_rate_limits: config.enforce_rate_limits,
            api_key: config.api_key,
            fail_deployments: config.fail_deployments,
            sockets: config.sockets.max(1),
            launcher: config.launcher,
            max_page_size: config.max_page_size.max(1),
            addr,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `authorization` is the management API key.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        authorization == Some(format!("token {}", self.api_key).as_str())
    }

    /// Records an answered call.
    pub fn record(&self, route: Route, path: String, status: u16) {
        self.lock().calls.push(CallRecord {
            route,
            path,
            status,
        });
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// Changes the time to ready of new deployments.
    pub fn set_ready_after(&self, ready_after: Option<Duration>) {
        self.lock().ready_after = ready_after;
    }

    /// Stops every game server process.
    pub fn stop_all_processes(&self) {
        for deployment in self.lock().deployments.values() {
            if let Some(process) = &deployment.process {
                process.stop();
            }
        }
    }

    fn public_ip(&self) -> IpAddr {
        self.launcher
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |l| l.public_ip)
    }

    fn find_version<'a>(
        inner: &'a Inner,
        app: &str,
        version: &str,
    ) -> Result<&'a VersionSpec, Answer> {
        let app_spec = inner
            .apps
            .iter()
            .find(|a| a.name == app)
            .ok_or_else(|| (404, message(format!("App {app} not found"))))?;
        let version_spec = app_spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .ok_or_else(|| {
                (
                    404,
                    message(format!("App version {app}/{version} not found")),
                )
            })?;
        if !app_spec.is_active || !version_spec.is_active {
            return Err((
                400,
                message(format!("App version {app}/{version} is not active")),
            ));
        }
        Ok(version_spec)
    }

    /// `POST /v2/deployments`.
    pub fn deploy(&self, body: &Value) -> Answer {
        let (Some(app), Some(version)) = (
            body.get("application").and_then(Value::as_str),
            body.get("version").and_then(Value::as_str),
        ) else {
            return (
                400,
                json!({"message": "application and version are required"}),
            );
        };
        let users: Vec<String> = body
            .get("users")
            .and_then(Value::as_array)
            .map(|users| {
                users
                    .iter()
                    .filter_map(|u| u.pointer("/user_data/ip_address").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if users.is_empty() {
            return (400, json!({"message": "users must hold at least one user"}));
        }
        let env: Vec<(String, String, bool)> = body
            .get("environment_variables")
            .and_then(Value::as_array)
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| {
                        Some((
                            v.get("key")?.as_str()?.to_owned(),
                            v.get("value")?.as_str()?.to_owned(),
                            v.get("is_hidden").and_then(Value::as_bool).unwrap_or(false),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some((key, _, _)) = env.iter().find(|(_, v, _)| v.len() > 255) {
            return (
                400,
                json!({"message": format!("environment variable {key} is longer than 255 characters")}),
            );
        }
        let tags = body
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        match self.create_deployment(app, version, users, env, tags) {
            Ok(request_id) => (202, json!({ "request_id": request_id })),
            Err(answer) => answer,
        }
    }

    fn create_deployment(
        &self,
        app: &str,
        version: &str,
        user_ips: Vec<String>,
        env: Vec<(String, String, bool)>,
        tags: Vec<String>,
    ) -> Result<String, Answer> {
        let mut inner = self.lock();
        let spec = Self::find_version(&inner, app, version)?.clone();
        let request_id = random_id();
        let taken: Vec<u16> = inner
            .deployments
            .values()
            .filter(|d| !d.stopped)
            .flat_map(|d| d.ports.values().flat_map(|p| [p.internal, p.external]))
            .collect();
        let mut ports = BTreeMap::new();
        let mut relays = Vec::new();
        for (index, (name, port, protocol)) in spec.ports.iter().enumerate() {
            let assignment = match &self.launcher {
                Some(launcher) => {
                    let mut taken = taken.clone();
                    taken.extend(
                        ports
                            .values()
                            .flat_map(|p: &PortAssignment| [p.internal, p.external]),
                    );
                    let no_port = || {
                        (
                            422,
                            json!({"request_id": request_id, "message": "Couldn't Allocate Server: no free port"}),
                        )
                    };
                    let internal = launcher.free_port(&taken).ok_or_else(no_port)?;
                    let external = if launcher.port_mapping && protocol.contains("UDP") {
                        taken.push(internal);
                        let external = launcher.free_port(&taken).ok_or_else(no_port)?;
                        let front = std::net::UdpSocket::bind((launcher.public_ip, external))
                            .map_err(|_| no_port())?;
                        let relay = crate::relay::start(
                            front,
                            SocketAddr::new(launcher.public_ip, internal),
                        )
                        .map_err(|_| no_port())?;
                        relays.push(relay);
                        external
                    } else {
                        internal
                    };
                    (internal, external)
                }
                None => (
                    *port,
                    30_000 + u16::try_from(inner.deployments.len() % 1000 * 8 + index).unwrap_or(0),
                ),
            };
            ports.insert(
                name.clone(),
                PortAssignment {
                    name: name.clone(),
                    internal: assignment.0,
                    external: assignment.1,
                    protocol: protocol.clone(),
                },
            );
        }
        let context_path = format!("/v1/context/{request_id}/{}", rand::random::<u16>());
        let mut deployment = Deployment {
            request_id: request_id.clone(),
            app: app.to_owned(),
            version: version.to_owned(),
            created: Instant::now(),
            created_unix: unix_now(),
            ready_after: inner.ready_after,
            fail: self.fail_deployments,
            stopped: false,
            ports,
            tags,
            env,
            user_ips,
            arguments: spec.arguments.clone(),
            context_token: hex::encode(rand::random::<[u8; 16]>()),
            context_path,
            process: None,
            relays,
        };
        if let Some(launcher) = &self.launcher {
            let mut env_vars = spec.envs.clone();
            env_vars.extend(
                deployment
                    .env
                    .iter()
                    .map(|(k, v, _)| (k.clone(), v.clone())),
            );
            let launch = LaunchSpec {
                request_id: request_id.clone(),
                ports: deployment.ports.clone(),
                context_url: format!("http://{}{}", self.addr, deployment.context_path),
                context_token: deployment.context_token.clone(),
                tags: deployment.tags.clone(),
                arguments: deployment.arguments.clone(),
                env: env_vars,
            };
            match launcher.launch(&launch) {
                Ok(process) => deployment.process = Some(process),
                Err(error) => {
                    warn!("replica could not start a game server: {error}");
                    deployment.fail = true;
                }
            }
        }
        info!("replica deployment `{request_id}` of {app} {version} created");
        inner.deployments.insert(request_id.clone(), deployment);
        Ok(request_id)
    }

    fn deployment_json(&self, d: &Deployment, now: Instant) -> Value {
        let status = d.status(now);
        let fqdn = format!("{}.replica.localhost", d.request_id);
        let ports: serde_json::Map<String, Value> = d
            .ports
            .values()
            .map(|p| {
                (
                    p.name.clone(),
                    json!({
                        "name": p.name, "internal": p.internal, "external": p.external,
                        "protocol": p.protocol, "tls_upgrade": false,
                        "link": format!("{fqdn}:{}", p.external),
                    }),
                )
            })
            .collect();
        let elapsed = now.saturating_duration_since(d.created).as_secs();
        json!({
            "request_id": d.request_id,
            "fqdn": fqdn,
            "app_name": d.app,
            "app_version": d.version,
            "current_status": status,
            "last_status": if status == READY { DEPLOYING } else { status },
            "running": status == READY,
            "whitelisting_active": false,
            "start_time": timestamp(d.created_unix),
            "removal_time": Value::Null,
            "elapsed_time": elapsed,
            "max_duration": 1440,
            "error": status == ERROR,
            "error_detail": if status == ERROR { json!("The game server container exited") } else { Value::Null },
            "public_ip": self.public_ip().to_string(),
            "ports": ports,
            "location": location(),
            "tags": d.tags,
            "sockets": self.sockets,
            "command": Value::Null,
            "arguments": d.arguments,
        })
    }

    /// `GET /v1/status/{request_id}`.
    pub fn status(&self, request_id: &str) -> Answer {
        let inner = self.lock();
        match inner.deployments.get(request_id) {
            Some(d) => (200, self.deployment_json(d, Instant::now())),
            None => (404, message(format!("Deployment {request_id} not found"))),
        }
    }

    /// `DELETE /v1/stop/{request_id}`.
    pub fn stop(&self, request_id: &str) -> Answer {
        let mut inner = self.lock();
        let now = Instant::now();
        let Some(d) = inner.deployments.get_mut(request_id) else {
            return (404, message(format!("Deployment {request_id} not found")));
        };
        if d.stopped {
            return (410, message("Instance Already terminated"));
        }
        let was = d.status(now);
        d.stopped = true;
        if let Some(process) = &d.process {
            process.stop();
        }
        d.relays.clear();
        inner.sessions.retain(|_, s| s.deployment != request_id);
        info!("replica deployment `{request_id}` stopped");
        if was == READY || was == ERROR {
            let summary = inner
                .deployments
                .get(request_id)
                .map(|d| self.deployment_json(d, now));
            (
                200,
                json!({"message": format!("Deployment {request_id} will be stopped"), "deployment_summary": summary}),
            )
        } else {
            (
                202,
                message(format!(
                    "{request_id} - Delete request will be processed soon"
                )),
            )
        }
    }

    /// `POST /v1/session`: links to a deployment of the version with a free seat, or starts one.
    pub fn create_session(&self, body: &Value) -> Answer {
        let Some(app) = body.get("app_name").and_then(Value::as_str) else {
            return (400, message("app_name is required"));
        };
        let Some(version) = body.get("version_name").and_then(Value::as_str) else {
            return (400, message("version_name is required"));
        };
        let ips: Vec<String> = body
            .get("ip_list")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            return (400, message("ip_list must hold at least one IP"));
        }
        let seats = u32::try_from(ips.len()).unwrap_or(u32::MAX);
        let existing = {
            let inner = self.lock();
            if let Err(answer) = Self::find_version(&inner, app, version) {
                return answer;
            }
            inner
                .deployments
                .values()
                .filter(|d| !d.stopped && d.app == app && d.version == version)
                .find(|d| {
                    let used: usize = inner
                        .sessions
                        .values()
                        .filter(|s| s.deployment == d.request_id)
                        .map(|s| s.ips.len())
                        .sum();
                    u32::try_from(used)
                        .unwrap_or(u32::MAX)
                        .saturating_add(seats)
                        <= self.sockets
                })
                .map(|d| d.request_id.clone())
        };
        let deployment = match existing {
            Some(id) => id,
            None => match self.create_deployment(
                app,
                version,
                ips.clone(),
                Vec::new(),
                vec!["session".into()],
            ) {
                Ok(id) => id,
                Err(answer) => return answer,
            },
        };
        let session_id = format!("{}-S", random_id());
        self.lock().sessions.insert(
            session_id.clone(),
            Session {
                app: app.to_owned(),
                version: version.to_owned(),
                ips,
                deployment: deployment.clone(),
                created: Instant::now(),
            },
        );
        (
            200,
            json!({
                "session_id": session_id, "custom_id": Value::Null, "app": app, "version": version,
                "deployment_request_id": deployment, "selectors": [], "webhook_url": body.get("webhook_url"),
            }),
        )
    }

    /// `GET /v1/session/{session_id}`.
    pub fn session(&self, session_id: &str) -> Answer {
        let inner = self.lock();
        let Some(session) = inner.sessions.get(session_id) else {
            return (404, message(format!("Session {session_id} not found")));
        };
        let now = Instant::now();
        let deployment = inner.deployments.get(&session.deployment);
        let status = deployment.map_or(ERROR, |d| d.status(now));
        let (session_status, ready, error) = match status {
            READY => (READY, true, Value::Null),
            ERROR | TERMINATED => (ERROR, false, json!("The linked deployment failed")),
            _ => (SEEKING, false, Value::Null),
        };
        let users: Vec<Value> = session.ips.iter().map(|ip| json!({"ip": ip})).collect();
        (
            200,
            json!({
                "session_id": session_id, "custom_id": Value::Null, "status": session_status,
                "ready": ready, "linked": ready, "kind": "Seat",
                "user_count": session.ips.len(), "app_version": 1,
                "app_name": session.app, "version_name": session.version,
                "create_time": timestamp(unix_now().saturating_sub(now.saturating_duration_since(session.created).as_secs())),
                "elapsed": now.saturating_duration_since(session.created).as_secs(),
                "error": error, "session_users": users, "session_ips": users,
                "deployment": if ready { deployment.map(|d| self.deployment_json(d, now)) } else { None },
                "webhook_url": Value::Null,
            }),
        )
    }

    /// `DELETE /v1/session/{session_id}`: frees the seats; the deployment stays.
    pub fn delete_session(&self, session_id: &str) -> Answer {
        match self.lock().sessions.remove(session_id) {
            Some(session) => (
                200,
                json!({
                    "message": format!("Session {session_id} of deployment {} deleted", session.deployment),
                    "session_id": session_id, "custom_id": Value::Null,
                }),
            ),
            None => (404, message(format!("Session {session_id} not found"))),
        }
    }

    /// `GET /v1/app/{app}`.
    pub fn app(&self, app: &str) -> Answer {
        match self.lock().apps.iter().find(|a| a.name == app) {
            Some(a) => (
                200,
                json!({"name": a.name, "is_active": a.is_active, "is_telemetry_agent_active": false,
                       "image": "", "create_time": timestamp(0), "last_updated": timestamp(0)}),
            ),
            None => (404, message(format!("App {app} not found"))),
        }
    }

    fn version_json(v: &VersionSpec) -> Value {
        let ports: Vec<Value> = v
            .ports
            .iter()
            .map(|(name, port, protocol)| json!({"port": port, "protocol": protocol, "name": name, "to_check": true, "tls_upgrade": false}))
            .collect();
        let envs: Vec<Value> = v
            .envs
            .iter()
            .map(|(k, val)| json!({"key": k, "value": val, "is_hidden": false}))
            .collect();
        json!({
            "name": v.name, "is_active": v.is_active,
            "docker_repository": "registry.replica.localhost", "docker_image": "replica/game-server",
            "docker_tag": v.name, "req_cpu": 256, "req_memory": 256, "max_duration": 1440,
            "time_to_deploy": 10, "arguments": v.arguments, "ports": ports, "envs": envs,
        })
    }

    /// `GET /v1/app/{app}/version/{version}`.
    pub fn version(&self, app: &str, version: &str) -> Answer {
        let inner = self.lock();
        let found = inner
            .apps
            .iter()
            .find(|a| a.name == app)
            .and_then(|a| a.versions.iter().find(|v| v.name == version));
        match found {
            Some(v) => (200, Self::version_json(v)),
            None => (
                404,
                message(format!("App version {app}/{version} not found")),
            ),
        }
    }

    /// `PATCH /v1/app/{app}/version/{version}`: updates `arguments` and `is_active`.
    pub fn patch_version(&self, app: &str, version: &str, body: &Value) -> Answer {
        let mut inner = self.lock();
        let found = inner
            .apps
            .iter_mut()
            .find(|a| a.name == app)
            .and_then(|a| a.versions.iter_mut().find(|v| v.name == version));
        let Some(v) = found else {
            return (
                404,
                message(format!("App version {app}/{version} not found")),
            );
        };
        if let Some(arguments) = body.get("arguments") {
            v.arguments = arguments.as_str().map(str::to_owned);
        }
        if let Some(active) = body.get("is_active").and_then(Value::as_bool) {
            v.is_active = active;
        }
        (
            200,
            json!({"success": true, "version": Self::version_json(v)}),
        )
    }

    /// `GET /v1/deployments?page={page}&limit={limit}` (pages from 1).
    pub fn list(&self, page: usize, limit: usize) -> Answer {
        let inner = self.lock();
        let now = Instant::now();
        let live: Vec<&Deployment> = inner.deployments.values().filter(|d| !d.stopped).collect();
        let limit = limit.clamp(1, self.max_page_size);
        let pages = live.len().div_ceil(limit).max(1);
        let page = page.clamp(1, pages);
        let data: Vec<Value> = live
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .map(|d| {
                let full = self.deployment_json(d, now);
                json!({
                    "request_id": d.request_id, "fqdn": full["fqdn"], "ready": d.status(now) == READY,
                    "start_time": full["start_time"], "public_ip": full["public_ip"],
                    "ports": full["ports"], "tags": d.tags,
                })
            })
            .collect();
        let has_next = page < pages;
        (
            200,
            json!({"data": data, "total_count": live.len(), "pagination": {
                "number": page,
                "next_page_number": if has_next { json!(page + 1) } else { Value::Null },
                "previous_page_number": if page > 1 { json!(page - 1) } else { Value::Null },
                "paginator": {"num_pages": pages}, "has_next": has_next, "has_previous": page > 1}}),
        )
    }

    /// `GET /v1/context/{request_id}/{n}`, authorized by the deployment's context token.
    pub fn context(&self, path: &str, authorization: Option<&str>) -> Answer {
        let inner = self.lock();
        let Some(d) = inner.deployments.values().find(|d| d.context_path == path) else {
            return (404, message("Context not found"));
        };
        if authorization != Some(d.context_token.as_str()) {
            return (401, message("Invalid context token"));
        }
        let now = Instant::now();
        let full = self.deployment_json(d, now);
        (
            200,
            json!({
                "request_id": d.request_id, "public_ip": full["public_ip"], "status": full["current_status"],
                "ready": d.status(now) == READY, "whitelisting_active": false, "fqdn": full["fqdn"],
                "ports": full["ports"], "location": full["location"], "tags": d.tags,
                "sockets": self.sockets, "sockets_usage": 0,
            }),
        )
    }

    /// Every deployment so far.
    pub fn deployment_views(&self) -> Vec<DeploymentView> {
        let now = Instant::now();
        self.lock()
            .deployments
            .values()
            .map(|d| DeploymentView {
                request_id: d.request_id.clone(),
                app: d.app.clone(),
                version: d.version.clone(),
                status: d.status(now).to_owned(),
                stopped: d.stopped,
                env: d.env.clone(),
                user_ips: d.user_ips.clone(),
                tags: d.tags.clone(),
                ports: d
                    .ports
                    .values()
                    .map(|p| (p.name.clone(), p.internal, p.external))
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_edgegaps_format() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000000");
        assert_eq!(timestamp(1_776_859_246), "2026-04-22 12:00:46.000000");
    }
}
