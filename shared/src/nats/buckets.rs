//! The KV buckets Bevygap uses, created idempotently.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::error::NatsError;
use crate::names::AppNames;

/// How a bucket is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// The bucket name (from [`AppNames`]).
    pub name: String,
    /// What the bucket holds, shown by `nats kv ls`.
    pub description: String,
    /// Entries older than this are dropped, leaving a delete marker watchers see; zero keeps them.
    pub max_age: Duration,
    /// Largest value accepted by the server.
    pub max_value_size: i32,
}

impl BucketSpec {
    /// Game server leases: an entry lapses `DEFAULT_LEASE_TTL` after its last heartbeat.
    pub fn leases(names: &AppNames) -> Self {
        Self::leases_with_ttl(names, Self::DEFAULT_LEASE_TTL)
    }

    /// How long a lease outlives its last heartbeat by default.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

    /// How long an unused reservation lives by default.
    pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(30);

    /// Game server leases with a given TTL.
    pub fn leases_with_ttl(names: &AppNames, ttl: Duration) -> Self {
        Self {
            name: names.leases_bucket(),
            description: "Bevygap game server leases, refreshed by heartbeat".into(),
            max_age: ttl,
            max_value_size: 16 * 1024,
        }
    }

    /// Reservations: an unused entry lapses after `ttl`.
    pub fn reservations(names: &AppNames, ttl: Duration) -> Self {
        Self {
            name: names.reservations_bucket(),
            description: "Bevygap reservations: connect tokens awaiting the server".into(),
            max_age: ttl,
            max_value_size: 4 * 1024,
        }
    }

    /// Active connections: kept until the game server removes them.
    pub fn connections(names: &AppNames) -> Self {
        Self {
            name: names.connections_bucket(),
            description: "Bevygap active connections, written by game servers".into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
        }
    }

    /// Fleet removals awaiting the provider's confirmation: kept until done.
    pub fn fleet_removals(names: &AppNames) -> Self {
        Self {
            name: names.fleet_removals_bucket(),
            description: "Bevygap fleet removals queued until the provider confirms them".into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
        }
    }

    fn config(&self) -> kv::Config {
        let limit_markers =
            (!self.max_age.is_zero()).then(|| self.max_age.max(Duration::from_secs(1)));
        kv::Config {
            bucket: self.name.clone(),
            description: self.description.clone(),
            history: 1,
            max_age: self.max_age,
            max_value_size: self.max_value_size,
            storage: jetstream::stream::StorageType::File,
            limit_markers,
            ..Default::default()
        }
    }
}

/// Creates the bucket, or updates it to `spec` if it exists; safe to call from every process.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
) -> Result<kv::Store, NatsError> {
    js.create_or_update_key_value(spec.config())
        .await
        .map_err(|e| NatsError::jetstream(format!("create bucket `{}`", spec.name), e))
}
