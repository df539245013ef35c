//! The seat ledger: seats taken and freed by compare-and-set on NATS KV.
//!
//! Every write names the revision the writer last saw of that seat's key (`0` when the key never
//! existed or its history was purged), and JetStream applies it only if that is still the key's
//! last revision. So of two matchmakers racing for one seat exactly one wins; the other gets
//! [`SeatWriteError::Conflict`] with the seat as it is now, and tries again on that fresh state.
//!
//! ```no_run
//! # async fn run(ledger: bevygap_shared::nats::SeatLedger) {
//! use std::time::Duration;
//! use bevygap_shared::nats::SeatWriteError;
//! use bevygap_shared::schema::{SeatHolder, SeatRecord};
//!
//! let seat = SeatRecord {
//!     deployment_id: "local-1".into(),
//!     seat: 0,
//!     holder: SeatHolder::Closing { since_ms: 0 },
//! };
//! match ledger.take(&seat, 0, Some(Duration::from_secs(20))).await {
//!     Ok(written) => println!("seat taken at revision {}", written.revision),
//!     Err(SeatWriteError::Conflict { current, .. }) => println!("lost the race: {current:?}"),
//!     Err(other) => println!("NATS trouble: {other}"),
//! }
//! # }
//! ```

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, UpdateErrorKind};
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
use thiserror::Error;

use crate::names::{KeyToken, deployment_filter, seat_key};
use crate::schema::{SeatRecord, decode, encode};

/// A seat's key as it is now in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatState {
    /// The key's last revision (the stream sequence of its last write or marker; 0 for none).
    pub revision: u64,
    /// Who holds the seat; `None` when it is free (deleted, purged, lapsed, or never written).
    pub record: Option<SeatRecord>,
}

impl SeatState {
    /// A key never written (or whose history is gone).
    pub const EMPTY: Self = Self {
        revision: 0,
        record: None,
    };
}

/// A write the ledger accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatWrite {
    /// The key's new revision.
    pub revision: u64,
}

/// Why a seat write was not applied.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum SeatWriteError {
    /// Someone wrote the seat since the revision the writer knew. Nobody is at fault: re-read and
    /// decide again on `current` (when the re-read itself failed, `current` is `None`).
    #[error("seat `{key}` changed since revision {expected}")]
    Conflict {
        /// The seat's key.
        key: String,
        /// The revision the writer expected.
        expected: u64,
        /// The seat as it is now.
        current: Option<SeatState>,
    },
    /// NATS could not be reached or refused for another reason (ours to fix or wait out).
    #[error("seat `{key}`: NATS is unavailable ({reason}); retry")]
    Unavailable {
        /// The seat's key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// The deployment id cannot be a key token (a bug or a bad record).
    #[error("seat key for deployment `{0}` is invalid")]
    InvalidKey(String),
}

/// The seat ledger bucket (`{app}_reservations`), with compare-and-set writes.
#[derive(Clone)]
pub struct SeatLedger {
    store: kv::Store,
    js: async_nats::jetstream::Context,
    direct_reads: bool,
}

impl std::fmt::Debug for SeatLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeatLedger")
            .field("bucket", &self.store.name)
            .finish()
    }
}

impl SeatLedger {
    /// The ledger in `store`, written through `js` (the same connection's JetStream context).
    pub fn new(store: kv::Store, js: async_nats::jetstream::Context) -> Self {
        Self {
            store,
            js,
            direct_reads: false,
        }
    }

    /// Reads seats by subject (`$JS.API.DIRECT.GET.{stream}.{subject}`) instead of from the
    /// stream leader: the read a game server's NATS user may be scoped to (its own seats only),
    /// served by any replica. A replica can be a moment behind the leader, so a caller that acts
    /// on a miss reads again later.
    pub fn with_direct_reads(mut self) -> Self {
        self.direct_reads = true;
        self
    }

    /// The underlying KV store (for watches).
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    fn key_of(record: &SeatRecord) -> Result<String, SeatWriteError> {
        let deployment = KeyToken::new("deployment id", record.deployment_id.as_str())
            .map_err(|_| SeatWriteError::InvalidKey(record.deployment_id.clone()))?;
        Ok(seat_key(&deployment, record.seat))
    }

    /// Writes `record` to its seat if the seat's key is still at `expected` (0: no live history),
    /// lapsing after `ttl` when given (whole seconds, at least one).
    pub async fn take(
        &self,
        record: &SeatRecord,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<SeatWrite, SeatWriteError> {
        let key = Self::key_of(record)?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string());
        if let Some(ttl) = ttl {
            headers.insert(NATS_MESSAGE_TTL, ttl.as_secs().max(1).to_string());
        }
        let subject = format!("{}{key}", self.put_prefix());
        let unavailable = |reason: String| SeatWriteError::Unavailable {
            key: key.clone(),
            reason,
        };
        let ack = self
            .js
            .publish_with_headers(subject, headers, encode(record).into())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match ack.await {
            Ok(ack) => Ok(SeatWrite {
                revision: ack.sequence,
            }),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                Err(SeatWriteError::Conflict {
                    key: key.clone(),
                    expected,
                    current: self.current(&key).await.ok(),
                })
            }
            Err(error) => Err(unavailable(error.to_string())),
        }
    }

    /// Frees a seat held at `revision`, leaving a delete marker that lapses after `marker_ttl`.
    /// A seat that changed meanwhile is left alone ([`SeatWriteError::Conflict`]).
    pub async fn free(
        &self,
        key: &str,
        revision: u64,
        marker_ttl: Duration,
    ) -> Result<(), SeatWriteError> {
        match self
            .store
            .purge_expect_revision_with_ttl(key, revision, marker_ttl)
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                Err(SeatWriteError::Conflict {
                    key: key.to_owned(),
                    expected: revision,
                    current: self.current(key).await.ok(),
                })
            }
            Err(error) => Err(SeatWriteError::Unavailable {
                key: key.to_owned(),
                reason: error.to_string(),
            }),
        }
    }

    /// Reads a seat from the stream leader (never a lagging replica), so a decision taken on it
    /// sees every write acknowledged before; with [`Self::with_direct_reads`], by subject from any
    /// replica.
    pub async fn current(&self, key: &str) -> Result<SeatState, SeatWriteError> {
        let subject = format!("{}{key}", self.store.prefix);
        let unavailable = |reason: String| SeatWriteError::Unavailable {
            key: key.to_owned(),
            reason,
        };
        let (revision, headers, payload) = if self.direct_reads {
            match self.store.stream.direct_get_last_for_subject(subject).await {
                Ok(message) => (message.sequence, message.headers, message.payload),
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => {
                    return Ok(SeatState::EMPTY);
                }
                Err(error) => return Err(unavailable(error.to_string())),
            }
        } else {
            match self
                .store
                .stream
                .get_last_raw_message_by_subject(&subject)
                .await
            {
                Ok(message) => (message.sequence, message.headers, message.payload),
                Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    return Ok(SeatState::EMPTY);
                }
                Err(error) => return Err(unavailable(error.to_string())),
            }
        };
        let removed = headers
            .get("KV-Operation")
            .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
            || headers.get("Nats-Marker-Reason").is_some();
        Ok(SeatState {
            revision,
            record: (!removed)
                .then(|| decode::<SeatRecord>(&payload).ok())
                .flatten(),
        })
    }

    /// Removes every seat of a deployment with its history (a deployment that is gone): nothing
    /// is left to replay.
    pub async fn purge_deployment(&self, deployment: &KeyToken) -> Result<(), SeatWriteError> {
        purge_keys(&self.store, &deployment_filter(deployment))
            .await
            .map_err(|reason| SeatWriteError::Unavailable {
                key: deployment_filter(deployment),
                reason,
            })
    }

    fn put_prefix(&self) -> &str {
        self.store
            .put_prefix
            .as_deref()
            .unwrap_or(self.store.prefix.as_str())
    }
}

/// Purges every key matching `filter` (e.g. `{deployment}.>`) from `store`, markers included.
pub async fn purge_keys(store: &kv::Store, filter: &str) -> Result<(), String> {
    store
        .stream
        .purge()
        .filter(format!("{}{filter}", store.prefix))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
