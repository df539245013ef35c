//! Allocations in flight, recorded in `{app}_fleet_allocations` before the Edgegap call, so a
//! matchmaker that dies while starting a server leaves nothing nobody will stop.
//!
//! A record names its owner (the matchmaker's presence id, see [`crate::presence`]) and a tag
//! the deployment is created with; once Edgegap answers it also names the request id. The owner
//! deletes it when the allocation ends (ready, failed, or stopped). Every matchmaker sweeps the
//! records now and then: one whose owner is no longer present is taken over — a deployment that
//! registered a lease is adopted (scale to zero stops it when empty), any other is queued for
//! removal, found by its request id or, when the owner died before Edgegap answered, by its tag.
//!
//! Sample value (key `a-5f2c0e7d9b1a3c4e`):
//! ```json
//! {"format":1,"kind":"allocation","owner":"mm-0a1b2c3d4e5f6789","tag":"a-5f2c0e7d9b1a3c4e",
//!  "request_id":"9f3a1c2b7d4e","started_at_ms":1700000000000}
//! ```

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::kv;
use bevygap_shared::names::KeyToken;
use bevygap_shared::schema::{KvRecord, decode, encode};
use bevygap_shared::time::now_millis;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::client::EdgegapClient;
use super::removals::{RemovalQueue, RemovalTarget};
use crate::fleet::FleetError;

/// An allocation in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    /// The matchmaker that started it (its presence id).
    pub owner: String,
    /// The tag the deployment is created with (also the record's key).
    pub tag: String,
    /// Edgegap's request id, once Edgegap answered.
    pub request_id: Option<String>,
    /// When the allocation began.
    pub started_at_ms: u64,
}

impl KvRecord for AllocationRecord {
    const KIND: &'static str = "allocation";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("owner", self.owner.as_str()).map_err(|e| e.to_string())?;
        KeyToken::new("tag", self.tag.as_str()).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The allocation records of one app, written by one matchmaker.
#[derive(Debug, Clone)]
pub struct AllocationLog {
    /// `{app}_fleet_allocations`.
    pub records: kv::Store,
    /// `{app}_matchmakers` (who is alive).
    pub presence: kv::Store,
    /// `{app}_leases` (which deployments registered).
    pub leases: kv::Store,
    /// This matchmaker's presence id.
    pub owner: String,
}

impl AllocationLog {
    /// Records a new allocation before the provider is called; returns its tag. A record that
    /// cannot be written is logged and the allocation goes on (players come first).
    pub async fn begin(&self) -> String {
        let tag = format!("a-{:016x}", rand::random::<u64>());
        self.write(&AllocationRecord {
            owner: self.owner.clone(),
            tag: tag.clone(),
            request_id: None,
            started_at_ms: now_millis(),
        })
        .await;
        tag
    }

    /// Notes the request id Edgegap gave the allocation tagged `tag`.
    pub async fn accepted(&self, tag: &str, request_id: &str) {
        self.write(&AllocationRecord {
            owner: self.owner.clone(),
            tag: tag.to_owned(),
            request_id: Some(request_id.to_owned()),
            started_at_ms: now_millis(),
        })
        .await;
    }

    /// The allocation tagged `tag` ended (ready, failed, or its stop is queued).
    pub async fn end(&self, tag: &str) {
        if let Err(error) = self.records.purge(tag).await {
            warn!("allocation record `{tag}` not removed ({error}); a later sweep removes it");
        }
    }

    async fn write(&self, record: &AllocationRecord) {
        if let Err(error) = self
            .records
            .put(record.tag.as_str(), encode(record).into())
            .await
        {
            warn!(
                "allocation record `{}` not written ({error}); if this matchmaker dies now, the deployment is not taken over",
                record.tag
            );
        }
    }

    /// Takes over the allocations of matchmakers that are gone, older than `min_age`: adopts the
    /// deployments that registered and queues the removal of the others. Returns how many
    /// records were taken over.
    pub async fn sweep(
        &self,
        client: &EdgegapClient,
        removals: &RemovalQueue,
        min_age: Duration,
    ) -> Result<usize, FleetError> {
        let unavailable = |e: &dyn std::fmt::Display| FleetError::Unavailable(e.to_string());
        let live: HashSet<String> = match self.presence.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| unavailable(&e))?,
            Err(error) => return Err(unavailable(&error)),
        };
        let keys: Vec<String> = match self.records.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| unavailable(&e))?,
            Err(error) => return Err(unavailable(&error)),
        };
        let now = now_millis();
        let min_age_ms = u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX);
        let mut taken = 0;
        let mut listed = None;
        for key in keys {
            let Some(bytes) = self.records.get(&key).await.map_err(|e| unavailable(&e))? else {
                continue;
            };
            let record = match decode::<AllocationRecord>(&bytes) {
                Ok(record) => record,
                Err(error) => {
                    warn!("allocation record `{key}` is unreadable ({error}); removing it");
                    self.end(&key).await;
                    continue;
                }
            };
            if live.contains(&record.owner) || now.saturating_sub(record.started_at_ms) < min_age_ms
            {
                continue;
            }
            let ids = match &record.request_id {
                Some(id) => vec![id.clone()],
                None => {
                    // The owner died before Edgegap answered: find the deployment by its tag.
                    if listed.is_none() {
                        listed = Some(client.deployments().await?);
                    }
                    listed
                        .iter()
                        .flat_map(|list| list.data.iter())
                        .filter(|d| d.tags.contains(&record.tag))
                        .map(|d| d.request_id.clone())
                        .collect()
                }
            };
            for id in ids {
                if self
                    .leases
                    .get(id.as_str())
                    .await
                    .map_err(|e| unavailable(&e))?
                    .is_some()
                {
                    info!(
                        "deployment `{id}` of gone matchmaker `{}` registered: adopting it",
                        record.owner
                    );
                    continue;
                }
                info!(
                    "deployment `{id}` was being started by gone matchmaker `{}`: stopping it",
                    record.owner
                );
                removals
                    .push(
                        RemovalTarget::Deployment(id),
                        "its matchmaker died while starting it",
                    )
                    .await?;
            }
            self.end(&record.tag).await;
            taken += 1;
        }
        Ok(taken)
    }
}
