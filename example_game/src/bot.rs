//! A bot player: asks for a seat, connects, stays a while, leaves.

use std::time::{Duration, Instant};

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevygap_client_plugin::prelude::*;
use bevygap_example_web::protocol::ExampleProtocolPlugin;
use lightyear::prelude::client::ClientPlugins;

use crate::{GAME, TICK, VERSION};

/// How a bot session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotOutcome {
    /// It connected, played and left.
    Played {
        /// From "Play" to the session (token) received.
        request_to_token: Duration,
        /// From "Play" to connected.
        request_to_connected: Duration,
    },
    /// It failed; the reason.
    Failed(String),
}

#[derive(Resource)]
struct Bot {
    started: Instant,
    play_for: Duration,
    token_at: Option<Duration>,
    connected_at: Option<Instant>,
    left: bool,
    outcome: Option<BotOutcome>,
    deadline: Instant,
}

/// Runs one bot against the matchmaker's simplenet URL (see [`run_bot_with`]).
pub fn run_bot(matchmaker_url: &str, play_for: Duration, timeout: Duration) -> BotOutcome {
    run_bot_with(
        matchmaker_url,
        MatchmakerProtocol::Simplenet,
        play_for,
        timeout,
    )
}

/// Runs one bot to completion on this thread (its own Bevy app) and reports how it went.
pub fn run_bot_with(
    matchmaker_url: &str,
    protocol: MatchmakerProtocol,
    play_for: Duration,
    timeout: Duration,
) -> BotOutcome {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(TICK)))
        .add_plugins(ClientPlugins {
            tick_duration: TICK,
        })
        .add_plugins(ExampleProtocolPlugin)
        .add_plugins(BevygapClientPlugin::new(BevygapClientConfig {
            matchmaker_url: matchmaker_url.to_owned(),
            protocol,
            game: GAME.into(),
            version: VERSION.into(),
            client_build: "example bot".into(),
            request_timeout: timeout,
            connect_timeout: Duration::from_secs(10),
            // For a matchmaker that checks players: the token the game's backend signed.
            player_token: std::env::var("BEVYGAP_PLAYER_TOKEN").ok().map(Into::into),
            direct: None,
            queue: None,
        }))
        .insert_resource(Bot {
            started: Instant::now(),
            play_for,
            token_at: None,
            connected_at: None,
            left: false,
            outcome: None,
            deadline: Instant::now() + timeout + play_for + Duration::from_secs(15),
        })
        .add_systems(Startup, |mut commands: Commands| {
            commands.bevygap_connect_client()
        })
        .add_systems(Update, play);
    app.finish();
    app.cleanup();
    loop {
        app.update();
        if let Some(outcome) = app.world().resource::<Bot>().outcome.clone() {
            // A few more frames so the disconnect packets leave.
            for _ in 0..5 {
                app.update();
                std::thread::sleep(TICK);
            }
            return outcome;
        }
        std::thread::sleep(TICK);
    }
}

fn play(mut commands: Commands, state: Res<BevygapClientState>, mut bot: ResMut<Bot>) {
    if bot.outcome.is_some() {
        return;
    }
    let now = Instant::now();
    if now > bot.deadline {
        bot.outcome = Some(BotOutcome::Failed(format!("stuck in {:?}", *state)));
        return;
    }
    match &*state {
        BevygapClientState::Connecting if bot.token_at.is_none() => {
            bot.token_at = Some(now - bot.started);
        }
        BevygapClientState::Connected => match bot.connected_at {
            None => bot.connected_at = Some(now),
            Some(at) if !bot.left && now - at >= bot.play_for => {
                commands.bevygap_disconnect_client();
                bot.left = true;
                bot.outcome = Some(BotOutcome::Played {
                    request_to_token: bot.token_at.unwrap_or_default(),
                    request_to_connected: at - bot.started,
                });
            }
            Some(_) => {}
        },
        BevygapClientState::Failed(reason) => {
            bot.outcome = Some(BotOutcome::Failed(reason.clone()));
        }
        _ => {}
    }
}
