//! Real game server processes for deployments, with the environment Edgegap gives containers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::ops::RangeInclusive;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;
use tracing::{info, warn};

/// How deployments start game servers on this machine.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program and its arguments; the app version's `arguments` are appended.
    pub command: Vec<String>,
    /// The public IP deployments report (and servers are reached on).
    pub public_ip: IpAddr,
    /// Ports handed out to deployments (internal and external are the same: no NAT here).
    pub ports: RangeInclusive<u16>,
    /// Extra environment for every server.
    pub env: Vec<(String, String)>,
    /// How long a server may take to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// Let servers write to the replica's stdout and stderr (off: their output is discarded).
    pub inherit_output: bool,
    /// Map ports as Edgegap does: the server binds an internal port and players dial a different
    /// external one, relayed (UDP ports only). Off: both are the same port.
    pub port_mapping: bool,
}

impl Default for Launcher {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: 7400..=7499,
            env: Vec::new(),
            stop_grace: Duration::from_secs(5),
            inherit_output: false,
            port_mapping: true,
        }
    }
}

/// A port of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAssignment {
    /// The port's name in the app version.
    pub name: String,
    /// What the server binds.
    pub internal: u16,
    /// What players dial.
    pub external: u16,
    /// `UDP`, `TCP`, ….
    pub protocol: String,
}

/// What a game server process is told about its deployment.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The deployment id.
    pub request_id: String,
    /// Ports by name.
    pub ports: BTreeMap<String, PortAssignment>,
    /// `ARBITRIUM_CONTEXT_URL`.
    pub context_url: String,
    /// `ARBITRIUM_CONTEXT_TOKEN`.
    pub context_token: String,
    /// The deployment's tags.
    pub tags: Vec<String>,
    /// The version's start arguments.
    pub arguments: Option<String>,
    /// Version and request environment variables.
    pub env: Vec<(String, String)>,
}

/// A running game server; [`Process::stop`] sends SIGTERM, then kills after the grace period.
#[derive(Debug)]
pub struct Process {
    stop: watch::Sender<bool>,
    exited: watch::Receiver<bool>,
}

impl Process {
    /// Asks the process to exit.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether the process has exited (on its own or after [`Process::stop`]).
    pub fn has_exited(&self) -> bool {
        *self.exited.borrow()
    }
}

impl Launcher {
    /// A free port of the range not in `taken`.
    pub fn free_port(&self, taken: &[u16]) -> Option<u16> {
        self.ports
            .clone()
            .find(|port| !taken.contains(port) && UdpSocket::bind((self.public_ip, *port)).is_ok())
    }

    /// Starts the game server of a deployment.
    pub fn launch(&self, spec: &LaunchSpec) -> std::io::Result<Process> {
        let Some((program, base_args)) = self.command.split_first() else {
            return Err(std::io::Error::other("the launcher has no command"));
        };
        let mut command = Command::new(program);
        command
            .args(base_args)
            .args(split_arguments(
                spec.arguments.as_deref().unwrap_or_default(),
            ))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .envs(arbitrium_env(spec, self.public_ip))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if !self.inherit_output {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        info!(
            "replica deployment `{}` started game server pid {pid:?}",
            spec.request_id
        );
        let (stop, mut stopping) = watch::channel(false);
        let (exited_tx, exited) = watch::channel(false);
        let grace = self.stop_grace;
        let request_id = spec.request_id.clone();
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    info!("replica deployment `{request_id}`: game server exited ({status:?})");
                    exited_tx.send_replace(true);
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                warn!("replica deployment `{request_id}`: game server ignored SIGTERM; killing it");
                let _ = child.kill().await;
            }
            exited_tx.send_replace(true);
        });
        Ok(Process { stop, exited })
    }
}

/// The `ARBITRIUM_*` variables Edgegap sets in a deployment's container.
pub fn arbitrium_env(spec: &LaunchSpec, public_ip: IpAddr) -> Vec<(String, String)> {
    let ports: serde_json::Map<String, serde_json::Value> = spec
        .ports
        .values()
        .map(|p| {
            (
                p.name.clone(),
                serde_json::json!({
                    "name": p.name, "internal": p.internal, "external": p.external, "protocol": p.protocol,
                }),
            )
        })
        .collect();
    let mut env = vec![
        ("ARBITRIUM_REQUEST_ID".to_owned(), spec.request_id.clone()),
        ("ARBITRIUM_PUBLIC_IP".to_owned(), public_ip.to_string()),
        (
            "ARBITRIUM_PORTS_MAPPING".to_owned(),
            serde_json::json!({ "ports": ports }).to_string(),
        ),
        ("ARBITRIUM_CONTEXT_URL".to_owned(), spec.context_url.clone()),
        (
            "ARBITRIUM_CONTEXT_TOKEN".to_owned(),
            spec.context_token.clone(),
        ),
        ("ARBITRIUM_DEPLOYMENT_TAGS".to_owned(), spec.tags.join(",")),
        (
            "ARBITRIUM_DEPLOYMENT_LOCATION".to_owned(),
            location().to_string(),
        ),
    ];
    for port in spec.ports.values() {
        let name = port.name.to_ascii_uppercase().replace([' ', '-'], "_");
        env.push((
            format!("ARBITRIUM_PORT_{name}_INTERNAL"),
            port.internal.to_string(),
        ));
        env.push((
            format!("ARBITRIUM_PORT_{name}_EXTERNAL"),
            port.external.to_string(),
        ));
        env.push((
            format!("ARBITRIUM_PORT_{name}_PROTOCOL"),
            port.protocol.clone(),
        ));
    }
    env
}

/// Where every replica deployment claims to run.
pub fn location() -> serde_json::Value {
    serde_json::json!({
        "city": "Loopback", "country": "Localhost", "continent": "Local",
        "administrative_division": "Local", "timezone": "UTC",
        "latitude": 0.0, "longitude": 0.0,
    })
}

/// Splits start arguments as a shell would for simple quoting: whitespace separates words,
/// single and double quotes group them (as in the seed's `--ca_contents '-----BEGIN …'`).
pub fn split_arguments(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_like_a_shell_for_simple_quotes() {
        assert_eq!(
            split_arguments("--ca_contents '-----BEGIN CERT-----\nAB CD' --x \"a b\" ''"),
            [
                "--ca_contents",
                "-----BEGIN CERT-----\nAB CD",
                "--x",
                "a b",
                ""
            ]
        );
        assert!(split_arguments("   ").is_empty());
    }
}
