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
    /// How long delete markers stay (and per-key TTLs are allowed); `None` keeps markers until
    /// the key is written again. Buckets with a `max_age` always keep markers that long, so a
    /// watcher sees a lapse.
    pub marker_ttl: Option<Duration>,
    /// Copies of each entry in a JetStream cluster (1 on a single server; 3 survives a node
    /// down).
    pub replicas: usize,
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
            marker_ttl: None,
            replicas: 1,
        }
    }

    /// How long the delete markers of freed seats and closed connections stay: long enough for
    /// every watcher to see them, short enough that a re-list does not replay a day of history.
    pub const MARKER_TTL: Duration = Duration::from_secs(60);

    /// The seat ledger (`{app}_reservations`): one key per seat, `{deployment_id}.{seat}`. Entries
    /// have no bucket-wide age: a reserved seat carries its own TTL, a connected seat stays until
    /// its game server frees it (see [`SeatRecord`](crate::schema::SeatRecord)).
    pub fn seats(names: &AppNames) -> Self {
        Self {
            name: names.reservations_bucket(),
            description: "Bevygap seat ledger: one key per seat, sold by compare-and-set".into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
            marker_ttl: Some(Self::MARKER_TTL),
            replicas: 1,
        }
    }

    /// Active connections: kept until the game server removes them (their delete markers lapse
    /// after [`Self::MARKER_TTL`]; the matchmaker purges a deployment's keys when it is gone).
    pub fn connections(names: &AppNames) -> Self {
        Self {
            name: names.connections_bucket(),
            description: "Bevygap active connections, written by game servers".into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
            marker_ttl: Some(Self::MARKER_TTL),
            replicas: 1,
        }
    }

    /// Fleet allocations in flight: kept until their matchmaker (or one taking over) ends them.
    pub fn fleet_allocations(names: &AppNames) -> Self {
        Self {
            name: names.fleet_allocations_bucket(),
            description: "Bevygap fleet allocations in flight, taken over if their matchmaker dies"
                .into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
            marker_ttl: Some(Self::MARKER_TTL),
            replicas: 1,
        }
    }

    /// Queue tickets pooled by the app's matchmakers: one key per ticket, deleted by its owner once
    /// answered; an entry left by a matchmaker that died lapses after [`Self::POOLED_TICKET_TTL`].
    pub fn queue_tickets(names: &AppNames) -> Self {
        Self {
            name: names.queue_tickets_bucket(),
            description:
                "Bevygap queue tickets shared by the matchmakers, claimed by compare-and-set".into(),
            max_age: Self::POOLED_TICKET_TTL,
            max_value_size: crate::schema::MAX_POOLED_TICKET_BYTES as i32,
            marker_ttl: Some(Self::MARKER_TTL),
            replicas: 1,
        }
    }

    /// How long a pooled ticket lives at most: longer than the longest max wait a queue profile
    /// may set (an hour) plus the time to seat its match.
    pub const POOLED_TICKET_TTL: Duration = Duration::from_secs(2 * 3600);

    /// Live matchmakers: an entry lapses [`Self::PRESENCE_TTL`] after its process's last
    /// heartbeat.
    pub fn matchmakers(names: &AppNames) -> Self {
        Self {
            name: names.matchmakers_bucket(),
            description: "Bevygap matchmakers running now, refreshed by heartbeat".into(),
            max_age: Self::PRESENCE_TTL,
            max_value_size: 1024,
            marker_ttl: None,
            replicas: 1,
        }
    }

    /// How long a matchmaker counts as running after its last heartbeat.
    pub const PRESENCE_TTL: Duration = Duration::from_secs(10);

    /// The same bucket with `replicas` copies of each entry (a JetStream cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Fleet removals awaiting the provider's confirmation: kept until done.
    pub fn fleet_removals(names: &AppNames) -> Self {
        Self {
            name: names.fleet_removals_bucket(),
            description: "Bevygap fleet removals queued until the provider confirms them".into(),
            max_age: Duration::ZERO,
            max_value_size: 4 * 1024,
            marker_ttl: None,
            replicas: 1,
        }
    }

    fn config(&self) -> kv::Config {
        let limit_markers = match self.marker_ttl {
            Some(ttl) => Some(ttl.max(Duration::from_secs(1))),
            None => (!self.max_age.is_zero()).then(|| self.max_age.max(Duration::from_secs(1))),
        };
        kv::Config {
            bucket: self.name.clone(),
            description: self.description.clone(),
            history: 1,
            max_age: self.max_age,
            max_value_size: self.max_value_size,
            storage: jetstream::stream::StorageType::File,
            limit_markers,
            num_replicas: self.replicas.max(1),
            ..Default::default()
        }
    }
}

/// Opens a bucket that must exist already: game servers use the buckets as the matchmaker made
/// them and never change their settings. A missing bucket is [`NatsError::JetStream`] saying so
/// (start a matchmaker first; servers retry).
pub async fn open_bucket(js: &jetstream::Context, name: &str) -> Result<kv::Store, NatsError> {
    js.get_key_value(name).await.map_err(|e| {
        NatsError::jetstream(format!("open bucket `{name}` (made by the matchmaker)"), e)
    })
}

/// Creates the bucket, or updates it to `spec` if it exists. The matchmaker owns the buckets'
/// settings and calls this at start; game servers use [`open_bucket`].
pub async fn ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
) -> Result<kv::Store, NatsError> {
    js.create_or_update_key_value(spec.config())
        .await
        .map_err(|e| NatsError::jetstream(format!("create bucket `{}`", spec.name), e))
}
