//! # bevygap_matchmaker
//!
//! The Bevygap matchmaker is a headless Bevy app. Tickets (client requests) and deployments (game
//! servers, each with its seats mirrored from the seat ledger in NATS KV) are entities; systems
//! place tickets on free seats (a seat is sold only by a compare-and-set write), ask the fleet for
//! servers, mint lightyear connect tokens, and scale empty servers down. Any number of
//! matchmakers can serve one game: the seat state is in KV, not here.
//!
//! - [`core_plugin`]: the rules, with no I/O ([`MatchmakerCorePlugin`]), by capability:
//!   [`ticket`] (requests, cancels, timeouts), [`placement`] (tickets onto free seats),
//!   [`seats`] (the seat ledger mirror and its compare-and-set outcomes), [`leases`]
//!   (deployments known from KV) and [`fleet_scaling`] (servers up, and down to zero).
//! - [`fleet`]: where game servers come from (local processes, a static list), driven by
//!   [`fleet_driver`].
//! - [`intake`]: the websocket endpoints (`/ws` simplenet, `/matchmaker/ws` seed JSON).
//! - [`kv_bridge`]: NATS KV watches in (leases, the seat ledger), compare-and-set seat writes out.
//! - [`player_check`]: an optional signed player token before a request is served.
//! - [`queues`]: matchmaking queues (profiles from `--queues`, and the matcher that groups
//!   tickets into teams and matches).
//! - [`presence`]: which matchmakers are running (the Edgegap rate budget is shared among them).
//! - [`shutdown`]: the graceful stop.
//! - [`health`]: `/healthz` and `/readyz` for orchestrators.
//! - [`inspect`]: `bevy_remote` with a `bevygap/summary` method, behind [`inspect_access`]
//!   (read-only by default, no browser pages, a bearer token off loopback).
//! - [`bridge`]: bounded async → ECS inboxes and the event-driven runner.
//! - [`cli`] and [`app`]: flags, validation, and assembling the app.
//!
//! The core is driven by [`messages`]: intake endpoints and bridges write inbound messages, the
//! core writes outbound effects. Headless tests use exactly that seam.

pub mod app;
pub mod bridge;
pub mod cli;
pub mod core_plugin;
pub mod deadlines;
pub mod deployment;
pub mod edgegap_args;
pub mod error;
pub mod fleet;
pub mod fleet_driver;
pub mod fleet_scaling;
pub mod gameserver_auth;
pub mod health;
pub mod inspect;
pub mod inspect_access;
pub mod intake;
pub mod kv_bridge;
pub mod leases;
pub mod messages;
pub mod metrics;
pub mod nats_jwt;
pub mod placement;
pub mod player_check;
pub mod presence;
pub mod queues;
pub mod runtime;
pub mod seats;
pub mod shutdown;
pub mod status_page;
pub mod ticket;
pub mod tokens;

pub use app::{MatchmakerConfig, MatchmakerHandle, build_app, spawn_matchmaker};
pub use bevygap_shared::private_key::PrivateKey;
pub use core_plugin::{CoreSystems, MatchmakerCorePlugin, PlacementConfig};
pub use error::ConfigError;
pub use tokens::TokenConfig;
