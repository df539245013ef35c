//! The client plugin's configuration.

use std::time::Duration;

pub use crate::direct::DirectServer;

/// Which matchmaker endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchmakerProtocol {
    /// The `bevy_simplenet` channel at `/ws` (native and browser).
    #[default]
    Simplenet,
    /// The seed-compatible JSON at `/matchmaker/ws` (native only).
    SeedJson,
}

/// How the client finds and talks to the matchmaker.
#[derive(Debug, Clone)]
pub struct BevygapClientConfig {
    /// The matchmaker's URL: `ws://127.0.0.1:3000/ws` for simplenet, or
    /// `ws://127.0.0.1:3000/matchmaker/ws` for [`MatchmakerProtocol::SeedJson`].
    pub matchmaker_url: String,
    /// Which endpoint the URL points at.
    pub protocol: MatchmakerProtocol,
    /// The game (app) name.
    pub game: String,
    /// The game version.
    pub version: String,
    /// Free text sent with the connect message (platform, build), for the matchmaker's logs.
    pub client_build: String,
    /// How long the whole matchmaking request may take (server start-up included).
    pub request_timeout: Duration,
    /// How long the lightyear connection may take once a token is received.
    pub connect_timeout: Duration,
    /// A signed player token from the game's own backend, for a matchmaker that checks players
    /// (`--player-token-audience`); sent with each request, `***` in `Debug`, never logged.
    pub player_token: Option<bevygap_shared::secret::Secret>,
    /// A game server in local mode (`--local --dev`) to connect to without any matchmaker: the
    /// client mints its own token with the public all-zero key (see [`crate::direct`]). `None`
    /// (the default) asks the matchmaker.
    pub direct: Option<DirectServer>,
    /// A matchmaking queue to ask (its name, the ticket's attributes and party); `None` (the
    /// default) asks for any free seat. A match's team and the party's other sessions arrive in
    /// [`BevygapMatch`](crate::matchmaking::BevygapMatch).
    pub queue: Option<bevygap_shared::protocol::queue::QueueRequest>,
}

impl Default for BevygapClientConfig {
    fn default() -> Self {
        Self {
            matchmaker_url: "ws://127.0.0.1:3000/ws".into(),
            protocol: MatchmakerProtocol::Simplenet,
            game: "bevygap-demo".into(),
            version: "1".into(),
            client_build: format!("{} {}", std::env::consts::OS, env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(15),
            player_token: None,
            direct: None,
            queue: None,
        }
    }
}
