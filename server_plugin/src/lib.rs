//! # bevygap_server_plugin
//!
//! The pieces a lightyear game server needs to run under Bevygap:
//!
//! - [`context`]: who this server is (deployment id, public address, capacity), from the local fleet;
//! - [`edgegap_context`]: the same on Edgegap, from `ARBITRIUM_*` variables and the context API;
//! - [`cert`]: a short-lived self-signed WebTransport certificate and its digest;
//! - [`admission`]: admitting a client id only with a live, unused reservation for this server;
//! - [`kv_tasks`]: the lease with heartbeat, the reservation watch, the active-connection keys;
//! - [`link_sweep`]: dropping links of peers that never finish the handshake;
//! - [`clients`]: the connection gate, admitted clients as entities, and the player count;
//! - [`backfill`]: asking the matchmakers' queue for players while the game runs;
//! - [`plugin`]: [`BevygapServerPlugin`], which ties them to a lightyear netcode server (its
//!   NATS link and lifetime live in private modules);
//! - [`local_mode`]: the same netcode server alone, without matchmaker or NATS, for development
//!   (`--local --dev`).

pub mod admission;
pub mod args;
pub mod backfill;
pub mod cert;
pub mod clients;
pub mod context;
pub mod edgegap_context;
pub mod kv_tasks;
pub(crate) mod lifetime;
pub mod link_sweep;
pub mod local_mode;
pub(crate) mod nats_link;
pub mod plugin;

pub use plugin::{
    BevygapServerConfig, BevygapServerPlugin, BevygapServerStatus, BevygapServerSystems, ServerMode,
};
