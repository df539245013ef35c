//! # bevygap_client_plugin
//!
//! Gets a player from "Play" to "connected to a game server":
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevygap_client_plugin::prelude::*;
//!
//! fn play(mut commands: Commands) {
//!     commands.bevygap_connect_client();
//! }
//!
//! fn show(state: Res<BevygapClientState>) {
//!     if state.is_changed() {
//!         info!("matchmaking: {state:?}");
//!     }
//! }
//! ```
//!
//! The plugin asks the matchmaker over the `bevy_simplenet` channel, follows its progress
//! ([`BevygapClientState::Waiting`]), and hands the session (connect token, server address,
//! transport, certificate digest) to lightyear. Failures end in [`BevygapClientState::Failed`]
//! with a reason, never a hang; calling `bevygap_connect_client()` again retries.
//!
//! For development without a matchmaker, [`BevygapClientConfig::direct`] names a game server
//! running in local mode; the plugin then mints its own token ([`direct`]).

pub mod config;
pub mod connection;
pub mod direct;
pub mod matchmaking;
#[cfg(not(target_arch = "wasm32"))]
pub mod seed_json_mode;
pub mod state;

use bevy::ecs::system::Commands;
use bevy::prelude::*;

pub use config::{BevygapClientConfig, MatchmakerProtocol};
pub use direct::DirectServer;
pub use state::BevygapClientState;

/// The usual imports.
pub mod prelude {
    pub use crate::config::{BevygapClientConfig, MatchmakerProtocol};
    pub use crate::direct::DirectServer;
    pub use crate::matchmaking::BevygapMatch;
    pub use crate::state::BevygapClientState;
    pub use crate::{BevygapClientPlugin, BevygapClientSystems, BevygapConnectExt};
}

/// The client plugin's system sets, in `Update`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BevygapClientSystems {
    /// Following the matchmaker request.
    Matchmaking,
    /// Handing a received session to lightyear and following the connection.
    Connection,
}

/// The client plugin. Configure it with a [`BevygapClientConfig`].
#[derive(Debug, Clone, Default)]
pub struct BevygapClientPlugin {
    /// Where the matchmaker is and what to ask for.
    pub config: BevygapClientConfig,
}

impl BevygapClientPlugin {
    /// A plugin with this configuration.
    pub fn new(config: BevygapClientConfig) -> Self {
        Self { config }
    }
}

impl Plugin for BevygapClientPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(matchmaking::ClientSettings(self.config.clone()))
            .init_resource::<BevygapClientState>()
            .configure_sets(
                Update,
                (
                    BevygapClientSystems::Matchmaking,
                    BevygapClientSystems::Connection,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                matchmaking::poll_matchmaker.in_set(BevygapClientSystems::Matchmaking),
            )
            .add_systems(
                Update,
                (
                    connection::connect_session,
                    connection::retry_refused_connection,
                    connection::time_out_connection,
                )
                    .in_set(BevygapClientSystems::Connection),
            )
            .add_observer(connection::on_connected)
            .add_observer(connection::on_disconnected);
        #[cfg(not(target_arch = "wasm32"))]
        app.add_systems(
            Update,
            matchmaking::poll_seed_json.in_set(BevygapClientSystems::Matchmaking),
        );
    }
}

/// Adds `commands.bevygap_connect_client()`.
pub trait BevygapConnectExt {
    /// Asks the matchmaker for a session and connects to it (or, with
    /// [`BevygapClientConfig::direct`], connects straight to that server). Does nothing while a
    /// request or connection is under way.
    fn bevygap_connect_client(&mut self);

    /// Leaves the game server (the matchmaker frees the seat when the server reports it).
    fn bevygap_disconnect_client(&mut self);
}

impl BevygapConnectExt for Commands<'_, '_> {
    fn bevygap_connect_client(&mut self) {
        self.queue(matchmaking::start_request);
    }

    fn bevygap_disconnect_client(&mut self) {
        self.queue(connection::disconnect);
    }
}
