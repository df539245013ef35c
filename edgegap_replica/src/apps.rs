//! Applications and versions: `GET /v1/app/{app}`, `POST /v1/app/{app}/version`,
//! `GET`/`PATCH /v1/app/{app}/version/{version}`.

use serde_json::{Value, json};

use crate::state::{Answer, Inner, State, message, timestamp};

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
    /// The image: repository, image and tag (the replica's own when unset).
    pub image: Option<(String, String, String)>,
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
            image: None,
        }
    }
}

impl State {
    pub(crate) fn find_version<'a>(
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
        let (repository, image, tag) = v.image.clone().unwrap_or_else(|| {
            (
                "registry.replica.localhost".into(),
                "replica/game-server".into(),
                v.name.clone(),
            )
        });
        json!({
            "name": v.name, "is_active": v.is_active,
            "docker_repository": repository, "docker_image": image,
            "docker_tag": tag, "req_cpu": 256, "req_memory": 256, "max_duration": 1440,
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
    /// `POST /v1/app/{app}/version`: a new version (409 if its name is taken).
    pub fn create_version(&self, app: &str, body: &Value) -> Answer {
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(name), Some(repository), Some(image), Some(tag)) = (
            text("name"),
            text("docker_repository"),
            text("docker_image"),
            text("docker_tag"),
        ) else {
            return (
                400,
                message("name, docker_repository, docker_image and docker_tag are required"),
            );
        };
        let ports: Vec<(String, u16, String)> = body
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("name")?.as_str()?.to_owned(),
                    u16::try_from(p.get("port")?.as_u64()?).ok()?,
                    p.get("protocol")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        if ports.is_empty() {
            return (400, message("a version needs at least one port"));
        }
        let mut inner = self.lock();
        let Some(app_spec) = inner.apps.iter_mut().find(|a| a.name == app) else {
            return (404, message(format!("App {app} not found")));
        };
        if app_spec.versions.iter().any(|v| v.name == name) {
            return (
                409,
                message(format!("App version {app}/{name} already exists")),
            );
        }
        let version = VersionSpec {
            name,
            is_active: body
                .get("is_active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            ports,
            arguments: text("arguments"),
            envs: Vec::new(),
            image: Some((repository, image, tag)),
        };
        let answer = json!({"success": true, "version": Self::version_json(&version)});
        app_spec.versions.push(version);
        (200, answer)
    }

    /// `PATCH /v1/app/{app}/version/{version}`.
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
}
