//! The seat ledger as a model: the compare-and-set semantics of the NATS one (a revision per key,
//! one sequence for the bucket, writes that name the revision they expect), in memory, so
//! headless cores — one or several — can be driven against it deterministically.

use std::collections::BTreeMap;

use bevygap_matchmaker::messages::{
    FreeSeat, ReservationStored, SeatChanged, SeatStoreError, StoreReservation,
};
use bevygap_shared::schema::{SeatHolder, SeatRecord};

/// One key of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Last revision (0: no history).
    pub revision: u64,
    /// The record, `None` when freed.
    pub record: Option<SeatRecord>,
    /// When a reserved seat lapses (model time, ms), if it does.
    pub lapses_at: Option<u64>,
}

/// The ledger.
#[derive(Debug, Default)]
pub struct LedgerModel {
    sequence: u64,
    /// Keys by (deployment, seat).
    pub keys: BTreeMap<(String, u32), Key>,
    /// Changes not yet delivered to watchers (every core sees every change, in order).
    pub log: Vec<SeatChanged>,
}

impl LedgerModel {
    fn write(
        &mut self,
        deployment: &str,
        seat: u32,
        record: Option<SeatRecord>,
        lapses_at: Option<u64>,
    ) -> u64 {
        self.sequence += 1;
        let revision = self.sequence;
        self.keys.insert(
            (deployment.to_owned(), seat),
            Key {
                revision,
                record: record.clone(),
                lapses_at,
            },
        );
        self.log.push(SeatChanged {
            deployment_id: deployment.to_owned(),
            seat,
            revision,
            record,
        });
        revision
    }

    /// The key's revision and record now.
    pub fn current(&self, deployment: &str, seat: u32) -> (u64, Option<SeatRecord>) {
        self.keys
            .get(&(deployment.to_owned(), seat))
            .map_or((0, None), |k| (k.revision, k.record.clone()))
    }

    /// Applies a matchmaker's seat write: it wins only if the key is still at the revision the
    /// writer expected.
    pub fn store(&mut self, request: &StoreReservation, now_ms: u64) -> ReservationStored {
        let deployment = request.record.deployment_id.clone();
        let seat = request.record.seat;
        let (revision, current) = self.current(&deployment, seat);
        let result = if revision == request.expected_revision {
            let lapses_at = now_ms + u64::try_from(request.ttl.as_millis()).unwrap_or(u64::MAX);
            Ok(self.write(
                &deployment,
                seat,
                Some(request.record.clone()),
                Some(lapses_at),
            ))
        } else {
            Err(SeatStoreError::Lost(Some((revision, current))))
        };
        ReservationStored {
            reservation: request.reservation,
            result,
        }
    }

    /// A game server's client connects on a reserved seat (reserved → connected, checked).
    pub fn connect(&mut self, deployment: &str, seat: u32) -> bool {
        let (_, current) = self.current(deployment, seat);
        let Some(SeatHolder::Reserved {
            reservation_id,
            client_id,
            ..
        }) = current.map(|r| r.holder)
        else {
            return false;
        };
        let record = SeatRecord {
            deployment_id: deployment.to_owned(),
            seat,
            holder: SeatHolder::Connected {
                reservation_id,
                client_id,
                connected_at_ms: 0,
            },
        };
        self.write(deployment, seat, Some(record), None);
        true
    }

    /// Frees a seat (a client left, or a matchmaker gives a seat back).
    pub fn free(&mut self, deployment: &str, seat: u32) {
        if self.current(deployment, seat).1.is_some() {
            self.write(deployment, seat, None, None);
        }
    }

    /// A matchmaker's [`FreeSeat`]: applied only at the revision it names.
    pub fn free_at(&mut self, request: &FreeSeat) {
        if self.current(&request.deployment_id, request.seat).0 == request.revision {
            self.free(&request.deployment_id, request.seat);
        }
    }

    /// Lapses every reserved seat whose TTL is over at `now_ms`.
    pub fn lapse(&mut self, now_ms: u64) {
        let due: Vec<(String, u32)> = self
            .keys
            .iter()
            .filter(|(_, k)| k.record.is_some() && k.lapses_at.is_some_and(|at| at <= now_ms))
            .map(|(key, _)| key.clone())
            .collect();
        for (deployment, seat) in due {
            self.free(&deployment, seat);
        }
    }

    /// Removes every key of a deployment (a purge: no events, nothing to replay).
    pub fn purge(&mut self, deployment: &str) {
        self.keys.retain(|(d, _), _| d != deployment);
    }

    /// Every live seat, as a watch's listing reports it.
    pub fn listing(&self) -> Vec<SeatChanged> {
        self.keys
            .iter()
            .filter(|(_, k)| k.record.is_some())
            .map(|((deployment, seat), k)| SeatChanged {
                deployment_id: deployment.clone(),
                seat: *seat,
                revision: k.revision,
                record: k.record.clone(),
            })
            .collect()
    }

    /// Keys whose holder matches `held_as`, in key order.
    pub fn keys_where(&self, held_as: impl Fn(&SeatHolder) -> bool) -> Vec<(String, u32)> {
        self.keys
            .iter()
            .filter(|(_, k)| k.record.as_ref().is_some_and(|r| held_as(&r.holder)))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Live seats of a deployment (held by anyone).
    pub fn held(&self, deployment: &str) -> usize {
        self.keys
            .iter()
            .filter(|((d, _), k)| d == deployment && k.record.is_some())
            .count()
    }
}
