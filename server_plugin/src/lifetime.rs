//! The server's lifetime: stop on SIGTERM/SIGINT or when the matchmaker that started it is
//! gone, and remove the lease on the way out.

use std::time::Duration;

use bevy::prelude::*;
use bevy_tokio_tasks::TokioTasksRuntime;
use tokio::sync::{Mutex, watch};

/// The lease task and the switch that stops it.
#[derive(Resource)]
pub(crate) struct Lifetime {
    /// Set when the server should stop (signal or orphaned).
    pub terminate: watch::Receiver<bool>,
    /// Turns the lease heartbeat off (the lease is then deleted).
    pub stop_lease: watch::Sender<bool>,
    /// The lease task, filled in once NATS is up.
    pub lease_task: std::sync::Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Resolves on a termination signal, or when `parent` is no longer this process's parent.
pub(crate) async fn wait_for_stop(parent: Option<u32>) {
    tokio::select! {
        () = bevygap_shared::signals::termination() => {}
        () = wait_for_orphaning(parent) => {
            warn!("bevygap: the matchmaker that started this server is gone; stopping");
        }
    }
}

/// Resolves when `parent` is no longer this process's parent (it died and the server was
/// re-parented); never when there is no parent to watch.
async fn wait_for_orphaning(parent: Option<u32>) {
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    #[cfg(unix)]
    loop {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    #[cfg(not(unix))]
    {
        let _ = parent;
        std::future::pending().await
    }
}

/// Exits the app once a stop is requested, so the lease is removed on the way out. The value is
/// read rather than its change: the task that sets it ends at once, and a watch whose sender is
/// gone reports no change even when it holds one nobody saw.
pub(crate) fn exit_on_stop(
    lifetime: Res<Lifetime>,
    mut exited: Local<bool>,
    mut exit: MessageWriter<AppExit>,
) {
    if !*exited && *lifetime.terminate.borrow() {
        *exited = true;
        info!("bevygap: termination requested; shutting down");
        exit.write(AppExit::Success);
    }
}

/// On exit, stops the heartbeat and waits briefly for the lease to be removed.
pub(crate) fn remove_lease_on_exit(
    mut exits: MessageReader<AppExit>,
    lifetime: Res<Lifetime>,
    runtime: Res<TokioTasksRuntime>,
) {
    if exits.read().next().is_none() {
        return;
    }
    lifetime.stop_lease.send_replace(true);
    let task = lifetime.lease_task.clone();
    runtime.runtime().block_on(async move {
        let Some(task) = task.lock().await.take() else {
            return;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_seen_even_after_the_task_that_asked_for_it_has_ended() {
        let mut app = App::new();
        app.add_plugins(bevy::app::TaskPoolPlugin::default());
        let (terminate_tx, terminate) = watch::channel(false);
        let (stop_lease, _) = watch::channel(false);
        app.insert_resource(Lifetime {
            terminate,
            stop_lease,
            lease_task: std::sync::Arc::new(Mutex::new(None)),
        })
        .add_systems(Update, exit_on_stop);
        app.update();
        assert!(app.should_exit().is_none(), "no stop asked yet");
        // The signal task sets the value and ends, dropping its sender.
        terminate_tx.send_replace(true);
        drop(terminate_tx);
        app.update();
        assert_eq!(app.should_exit(), Some(AppExit::Success));
    }
}
