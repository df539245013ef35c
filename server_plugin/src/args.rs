//! The settings every Bevygap game server starts with, as flags and environment variables a
//! game flattens into its own `clap` parser: [`BevygapServerArgs`].
//!
//! ```no_run
//! use bevygap_server_plugin::args::{BevygapServerArgs, ServerDefaults};
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct MyServer {
//!     #[command(flatten)]
//!     bevygap: BevygapServerArgs,
//! }
//!
//! let config = MyServer::parse()
//!     .bevygap
//!     .into_config(&ServerDefaults {
//!         app_name: "my-game".into(),
//!         app_version: "1".into(),
//!         protocol_id: 7,
//!     })
//!     .expect("start-up settings");
//! ```
//!
//! Wherever the server runs, the same call resolves who it is: the local fleet's
//! `BEVYGAP_*` variables, or Edgegap's `ARBITRIUM_*` variables and context API; the NATS CA given
//! as the seed's `--ca_contents` start argument (Edgegap's variables hold 255 bytes); and, on
//! Edgegap with `BEVYGAP_NATS_AUTH=edgegap-context`, a NATS user proved by the deployment's
//! context (see [`edgegap_context::nats_credentials`]).
//!
//! With `--local --dev` none of that is read: the server runs alone on `--local-addr` for
//! development, with the public all-zero key and no NATS (see [`crate::local_mode`]).

use std::net::SocketAddr;
use std::time::Duration;

use bevygap_shared::context_env;
use bevygap_shared::nats::NatsSettings;
use bevygap_shared::private_key::{KeyError, PrivateKey};
use bevygap_shared::schema::Transport;
use bevygap_shared::secret::Secret;
use clap::Args;

use crate::context::{ContextError, DeploymentContext};
use crate::edgegap_context::{self, EdgegapSettings};
use crate::local_mode::{self, DEV_KEY};
use crate::{BevygapServerConfig, ServerMode};

/// A game server's start-up settings. Every field has an environment variable.
#[derive(Debug, Clone, Args)]
pub struct BevygapServerArgs {
    /// The lightyear private key (64 hex characters or 32 comma-separated bytes). Required,
    /// except with --local, which uses the public all-zero key and refuses any other.
    #[arg(long, env = "LIGHTYEAR_PRIVATE_KEY", hide_env_values = true)]
    pub lightyear_private_key: Option<Secret>,
    /// The lightyear protocol id (the game's default when unset).
    #[arg(long, env = "LIGHTYEAR_PROTOCOL_ID")]
    pub lightyear_protocol_id: Option<u64>,
    /// Accept an all-zero key (local development only).
    #[arg(long, env = "BEVYGAP_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// Run alone for development, without matchmaker or NATS: any client with a token for the
    /// public all-zero key may join, up to --capacity. Needs --dev.
    #[arg(long, env = "BEVYGAP_LOCAL", value_parser = clap::builder::BoolishValueParser::new())]
    pub local: bool,
    /// With --local: the address to bind, and the one clients' tokens name.
    #[arg(long, env = "BEVYGAP_LOCAL_ADDR", default_value = "127.0.0.1:6420")]
    pub local_addr: SocketAddr,
    /// `udp` or `webtransport`.
    #[arg(long, env = "BEVYGAP_TRANSPORT", default_value = "udp")]
    pub transport: String,
    /// The NATS CA as PEM text (the seed's start argument, for Edgegap's short variables).
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

/// What the game decides when the fleet does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDefaults {
    /// The app name (the matchmaker's `--app-name`).
    pub app_name: String,
    /// The app version.
    pub app_version: String,
    /// The lightyear protocol id.
    pub protocol_id: u64,
}

/// Why the server cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum ServerArgsError {
    /// The private key is malformed, or the all-zero key without `--dev`.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No private key, and not in local mode.
    #[error(
        "--lightyear-private-key (LIGHTYEAR_PRIVATE_KEY) is required: the key the matchmaker signs tokens with. To run without a matchmaker for development, use --local --dev"
    )]
    MissingKey,
    /// `--local` without `--dev`: local mode's key is public, so it is for development only.
    #[error(
        "--local (BEVYGAP_LOCAL) needs --dev (BEVYGAP_DEV): local mode uses the public all-zero netcode key, so anyone who can reach the server can mint a token and join. Add --dev to run it on your own machine, or drop --local to run under a matchmaker"
    )]
    LocalWithoutDev,
    /// `--local` with a private key other than the all-zero one, which local clients could not
    /// match.
    #[error(
        "--local uses the public all-zero netcode key (clients mint their own tokens with it), so it refuses another --lightyear-private-key. Unset LIGHTYEAR_PRIVATE_KEY for local mode, or drop --local to use your key under a matchmaker"
    )]
    LocalWithKey,
    /// The deployment context is missing or invalid.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// An unknown transport.
    #[error("--transport must be udp or webtransport, not {0}")]
    Transport(String),
    /// The runtime for the Edgegap context API could not start.
    #[error("cannot start a runtime to read the Edgegap context: {0}")]
    Runtime(String),
}

impl BevygapServerArgs {
    /// The plugin configuration, with the context read from the environment (the local fleet's
    /// variables, or Edgegap's and its context API). Blocks while the context API answers.
    pub fn into_config(
        self,
        defaults: &ServerDefaults,
    ) -> Result<BevygapServerConfig, ServerArgsError> {
        self.into_config_with(defaults, |k: &str| std::env::var(k).ok())
    }

    /// [`Self::into_config`] with the environment read through `env`.
    pub fn into_config_with(
        self,
        defaults: &ServerDefaults,
        env: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<BevygapServerConfig, ServerArgsError> {
        if self.local {
            return self.into_local_config(defaults);
        }
        let key = self
            .lightyear_private_key
            .as_ref()
            .ok_or(ServerArgsError::MissingKey)?;
        let key = PrivateKey::parse(key.expose())?.check_not_placeholder(self.dev)?;
        let on_edgegap = edgegap_context::on_edgegap(env);
        let context = if on_edgegap {
            let settings = EdgegapSettings {
                port_name: self.edgegap_port_name.clone(),
                app_name: env(context_env::APP_NAME).unwrap_or_else(|| defaults.app_name.clone()),
                app_version: env(context_env::APP_VERSION)
                    .unwrap_or_else(|| defaults.app_version.clone()),
                capacity: self.capacity,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ServerArgsError::Runtime(e.to_string()))?
                .block_on(edgegap_context::resolve(env, &settings))?
        } else {
            DeploymentContext::from_local_env(env, self.capacity)?
        };
        let transport = parse_transport(&self.transport)?;
        let mut nats = self.nats;
        let lookup = |k: &str| match k {
            context_env::NATS_AUTH => self.nats_auth.clone(),
            _ => env(k),
        };
        if nats.user.is_none()
            && on_edgegap
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
            mode: ServerMode::Fleet,
            nats,
            context,
            transport,
            protocol_id: self.lightyear_protocol_id.unwrap_or(defaults.protocol_id),
            private_key: *key.expose(),
            heartbeat: Duration::from_secs(2),
            unconnected_link_ttl: Duration::from_secs(self.unconnected_link_ttl_secs.max(1)),
        })
    }

    /// The configuration for `--local`: no environment, no NATS, the all-zero key.
    fn into_local_config(
        self,
        defaults: &ServerDefaults,
    ) -> Result<BevygapServerConfig, ServerArgsError> {
        if !self.dev {
            return Err(ServerArgsError::LocalWithoutDev);
        }
        if let Some(key) = &self.lightyear_private_key
            && !PrivateKey::parse(key.expose())?.is_all_zero()
        {
            return Err(ServerArgsError::LocalWithKey);
        }
        let context = local_mode::context(
            self.local_addr,
            defaults.app_name.clone(),
            defaults.app_version.clone(),
            self.capacity,
        )?;
        Ok(BevygapServerConfig {
            mode: ServerMode::Local,
            nats: self.nats,
            context,
            transport: parse_transport(&self.transport)?,
            protocol_id: self.lightyear_protocol_id.unwrap_or(defaults.protocol_id),
            private_key: DEV_KEY,
            heartbeat: Duration::from_secs(2),
            unconnected_link_ttl: Duration::from_secs(self.unconnected_link_ttl_secs.max(1)),
        })
    }
}

fn parse_transport(text: &str) -> Result<Transport, ServerArgsError> {
    match text {
        "udp" => Ok(Transport::Udp),
        "webtransport" => Ok(Transport::WebTransport),
        other => Err(ServerArgsError::Transport(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Server {
        #[command(flatten)]
        bevygap: BevygapServerArgs,
    }

    fn defaults() -> ServerDefaults {
        ServerDefaults {
            app_name: "g".into(),
            app_version: "1".into(),
            protocol_id: 9,
        }
    }

    fn parse(args: &[&str]) -> BevygapServerArgs {
        let mut all = vec!["server", "--lightyear-private-key", &KEY, "--nats-insecure"];
        all.extend_from_slice(args);
        Server::try_parse_from(all).unwrap().bevygap
    }

    const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

    fn local_env(k: &str) -> Option<String> {
        match k {
            context_env::DEPLOYMENT_ID => Some("local-1".into()),
            context_env::PUBLIC_IP => Some("127.0.0.1".into()),
            context_env::PORT => Some("6420".into()),
            context_env::APP_NAME => Some("g".into()),
            context_env::APP_VERSION => Some("1".into()),
            _ => None,
        }
    }

    #[test]
    fn the_flags_are_consistent() {
        Server::command().debug_assert();
    }

    #[test]
    fn the_seeds_ca_argument_reaches_every_game_and_turns_tls_on() {
        let config = parse(&["--ca_contents", "-----BEGIN CERTIFICATE----- abc"])
            .into_config_with(&defaults(), local_env)
            .unwrap();
        assert!(!config.nats.insecure);
        assert!(config.nats.ca.is_none());
        assert_eq!(
            config.nats.ca_contents.unwrap().expose(),
            "-----BEGIN CERTIFICATE----- abc"
        );
        assert_eq!(config.protocol_id, 9);
        assert_eq!(config.context.deployment_id.as_str(), "local-1");
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let zero = "0".repeat(64);
        let refused = Server::try_parse_from(["server", "--lightyear-private-key", &zero])
            .unwrap()
            .bevygap
            .into_config_with(&defaults(), local_env);
        assert!(
            matches!(refused, Err(ServerArgsError::Key(_))),
            "{refused:?}"
        );
        let transport = parse(&["--transport", "pigeon"]).into_config_with(&defaults(), local_env);
        assert!(matches!(transport, Err(ServerArgsError::Transport(_))));
        let no_context = parse(&[]).into_config_with(&defaults(), |_| None);
        assert!(matches!(no_context, Err(ServerArgsError::Context(_))));
    }

    /// Parses `args` without a private key.
    fn parse_keyless(args: &[&str]) -> BevygapServerArgs {
        let mut all = vec!["server"];
        all.extend_from_slice(args);
        Server::try_parse_from(all).unwrap().bevygap
    }

    #[test]
    fn outside_local_mode_the_private_key_is_required() {
        let missing = parse_keyless(&[]).into_config_with(&defaults(), local_env);
        assert!(
            matches!(missing, Err(ServerArgsError::MissingKey)),
            "{missing:?}"
        );
        assert!(
            ServerArgsError::MissingKey
                .to_string()
                .contains("--local --dev")
        );
    }

    #[test]
    fn local_mode_is_refused_without_dev_and_says_what_to_do() {
        let refused = parse_keyless(&["--local"]).into_config_with(&defaults(), |_| None);
        let Err(error) = refused else {
            panic!("--local without --dev was accepted");
        };
        assert!(
            matches!(error, ServerArgsError::LocalWithoutDev),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("--dev") && message.contains("public all-zero"),
            "{message}"
        );
    }

    #[test]
    fn local_mode_refuses_a_real_key_without_showing_it() {
        let refused = parse(&["--local", "--dev"]).into_config_with(&defaults(), |_| None);
        let Err(error) = refused else {
            panic!("--local with a real key was accepted");
        };
        assert!(matches!(error, ServerArgsError::LocalWithKey), "{error:?}");
        assert!(!error.to_string().contains(KEY));
        let malformed = parse_keyless(&["--local", "--dev", "--lightyear-private-key", "abc"])
            .into_config_with(&defaults(), |_| None);
        assert!(matches!(malformed, Err(ServerArgsError::Key(_))));
    }

    #[test]
    fn local_mode_needs_no_context_nor_key_and_uses_the_dev_key() {
        let config = parse_keyless(&[
            "--local",
            "--dev",
            "--local-addr",
            "127.0.0.1:7777",
            "--capacity",
            "3",
        ])
        .into_config_with(&defaults(), |_| None)
        .unwrap();
        assert_eq!(config.mode, ServerMode::Local);
        assert_eq!(config.private_key, DEV_KEY);
        assert_eq!(config.context.deployment_id.as_str(), "local");
        assert_eq!(config.context.bind_addr, "127.0.0.1:7777".parse().unwrap());
        assert_eq!(config.context.public_addr, config.context.bind_addr);
        assert_eq!(config.context.capacity, 3);
        assert_eq!(config.protocol_id, 9);
        // The all-zero key given explicitly is the same key.
        let zero = "0".repeat(64);
        let explicit = parse_keyless(&["--local", "--dev", "--lightyear-private-key", &zero])
            .into_config_with(&defaults(), |_| None)
            .unwrap();
        assert_eq!(explicit.private_key, DEV_KEY);
        let default_addr = parse_keyless(&["--local", "--dev"])
            .into_config_with(&defaults(), |_| None)
            .unwrap();
        assert_eq!(
            default_addr.context.bind_addr,
            "127.0.0.1:6420".parse().unwrap()
        );
    }

    #[test]
    fn local_mode_flags_have_their_variables() {
        let env_of = |id: &str| {
            Server::command()
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        };
        assert_eq!(env_of("local").as_deref(), Some("BEVYGAP_LOCAL"));
        assert_eq!(env_of("local_addr").as_deref(), Some("BEVYGAP_LOCAL_ADDR"));
    }
}
