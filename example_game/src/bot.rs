//! A bot player: asks for a seat, connects, stays a while, leaves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevygap_client_plugin::prelude::*;
use bevygap_example_web::protocol::{ExampleProtocolPlugin, Player, PlayersOnline};
use lightyear::prelude::client::ClientPlugins;
use lightyear::prelude::{LocalId, MessageReceiver, PeerId};

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

/// The bot's client configuration for a matchmaker URL and protocol.
pub fn bot_config(
    matchmaker_url: &str,
    protocol: MatchmakerProtocol,
    timeout: Duration,
) -> BevygapClientConfig {
    BevygapClientConfig {
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
    }
}

/// What a bot saw of its game, shared while it plays: the match the queue put it in, its own
/// client id, and the latest players list from the server.
#[derive(Debug, Clone, Default)]
pub struct BotView {
    /// The queue's match (team, the party's other sessions), for a bot that asked a queue.
    pub matched: Option<BevygapMatch>,
    /// This bot's netcode client id, once connected.
    pub me: Option<u64>,
    /// The players the server announced last.
    pub players: Vec<Player>,
    /// The client's state, as `Debug` text (for a test's failure message).
    pub state: String,
}

/// Where a bot publishes its [`BotView`].
#[derive(Resource, Clone, Default)]
pub struct SharedBotView(pub Arc<Mutex<BotView>>);

/// Runs one bot to completion on this thread (its own Bevy app) and reports how it went.
pub fn run_bot_with(
    matchmaker_url: &str,
    protocol: MatchmakerProtocol,
    play_for: Duration,
    timeout: Duration,
) -> BotOutcome {
    run_bot_config(
        bot_config(matchmaker_url, protocol, timeout),
        play_for,
        timeout,
        SharedBotView::default(),
    )
}

/// Runs one bot with `config` to completion on this thread, publishing what it sees in `view`.
pub fn run_bot_config(
    config: BevygapClientConfig,
    play_for: Duration,
    timeout: Duration,
    view: SharedBotView,
) -> BotOutcome {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(TICK)))
        .add_plugins(ClientPlugins {
            tick_duration: TICK,
        })
        .add_plugins(ExampleProtocolPlugin)
        .add_plugins(BevygapClientPlugin::new(config))
        .insert_resource(view)
        .add_systems(Update, watch_game)
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

/// Publishes the bot's match, id and the server's players list.
fn watch_game(
    view: Res<SharedBotView>,
    state: Res<BevygapClientState>,
    matched: Option<Res<BevygapMatch>>,
    mut clients: Query<(&mut MessageReceiver<PlayersOnline>, Option<&LocalId>)>,
) {
    let mut view = view
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if state.is_changed() {
        view.state = format!("{:?}", *state);
    }
    if let Some(matched) = matched
        && matched.is_changed()
    {
        view.matched = Some(matched.clone());
    }
    for (mut receiver, local) in &mut clients {
        if let Some(latest) = receiver.receive().last() {
            view.players = latest.players;
        }
        if let Some(LocalId(PeerId::Netcode(id))) = local {
            view.me = Some(*id);
        }
    }
}
