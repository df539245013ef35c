//! Drops the links of peers that never finish the netcode handshake.
//!
//! lightyear 0.30 gives every UDP address that sends a datagram a `LinkOf` entity, and keeps it
//! while the peer stays unconnected: a scanner, a denied client or a replayed token would
//! otherwise grow the server's entity count forever. A link still without `Connected` after
//! [`LinkSweep::ttl`] is despawned (UDP makes a fresh one if the peer sends again).

use std::time::Duration;

use bevy::prelude::*;
use lightyear::prelude::*;

/// How long an unconnected link may live.
#[derive(Resource, Debug, Clone, Copy)]
pub struct LinkSweep {
    /// The longest a peer may take to connect.
    pub ttl: Duration,
}

/// When a link appeared (real time since start-up).
#[derive(Component, Debug, Clone, Copy)]
pub struct LinkSeenAt(pub Duration);

/// Stamps each new link with the time it appeared.
pub fn stamp_new_link(trigger: On<Add, LinkOf>, time: Res<Time<Real>>, mut commands: Commands) {
    commands
        .entity(trigger.event_target())
        .try_insert(LinkSeenAt(time.elapsed()));
}

/// Links whose peer has not connected (yet).
type UnconnectedLinks<'w, 's> = Query<
    'w,
    's,
    (Entity, &'static LinkSeenAt, Option<&'static PeerAddr>),
    (With<LinkOf>, Without<Connected>),
>;

/// Despawns links that stayed unconnected past the TTL.
pub fn sweep_unconnected_links(
    mut commands: Commands,
    time: Res<Time<Real>>,
    sweep: Res<LinkSweep>,
    links: UnconnectedLinks,
) {
    let now = time.elapsed();
    for (entity, seen, addr) in &links {
        if now.saturating_sub(seen.0) >= sweep.ttl {
            debug!(
                "bevygap: dropping the link of {:?}, unconnected for {} s",
                addr.map(|a| a.0),
                sweep.ttl.as_secs()
            );
            commands.entity(entity).try_despawn();
        }
    }
}
