//! The records that cross NATS KV, as versioned JSON.
//!
//! Every record is a JSON object with two header fields beside its own:
//! `format` (a number bumped on incompatible change) and `kind` (which record it is). A process that
//! reads a record with another format gets [`SchemaError::UnsupportedFormat`] and can say which side
//! to upgrade, instead of misreading fields.
//!
//! ```
//! use bevygap_shared::schema::{decode, encode, ActiveConnection};
//!
//! let conn = ActiveConnection {
//!     deployment_id: "dep-1".into(),
//!     client_id: 7,
//!     reservation_id: "r-1".into(),
//!     connected_at_ms: 1_700_000_000_000,
//! };
//! let bytes = encode(&conn);
//! assert!(std::str::from_utf8(&bytes).unwrap().starts_with(r#"{"format":1,"kind":"connection""#));
//! assert_eq!(decode::<ActiveConnection>(&bytes).unwrap(), conn);
//! ```

mod cert_digest;
mod connection;
mod lease;
mod pooled_ticket;
mod reservation;
mod seat;

pub use cert_digest::CertDigest;
pub use connection::ActiveConnection;
pub use lease::{BackfillSlot, DeploymentLease, LeaseBackfill, Location, Transport};
pub use pooled_ticket::{MAX_POOLED_TICKET_BYTES, PoolState, PooledSession, PooledTicket};
pub use reservation::Reservation;
pub use seat::{SeatHolder, SeatRecord};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::SchemaError;

/// The largest record accepted by [`decode`]: far above any valid record, small enough that a rogue
/// writer cannot make readers allocate much.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// A record stored in NATS KV.
pub trait KvRecord: Serialize + DeserializeOwned {
    /// The `kind` header value.
    const KIND: &'static str;
    /// The `format` header value this build writes and reads.
    const FORMAT: u16;

    /// The largest encoding [`decode`] accepts for this kind.
    const MAX_BYTES: usize = MAX_RECORD_BYTES;

    /// Checks field domains after parsing; the default accepts everything.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    format: u16,
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Header {
    format: Option<u16>,
    kind: Option<String>,
}

/// Serializes a record with its header.
pub fn encode<T: KvRecord>(record: &T) -> Vec<u8> {
    let envelope = EnvelopeOut {
        format: T::FORMAT,
        kind: T::KIND,
        body: record,
    };
    // Records are plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Parses and validates a record, checking its header first.
pub fn decode<T: KvRecord>(bytes: &[u8]) -> Result<T, SchemaError> {
    let kind = T::KIND;
    if bytes.len() > T::MAX_BYTES {
        return Err(SchemaError::TooLarge {
            kind,
            len: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    let malformed = |err: serde_json::Error| SchemaError::Malformed {
        kind,
        reason: err.to_string(),
    };
    let header: Header = serde_json::from_slice(bytes).map_err(malformed)?;
    let format = header.format.ok_or(SchemaError::MissingFormat { kind })?;
    if let Some(found) = header.kind
        && found != kind
    {
        return Err(SchemaError::WrongKind {
            expected: kind,
            found,
        });
    }
    if format != T::FORMAT {
        return Err(SchemaError::UnsupportedFormat {
            kind,
            found: format,
            supported: T::FORMAT,
        });
    }
    let record: T = serde_json::from_slice(bytes).map_err(malformed)?;
    record
        .validate()
        .map_err(|reason| SchemaError::Invalid { kind, reason })?;
    Ok(record)
}
