//! The deployment context on Edgegap: `ARBITRIUM_*` variables and the context API.
//!
//! Edgegap starts the container with `ARBITRIUM_REQUEST_ID`, `ARBITRIUM_PUBLIC_IP`,
//! `ARBITRIUM_PORTS_MAPPING` (JSON) and `ARBITRIUM_CONTEXT_URL` / `ARBITRIUM_CONTEXT_TOKEN`. The
//! context API (a `GET` with `Authorization: <token>`) adds the FQDN and location. The server binds
//! the port's internal number and publishes the public IP with the external one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bevygap_shared::context_env;
pub use bevygap_shared::edgegap::{
    DeploymentEndpoint, DeploymentLocation as EdgegapLocation, PortMapping,
};
use bevygap_shared::names::KeyToken;
use bevygap_shared::schema::Location;
use bevygap_shared::secret::Secret;
use serde::Deserialize;

use crate::context::{ContextError, DeploymentContext, required};

/// The deployment id.
pub const REQUEST_ID: &str = "ARBITRIUM_REQUEST_ID";
/// The public IP.
pub const PUBLIC_IP: &str = "ARBITRIUM_PUBLIC_IP";
/// The port mapping, JSON.
pub const PORTS_MAPPING: &str = "ARBITRIUM_PORTS_MAPPING";
/// The context API URL.
pub const CONTEXT_URL: &str = "ARBITRIUM_CONTEXT_URL";
/// The context API token.
pub const CONTEXT_TOKEN: &str = "ARBITRIUM_CONTEXT_TOKEN";

/// What the context API returns (the fields Bevygap uses).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct EdgegapContext {
    /// The deployment's request id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Public IP, FQDN, ports and location.
    #[serde(flatten)]
    pub endpoint: DeploymentEndpoint,
}

#[derive(Deserialize)]
struct PortsMappingEnv {
    ports: HashMap<String, PortMapping>,
}

/// What the game knows about itself on Edgegap.
#[derive(Debug, Clone)]
pub struct EdgegapSettings {
    /// The name of the game port in the Edgegap app version (e.g. `gameport`).
    pub port_name: String,
    /// The game (app) name.
    pub app_name: String,
    /// The game version.
    pub app_version: String,
    /// Seats to offer.
    pub capacity: u32,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ContextError {
    ContextError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn pick_port(
    ports: &HashMap<String, PortMapping>,
    settings: &EdgegapSettings,
) -> Result<PortMapping, ContextError> {
    ports
        .get(&settings.port_name)
        .or_else(|| (ports.len() == 1).then(|| ports.values().next()).flatten())
        .cloned()
        .ok_or_else(|| {
            invalid(
                PORTS_MAPPING,
                format!(
                    "no port named `{}` (found: {}); name the game port in the Edgegap app version",
                    settings.port_name,
                    ports.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
}

/// Whether the process runs on Edgegap.
pub fn on_edgegap(lookup: impl Fn(&str) -> Option<String>) -> bool {
    lookup(REQUEST_ID).is_some()
}

/// The context from the `ARBITRIUM_*` variables alone.
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
    settings: &EdgegapSettings,
) -> Result<DeploymentContext, ContextError> {
    let mapping: PortsMappingEnv = serde_json::from_str(&required(&lookup, PORTS_MAPPING)?)
        .map_err(|e| invalid(PORTS_MAPPING, e.to_string()))?;
    let api = EdgegapContext {
        request_id: Some(required(&lookup, REQUEST_ID)?),
        endpoint: DeploymentEndpoint {
            public_ip: Some(required(&lookup, PUBLIC_IP)?),
            ports: mapping.ports,
            ..DeploymentEndpoint::default()
        },
    };
    from_api(api, settings)
}

/// The context from a context API answer.
pub fn from_api(
    api: EdgegapContext,
    settings: &EdgegapSettings,
) -> Result<DeploymentContext, ContextError> {
    let request_id = api.request_id.ok_or(ContextError::Missing(REQUEST_ID))?;
    let deployment_id = KeyToken::new("deployment id", request_id)
        .map_err(|e| invalid(REQUEST_ID, e.to_string()))?;
    let endpoint = api.endpoint;
    let public_ip: IpAddr = endpoint
        .public_ip
        .ok_or(ContextError::Missing(PUBLIC_IP))?
        .parse()
        .map_err(|e: std::net::AddrParseError| invalid(PUBLIC_IP, e.to_string()))?;
    let port = pick_port(&endpoint.ports, settings)?;
    let location = endpoint.location.map(|l| Location {
        region: l
            .city
            .clone()
            .or_else(|| l.country.clone())
            .or(l.continent.clone())
            .unwrap_or_default(),
        country: l.country,
        latitude: l.latitude,
        longitude: l.longitude,
    });
    Ok(DeploymentContext {
        deployment_id,
        app_name: settings.app_name.clone(),
        app_version: settings.app_version.clone(),
        public_addr: SocketAddr::new(public_ip, port.external),
        bind_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.internal),
        capacity: settings.capacity,
        fqdn: endpoint.fqdn,
        location,
        parent_pid: None,
    })
}

/// Asks the context API. The token is sent as the `Authorization` header and never logged.
pub async fn fetch(url: &str, token: &str) -> Result<EdgegapContext, ContextError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| invalid(CONTEXT_URL, e.to_string()))?;
    let response = client
        .get(url)
        .header(reqwest::header::AUTHORIZATION, token)
        .send()
        .await
        .map_err(|e| invalid(CONTEXT_URL, format!("unreachable: {}", e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(invalid(
            CONTEXT_URL,
            format!("answered {status}; check ARBITRIUM_CONTEXT_TOKEN"),
        ));
    }
    response
        .json::<EdgegapContext>()
        .await
        .map_err(|e| invalid(CONTEXT_URL, format!("unexpected answer: {e}")))
}

/// The NATS user and password a game server on Edgegap proves its deployment with, when the
/// matchmaker asked for it ([`context_env::NATS_AUTH`] is
/// [`context_env::NATS_AUTH_EDGEGAP_CONTEXT`]): user `{app}:{request id}`, password
/// `edgegap-context:{n}:{token}` from `ARBITRIUM_CONTEXT_URL` (its last path segment) and
/// `ARBITRIUM_CONTEXT_TOKEN`. The matchmakers' auth callout asks Edgegap whether that context is
/// the deployment's, and signs a NATS user scoped to it.
pub fn nats_credentials(
    lookup: impl Fn(&str) -> Option<String>,
    context: &DeploymentContext,
) -> Result<Option<(String, Secret)>, ContextError> {
    if lookup(context_env::NATS_AUTH).as_deref() != Some(context_env::NATS_AUTH_EDGEGAP_CONTEXT) {
        return Ok(None);
    }
    let url = required(&lookup, CONTEXT_URL)?;
    let token = required(&lookup, CONTEXT_TOKEN)?;
    let n = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| invalid(CONTEXT_URL, "its last path segment is not alphanumeric"))?
        .to_owned();
    Ok(Some((
        format!("{}:{}", context.app_name, context.deployment_id),
        Secret::new(format!(
            "{}{n}:{token}",
            context_env::EDGEGAP_CONTEXT_PASSWORD
        )),
    )))
}

/// The context on Edgegap: the context API when reachable (FQDN, location), else the variables.
pub async fn resolve(
    lookup: impl Fn(&str) -> Option<String>,
    settings: &EdgegapSettings,
) -> Result<DeploymentContext, ContextError> {
    if let (Some(url), Some(token)) = (lookup(CONTEXT_URL), lookup(CONTEXT_TOKEN)) {
        match fetch(&url, &token).await {
            Ok(api) => {
                let mut api = api;
                if api.request_id.is_none() {
                    api.request_id = lookup(REQUEST_ID);
                }
                if api.endpoint.public_ip.is_none() {
                    api.endpoint.public_ip = lookup(PUBLIC_IP);
                }
                return from_api(api, settings);
            }
            Err(error) => {
                tracing::warn!("Edgegap context API: {error}; using the ARBITRIUM_* variables")
            }
        }
    }
    from_env(lookup, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EdgegapSettings {
        EdgegapSettings {
            port_name: "gameport".into(),
            app_name: "spaceships".into(),
            app_version: "1".into(),
            capacity: 8,
        }
    }

    #[test]
    fn the_variables_give_public_ip_external_port_and_internal_bind() {
        let env = |k: &str| {
            match k {
            REQUEST_ID => Some("9f3a1c2b7d4e".into()),
            PUBLIC_IP => Some("203.0.113.9".into()),
            PORTS_MAPPING => Some(
                r#"{"ports":{"gameport":{"name":"gameport","internal":6420,"external":31504,"protocol":"UDP"}}}"#.into(),
            ),
            _ => None,
        }
        };
        let ctx = from_env(env, &settings()).unwrap();
        assert_eq!(ctx.deployment_id.as_str(), "9f3a1c2b7d4e");
        assert_eq!(ctx.public_addr, "203.0.113.9:31504".parse().unwrap());
        assert_eq!(ctx.bind_addr, "0.0.0.0:6420".parse().unwrap());
    }

    #[test]
    fn the_nats_proof_comes_from_the_context_and_a_bad_context_url_is_a_typed_error() {
        let env = |url: &'static str| {
            move |k: &str| match k {
                REQUEST_ID => Some("9f3a1c2b7d4e".into()),
                PUBLIC_IP => Some("203.0.113.9".into()),
                PORTS_MAPPING => {
                    Some(r#"{"ports":{"gameport":{"internal":6420,"external":31504}}}"#.into())
                }
                CONTEXT_URL => Some(url.into()),
                CONTEXT_TOKEN => Some("tok".into()),
                context_env::NATS_AUTH => Some(context_env::NATS_AUTH_EDGEGAP_CONTEXT.into()),
                _ => None,
            }
        };
        let good = env("https://api.edgegap.com/v1/context/9f3a1c2b7d4e/17");
        let ctx = from_env(good, &settings()).unwrap();
        let (user, password) = nats_credentials(good, &ctx).unwrap().unwrap();
        assert_eq!(user, "spaceships:9f3a1c2b7d4e");
        assert_eq!(password.expose(), "edgegap-context:17:tok");
        for bad in [
            "https://api.edgegap.com/v1/context/9f3a1c2b7d4e/..",
            "https://x/v1/context/id/1?a=b",
        ] {
            let refused = nats_credentials(env(bad), &ctx);
            assert!(
                matches!(
                    refused,
                    Err(ContextError::Invalid {
                        name: CONTEXT_URL,
                        ..
                    })
                ),
                "{bad}: {refused:?}"
            );
        }
        // Without BEVYGAP_NATS_AUTH, no proof is made.
        let asked_not = |k: &str| (k != context_env::NATS_AUTH).then(|| good(k)).flatten();
        assert!(nats_credentials(asked_not, &ctx).unwrap().is_none());
    }

    #[test]
    fn a_missing_port_name_is_explained() {
        let api = EdgegapContext {
            request_id: Some("abc".into()),
            endpoint: DeploymentEndpoint {
                public_ip: Some("203.0.113.9".into()),
                ports: HashMap::from([
                    (
                        "a".into(),
                        PortMapping {
                            internal: 1,
                            external: 2,
                            protocol: None,
                            name: None,
                        },
                    ),
                    (
                        "b".into(),
                        PortMapping {
                            internal: 3,
                            external: 4,
                            protocol: None,
                            name: None,
                        },
                    ),
                ]),
                ..Default::default()
            },
        };
        let err = from_api(api, &settings()).unwrap_err();
        assert!(err.to_string().contains("gameport"), "{err}");
        assert!(!on_edgegap(|_| None));
    }
}
