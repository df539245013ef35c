//! Who this game server is: its deployment context, from the local fleet's environment.
//!
//! The local fleet sets [`bevygap_shared::context_env`] variables. Values are read through a
//! lookup function so binaries pass `std::env::var` and tests pass a map.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bevygap_shared::context_env;
use bevygap_shared::names::KeyToken;
use thiserror::Error;

/// What the server needs to know about its deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentContext {
    /// The deployment id (lease key).
    pub deployment_id: KeyToken,
    /// The game (app) name.
    pub app_name: String,
    /// The game version.
    pub app_version: String,
    /// The address clients dial.
    pub public_addr: SocketAddr,
    /// The address to bind.
    pub bind_addr: SocketAddr,
    /// Seats to offer.
    pub capacity: u32,
    /// The host name clients may dial instead of the IP, if the fleet gives one.
    pub fqdn: Option<String>,
    /// Where the server runs, if the fleet says.
    pub location: Option<bevygap_shared::schema::Location>,
    /// The process that started this server (the local fleet's matchmaker): when it is no longer
    /// the parent, the server stops itself rather than run on unowned.
    pub parent_pid: Option<u32>,
}

/// The context is missing or malformed. The fleet (or whoever started the server) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A required variable is not set.
    #[error("{0} is not set; start the server through a Bevygap fleet or set it by hand")]
    Missing(&'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ContextError> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ContextError::Missing(name))
}

pub(crate) fn parsed<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<T, ContextError>
where
    T::Err: std::fmt::Display,
{
    required(lookup, name)?
        .trim()
        .parse()
        .map_err(|e: T::Err| ContextError::Invalid {
            name,
            reason: e.to_string(),
        })
}

impl DeploymentContext {
    /// Reads the local fleet's variables. `default_capacity` applies when `BEVYGAP_CAPACITY` is
    /// unset.
    pub fn from_local_env(
        lookup: impl Fn(&str) -> Option<String>,
        default_capacity: u32,
    ) -> Result<Self, ContextError> {
        let deployment_id = KeyToken::new(
            "deployment id",
            required(&lookup, context_env::DEPLOYMENT_ID)?,
        )
        .map_err(|e| ContextError::Invalid {
            name: context_env::DEPLOYMENT_ID,
            reason: e.to_string(),
        })?;
        let public_ip: IpAddr = parsed(&lookup, context_env::PUBLIC_IP)?;
        let port: u16 = parsed(&lookup, context_env::PORT)?;
        let capacity = match lookup(context_env::CAPACITY) {
            Some(_) => parsed(&lookup, context_env::CAPACITY)?,
            None => default_capacity,
        };
        if capacity == 0 {
            return Err(ContextError::Invalid {
                name: context_env::CAPACITY,
                reason: "must be at least 1".into(),
            });
        }
        let bind_ip = if public_ip.is_loopback() {
            public_ip
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        Ok(Self {
            deployment_id,
            app_name: required(&lookup, context_env::APP_NAME)?,
            app_version: required(&lookup, context_env::APP_VERSION)?,
            public_addr: SocketAddr::new(public_ip, port),
            bind_addr: SocketAddr::new(bind_ip, port),
            capacity,
            fqdn: None,
            location: None,
            parent_pid: match lookup(context_env::PARENT_PID) {
                Some(_) => Some(parsed(&lookup, context_env::PARENT_PID)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FULL: &[(&str, &str)] = &[
        ("BEVYGAP_DEPLOYMENT_ID", "local-1"),
        ("BEVYGAP_PUBLIC_IP", "127.0.0.1"),
        ("BEVYGAP_PORT", "6420"),
        ("BEVYGAP_APP_NAME", "spaceships"),
        ("BEVYGAP_APP_VERSION", "1"),
    ];

    #[test]
    fn the_local_fleet_context_is_read() {
        let ctx = DeploymentContext::from_local_env(env(FULL), 8).unwrap();
        assert_eq!(ctx.deployment_id.as_str(), "local-1");
        assert_eq!(ctx.public_addr, "127.0.0.1:6420".parse().unwrap());
        assert_eq!(ctx.bind_addr, ctx.public_addr);
        assert_eq!(ctx.capacity, 8);
    }

    #[test]
    fn missing_or_bad_values_are_typed_errors() {
        assert_eq!(
            DeploymentContext::from_local_env(env(&FULL[1..]), 8),
            Err(ContextError::Missing("BEVYGAP_DEPLOYMENT_ID"))
        );
        let mut bad = FULL.to_vec();
        bad[2] = ("BEVYGAP_PORT", "70000");
        assert!(matches!(
            DeploymentContext::from_local_env(env(&bad), 8),
            Err(ContextError::Invalid {
                name: "BEVYGAP_PORT",
                ..
            })
        ));
        let mut bad = FULL.to_vec();
        bad[0] = ("BEVYGAP_DEPLOYMENT_ID", "a.b");
        assert!(DeploymentContext::from_local_env(env(&bad), 8).is_err());
    }
}
