//! Runs fleet requests on tokio and brings the outcomes back as messages.

use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;

use crate::bridge::{Inbox, add_inbox};
use crate::core_plugin::CoreSystems;
use crate::fleet::FleetError;
use crate::fleet::{EndedReporter, FleetBackend};
use crate::messages::{
    AllocateDeployment, AllocationFinished, DeploymentEnded, StopDeployment, StopFailed,
};
use crate::runtime::AsyncRuntime;

/// The fleet backend in use.
#[derive(Resource, Clone)]
pub struct Fleet(pub Arc<dyn FleetBackend>);

/// How often a failed stop is retried before giving up (the deployment then serves players
/// again, and the empty-server rule will ask again).
const STOP_ATTEMPTS: u32 = 5;

/// Connects a [`FleetBackend`] to the core: allocations and stops run on tokio.
pub struct FleetDriverPlugin {
    /// The backend.
    pub backend: Arc<dyn FleetBackend>,
}

impl Plugin for FleetDriverPlugin {
    fn build(&self, app: &mut App) {
        add_inbox::<AllocationFinished>(app);
        add_inbox::<DeploymentEnded>(app);
        add_inbox::<StopFailed>(app);
        let sender = app.world().resource::<Inbox<DeploymentEnded>>().sender();
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        self.backend
            .report_ended(EndedReporter::new(move |deployment_id, reason| {
                let sender = sender.clone();
                runtime.spawn(async move {
                    sender
                        .send(DeploymentEnded {
                            deployment_id,
                            reason,
                        })
                        .await;
                });
            }));
        app.insert_resource(Fleet(self.backend.clone()))
            .add_systems(Update, drive_fleet.in_set(CoreSystems::Effects));
    }
}

/// Starts a task per allocation and stop request.
pub fn drive_fleet(
    fleet: Res<Fleet>,
    runtime: Res<AsyncRuntime>,
    inbox: Res<Inbox<AllocationFinished>>,
    failed: Res<Inbox<StopFailed>>,
    mut allocate: MessageReader<AllocateDeployment>,
    mut stop: MessageReader<StopDeployment>,
) {
    for AllocateDeployment {
        deployment,
        request,
    } in allocate.read()
    {
        let future = fleet.0.allocate(request.clone());
        let sender = inbox.sender();
        let deployment = *deployment;
        runtime.0.spawn(async move {
            let result = future.await;
            sender.send(AllocationFinished { deployment, result }).await;
        });
    }
    for StopDeployment {
        deployment_id,
        reason,
    } in stop.read()
    {
        let backend = fleet.0.clone();
        let deployment_id = deployment_id.clone();
        let reason = *reason;
        let failed = failed.sender();
        runtime.0.spawn(async move {
            let mut last = String::new();
            for attempt in 1..=STOP_ATTEMPTS {
                match backend.stop(deployment_id.clone()).await {
                    Ok(()) => {
                        info!("{} fleet stopped `{deployment_id}` ({reason})", backend.name());
                        return;
                    }
                    Err(error @ FleetError::UnknownDeployment(_)) => {
                        warn!(
                            "{} fleet cannot stop `{deployment_id}`: {error} (another matchmaker or an earlier run started it)",
                            backend.name()
                        );
                        last = error.to_string();
                        break;
                    }
                    Err(error) => {
                        warn!(
                            "{} fleet could not stop `{deployment_id}` (attempt {attempt}/{STOP_ATTEMPTS}): {error}",
                            backend.name()
                        );
                        last = error.to_string();
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
            failed
                .send(StopFailed {
                    deployment_id,
                    reason: last,
                })
                .await;
        });
    }
}
