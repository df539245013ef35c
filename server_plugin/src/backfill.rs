//! Backfill: a running game server asks its matchmakers' queue for players — so many open places
//! per team — and the matchmakers match waiting tickets into them, like any other match, with
//! tokens for this server carrying each player's team.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevygap_server_plugin::backfill::{BackfillRequest, BevygapBackfillExt};
//!
//! fn someone_left(mut commands: Commands) {
//!     commands.bevygap_request_backfill(BackfillRequest {
//!         queue: "ranked-2v2".into(),
//!         open_per_team: vec![0, 1],
//!         attributes: Default::default(),
//!     });
//! }
//! ```
//!
//! The plugin turns the open places into seats — free seats of this server, each for a team —
//! and publishes them in the server's lease. Matchmakers take exactly those seats by
//! compare-and-set, so two never fill one place twice. A place counts as filled once its seat is
//! sold (a token was issued for it); when every place is filled, the request ends by itself.

use std::collections::{BTreeSet, HashMap};

use bevy::prelude::*;
use bevygap_shared::protocol::queue::Attributes;
use bevygap_shared::schema::{BackfillSlot, LeaseBackfill};
use lightyear::prelude::Disconnected;
use tokio::sync::watch;

use crate::clients::{AdmittedClient, Seating};
use crate::kv_tasks::lock;

/// Players a running server asks a queue for.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRequest {
    /// The matchmaking queue (as in the matchmaker's `--queues` file).
    pub queue: String,
    /// Open places per team (index = team, 0-based).
    pub open_per_team: Vec<u32>,
    /// The match's attributes, for the queue's rules (e.g. its average skill).
    pub attributes: Attributes,
}

/// The backfill this server asks for now, and the seats it published for it. Read it to see
/// what is still open; change it with [`BevygapBackfillExt`].
#[derive(Resource, Debug, Default)]
pub struct BevygapBackfill {
    wanted: Option<BackfillRequest>,
    slots: Vec<BackfillSlot>,
}

impl BevygapBackfill {
    /// The open places per team, if a backfill is under way.
    pub fn open_per_team(&self) -> Option<&[u32]> {
        self.wanted.as_ref().map(|w| w.open_per_team.as_slice())
    }

    /// The request under way.
    pub fn request(&self) -> Option<&BackfillRequest> {
        self.wanted.as_ref()
    }

    /// The seats published for it, each with its team.
    pub fn slots(&self) -> &[BackfillSlot] {
        &self.slots
    }
}

/// Adds `commands.bevygap_request_backfill(..)` and `commands.bevygap_cancel_backfill()`.
pub trait BevygapBackfillExt {
    /// Asks for players (replaces any request under way).
    fn bevygap_request_backfill(&mut self, request: BackfillRequest);
    /// Asks `queue` for one more player on `team` (adds to the request under way, or starts one
    /// with no attributes).
    fn bevygap_backfill_one(&mut self, queue: &str, team: u32);
    /// Stops asking.
    fn bevygap_cancel_backfill(&mut self);
}

impl BevygapBackfillExt for Commands<'_, '_> {
    fn bevygap_request_backfill(&mut self, request: BackfillRequest) {
        self.queue(move |world: &mut World| {
            if let Some(mut backfill) = world.get_resource_mut::<BevygapBackfill>() {
                info!(
                    "bevygap: asking queue `{}` for players: {:?} open per team",
                    request.queue, request.open_per_team
                );
                backfill.wanted = Some(request);
            } else {
                warn!("bevygap: backfill needs the matchmaker (not available in local mode)");
            }
        });
    }

    fn bevygap_backfill_one(&mut self, queue: &str, team: u32) {
        let queue = queue.to_owned();
        self.queue(move |world: &mut World| {
            let Some(mut backfill) = world.get_resource_mut::<BevygapBackfill>() else {
                warn!("bevygap: backfill needs the matchmaker (not available in local mode)");
                return;
            };
            let wanted = backfill.wanted.get_or_insert_with(|| BackfillRequest {
                queue: queue.clone(),
                open_per_team: Vec::new(),
                attributes: Attributes::default(),
            });
            let team = team as usize;
            if wanted.open_per_team.len() <= team {
                wanted.open_per_team.resize(team + 1, 0);
            }
            wanted.open_per_team[team] += 1;
            info!(
                "bevygap: asking queue `{}` for players: {:?} open per team",
                wanted.queue, wanted.open_per_team
            );
        });
    }

    fn bevygap_cancel_backfill(&mut self) {
        self.queue(|world: &mut World| {
            if let Some(mut backfill) = world.get_resource_mut::<BevygapBackfill>() {
                backfill.wanted = None;
            }
        });
    }
}

/// Where the lease task reads the published backfill, and this server's seat count.
#[derive(Resource)]
pub(crate) struct BackfillPublisher {
    pub sender: watch::Sender<Option<LeaseBackfill>>,
    pub capacity: u32,
}

/// Counts places whose seat was sold as filled, picks free seats for the places still open,
/// and publishes the result for the lease when it changes.
pub(crate) fn publish_backfill(
    mut backfill: ResMut<BevygapBackfill>,
    publisher: Res<BackfillPublisher>,
    seating: Res<Seating>,
    admitted: Query<&AdmittedClient, Without<Disconnected>>,
) {
    if backfill.wanted.is_none() && backfill.slots.is_empty() {
        publisher
            .sender
            .send_if_modified(|published| published.take().is_some());
        return;
    }
    let mut taken: BTreeSet<u32> = lock(&seating.admission).reserved_seats().collect();
    taken.extend(admitted.iter().map(|a| a.seat));
    let backfill = &mut *backfill;
    let next = match &mut backfill.wanted {
        None => {
            backfill.slots.clear();
            None
        }
        Some(wanted) => {
            let slots = place_slots(
                &mut wanted.open_per_team,
                std::mem::take(&mut backfill.slots),
                &taken,
                publisher.capacity,
            );
            if wanted.open_per_team.iter().all(|open| *open == 0) {
                info!("bevygap: backfill of queue `{}` filled", wanted.queue);
                backfill.wanted = None;
                None
            } else {
                backfill.slots = slots.clone();
                Some(LeaseBackfill {
                    queue: wanted.queue.clone(),
                    slots,
                    attributes: wanted.attributes.clone(),
                })
            }
        }
    };
    publisher.sender.send_if_modified(|published| {
        let changed = *published != next;
        *published = next;
        changed
    });
}

/// The seats for the open places: a place whose seat was sold is filled (its team's count goes
/// down); the other places keep their seats; new places get the lowest free seats.
fn place_slots(
    open_per_team: &mut [u32],
    previous: Vec<BackfillSlot>,
    taken: &BTreeSet<u32>,
    capacity: u32,
) -> Vec<BackfillSlot> {
    let mut slots = Vec::new();
    let mut per_team: HashMap<u32, u32> = HashMap::new();
    for slot in previous {
        let Some(open) = open_per_team.get_mut(slot.team as usize) else {
            continue;
        };
        if taken.contains(&slot.seat) {
            *open = open.saturating_sub(1);
        } else if per_team.get(&slot.team).copied().unwrap_or(0) < *open {
            *per_team.entry(slot.team).or_default() += 1;
            slots.push(slot);
        }
    }
    let mut free = (0..capacity).filter(|seat| {
        !taken.contains(seat) && !slots.iter().any(|slot: &BackfillSlot| slot.seat == *seat)
    });
    let mut added = Vec::new();
    for (team, open) in open_per_team.iter().enumerate() {
        let team = u32::try_from(team).unwrap_or(u32::MAX);
        let have = per_team.get(&team).copied().unwrap_or(0);
        for _ in have..*open {
            match free.next() {
                Some(seat) => added.push(BackfillSlot { seat, team }),
                None => break,
            }
        }
    }
    slots.extend(added);
    slots.sort_by_key(|slot| slot.seat);
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(seat: u32, team: u32) -> BackfillSlot {
        BackfillSlot { seat, team }
    }

    #[test]
    fn open_places_take_the_lowest_free_seats_and_a_sold_seat_fills_its_place() {
        let taken: BTreeSet<u32> = [0, 2].into();
        let mut open = vec![1, 1];
        let slots = place_slots(&mut open, Vec::new(), &taken, 4);
        assert_eq!(slots, vec![slot(1, 0), slot(3, 1)]);
        // Seat 3 is sold: team 1's place is filled; team 0's keeps its seat.
        let taken: BTreeSet<u32> = [0, 2, 3].into();
        let slots = place_slots(&mut open, slots, &taken, 4);
        assert_eq!(open, vec![1, 0]);
        assert_eq!(slots, vec![slot(1, 0)]);
    }

    #[test]
    fn places_beyond_the_free_seats_wait_for_a_seat() {
        let taken: BTreeSet<u32> = [0, 1, 2].into();
        let mut open = vec![2];
        let slots = place_slots(&mut open, Vec::new(), &taken, 4);
        assert_eq!(slots, vec![slot(3, 0)], "one free seat for two places");
        assert_eq!(open, vec![2], "the other place stays open");
    }
}
