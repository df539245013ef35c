//! # bevygap_server_plugin
//!
//! The pieces a lightyear game server needs to run under Bevygap:
//!
//! - [`context`]: who this server is (deployment id, public address, capacity), from the fleet;
//! - [`cert`]: a short-lived self-signed WebTransport certificate and its digest;
//! - [`admission`]: admitting a client id only with a live, unused reservation for this server;
//! - [`kv_tasks`]: the lease with heartbeat, the reservation watch, the active-connection keys.

pub mod admission;
pub mod cert;
pub mod context;
pub mod kv_tasks;
