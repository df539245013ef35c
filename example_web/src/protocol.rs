//! What the example game's server and clients agree on: names, the lightyear protocol id and
//! tick, and the one message the server sends — who is playing.

use std::time::Duration;

use bevy::prelude::*;
use lightyear::prelude::*;
use serde::{Deserialize, Serialize};

/// The game name the example registers as.
pub const GAME: &str = "bevygap-demo";
/// The game version.
pub const VERSION: &str = "1";
/// The lightyear protocol id of the example.
pub const PROTOCOL_ID: u64 = 0x6265_7679_6761_7000;
/// Simulation tick of server and clients.
pub const TICK: Duration = Duration::from_millis(16);

/// The players on the game server (by netcode client id, ascending), sent to every player
/// whenever someone joins or leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlayersOnline {
    /// The connected players.
    pub players: Vec<Player>,
}

/// One connected player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Player {
    /// The netcode client id.
    pub id: u64,
    /// The team a matchmaking queue put it on (from its connect token), if any.
    pub team: Option<u32>,
}

/// The channel of the game's own messages: reliable and ordered, so the newest list wins.
#[derive(Debug)]
pub struct GameChannel;

/// Registers the example's channel and message. Add it after lightyear's `ClientPlugins` or
/// `ServerPlugins`, on both sides: the protocols must match for clients to connect.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExampleProtocolPlugin;

impl Plugin for ExampleProtocolPlugin {
    fn build(&self, app: &mut App) {
        app.add_channel::<GameChannel>(ChannelSettings {
            mode: ChannelMode::OrderedReliable(ReliableSettings::default()),
            ..default()
        })
        .add_direction(NetworkDirection::ServerToClient);
        app.register_message::<PlayersOnline>()
            .add_direction(NetworkDirection::ServerToClient);
    }
}
