//! The tokio runtime shared by every async part of the matchmaker.

use bevy::prelude::*;
use tokio::runtime::Handle;

/// A handle to the tokio runtime (provided by `bevy_tokio_tasks`), for spawning async work.
#[derive(Resource, Debug, Clone)]
pub struct AsyncRuntime(pub Handle);
