//! Parts of Edgegap's deployment object that game servers (context API, `ARBITRIUM_PORTS_MAPPING`)
//! and the matchmaker (`GET /v1/status/{request_id}`) both read, with Edgegap's field names.
//! Unknown fields are ignored and optional ones may be missing.

use std::collections::HashMap;

use serde::Deserialize;

/// One port of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortMapping {
    /// Port inside the container (what the server binds).
    pub internal: u16,
    /// Port on the public IP (what players dial).
    pub external: u16,
    /// `UDP`, `TCP`, `TCP/UDP`, `HTTP`, `HTTPS`, `WS`, `WSS`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The port's name in the app version.
    #[serde(default)]
    pub name: Option<String>,
}

/// Where a deployment runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct DeploymentLocation {
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// Continent.
    #[serde(default)]
    pub continent: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default)]
    pub longitude: Option<f64>,
}

/// Where players find a deployment: the fields the status answer and the context API share.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct DeploymentEndpoint {
    /// The public IP players dial.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The deployment's host name.
    #[serde(default)]
    pub fqdn: Option<String>,
    /// Ports by name.
    #[serde(default)]
    pub ports: HashMap<String, PortMapping>,
    /// Where it runs.
    #[serde(default)]
    pub location: Option<DeploymentLocation>,
}
