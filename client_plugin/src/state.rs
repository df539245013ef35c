//! The client's matchmaking state, for games to read and show.

use bevy::prelude::*;

/// Where the player's "Play" stands. Read it with `Res<BevygapClientState>`; it changes only
/// through the plugin's systems.
#[derive(Resource, Debug, Clone, PartialEq, Eq, Default)]
pub enum BevygapClientState {
    /// Nothing asked yet (or the last session ended).
    #[default]
    Idle,
    /// Connecting to the matchmaker and sending the request.
    Requesting,
    /// The matchmaker is preparing a seat; the text is its latest progress report.
    Waiting(String),
    /// A token was received; connecting to the game server.
    Connecting,
    /// Connected to the game server.
    Connected,
    /// Failed; the text says why. Call `bevygap_connect_client()` again to retry.
    Failed(String),
}

impl BevygapClientState {
    /// Whether a request or connection is under way.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Requesting | Self::Waiting(_) | Self::Connecting)
    }
}
