//! The browser client: `BevygapClientPlugin` in a Bevy app without a window, showing its state
//! machine and the server's players in the page's elements.
//!
//! The page (`www/index.html`) reads its settings from the query string:
//! `?matchmaker=ws://127.0.0.1:3000/ws&version=1&game=bevygap-demo&autoplay=0`. Every value is
//! optional; the matchmaker defaults to port 3000 of the host that served the page. The elements
//! it fills are the test's interface too:
//!
//! | element | what it holds |
//! |---|---|
//! | `#state` | the state's name, also in its `data-state` attribute |
//! | `#detail` | the matchmaker's latest progress, or why it failed |
//! | `#history` | every state reached, with the page time in ms |
//! | `#players` | the server's players (`data-count`), this client marked "you" |
//! | `body[data-connected-ms]` | page time when the client reached `Connected` |

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevygap_client_plugin::prelude::*;
use lightyear::prelude::client::ClientPlugins;
use lightyear::prelude::*;
use wasm_bindgen::prelude::*;

use crate::protocol::{ExampleProtocolPlugin, GAME, PlayersOnline, TICK, VERSION};

/// Set by the page's Play button, read by [`play_when_clicked`].
static PLAY_CLICKED: AtomicBool = AtomicBool::new(false);

/// What the page asks for, from its query string.
struct PageSettings {
    matchmaker_url: String,
    game: String,
    version: String,
    autoplay: bool,
}

impl PageSettings {
    fn from_location(window: &web_sys::Window) -> Self {
        let location = window.location();
        let params = location
            .search()
            .ok()
            .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok());
        let param = |name: &str| params.as_ref().and_then(|p| p.get(name));
        let host = location
            .hostname()
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into());
        Self {
            matchmaker_url: param("matchmaker").unwrap_or_else(|| format!("ws://{host}:3000/ws")),
            game: param("game").unwrap_or_else(|| GAME.into()),
            version: param("version").unwrap_or_else(|| VERSION.into()),
            autoplay: param("autoplay").as_deref() != Some("0"),
        }
    }
}

/// Starts the client when the module loads.
#[wasm_bindgen(start)]
pub fn start() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let settings = PageSettings::from_location(&window);
    if let Some(button) = element("play") {
        let click = Closure::<dyn FnMut()>::new(|| PLAY_CLICKED.store(true, Ordering::Relaxed));
        if button
            .add_event_listener_with_callback("click", click.as_ref().unchecked_ref())
            .is_ok()
        {
            // The button lives as long as the page, and so does its handler.
            click.forget();
        }
    }
    set_text("matchmaker", &settings.matchmaker_url);
    let autoplay = settings.autoplay;
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(TICK)))
        .add_plugins(LogPlugin::default())
        .add_plugins(ClientPlugins {
            tick_duration: TICK,
        })
        .add_plugins(ExampleProtocolPlugin)
        .add_plugins(BevygapClientPlugin::new(BevygapClientConfig {
            matchmaker_url: settings.matchmaker_url,
            game: settings.game,
            version: settings.version,
            client_build: "example web page".into(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            ..default()
        }))
        .add_systems(Update, (play_when_clicked, show_state, show_players));
    if autoplay {
        app.add_systems(Startup, |mut commands: Commands| {
            commands.bevygap_connect_client()
        });
    }
    app.run();
}

fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

fn set_text(id: &str, text: &str) {
    if let Some(element) = element(id) {
        element.set_text_content(Some(text));
    }
}

/// Milliseconds since the page started loading.
fn page_time_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// The Play button asks again (while nothing is under way).
fn play_when_clicked(mut commands: Commands) {
    if PLAY_CLICKED.swap(false, Ordering::Relaxed) {
        commands.bevygap_connect_client();
    }
}

/// Writes each new state into `#state`, `#detail` and `#history`.
fn show_state(state: Res<BevygapClientState>) {
    if !state.is_changed() {
        return;
    }
    let (name, detail) = match &*state {
        BevygapClientState::Idle => ("Idle", ""),
        BevygapClientState::Requesting => ("Requesting", ""),
        BevygapClientState::Waiting(text) => ("Waiting", text.as_str()),
        BevygapClientState::Connecting => ("Connecting", ""),
        BevygapClientState::Connected => ("Connected", ""),
        BevygapClientState::Failed(reason) => ("Failed", reason.as_str()),
    };
    let now = page_time_ms();
    if let Some(element) = element("state") {
        element.set_text_content(Some(name));
        let _ = element.set_attribute("data-state", name);
    }
    set_text("detail", detail);
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let (Some(history), Ok(item)) = (element("history"), document.create_element("li")) {
        let line = if detail.is_empty() {
            format!("{now:.0} ms: {name}")
        } else {
            format!("{now:.0} ms: {name} ({detail})")
        };
        item.set_text_content(Some(&line));
        let _ = history.append_child(&item);
    }
    if let Some(button) = element("play") {
        if state.is_busy() || *state == BevygapClientState::Connected {
            let _ = button.set_attribute("disabled", "");
        } else {
            let _ = button.remove_attribute("disabled");
        }
    }
    if *state == BevygapClientState::Connected
        && let Some(body) = document.body()
    {
        let _ = body.set_attribute("data-connected-ms", &format!("{now:.0}"));
    }
}

/// Lists the players of the latest [`PlayersOnline`] in `#players`.
fn show_players(mut clients: Query<(&mut MessageReceiver<PlayersOnline>, Option<&LocalId>)>) {
    for (mut receiver, local) in &mut clients {
        let Some(latest) = receiver.receive().last() else {
            continue;
        };
        let me = local.and_then(|id| match id.0 {
            PeerId::Netcode(id) => Some(id),
            _ => None,
        });
        let (Some(list), Some(document)) = (
            element("players"),
            web_sys::window().and_then(|w| w.document()),
        ) else {
            continue;
        };
        list.set_text_content(None);
        let _ = list.set_attribute("data-count", &latest.players.len().to_string());
        for player in &latest.players {
            if let Ok(item) = document.create_element("li") {
                let you = if Some(player.id) == me { " (you)" } else { "" };
                let team = player
                    .team
                    .map(|t| format!(", team {}", t + 1))
                    .unwrap_or_default();
                item.set_text_content(Some(&format!("player {:016x}{team}{you}", player.id)));
                let _ = list.append_child(&item);
            }
        }
    }
}
