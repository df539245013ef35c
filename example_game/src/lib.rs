//! # bevygap_example_game
//!
//! The smallest game that runs under Bevygap, for the demo and the end-to-end tests:
//!
//! - `example_server`: a headless lightyear server with [`BevygapServerPlugin`]; the local fleet
//!   starts it with its context in the environment;
//! - `example_client`: a headless bot that asks the matchmaker for a seat, connects, plays for a
//!   while and leaves;
//! - `demo`: NATS, the matchmaker with the local fleet, and bots joining and leaving, with a summary.
//!
//! [`BevygapServerPlugin`]: bevygap_server_plugin::BevygapServerPlugin

pub mod bot;
pub mod demo;
pub mod server;

/// The game name the example registers as.
pub const GAME: &str = "bevygap-demo";
/// The game version.
pub const VERSION: &str = "1";
/// The lightyear protocol id of the example.
pub const PROTOCOL_ID: u64 = 0x6265_7679_6761_7000;
/// Simulation tick of server and bots.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(16);
