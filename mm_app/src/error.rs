//! Error types of the matchmaker.
//!
//! [`ConfigError`] is ours (bad flags or environment, found at start-up). Client mistakes are
//! [`bevygap_shared::ProtocolError`]s answered with an [`ErrorCode`](bevygap_shared::protocol::ErrorCode).

use thiserror::Error;

/// The matchmaker cannot start with this configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The lightyear private key is missing, malformed or a placeholder.
    #[error("lightyear private key: {0}")]
    PrivateKey(String),
    /// The key text or file is unusable.
    #[error("lightyear private key: {0}")]
    Key(#[from] bevygap_shared::private_key::KeyError),
    /// A flag has a value outside its domain.
    #[error("invalid --{flag}: {reason}")]
    Invalid {
        /// The flag name.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// NATS settings or connection trouble at start-up.
    #[error(transparent)]
    Nats(#[from] bevygap_shared::NatsError),
    /// A fleet backend could not be configured.
    #[error("fleet: {0}")]
    Fleet(#[from] crate::fleet::FleetError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        reason: String,
    },
}

impl ConfigError {
    /// `--{flag}` has a value outside its domain.
    pub fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            flag,
            reason: reason.into(),
        }
    }
}
