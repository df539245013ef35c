//! The example game server: lightyear + Bevygap, headless.

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevygap_example_web::protocol::{ExampleProtocolPlugin, GameChannel, Player, PlayersOnline};
use bevygap_server_plugin::args::{BevygapServerArgs, ServerDefaults};
use bevygap_server_plugin::backfill::BevygapBackfillExt;
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
    /// When a player a matchmaking queue placed leaves, ask this queue for someone to take the
    /// place on the same team (backfill).
    #[arg(long, env = "EXAMPLE_BACKFILL_QUEUE")]
    pub backfill_queue: Option<String>,
}

/// The queue asked for backfill when a matched player leaves (see [`ServerArgs::backfill_queue`]).
#[derive(Resource, Debug, Clone)]
pub struct BackfillQueue(pub String);

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
    .add_systems(Update, announce_players)
    .add_observer(backfill_leavers);
    app
}

/// Asks for a player on the team of a matched player who left, when a backfill queue is set.
fn backfill_leavers(
    trigger: On<Add, Disconnected>,
    admitted: Query<&AdmittedClient>,
    queue: Option<Res<BackfillQueue>>,
    mut commands: Commands,
) {
    let (Some(queue), Ok(admitted)) = (queue, admitted.get(trigger.event_target())) else {
        return;
    };
    if let Some(team) = admitted.team {
        commands.bevygap_backfill_one(&queue.0, team);
    }
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
