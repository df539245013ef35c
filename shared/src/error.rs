//! Error types of `bevygap_shared`.
//!
//! [`ProtocolError`] and [`SchemaError`] describe bad input from a peer (a client or another process);
//! [`NatsError`] describes trouble on our side of the wire (configuration, connectivity, the NATS server).

use thiserror::Error;

/// A name that cannot be used as a NATS bucket name, key token or subject token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{what} is empty")]
    Empty {
        /// What the name was for (e.g. "app name").
        what: &'static str,
    },
    /// The name is longer than allowed.
    #[error("{what} is {len} bytes long, at most {max} allowed")]
    TooLong {
        /// What the name was for.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character that is not allowed (`.`, `*`, `>`, whitespace, ...).
    #[error("{what} {value:?} contains {found:?}; allowed are ASCII letters, digits, '-' and '_'")]
    InvalidChar {
        /// What the name was for.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The first offending character.
        found: char,
    },
}

/// A KV record that could not be decoded. The writer is at fault (or is a newer/older process).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The bytes are not the JSON object the record kind expects.
    #[error("malformed {kind} record: {reason}")]
    Malformed {
        /// The record kind (e.g. "lease").
        kind: &'static str,
        /// What was wrong, from the JSON parser.
        reason: String,
    },
    /// The record is bigger than any valid record of its kind.
    #[error("{kind} record is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// The record kind.
        kind: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The record has no `format` field: it was not written by Bevygap.
    #[error("{kind} record has no format version; it was not written by a Bevygap process")]
    MissingFormat {
        /// The record kind.
        kind: &'static str,
    },
    /// The record names another kind (a lease read from the reservations bucket, say).
    #[error("expected a {expected} record, found {found:?}")]
    WrongKind {
        /// The kind that was expected.
        expected: &'static str,
        /// The kind in the record.
        found: String,
    },
    /// The record was written in a format this process does not understand.
    #[error(
        "{kind} record has format {found}, this process understands {supported}; \
         upgrade the older of the two processes"
    )]
    UnsupportedFormat {
        /// The record kind.
        kind: &'static str,
        /// The format in the record.
        found: u16,
        /// The format this process writes and reads.
        supported: u16,
    },
    /// A field holds a value outside its domain (an invalid digest, zero capacity, ...).
    #[error("invalid {kind} record: {reason}")]
    Invalid {
        /// The record kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A client message that could not be accepted. The client is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message is not valid JSON of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message exceeds the size limit.
    #[error("message is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Its size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field is missing or outside its domain.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(feature = "nats")]
/// Trouble connecting to or talking with NATS. Our configuration or infrastructure is at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The settings are inconsistent (e.g. a password without a user).
    #[error("invalid NATS settings: {0}")]
    InvalidSettings(String),
    /// The CA certificate could not be read or holds no certificate.
    #[error(
        "NATS CA {source_name}: {reason}; set NATS_CA to a PEM file or NATS_CA_CONTENTS to PEM text"
    )]
    InvalidCa {
        /// Where the CA came from (a path or "NATS_CA_CONTENTS").
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials file could not be read.
    #[error("NATS credentials file {path}: {reason}")]
    InvalidCredentials {
        /// The file path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused the user, password or credentials.
    #[error(
        "NATS at {host} refused our credentials ({detail}); check NATS_USER/NATS_PASSWORD or the credentials file"
    )]
    AuthenticationFailed {
        /// The server address.
        host: String,
        /// The client library's description.
        detail: String,
    },
    /// The TLS handshake failed (unknown CA, wrong host name, server without TLS).
    #[error(
        "TLS to NATS at {host} failed ({detail}); check NATS_CA / NATS_CA_CONTENTS, or set NATS_INSECURE for a plain-text server"
    )]
    Tls {
        /// The server address.
        host: String,
        /// The client library's description.
        detail: String,
    },
    /// The server could not be reached (refused, DNS, timeout).
    #[error(
        "NATS at {host} is unreachable ({detail}); is nats-server running and NATS_HOST right?"
    )]
    Unreachable {
        /// The server address.
        host: String,
        /// The client library's description.
        detail: String,
    },
    /// A JetStream or KV operation failed.
    #[error("NATS {operation} failed: {detail}")]
    JetStream {
        /// What was attempted (e.g. "create bucket `app_leases`").
        operation: String,
        /// The client library's description.
        detail: String,
    },
    /// A record read from KV could not be decoded.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

#[cfg(feature = "nats")]
impl NatsError {
    /// Wraps a JetStream/KV error with the operation that failed.
    pub fn jetstream(operation: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::JetStream {
            operation: operation.into(),
            detail: err.to_string(),
        }
    }
}
