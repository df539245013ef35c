//! The example game server: lightyear + Bevygap, headless.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevygap_server_plugin::context::DeploymentContext;
use bevygap_server_plugin::edgegap_context::{self, EdgegapSettings};
use bevygap_server_plugin::{BevygapServerConfig, BevygapServerPlugin};
use bevygap_shared::context_env;
use bevygap_shared::nats::NatsSettings;
use bevygap_shared::private_key::PrivateKey;
use bevygap_shared::schema::Transport;
use bevygap_shared::secret::Secret;
use clap::Parser;
use lightyear::prelude::server::ServerPlugins;

use crate::{GAME, PROTOCOL_ID, TICK, VERSION};

/// The example server's flags (the local fleet passes most of them through the environment).
#[derive(Debug, Parser)]
#[command(name = "example_server", about = "The Bevygap example game server")]
pub struct ServerArgs {
    /// The lightyear private key (64 hex characters or 32 comma-separated bytes).
    #[arg(long, env = "LIGHTYEAR_PRIVATE_KEY", hide_env_values = true)]
    pub lightyear_private_key: Secret,
    /// The lightyear protocol id.
    #[arg(long, env = "LIGHTYEAR_PROTOCOL_ID", default_value_t = PROTOCOL_ID)]
    pub lightyear_protocol_id: u64,
    /// Accept an all-zero key (local development only).
    #[arg(long, env = "BEVYGAP_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// `udp` or `webtransport`.
    #[arg(long, env = "BEVYGAP_TRANSPORT", default_value = "udp")]
    pub transport: String,
    /// The NATS CA as PEM text (the seed's workaround for short environment variables).
    #[arg(
        long = "ca_contents",
        id = "seed_ca_contents",
        allow_hyphen_values = true
    )]
    pub seed_ca_contents: Option<Secret>,
    /// Seats when the fleet does not say.
    #[arg(long, default_value_t = 8)]
    pub capacity: u32,
    /// Accepted for older launch scripts and ignored: each reservation carries its own expiry in
    /// the seat ledger, and the matchmaker owns the buckets' settings.
    #[arg(long, env = "BEVYGAP_TOKEN_EXPIRE_SECS", hide = true)]
    pub token_expire_secs: Option<u64>,
    /// Seconds a peer may send packets without finishing the handshake before its link is dropped.
    #[arg(long, env = "BEVYGAP_UNCONNECTED_LINK_TTL_SECS", default_value_t = 30)]
    pub unconnected_link_ttl_secs: u64,
    /// On Edgegap: the name of the game port in the app version.
    #[arg(long, env = "BEVYGAP_EDGEGAP_PORT_NAME", default_value = "gameport")]
    pub edgegap_port_name: String,
    /// On Edgegap without a NATS user: `edgegap-context` proves this deployment to the
    /// matchmakers' auth callout with its Edgegap context, for a NATS user scoped to it.
    #[arg(long, env = "BEVYGAP_NATS_AUTH")]
    pub nats_auth: Option<String>,
    /// NATS settings.
    #[command(flatten)]
    pub nats: NatsSettings,
}

impl ServerArgs {
    /// The plugin configuration, with the context read from the environment.
    pub fn into_config(self) -> anyhow::Result<BevygapServerConfig> {
        let key = PrivateKey::parse(self.lightyear_private_key.expose())?
            .check_not_placeholder(self.dev)?;
        let env = |k: &str| std::env::var(k).ok();
        let context = if edgegap_context::on_edgegap(env) {
            let settings = EdgegapSettings {
                port_name: self.edgegap_port_name.clone(),
                app_name: env(context_env::APP_NAME).unwrap_or_else(|| GAME.into()),
                app_version: env(context_env::APP_VERSION).unwrap_or_else(|| VERSION.into()),
                capacity: self.capacity,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(edgegap_context::resolve(env, &settings))?
        } else {
            DeploymentContext::from_local_env(env, self.capacity)?
        };
        let transport = match self.transport.as_str() {
            "udp" => Transport::Udp,
            "webtransport" => Transport::WebTransport,
            other => anyhow::bail!("--transport must be udp or webtransport, not {other}"),
        };
        let mut nats = self.nats;
        let lookup = |k: &str| match k {
            context_env::NATS_AUTH => self.nats_auth.clone(),
            _ => env(k),
        };
        if nats.user.is_none()
            && edgegap_context::on_edgegap(env)
            && let Some((user, password)) = edgegap_context::nats_credentials(lookup, &context)?
        {
            nats.user = Some(user);
            nats.password = Some(password);
        }
        if let Some(ca) = self.seed_ca_contents {
            nats.ca = None;
            nats.ca_contents = Some(ca);
            nats.insecure = false;
        }
        Ok(BevygapServerConfig {
            nats,
            context,
            transport,
            protocol_id: self.lightyear_protocol_id,
            private_key: *key.expose(),
            heartbeat: Duration::from_secs(2),
            unconnected_link_ttl: Duration::from_secs(self.unconnected_link_ttl_secs.max(1)),
        })
    }
}

/// Builds the headless server app.
pub fn server_app(config: BevygapServerConfig) -> App {
    assemble(config, true)
}

/// [`server_app`] without its log subscriber (for tests that run servers in-process).
pub fn server_app_without_log(config: BevygapServerConfig) -> App {
    assemble(config, false)
}

fn assemble(config: BevygapServerConfig, log: bool) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(TICK)));
    if log {
        // Before the Bevygap plugin, whose start-up errors should reach the log.
        app.add_plugins(LogPlugin::default());
    }
    app.add_plugins(ServerPlugins {
        tick_duration: TICK,
    })
    .add_plugins(BevygapServerPlugin { config });
    app
}

#[cfg(test)]
mod tests {
    use super::ServerArgs;
    use clap::CommandFactory;

    #[test]
    fn the_flags_are_consistent() {
        ServerArgs::command().debug_assert();
    }
}
