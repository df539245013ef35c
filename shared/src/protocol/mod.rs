//! What game clients and the matchmaker say to each other.
//!
//! Two encodings of one conversation:
//! - [`channel`]: the `bevy_simplenet` channel used by `bevygap_client_plugin` (native and WASM);
//! - [`queue`]: what a request to a matchmaking queue carries (queue, attributes, party), in both;
//! - [`seed_json`]: the plain JSON of the original bevygap's `/matchmaker/ws`, kept so existing clients
//!   and a browser `WebSocket` work unchanged.
//!
//! Both carry a [`GameRef`] (which game and version the player runs) and end in a session (token,
//! address, certificate digest) or an [`ErrorCode`] with a text.

pub mod channel;
mod error_code;
mod game_ref;
pub mod queue;
pub mod seed_json;

pub use error_code::ErrorCode;
pub use game_ref::GameRef;
