//! The seam between async work (tokio) and the Bevy schedule.
//!
//! Async tasks hand results to the ECS through bounded [`Inbox`]es; each inbox is drained into
//! Bevy messages of the same type in [`CoreSystems::Receive`](crate::CoreSystems). Every send
//! wakes the app, so a request is handled as soon as it arrives instead of at the next fixed tick
//! (see [`event_driven_runner`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use bevy::app::{AppExit, PluginsState};
use bevy::prelude::*;
use tokio::sync::mpsc;

use crate::core_plugin::CoreSystems;
use crate::shutdown::ShuttingDown;

/// Wakes the runner when something arrives. Cheap to clone.
#[derive(Resource, Debug, Clone, Default)]
pub struct Wake(Arc<(Mutex<bool>, Condvar)>);

impl Wake {
    /// Marks work pending and wakes the runner if it sleeps.
    pub fn wake(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        condvar.notify_one();
    }

    /// Sleeps until woken or `timeout` passes; returns at once if a wake is pending.
    pub fn wait(&self, timeout: Duration) {
        let (flag, condvar) = &*self.0;
        let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap_or_else(PoisonError::into_inner);
        *guard = false;
    }
}

/// Sends to an [`Inbox`] from async code, waking the app.
#[derive(Debug)]
pub struct InboxSender<T> {
    tx: mpsc::Sender<T>,
    wake: Wake,
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T> InboxSender<T> {
    /// Sends, waiting while the inbox is full (back-pressure). False if the app is gone.
    pub async fn send(&self, value: T) -> bool {
        let sent = self.tx.send(value).await.is_ok();
        self.wake.wake();
        sent
    }

    /// Sends without waiting. False if the inbox is full or the app is gone.
    pub fn try_send(&self, value: T) -> bool {
        let sent = self.tx.try_send(value).is_ok();
        self.wake.wake();
        sent
    }
}

/// A bounded async → ECS channel for messages of type `M`.
#[derive(Resource, Debug)]
pub struct Inbox<M> {
    rx: mpsc::Receiver<M>,
    sender: InboxSender<M>,
}

impl<M> Inbox<M> {
    /// A sender for async tasks.
    pub fn sender(&self) -> InboxSender<M> {
        self.sender.clone()
    }
}

/// Capacity of every inbox: past this, async senders wait (the app is behind).
pub const INBOX_CAPACITY: usize = 8192;

/// Adds an inbox for `M` and the system that drains it into `Messages<M>`.
pub fn add_inbox<M: Message>(app: &mut App) {
    if app.world().contains_resource::<Inbox<M>>() {
        return;
    }
    let wake = app
        .world_mut()
        .get_resource_or_insert_with(Wake::default)
        .clone();
    let (tx, rx) = mpsc::channel::<M>(INBOX_CAPACITY);
    app.insert_resource(Inbox::<M> {
        rx,
        sender: InboxSender { tx, wake },
    })
    .add_systems(Update, drain_inbox::<M>.in_set(CoreSystems::Receive));
}

/// Moves everything waiting in the inbox into Bevy messages.
pub fn drain_inbox<M: Message>(mut inbox: ResMut<Inbox<M>>, mut writer: MessageWriter<M>) {
    while let Ok(message) = inbox.rx.try_recv() {
        writer.write(message);
    }
}

/// Asks a running app to exit from another thread.
#[derive(Resource, Debug, Clone, Default)]
pub struct ShutdownFlag(pub Arc<AtomicBool>);

impl ShutdownFlag {
    /// Requests the exit.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether an exit was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs every schedule of `app` on the calling thread, one system after another: no hand-off to
/// the compute pool's threads, which on a small machine compete with tokio's workers and NATS
/// for the same cores (see the README's Performance section for the measurement).
pub fn run_schedules_single_threaded(app: &mut App) {
    let mut schedules = app.world_mut().resource_mut::<Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(bevy::ecs::schedule::SingleThreadedExecutor::new());
    }
}

/// A runner that updates the app whenever an inbox receives something, and at least every
/// `idle_interval` (timers that cannot wake the app are checked that often), running its
/// schedules on this thread ([`run_schedules_single_threaded`]). Exits on `AppExit`, or after a
/// [`ShutdownFlag`] request once drained (see [`crate::shutdown`]) or `grace` has passed.
pub fn event_driven_runner(
    idle_interval: Duration,
    grace: Duration,
) -> impl FnOnce(App) -> AppExit {
    move |mut app: App| {
        let wake = app
            .world_mut()
            .get_resource_or_insert_with(Wake::default)
            .clone();
        let shutdown = app
            .world_mut()
            .get_resource_or_insert_with(ShutdownFlag::default)
            .clone();
        if app.plugins_state() != PluginsState::Cleaned {
            while app.plugins_state() == PluginsState::Adding {
                std::thread::yield_now();
            }
            app.finish();
            app.cleanup();
        }
        run_schedules_single_threaded(&mut app);
        loop {
            app.update();
            if let Some(exit) = app.should_exit() {
                return exit;
            }
            if shutdown.is_requested() {
                let world = app.world_mut();
                match world.get_resource::<ShuttingDown>().copied() {
                    None => {
                        world.insert_resource(ShuttingDown {
                            deadline: std::time::Instant::now() + grace,
                        });
                        continue; // one more update fails what waits
                    }
                    Some(draining) => {
                        if crate::shutdown::drained(world) {
                            info!("drained: every request answered; exiting");
                            crate::shutdown::stop_fleet(world, draining.deadline);
                            return AppExit::Success;
                        }
                        if std::time::Instant::now() >= draining.deadline {
                            warn!("grace period over with requests unanswered; exiting anyway");
                            return AppExit::Success;
                        }
                    }
                }
            }
            wake.wait(idle_interval);
        }
    }
}
