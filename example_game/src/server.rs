//! The example game server: lightyear + Bevygap, headless.

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevygap_example_web::protocol::{ExampleProtocolPlugin, GameChannel, Player, PlayersOnline};
use bevygap_server_plugin::args::{BevygapServerArgs, ServerDefaults};
use bevygap_server_plugin::clients::AdmittedClient;
use bevygap_server_plugin::{BevygapServerConfig, BevygapServerPlugin};
use clap::Parser;
use lightyear::prelude::server::{ClientOf, ServerPlugins};
use lightyear::prelude::*;

use crate::{GAME, PROTOCOL_ID, TICK, VERSION};

/// The example server's flags: Bevygap's own (the local fleet passes most of them through the
/// environment), with the example game's defaults.
#[derive(Debug, Parser)]
#[command(name = "example_server", about = "The Bevygap example game server")]
pub struct ServerArgs {
    /// Bevygap's settings.
    #[command(flatten)]
    pub bevygap: BevygapServerArgs,
}

impl ServerArgs {
    /// The plugin configuration, with the context read from the environment.
    pub fn into_config(self) -> anyhow::Result<BevygapServerConfig> {
        Ok(self.bevygap.into_config(&ServerDefaults {
            app_name: GAME.into(),
            app_version: VERSION.into(),
            protocol_id: PROTOCOL_ID,
        })?)
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
    .add_plugins(ExampleProtocolPlugin)
    .add_plugins(BevygapServerPlugin { config })
    .add_systems(Update, announce_players);
    app
}

/// Connected players: the server's client entities that finished the handshake.
type ConnectedClients = (With<ClientOf>, With<Connected>);

/// Tells every player who is playing whenever that changes (someone joined or left).
fn announce_players(
    mut clients: Query<
        (
            &RemoteId,
            Option<&AdmittedClient>,
            &mut MessageSender<PlayersOnline>,
        ),
        ConnectedClients,
    >,
    mut announced: Local<Vec<Player>>,
) {
    let mut players: Vec<Player> = clients
        .iter()
        .filter_map(|(remote, admitted, _)| match remote.0 {
            PeerId::Netcode(id) => Some(Player {
                id,
                team: admitted.and_then(|a| a.team),
            }),
            _ => None,
        })
        .collect();
    players.sort_unstable_by_key(|p| p.id);
    if players == *announced {
        return;
    }
    let message = PlayersOnline {
        players: players.clone(),
    };
    for (_, _, mut sender) in &mut clients {
        sender.send::<GameChannel>(message.clone());
    }
    *announced = players;
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
