//! Entities due at given times, earliest first.
//!
//! Expiry systems pop what is due instead of scanning every ticket each frame: the event-driven
//! runner updates the app once per burst of requests, and a scan of thousands of waiting tickets
//! would cost every one of those frames. (Reserved seats expire in the ledger itself.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::marker::PhantomData;
use std::time::Duration;

use bevy::prelude::*;

use crate::ticket::Ticket;

/// Deadlines of entities holding a `T`; entries of despawned or changed entities are skipped by
/// the reader when popped.
#[derive(Resource)]
pub struct Deadlines<T> {
    heap: BinaryHeap<Reverse<(Duration, Entity)>>,
    marker: PhantomData<fn() -> T>,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            marker: PhantomData,
        }
    }
}

impl<T> Deadlines<T> {
    /// Adds `entity`, due at `at` (app elapsed time).
    pub fn push(&mut self, at: Duration, entity: Entity) {
        self.heap.push(Reverse((at, entity)));
    }

    /// The next entity due at or before `now`, if any.
    pub fn pop_due(&mut self, now: Duration) -> Option<Entity> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, e))| e),
            _ => None,
        }
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Files each new ticket under its deadline.
pub fn track_ticket(
    trigger: On<Add, Ticket>,
    tickets: Query<&Ticket>,
    mut deadlines: ResMut<Deadlines<Ticket>>,
) {
    if let Ok(ticket) = tickets.get(trigger.event_target()) {
        deadlines.push(ticket.deadline, trigger.event_target());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_due_pops_earliest_first() {
        let mut world = World::new();
        let (a, b, c) = (
            world.spawn_empty().id(),
            world.spawn_empty().id(),
            world.spawn_empty().id(),
        );
        let mut deadlines = Deadlines::<Ticket>::default();
        deadlines.push(Duration::from_secs(3), a);
        deadlines.push(Duration::from_secs(1), b);
        deadlines.push(Duration::from_secs(2), c);
        let now = Duration::from_secs(2);
        let due: Vec<Entity> = std::iter::from_fn(|| deadlines.pop_due(now)).collect();
        assert_eq!(due, [b, c]);
        assert_eq!(deadlines.len(), 1);
    }
}
