//! The Edgegap API's request and response bodies, with Edgegap's field names.
//!
//! Responses are read leniently: every field Bevygap does not need is optional, and unknown fields
//! are ignored, so additions on Edgegap's side do not break the matchmaker.

use std::collections::HashMap;

pub use bevygap_shared::edgegap::{DeploymentEndpoint, DeploymentLocation, PortMapping};
use serde::{Deserialize, Serialize};

/// `current_status` of a deployment that is being set up.
pub const STATUS_DEPLOYING: &str = "Status.DEPLOYING";
/// `current_status` of a running deployment.
pub const STATUS_READY: &str = "Status.READY";
/// `current_status` of a deployment that failed.
pub const STATUS_ERROR: &str = "Status.ERROR";
/// `current_status` of a deployment that is shutting down.
pub const STATUS_TERMINATING: &str = "Status.TERMINATING";
/// `current_status` of a deployment that has ended.
pub const STATUS_TERMINATED: &str = "Status.TERMINATED";

/// A user of a v2 deployment: Edgegap places the deployment near its users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentUser {
    /// `ip_address` (or `geo_coordinates`).
    pub user_type: String,
    /// `{"ip_address": "…"}` for IP users.
    pub user_data: HashMap<String, String>,
}

impl DeploymentUser {
    /// A user known by IP.
    pub fn ip(ip: impl Into<String>) -> Self {
        Self {
            user_type: "ip_address".into(),
            user_data: HashMap::from([("ip_address".to_owned(), ip.into())]),
        }
    }
}

/// An environment variable given to a deployment.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVar {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
    /// Hidden in Edgegap's dashboard and API answers (secrets).
    #[serde(default)]
    pub is_hidden: bool,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.is_hidden {
            "<hidden>"
        } else {
            &self.value
        };
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("value", &value)
            .finish()
    }
}

/// A webhook Edgegap calls on a deployment event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// The URL.
    pub url: String,
}

/// `POST /v2/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The application name.
    pub application: String,
    /// The version name.
    pub version: String,
    /// Players to place the deployment near.
    pub users: Vec<DeploymentUser>,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_variables: Vec<EnvVar>,
    /// Tags shown in the dashboard and usable as filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Called when the deployment is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_on_ready: Option<Webhook>,
    /// Called when the deployment fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_on_error: Option<Webhook>,
    /// Called when the deployment ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_on_terminated: Option<Webhook>,
}

/// The answer to `POST /v2/deployments` (202 Accepted).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeployAccepted {
    /// The deployment's id.
    pub request_id: String,
    /// A human-readable note.
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /v1/status/{request_id}`, also the `deployment` of a session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeploymentStatus {
    /// The deployment's id.
    pub request_id: String,
    /// `Status.DEPLOYING`, `Status.READY`, `Status.ERROR`, `Status.TERMINATED`, ….
    pub current_status: String,
    /// Whether the container runs.
    #[serde(default)]
    pub running: bool,
    /// Whether the deployment failed.
    #[serde(default)]
    pub error: bool,
    /// What failed.
    #[serde(default)]
    pub error_detail: Option<String>,
    /// Public IP, FQDN, ports and location.
    #[serde(flatten)]
    pub endpoint: DeploymentEndpoint,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seconds since it started.
    #[serde(default)]
    pub elapsed_time: Option<u64>,
}

impl DeploymentStatus {
    /// Whether the deployment is ready for players.
    pub fn is_ready(&self) -> bool {
        self.current_status == STATUS_READY
    }

    /// Whether the deployment failed or ended: it will never become ready.
    pub fn has_failed(&self) -> bool {
        self.error
            || matches!(
                self.current_status.as_str(),
                STATUS_ERROR | STATUS_TERMINATING | STATUS_TERMINATED
            )
    }
}

/// `POST /v1/session`: a seat session (the seed's flow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The application name.
    pub app_name: String,
    /// The version name.
    pub version_name: String,
    /// The players' IPs.
    pub ip_list: Vec<String>,
    /// Called when the session is linked, unprocessable or in error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// The answer to `POST /v1/session`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionCreated {
    /// The session's id.
    pub session_id: String,
    /// The deployment it is linked to already, if any.
    #[serde(default)]
    pub deployment_request_id: Option<String>,
}

/// `GET /v1/session/{session_id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionStatus {
    /// The session's id.
    pub session_id: String,
    /// `Status.SEEKING`, `Status.LINKED`, `Status.READY`, `Status.ERROR`, ….
    pub status: String,
    /// Linked to a ready deployment.
    #[serde(default)]
    pub ready: bool,
    /// Linked to a deployment.
    #[serde(default)]
    pub linked: bool,
    /// What failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The linked deployment.
    #[serde(default)]
    pub deployment: Option<DeploymentStatus>,
}

impl SessionStatus {
    /// Whether the session will never be linked (error or unprocessable).
    pub fn has_failed(&self) -> bool {
        self.error.as_deref().is_some_and(|e| !e.is_empty())
            || self.status.to_ascii_lowercase().contains("error")
            || self.status.to_ascii_lowercase().contains("unprocessable")
    }
}

/// `GET /v1/app/{app_name}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AppInfo {
    /// The application name.
    pub name: String,
    /// Whether deployments of it may start.
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

/// A port of an app version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VersionPort {
    /// The port the game server binds.
    pub port: u16,
    /// Its protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Its name (the server plugin looks for this name).
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /v1/app/{app_name}/version/{version_name}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VersionInfo {
    /// The version name.
    pub name: String,
    /// Whether deployments of it may start.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// The container image.
    #[serde(default)]
    pub docker_image: Option<String>,
    /// The image tag.
    #[serde(default)]
    pub docker_tag: Option<String>,
    /// Arguments given to the server at start.
    #[serde(default)]
    pub arguments: Option<String>,
    /// Ports the server listens on.
    #[serde(default)]
    pub ports: Vec<VersionPort>,
}

/// A new app version (`POST /v1/app/{app_name}/version`): the image and its game port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewVersion {
    /// The version name (the game version).
    pub name: String,
    /// The registry, e.g. `registry.edgegap.com`.
    pub docker_repository: String,
    /// The image within it, e.g. `my-project/my-game`.
    pub docker_image: String,
    /// The image tag (never `latest`: a version is one image).
    pub docker_tag: String,
    /// Whether deployments of it may start.
    pub is_active: bool,
    /// vCPU units (1024 = one vCPU).
    pub req_cpu: u32,
    /// Memory, MB.
    pub req_memory: u32,
    /// The game port.
    pub ports: Vec<NewVersionPort>,
    /// Start arguments (e.g. the seed's `--ca_contents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A port of a [`NewVersion`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewVersionPort {
    /// The container port.
    pub port: u16,
    /// `UDP`, `TCP`, …
    pub protocol: String,
    /// Its name (`gameport` for Bevygap).
    pub name: String,
    /// Whether Edgegap checks it before calling the deployment ready.
    pub to_check: bool,
    /// Whether Edgegap terminates TLS for it.
    pub tls_upgrade: bool,
}

/// An image reference split as Edgegap wants it: `registry/path/image:tag` →
/// (`registry`, `path/image`, `tag`). The tag is required, and may not be `latest`.
pub fn split_image(reference: &str) -> Result<(String, String, String), String> {
    let (name, tag) = reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .ok_or_else(|| {
            format!("`{reference}` has no tag; give the version's own, e.g. `:1.2.3`")
        })?;
    if tag.is_empty() || tag == "latest" {
        return Err(format!(
            "`{reference}`: a version is one image; tag it with the version, not `latest`"
        ));
    }
    let (registry, image) = name
        .split_once('/')
        .filter(|(registry, image)| registry.contains('.') && !image.is_empty())
        .ok_or_else(|| format!("`{reference}` names no registry (e.g. registry.edgegap.com/…)"))?;
    Ok((registry.to_owned(), image.to_owned(), tag.to_owned()))
}

/// The answer to `PATCH /v1/app/{app_name}/version/{version_name}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VersionUpdated {
    /// Whether the update applied.
    #[serde(default)]
    pub success: bool,
    /// The version as it is now.
    pub version: VersionInfo,
}

/// One deployment of `GET /v1/deployments`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeploymentSummary {
    /// The deployment's id.
    pub request_id: String,
    /// Whether it is ready.
    #[serde(default)]
    pub ready: bool,
    /// The public IP.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The host name.
    #[serde(default)]
    pub fqdn: Option<String>,
    /// When it started.
    #[serde(default)]
    pub start_time: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `GET /v1/deployments`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeploymentList {
    /// This page of deployments.
    #[serde(default)]
    pub data: Vec<DeploymentSummary>,
    /// Deployments in total.
    #[serde(default)]
    pub total_count: Option<u64>,
    /// Where this page is.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// The page position of a list answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pagination {
    /// This page's number (from 1).
    #[serde(default)]
    pub number: Option<u32>,
    /// The next page's number, if any.
    #[serde(default)]
    pub next_page_number: Option<u32>,
    /// Whether more pages follow.
    #[serde(default)]
    pub has_next: bool,
}
