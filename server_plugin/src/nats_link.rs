//! The server's NATS link: connect (retrying forever, also while the matchmaker has not made
//! the buckets yet), open the buckets as the matchmaker made them, then run the lease, the seat
//! watch feeding admission, and the recorder.

use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    ConnectionState, NatsConnection, SeatLedger, connect, install_crypto_provider, open_bucket,
};
use bevygap_shared::schema::{CertDigest, Transport};
use tokio::sync::{Notify, mpsc, watch};

use crate::kv_tasks::{
    ConnectionRecorder, SeatCommand, SeatLost, SharedAdmission, lease_for, run_lease, run_recorder,
    watch_seats,
};
use crate::plugin::BevygapServerConfig;

/// The buckets a game server uses.
pub(crate) struct ServerBuckets {
    /// Its lease.
    pub leases: async_nats::jetstream::kv::Store,
    /// The seat ledger.
    pub seats: SeatLedger,
    /// Its connection records.
    pub connections: async_nats::jetstream::kv::Store,
}

/// What the NATS link reports to and takes from the app.
pub(crate) struct LinkChannels {
    /// Turns true once the lease is written.
    pub registered: watch::Sender<bool>,
    /// Turns true when the lease should be removed (shutdown).
    pub stop: watch::Receiver<bool>,
    /// Players connected now.
    pub players: watch::Receiver<u32>,
    /// The backfill to publish in the lease.
    pub backfill: watch::Receiver<Option<bevygap_shared::schema::LeaseBackfill>>,
    /// Seat commands in.
    pub seat_commands: mpsc::UnboundedReceiver<SeatCommand>,
    /// Lost seats out.
    pub lost: mpsc::UnboundedSender<SeatLost>,
    /// The admission table to feed.
    pub admission: SharedAdmission,
    /// Rung by the gate when a client's reservation is not known yet.
    pub lookups: Arc<Notify>,
    /// Whether NATS is connected now.
    pub nats_connected: watch::Sender<bool>,
    /// Clients whose seat or connection record waits for NATS.
    pub unsaved_records: watch::Sender<usize>,
}

/// Runs the link; returns the lease task (awaited on shutdown so the lease is removed).
pub(crate) async fn run_nats(
    config: BevygapServerConfig,
    transport: Transport,
    digest: Option<CertDigest>,
    channels: LinkChannels,
) -> tokio::task::JoinHandle<()> {
    install_crypto_provider();
    let mut attempt = 0u32;
    let (nats, buckets) = loop {
        match connect_and_open(&config).await {
            Ok(done) => break done,
            Err(error) => {
                attempt = attempt.saturating_add(1);
                let delay =
                    Duration::from_millis(200u64.saturating_mul(u64::from(attempt.min(25))));
                warn!(
                    "bevygap: NATS not ready ({error}); retrying in {delay:?}. Players can't be placed here until it is."
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    let recorder = ConnectionRecorder {
        connections: buckets.connections.clone(),
        seats: buckets.seats.clone(),
        context: config.context.clone(),
    };
    let mut state = nats.watch_state();
    let connected = channels.nats_connected;
    tokio::spawn(async move {
        loop {
            let now = matches!(
                *state.borrow_and_update(),
                ConnectionState::Connected { .. }
            );
            connected.send_replace(now);
            if state.changed().await.is_err() {
                connected.send_replace(false);
                return;
            }
        }
    });
    tokio::spawn(run_recorder(
        recorder,
        channels.seat_commands,
        channels.lost,
        channels.unsaved_records,
    ));
    tokio::spawn(watch_seats(
        nats.clone(),
        buckets.seats.clone(),
        config.context.clone(),
        channels.admission,
        channels.lookups,
    ));
    let lease = lease_for(&config.context, transport, digest);
    tokio::spawn(run_lease(
        buckets.leases,
        lease,
        channels.players,
        channels.backfill,
        config.heartbeat,
        channels.registered,
        channels.stop,
    ))
}

async fn connect_and_open(
    config: &BevygapServerConfig,
) -> Result<(NatsConnection, ServerBuckets), String> {
    let names = AppNames::new(&config.context.app_name).map_err(|e| e.to_string())?;
    let mut settings = config.nats.clone();
    settings.inbox_prefix = Some(names.gameserver_inbox_prefix(&config.context.deployment_id));
    let nats = connect(
        &settings,
        &format!("bevygap-server-{}", config.context.deployment_id),
    )
    .await
    .map_err(|e| e.to_string())?;
    // The matchmaker owns the buckets and their settings: use them as they are.
    let js = nats.jetstream();
    let open =
        |name: String| async move { open_bucket(js, &name).await.map_err(|e| e.to_string()) };
    let buckets = ServerBuckets {
        leases: open(names.leases_bucket()).await?,
        seats: SeatLedger::new(open(names.reservations_bucket()).await?, js.clone())
            .with_direct_reads(),
        connections: open(names.connections_bucket()).await?,
    };
    Ok((nats, buckets))
}
