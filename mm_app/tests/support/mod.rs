//! Shared test support.
#![allow(dead_code, clippy::unwrap_used)]
pub mod app_harness;
pub mod core_harness;
pub mod ledger_model;
