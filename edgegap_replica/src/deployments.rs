//! Deployments: `POST /v2/deployments`, `GET /v1/status/{id}`, `DELETE /v1/stop/{id}`,
//! `GET /v1/deployments` and the context API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::launcher::{LaunchSpec, PortAssignment, Process, location};
use crate::state::{
    Answer, DEPLOYING, ERROR, READY, State, TERMINATED, message, random_id, timestamp, unix_now,
};

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
    /// Its context API path (`/v1/context/{request_id}/{n}`, as in `ARBITRIUM_CONTEXT_URL`).
    pub context_path: String,
    /// The token its context API takes (`ARBITRIUM_CONTEXT_TOKEN`).
    pub context_token: String,
}

#[derive(Debug)]
pub(crate) struct Deployment {
    pub(crate) request_id: String,
    pub(crate) app: String,
    pub(crate) version: String,
    pub(crate) created: Instant,
    pub(crate) created_unix: u64,
    pub(crate) ready_after: Option<Duration>,
    pub(crate) fail: bool,
    pub(crate) stopped: bool,
    pub(crate) ports: BTreeMap<String, PortAssignment>,
    pub(crate) tags: Vec<String>,
    pub(crate) env: Vec<(String, String, bool)>,
    pub(crate) user_ips: Vec<String>,
    pub(crate) arguments: Option<String>,
    pub(crate) context_token: String,
    pub(crate) context_path: String,
    pub(crate) process: Option<Process>,
    pub(crate) relays: Vec<crate::relay::Relay>,
}

impl Deployment {
    pub(crate) fn status(&self, now: Instant) -> &'static str {
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

impl State {
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

    pub(crate) fn create_deployment(
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

    pub(crate) fn deployment_json(&self, d: &Deployment, now: Instant) -> Value {
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
                context_path: d.context_path.clone(),
                context_token: d.context_token.clone(),
            })
            .collect()
    }
}
