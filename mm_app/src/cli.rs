//! The matchmaker's command line. Every flag has an environment variable; `--help` needs nothing
//! else, and every bad value is a clear error before anything starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bevygap_shared::context_env;
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::NatsSettings;
use bevygap_shared::secret::Secret;
use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

use crate::app::{FleetChoice, MatchmakerConfig};
use crate::core_plugin::PlacementConfig;
use crate::edgegap_args::EdgegapFleetArgs;
use crate::error::ConfigError;
use crate::fleet::local::LocalFleetConfig;
use crate::gameserver_auth::{GameServerAuth, GameServerAuthConfig};
use crate::inspect::InspectConfig;
use crate::intake::limits::Limits;
use crate::intake::listener::ListenerTimeouts;
use crate::intake::{IntakeConfig, ListenerTls};
use crate::metrics::MetricsConfig;
use crate::player_check::{PlayerCheckConfig, PlayerKey, PlayerKeyAlgorithm};
use crate::tokens::TokenConfig;
use bevygap_shared::private_key::PrivateKey;

/// Which fleet backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetKind {
    /// Start game server processes on this machine (`--local-server-cmd`).
    Local,
    /// Use servers started elsewhere; they register through their leases.
    Static,
    /// Start servers on Edgegap (`EDGEGAP_API_KEY`, see the `--edgegap-*` flags).
    Edgegap,
}

/// The Bevygap matchmaker: turns match requests into lightyear connect tokens.
#[derive(Debug, Parser)]
#[command(name = "bevygap_matchmaker", version, about)]
pub struct Cli {
    /// The game (app) name; also prefixes every NATS bucket.
    #[arg(long, env = "APP_NAME")]
    pub app_name: String,
    /// Game versions served (comma-separated).
    #[arg(long, env = "APP_VERSION", value_delimiter = ',', required = true)]
    pub app_version: Vec<String>,
    /// The lightyear protocol id the game servers use.
    #[arg(long, env = "LIGHTYEAR_PROTOCOL_ID")]
    pub lightyear_protocol_id: u64,
    /// The lightyear private key: 64 hex characters or 32 comma-separated bytes.
    #[arg(long, env = "LIGHTYEAR_PRIVATE_KEY", hide_env_values = true)]
    pub lightyear_private_key: Option<Secret>,
    /// A file holding the private key (instead of --lightyear-private-key).
    #[arg(long, env = "LIGHTYEAR_PRIVATE_KEY_FILE")]
    pub lightyear_private_key_file: Option<PathBuf>,
    /// Development mode: accept an all-zero private key.
    #[arg(long, env = "BEVYGAP_DEV", value_parser = BoolishValueParser::new())]
    pub dev: bool,

    /// Serve a request only with a player token signed by the game's backend, for this audience
    /// (`aud`); turns the player check on (see --player-token-secret-file and
    /// --player-token-public-key-file).
    #[arg(long, env = "BEVYGAP_PLAYER_TOKEN_AUDIENCE")]
    pub player_token_audience: Option<String>,
    /// The `iss` player tokens must name, if set.
    #[arg(long, env = "BEVYGAP_PLAYER_TOKEN_ISSUER")]
    pub player_token_issuer: Option<String>,
    /// A file holding the HS256 secret shared with the game's backend (32 bytes or more).
    #[arg(long, env = "BEVYGAP_PLAYER_TOKEN_SECRET_FILE")]
    pub player_token_secret_file: Option<PathBuf>,
    /// A PEM file with the backend's public key (instead of a shared secret).
    #[arg(long, env = "BEVYGAP_PLAYER_TOKEN_PUBLIC_KEY_FILE")]
    pub player_token_public_key_file: Option<PathBuf>,
    /// The algorithm of --player-token-public-key-file.
    #[arg(long, env = "BEVYGAP_PLAYER_TOKEN_ALGORITHM", value_enum, default_value_t = PlayerKeyAlgorithm::Eddsa)]
    pub player_token_algorithm: PlayerKeyAlgorithm,

    /// Serve the client listener over TLS (`wss://`) with this PEM certificate chain.
    #[arg(long, env = "BEVYGAP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BEVYGAP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Address of the client websocket endpoints (`/ws` and `/matchmaker/ws`).
    #[arg(long, env = "BEVYGAP_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Proxies whose X-Forwarded-For header is believed (comma-separated IPs).
    #[arg(long, env = "BEVYGAP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,
    /// Largest client message, in bytes.
    #[arg(long, env = "BEVYGAP_MAX_MESSAGE_BYTES", default_value_t = 4096)]
    pub max_message_bytes: usize,
    /// Most client connections at once.
    #[arg(long, env = "BEVYGAP_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Most connections at once from one IP.
    #[arg(long, env = "BEVYGAP_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Messages per second a client connection may send.
    #[arg(long, env = "BEVYGAP_MAX_MESSAGES_PER_SECOND", default_value_t = 10)]
    pub max_messages_per_second: u32,
    /// Serve the public status page at `/status` (and `/status.json`) on the client listener.
    #[arg(long, env = "BEVYGAP_STATUS_PAGE", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub status_page: bool,
    /// Seconds a client may take to send its request after connecting.
    #[arg(long, env = "BEVYGAP_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Seconds a ticket may wait for a seat before failing with a timeout.
    #[arg(long, env = "BEVYGAP_TICKET_TIMEOUT_SECS", default_value_t = 60)]
    pub ticket_timeout_secs: u64,
    /// Matchmaking queue profiles, a `.toml` or `.json` file (teams, sizes, rules, waits);
    /// requests that name a queue are matched by it, the others get any free seat.
    #[arg(long, env = "BEVYGAP_QUEUES")]
    pub queues: Option<std::path::PathBuf>,
    /// Seconds a connect token (and its reserved seat) stays valid for the first connection.
    #[arg(long, env = "BEVYGAP_TOKEN_EXPIRE_SECS", default_value_t = 15)]
    pub token_expire_secs: u32,
    /// Seconds without packets before a netcode connection times out.
    #[arg(long, env = "BEVYGAP_TOKEN_TIMEOUT_SECS", default_value_t = 10)]
    pub token_timeout_secs: u32,
    /// Seconds an empty game server lives before it is stopped (scale to zero).
    #[arg(long, env = "BEVYGAP_EMPTY_SERVER_TTL_SECS", default_value_t = 60)]
    pub empty_server_ttl_secs: u64,
    /// Seconds a new game server may take to register its lease.
    #[arg(long, env = "BEVYGAP_ALLOCATION_TIMEOUT_SECS", default_value_t = 120)]
    pub allocation_timeout_secs: u64,
    /// Seats assumed per new server until its lease says otherwise.
    #[arg(long, env = "BEVYGAP_SEATS_PER_SERVER", default_value_t = 8)]
    pub seats_per_server: u32,
    /// Most servers starting at once.
    #[arg(long, env = "BEVYGAP_MAX_STARTING", default_value_t = 4)]
    pub max_starting: usize,

    /// The fleet backend.
    #[arg(long, env = "BEVYGAP_FLEET", value_enum, default_value_t = FleetKind::Local)]
    pub fleet: FleetKind,
    /// Game server command for the local fleet (program and arguments, space-separated).
    #[arg(long, env = "BEVYGAP_LOCAL_SERVER_CMD")]
    pub local_server_cmd: Option<String>,
    /// Port range for local game servers, `FIRST-LAST`.
    #[arg(long, env = "BEVYGAP_LOCAL_PORTS", default_value = "6420-6499")]
    pub local_ports: String,
    /// IP local game servers bind and clients dial.
    #[arg(long, env = "BEVYGAP_LOCAL_PUBLIC_IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub local_public_ip: IpAddr,
    /// Most local game servers at once.
    #[arg(long, env = "BEVYGAP_LOCAL_MAX_SERVERS", default_value_t = 8)]
    pub local_max_servers: usize,

    /// NATS address game servers dial, when it differs from the matchmaker's (`--nats-host`).
    #[arg(long, env = "BEVYGAP_GAMESERVER_NATS_HOST")]
    pub gameserver_nats_host: Option<String>,
    /// NATS user game servers connect as (the `gameserver` role of assets/nats-auth.conf);
    /// without it they inherit the matchmaker's credentials.
    #[arg(long, env = "BEVYGAP_GAMESERVER_NATS_USER")]
    pub gameserver_nats_user: Option<String>,
    /// Password of --gameserver-nats-user.
    #[arg(long, env = "BEVYGAP_GAMESERVER_NATS_PASSWORD", hide_env_values = true)]
    pub gameserver_nats_password: Option<Secret>,
    /// Let game servers on Edgegap connect with the matchmaker's own NATS settings and
    /// credentials when no game-server role is configured. Without it the Edgegap fleet refuses
    /// to start: a game server runs on a machine you do not control.
    #[arg(long, env = "BEVYGAP_GAMESERVER_INHERIT_NATS", value_parser = BoolishValueParser::new())]
    pub gameserver_inherit_nats: bool,

    /// Serve nats-server's auth callout with this account nkey seed (`SA…`, see
    /// assets/nats-auth.conf): each game server gets a NATS user scoped to its own deployment.
    #[arg(long, env = "BEVYGAP_GAMESERVER_AUTH_KEY", hide_env_values = true)]
    pub gameserver_auth_key: Option<Secret>,
    /// A file holding the callout seed (instead of BEVYGAP_GAMESERVER_AUTH_KEY).
    #[arg(long, env = "BEVYGAP_GAMESERVER_AUTH_KEY_FILE")]
    pub gameserver_auth_key_file: Option<PathBuf>,
    /// How long a game server's NATS user is valid before it reconnects and is checked again.
    #[arg(long, env = "BEVYGAP_GAMESERVER_AUTH_JWT_SECS", default_value_t = 3600)]
    pub gameserver_auth_jwt_secs: u64,

    /// Edgegap settings (`--fleet edgegap`).
    #[command(flatten)]
    pub edgegap: EdgegapFleetArgs,

    /// Port of the Prometheus `/metrics` endpoint (0 disables it).
    #[arg(long, env = "BEVYGAP_METRICS_PORT", default_value_t = 9464)]
    pub metrics_port: u16,
    /// Address of the metrics endpoint (an operator network, never the public one).
    #[arg(long, env = "BEVYGAP_METRICS_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub metrics_address: IpAddr,

    /// Port of the bevy_remote inspection endpoint (0 disables it).
    #[arg(long, env = "BEVYGAP_REMOTE_PORT", default_value_t = 15702)]
    pub remote_port: u16,
    /// Address of the inspection endpoint; off loopback it needs a bearer token.
    #[arg(long, env = "BEVYGAP_REMOTE_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub remote_address: IpAddr,
    /// Serve inspection methods that change the world (spawn, insert, mutate, despawn); off by
    /// default, the endpoint is read-only.
    #[arg(long, env = "BEVYGAP_REMOTE_ALLOW_WRITES", value_parser = BoolishValueParser::new())]
    pub remote_allow_writes: bool,
    /// Bearer token the inspection endpoint requires (`Authorization: Bearer …`).
    #[arg(long, env = "BEVYGAP_REMOTE_TOKEN", hide_env_values = true)]
    pub remote_token: Option<Secret>,
    /// A file holding the inspection bearer token (instead of BEVYGAP_REMOTE_TOKEN).
    #[arg(long, env = "BEVYGAP_REMOTE_TOKEN_FILE")]
    pub remote_token_file: Option<PathBuf>,

    /// Longest sleep between updates when idle, in milliseconds.
    #[arg(long, env = "BEVYGAP_IDLE_TICK_MS", default_value_t = 2)]
    pub idle_tick_ms: u64,
    /// Log filter.
    #[arg(long, env = "RUST_LOG", default_value = "info,bevygap_matchmaker=info")]
    pub log: String,

    /// Longest graceful stop on SIGTERM/SIGINT, in seconds: waiting clients are told to retry,
    /// seat writes in flight finish, then the process exits.
    #[arg(long, env = "BEVYGAP_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Copies of each KV entry: 1 on a single NATS server, 3 on a three-node JetStream cluster
    /// (the buckets then survive a node down). The matchmaker sets the buckets' settings.
    #[arg(long, env = "BEVYGAP_KV_REPLICAS", default_value_t = 1)]
    pub kv_replicas: usize,

    /// NATS connection settings.
    #[command(flatten)]
    pub nats: NatsSettings,
}

fn parse_ports(text: &str) -> Result<std::ops::RangeInclusive<u16>, ConfigError> {
    let (a, b) = text.split_once('-').ok_or_else(|| {
        ConfigError::invalid("local-ports", "expected FIRST-LAST, e.g. 6420-6499")
    })?;
    let first: u16 = a
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid("local-ports", "bad first port"))?;
    let last: u16 = b
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid("local-ports", "bad last port"))?;
    if first == 0 || first > last {
        return Err(ConfigError::invalid("local-ports", "the range is empty"));
    }
    Ok(first..=last)
}

impl Cli {
    /// Reads the private key from the flag or the file, refusing an all-zero key without --dev.
    pub fn private_key(&self) -> Result<PrivateKey, ConfigError> {
        let key = match (
            &self.lightyear_private_key,
            &self.lightyear_private_key_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::PrivateKey(
                    "set --lightyear-private-key or --lightyear-private-key-file, not both".into(),
                ));
            }
            (Some(text), None) => PrivateKey::parse(text.expose())?,
            (None, Some(path)) => PrivateKey::from_file(path)?,
            (None, None) => {
                return Err(ConfigError::PrivateKey(
                    "missing: set LIGHTYEAR_PRIVATE_KEY or --lightyear-private-key-file".into(),
                ));
            }
        };
        Ok(key.check_not_placeholder(self.dev)?)
    }

    /// Warnings for secrets given as flags: other local users can read a command line (`ps`,
    /// `/proc`). A secret counts as a flag when its environment variable is not set.
    pub fn secrets_on_command_line(&self) -> Vec<String> {
        let secrets: [(&str, &str, bool, &str); 6] = [
            (
                "--lightyear-private-key",
                "LIGHTYEAR_PRIVATE_KEY",
                self.lightyear_private_key.is_some(),
                "or --lightyear-private-key-file",
            ),
            (
                "--nats-password",
                "NATS_PASSWORD",
                self.nats.password.is_some(),
                "or a credentials file (--nats-creds)",
            ),
            (
                "--gameserver-nats-password",
                "BEVYGAP_GAMESERVER_NATS_PASSWORD",
                self.gameserver_nats_password.is_some(),
                "",
            ),
            (
                "--edgegap-api-key",
                "EDGEGAP_API_KEY",
                self.edgegap.api.edgegap_api_key.is_some(),
                "or --edgegap-api-key-file",
            ),
            (
                "--remote-token",
                "BEVYGAP_REMOTE_TOKEN",
                self.remote_token.is_some(),
                "or --remote-token-file",
            ),
            (
                "--gameserver-auth-key",
                "BEVYGAP_GAMESERVER_AUTH_KEY",
                self.gameserver_auth_key.is_some(),
                "or --gameserver-auth-key-file",
            ),
        ];
        secrets
            .into_iter()
            .filter(|(_, env, given, _)| *given && std::env::var_os(env).is_none())
            .map(|(flag, env, _, file)| {
                format!(
                    "{flag} was given on the command line, where other local users can read it; set {env} {file}"
                )
                .trim_end()
                .to_owned()
            })
            .collect()
    }

    /// The player check, when an audience is given: with exactly one key source.
    fn player_check(&self) -> Result<Option<PlayerCheckConfig>, ConfigError> {
        let read = |flag: &'static str, path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(flag, format!("{} cannot be read: {e}", path.display()))
            })
        };
        let key = match (
            &self.player_token_secret_file,
            &self.player_token_public_key_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "player-token-public-key-file",
                    "give a shared secret or a public key, not both",
                ));
            }
            (Some(path), None) => Some(PlayerKey::SharedSecret(Secret::new(
                read("player-token-secret-file", path)?.trim(),
            ))),
            (None, Some(path)) => Some(PlayerKey::PublicKey {
                algorithm: self.player_token_algorithm,
                pem: read("player-token-public-key-file", path)?,
            }),
            (None, None) => None,
        };
        match (key, &self.player_token_audience) {
            (None, None) => Ok(None),
            (Some(key), Some(audience)) => Ok(Some(PlayerCheckConfig {
                key,
                audience: audience.clone(),
                issuer: self.player_token_issuer.clone(),
            })),
            (None, Some(_)) => Err(ConfigError::invalid(
                "player-token-audience",
                "set --player-token-secret-file or --player-token-public-key-file to check player tokens",
            )),
            (Some(_), None) => Err(ConfigError::invalid(
                "player-token-audience",
                "name the audience player tokens are issued for",
            )),
        }
    }

    /// The inspection token, from BEVYGAP_REMOTE_TOKEN or its file (not both).
    fn remote_token(&self) -> Result<Option<Secret>, ConfigError> {
        secret_from(
            &self.remote_token,
            &self.remote_token_file,
            "BEVYGAP_REMOTE_TOKEN",
            "remote-token-file",
        )
    }

    /// Whether a callout key is given (checked by [`Self::into_config`]).
    fn has_gameserver_auth(&self) -> bool {
        self.gameserver_auth_key.is_some() || self.gameserver_auth_key_file.is_some()
    }

    /// The game-server auth callout, when a key is given.
    fn gameserver_auth(&self) -> Result<Option<GameServerAuthConfig>, ConfigError> {
        let seed = secret_from(
            &self.gameserver_auth_key,
            &self.gameserver_auth_key_file,
            "BEVYGAP_GAMESERVER_AUTH_KEY",
            "gameserver-auth-key-file",
        )?;
        let Some(seed) = seed else {
            return Ok(None);
        };
        let config = GameServerAuthConfig {
            seed,
            jwt_ttl: Duration::from_secs(self.gameserver_auth_jwt_secs.clamp(60, 86_400)),
        };
        let names = AppNames::new(&self.app_name)
            .map_err(|e| ConfigError::invalid("app-name", e.to_string()))?;
        GameServerAuth::new(&config, names)
            .map_err(|e| ConfigError::invalid("gameserver-auth-key-file", e.to_string()))?;
        Ok(Some(config))
    }

    /// Validates everything and builds the configuration.
    pub fn into_config(self) -> Result<MatchmakerConfig, ConfigError> {
        let private_key = self.private_key()?;
        for version in &self.app_version {
            bevygap_shared::protocol::GameRef::new(&self.app_name, version)
                .validate()
                .map_err(|e| ConfigError::invalid("app-version", e.to_string()))?;
        }
        if self.seats_per_server == 0 {
            return Err(ConfigError::invalid(
                "seats-per-server",
                "must be at least 1",
            ));
        }
        if !(1..=5).contains(&self.kv_replicas) {
            return Err(ConfigError::invalid(
                "kv-replicas",
                "must be 1 to 5 (JetStream's limit); 3 for a three-node cluster",
            ));
        }
        if self.token_expire_secs == 0 || self.token_expire_secs > 3600 {
            return Err(ConfigError::invalid(
                "token-expire-secs",
                "must be 1 to 3600",
            ));
        }
        let inspect = if self.remote_port == 0 {
            None
        } else {
            let config = InspectConfig {
                address: self.remote_address,
                port: self.remote_port,
                allow_writes: self.remote_allow_writes,
                token: self.remote_token()?,
            };
            config.validate()?;
            Some(config)
        };
        for (flag, path) in [("tls-cert", &self.tls_cert), ("tls-key", &self.tls_key)] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(ConfigError::invalid(
                    flag,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        let player_check = self.player_check()?;
        let gameserver_auth = self.gameserver_auth()?;
        self.nats.validate()?;
        if self.gameserver_nats_password.is_some() && self.gameserver_nats_user.is_none() {
            return Err(ConfigError::invalid(
                "gameserver-nats-password",
                "set --gameserver-nats-user too",
            ));
        }
        if self.fleet == FleetKind::Edgegap
            && self.gameserver_nats_user.is_none()
            && gameserver_auth.is_none()
            && !self.gameserver_inherit_nats
        {
            return Err(ConfigError::invalid(
                "gameserver-nats-user",
                "game servers on Edgegap would get the matchmaker's own NATS credentials; give each its own deployment's user through the auth callout (--gameserver-auth-key-file), or the shared gameserver role (--gameserver-nats-user and BEVYGAP_GAMESERVER_NATS_PASSWORD), see assets/nats-auth.conf; or pass --gameserver-inherit-nats to accept that",
            ));
        }
        let fleet = match self.fleet {
            FleetKind::Static => FleetChoice::Static,
            FleetKind::Edgegap => FleetChoice::Edgegap {
                api: Box::new(self.edgegap.api.api_config()?),
                fleet: Box::new(
                    self.edgegap
                        .fleet_config(&self.app_name, &child_env(&self, &private_key))?,
                ),
            },
            FleetKind::Local => {
                let command: Vec<String> = self
                    .local_server_cmd
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if command.is_empty() {
                    return Err(ConfigError::invalid(
                        "local-server-cmd",
                        "the local fleet needs the game server command",
                    ));
                }
                FleetChoice::Local(LocalFleetConfig {
                    command,
                    ports: parse_ports(&self.local_ports)?,
                    public_ip: self.local_public_ip,
                    max_servers: self.local_max_servers.max(1),
                    capacity: self.seats_per_server,
                    env: child_env(&self, &private_key),
                    stop_grace: Duration::from_secs(5),
                    // Set when the app is built, from the callout key.
                    credentials: None,
                })
            }
        };
        Ok(MatchmakerConfig {
            placement: PlacementConfig {
                app_name: self.app_name.clone(),
                app_versions: self.app_version.clone(),
                ticket_timeout: Duration::from_secs(self.ticket_timeout_secs.max(1)),
                reservation_ttl: Duration::from_secs(u64::from(self.token_expire_secs)),
                empty_server_ttl: Duration::from_secs(self.empty_server_ttl_secs),
                allocation_timeout: Duration::from_secs(self.allocation_timeout_secs.max(1)),
                expected_capacity: self.seats_per_server,
                max_starting: self.max_starting.max(1),
                scale_to_zero: true,
                queues: match &self.queues {
                    None => crate::queues::QueueProfiles::default(),
                    Some(path) => crate::queues::QueueProfiles::load(path)
                        .map_err(|e| ConfigError::invalid("queues", e.to_string()))?,
                },
            },
            tokens: TokenConfig {
                protocol_id: self.lightyear_protocol_id,
                private_key,
                expire_seconds: i32::try_from(self.token_expire_secs).unwrap_or(i32::MAX),
                timeout_seconds: i32::try_from(self.token_timeout_secs).unwrap_or(i32::MAX),
            },
            intake: IntakeConfig {
                listen: self.listen,
                limits: Limits {
                    max_message_bytes: self.max_message_bytes,
                    max_connections: self.max_connections,
                    max_connections_per_ip: self.max_connections_per_ip,
                    messages_per_second: self.max_messages_per_second,
                    request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
                },
                trusted_proxies: self.trusted_proxy.clone(),
                status_page: self.status_page,
                tls: self
                    .tls_cert
                    .clone()
                    .zip(self.tls_key.clone())
                    .map(|(cert, key)| ListenerTls { cert, key }),
                timeouts: ListenerTimeouts::default(),
            },
            inspect,
            nats: self.nats.clone(),
            kv_replicas: self.kv_replicas,
            fleet,
            idle_interval: Duration::from_millis(self.idle_tick_ms.clamp(1, 1000)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs.clamp(1, 600)),
            log_filter: Some(self.log.clone()),
            player_check,
            gameserver_auth,
            metrics: (self.metrics_port != 0).then(|| MetricsConfig {
                listen: SocketAddr::new(self.metrics_address, self.metrics_port),
            }),
        })
    }
}

/// A secret given in an env var or in a file (not both).
fn secret_from(
    value: &Option<Secret>,
    file: &Option<PathBuf>,
    env_name: &str,
    file_flag: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            file_flag,
            format!("set {env_name} or --{file_flag}, not both"),
        )),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| Some(Secret::new(text.trim())))
            .map_err(|e| {
                ConfigError::invalid(file_flag, format!("{} cannot be read: {e}", path.display()))
            }),
        (None, None) => Ok(None),
    }
}

/// What game servers inherit: NATS settings (their own role's, when given) and the token key
/// (never logged).
fn child_env(cli: &Cli, key: &PrivateKey) -> Vec<(String, String)> {
    let nats = &cli.nats;
    // The shared role when given; else, with the auth callout, each server's own user (the
    // local fleet sets it, servers on Edgegap prove their deployment); else the matchmaker's.
    let scoped = cli.gameserver_nats_user.is_none() && cli.has_gameserver_auth();
    let (user, password) = match &cli.gameserver_nats_user {
        Some(user) => (
            Some(user.clone()),
            cli.gameserver_nats_password
                .as_ref()
                .map(|p| p.expose().to_owned()),
        ),
        None if scoped => (None, None),
        None => (
            nats.user.clone(),
            nats.password.as_ref().map(|p| p.expose().to_owned()),
        ),
    };
    let host = cli
        .gameserver_nats_host
        .clone()
        .unwrap_or_else(|| nats.host.clone());
    let mut env = vec![
        ("NATS_HOST".to_owned(), host),
        (
            "LIGHTYEAR_PROTOCOL_ID".to_owned(),
            cli.lightyear_protocol_id.to_string(),
        ),
        (
            "LIGHTYEAR_PRIVATE_KEY".to_owned(),
            hex::encode(key.expose()),
        ),
    ];
    let optional = [
        ("NATS_USER", user),
        ("NATS_PASSWORD", password),
        ("NATS_CA", nats.ca.as_ref().map(|p| p.display().to_string())),
        (
            "NATS_CA_CONTENTS",
            nats.ca_contents.as_ref().map(|c| c.expose().to_owned()),
        ),
        (
            "NATS_CREDS",
            // The matchmaker's credentials file only when servers inherit its identity.
            nats.creds
                .as_ref()
                .filter(|_| cli.gameserver_nats_user.is_none() && !scoped)
                .map(|p| p.display().to_string()),
        ),
        ("NATS_INSECURE", nats.insecure.then(|| "true".to_owned())),
        ("BEVYGAP_DEV", cli.dev.then(|| "true".to_owned())),
        (
            context_env::NATS_AUTH,
            scoped.then(|| context_env::NATS_AUTH_EDGEGAP_CONTEXT.to_owned()),
        ),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(extra: &[&str]) -> Cli {
        let mut args = vec![
            "bevygap_matchmaker",
            "--app-name",
            "g",
            "--app-version",
            "1",
            "--lightyear-protocol-id",
            "1",
            "--nats-host",
            "10.0.0.5:4222",
            "--nats-user",
            "matchmaker",
            "--nats-password",
            "mm-secret",
            "--lightyear-private-key",
            "0707070707070707070707070707070707070707070707070707070707070707",
        ];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn game_servers_get_their_own_role_and_address_when_given() {
        let key = PrivateKey::from_bytes([7; 32]);
        let own = cli(&[
            "--gameserver-nats-host",
            "nats.example.com:4222",
            "--gameserver-nats-user",
            "gameserver",
            "--gameserver-nats-password",
            "gs-secret",
        ]);
        let env = child_env(&own, &key);
        assert_eq!(get(&env, "NATS_HOST"), Some("nats.example.com:4222"));
        assert_eq!(get(&env, "NATS_USER"), Some("gameserver"));
        assert_eq!(get(&env, "NATS_PASSWORD"), Some("gs-secret"));

        let inherited = child_env(&cli(&[]), &key);
        assert_eq!(get(&inherited, "NATS_HOST"), Some("10.0.0.5:4222"));
        assert_eq!(get(&inherited, "NATS_USER"), Some("matchmaker"));
        assert_eq!(get(&inherited, context_env::NATS_AUTH), None);
    }

    #[test]
    fn with_the_auth_callout_game_servers_get_no_shared_credentials() {
        let key = PrivateKey::from_bytes([7; 32]);
        let scoped = cli(&["--gameserver-auth-key-file", "/etc/bevygap/callout.seed"]);
        let env = child_env(&scoped, &key);
        assert_eq!(get(&env, "NATS_USER"), None);
        assert_eq!(get(&env, "NATS_PASSWORD"), None);
        assert_eq!(get(&env, "NATS_CREDS"), None);
        assert_eq!(
            get(&env, context_env::NATS_AUTH),
            Some(context_env::NATS_AUTH_EDGEGAP_CONTEXT)
        );
    }

    #[test]
    fn bad_edgegap_and_game_server_settings_are_named() {
        let bad_url = cli(&[
            "--fleet",
            "edgegap",
            "--dev",
            "--gameserver-inherit-nats",
            "--edgegap-api-key",
            "k",
            "--edgegap-url",
            "ftp://api.edgegap.com",
        ]);
        let error = bad_url.into_config().unwrap_err().to_string();
        assert!(error.contains("--edgegap-url"), "{error}");

        let no_key = cli(&[
            "--fleet",
            "edgegap",
            "--dev",
            "--gameserver-inherit-nats",
            "--edgegap-api-key",
            " ",
        ]);
        let error = no_key.into_config().unwrap_err().to_string();
        assert!(error.contains("--edgegap-api-key"), "{error}");

        let lone_password = cli(&[
            "--dev",
            "--fleet",
            "static",
            "--gameserver-nats-password",
            "p",
        ]);
        let error = lone_password.into_config().unwrap_err().to_string();
        assert!(error.contains("--gameserver-nats-user"), "{error}");
    }

    #[test]
    fn the_player_check_needs_an_audience_and_exactly_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "a-shared-secret-of-at-least-32-bytes!\n").unwrap();
        let secret = secret.display().to_string();
        let cases: [(&[&str], Option<&str>); 4] = [
            (
                &["--player-token-audience", "g"],
                Some("--player-token-secret-file"),
            ),
            (
                &["--player-token-secret-file", &secret],
                Some("--player-token-audience"),
            ),
            (
                &[
                    "--player-token-secret-file",
                    &secret,
                    "--player-token-public-key-file",
                    &secret,
                    "--player-token-audience",
                    "g",
                ],
                Some("not both"),
            ),
            (
                &[
                    "--player-token-secret-file",
                    &secret,
                    "--player-token-audience",
                    "g",
                ],
                None,
            ),
        ];
        for (args, error) in cases {
            let mut all = vec!["--dev", "--fleet", "static"];
            all.extend_from_slice(args);
            let result = cli(&all).into_config();
            match error {
                Some(expected) => {
                    let text = result.unwrap_err().to_string();
                    assert!(text.contains(expected), "{args:?}: {text}");
                }
                None => assert!(result.unwrap().player_check.is_some()),
            }
        }
    }
}
