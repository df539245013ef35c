//! # bevygap_example_game
//!
//! The smallest game that runs under Bevygap, for the demo and the end-to-end tests:
//!
//! - `example_server`: a headless lightyear server with [`BevygapServerPlugin`]; the local fleet
//!   starts it with its context in the environment;
//! - `example_client`: a headless bot that asks the matchmaker for a seat, connects, plays for a
//!   while and leaves;
//! - `demo`: NATS, the matchmaker with the local fleet, and bots joining and leaving, with a summary;
//!   `demo --browser` serves the browser client's page ([`web_page`]) beside the running stack.
//!
//! The names, protocol id, tick and the players-online message live in
//! [`bevygap_example_web::protocol`], which the browser client shares.
//!
//! [`BevygapServerPlugin`]: bevygap_server_plugin::BevygapServerPlugin

pub mod bot;
pub mod demo;
pub mod server;
pub mod web_page;

pub use bevygap_example_web::protocol::{GAME, PROTOCOL_ID, TICK, VERSION};
