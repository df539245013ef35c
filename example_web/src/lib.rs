//! # bevygap_example_web
//!
//! The example game's browser client and what it shares with the server:
//!
//! - [`protocol`]: the game's names, protocol id and tick, and the players-online message, used by
//!   the example server, the native bots and the browser alike;
//! - `page` (WebAssembly only): the browser client. It runs `BevygapClientPlugin` unchanged: it
//!   asks the matchmaker over the simplenet websocket, connects to the game server over
//!   WebTransport, and shows its state and the server's players on the page.
//!
//! `bash ci/web.sh` builds the page into `$CARGO_TARGET_DIR/web/` (with `wasm-bindgen --target
//! web`), next to `index.html` and `seed.html` from `example_web/www/`.

pub mod protocol;

// The page runs only in a browser; host builds leave it out, but clippy lints it everywhere.
#[cfg(any(target_arch = "wasm32", clippy))]
mod page;
