//! Runs the offline Edgegap API replica, optionally starting real game servers per deployment.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bevygap_edgegap_replica::{AppSpec, Launcher, ReplicaConfig, VersionSpec, start};
use clap::Parser;

/// An offline replica of the Edgegap API endpoints Bevygap uses.
#[derive(Debug, Parser)]
// No automatic `--version`: `--version` names the app versions that exist.
#[command(name = "edgegap_replica", about)]
struct Args {
    /// Address to listen on (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:7300")]
    listen: SocketAddr,
    /// The API key clients must send (as `token <key>`).
    #[arg(long, env = "EDGEGAP_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The application that exists.
    #[arg(long, env = "APP_NAME")]
    app: String,
    /// Its versions (comma-separated).
    #[arg(long, env = "APP_VERSION", value_delimiter = ',', required = true)]
    version: Vec<String>,
    /// Milliseconds from deploy to `Status.READY`; negative: never ready.
    #[arg(long, default_value_t = 500, allow_negative_numbers = true)]
    ready_after_ms: i64,
    /// Deployments end in `Status.ERROR` instead.
    #[arg(long)]
    fail_deployments: bool,
    /// Seats per deployment for seat sessions.
    #[arg(long, default_value_t = 8)]
    sockets: u32,
    /// Game server command started per deployment (space-separated); none: no processes.
    #[arg(long)]
    server_cmd: Option<String>,
    /// Public IP of launched servers.
    #[arg(long, default_value = "127.0.0.1")]
    public_ip: IpAddr,
    /// Port range of launched servers, `FIRST-LAST`.
    #[arg(long, default_value = "7400-7499")]
    ports: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let (first, last) = args
        .ports
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("--ports expects FIRST-LAST"))?;
    let launcher = args.server_cmd.as_deref().map(|cmd| Launcher {
        command: cmd.split_whitespace().map(str::to_owned).collect(),
        public_ip: args.public_ip,
        ports: first.trim().parse().unwrap_or(7400)..=last.trim().parse().unwrap_or(7499),
        inherit_output: true,
        ..Launcher::default()
    });
    let config = ReplicaConfig {
        api_key: args.api_key.trim().trim_start_matches("token ").to_owned(),
        apps: vec![AppSpec::new(
            args.app,
            args.version.into_iter().map(VersionSpec::new).collect(),
        )],
        ready_after: u64::try_from(args.ready_after_ms)
            .ok()
            .map(Duration::from_millis),
        fail_deployments: args.fail_deployments,
        sockets: args.sockets,
        enforce_rate_limits: true,
        launcher,
        max_page_size: 100,
        listen: args.listen,
    };
    let replica = start(config).await?;
    tracing::info!(
        "Edgegap replica on {}; point the matchmaker at it with --edgegap-url {}",
        replica.url(),
        replica.url()
    );
    tokio::signal::ctrl_c().await?;
    drop(replica);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent() {
        Args::command().debug_assert();
    }
}
