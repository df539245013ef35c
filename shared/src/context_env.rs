//! Environment variables through which a fleet tells a game server who it is.
//!
//! The local fleet sets these for each process it starts; the server plugin reads them (Edgegap
//! deployments use `ARBITRIUM_*` variables instead).

/// The deployment id the server uses as its lease key.
pub const DEPLOYMENT_ID: &str = "BEVYGAP_DEPLOYMENT_ID";
/// The IP clients dial.
pub const PUBLIC_IP: &str = "BEVYGAP_PUBLIC_IP";
/// The port the server listens on (and clients dial).
pub const PORT: &str = "BEVYGAP_PORT";
/// The game (app) name.
pub const APP_NAME: &str = "BEVYGAP_APP_NAME";
/// The game version.
pub const APP_VERSION: &str = "BEVYGAP_APP_VERSION";
/// Seats the server should offer, if the fleet decides it.
pub const CAPACITY: &str = "BEVYGAP_CAPACITY";
/// The pid of the matchmaker that started the server (local fleet): a server whose parent is no
/// longer this process stops itself, so no local server outlives its matchmaker unowned.
pub const PARENT_PID: &str = "BEVYGAP_PARENT_PID";
/// How a game server on Edgegap authenticates to NATS when it has no user of its own: the value
/// [`NATS_AUTH_EDGEGAP_CONTEXT`] makes it prove its deployment to the matchmakers' auth callout
/// with its Edgegap context (user `{app}:{request id}`, password
/// `{EDGEGAP_CONTEXT_PASSWORD}{n}:{context token}`).
pub const NATS_AUTH: &str = "BEVYGAP_NATS_AUTH";
/// The [`NATS_AUTH`] value for the Edgegap context proof.
pub const NATS_AUTH_EDGEGAP_CONTEXT: &str = "edgegap-context";
/// The prefix of a NATS password that is an Edgegap context proof.
pub const EDGEGAP_CONTEXT_PASSWORD: &str = "edgegap-context:";
