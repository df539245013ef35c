//! The static fleet: servers someone else runs. Bevygap never starts or stops them.
//!
//! Static servers run the server plugin like any other, so they appear through their leases in KV;
//! this backend only answers "no capacity" when all of them are full.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Allocation, AllocationRequest, FleetBackend, FleetError};

/// A fleet of servers that are started and stopped outside Bevygap.
#[derive(Debug, Clone, Default)]
pub struct StaticFleet;

impl FleetBackend for StaticFleet {
    fn name(&self) -> &'static str {
        "static"
    }

    fn allocate(
        &self,
        request: AllocationRequest,
    ) -> BoxFuture<'static, Result<Allocation, FleetError>> {
        let message = format!(
            "static fleet: every server of {} {} is full, and this fleet does not start servers",
            request.game.game, request.game.version
        );
        async move { Err(FleetError::NoCapacity(message)) }.boxed()
    }

    fn stops_servers(&self) -> bool {
        false
    }

    fn stop(&self, _deployment_id: String) -> BoxFuture<'static, Result<(), FleetError>> {
        // Static servers stay up; an empty one simply waits for players.
        async { Ok(()) }.boxed()
    }
}
