//! `AppState`: what every handler may need, with `FromRef` substates so each handler takes
//! only what it uses. axum clones the state for each request (every layer and extractor that
//! takes it), so it is one `Arc`: a clone is one reference count, not one per field.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::lifecycle::PluginManager;
use crate::notifications::Notifier;
use crate::pipeline::Pipeline;
use crate::plugin::{Registry, Runtime};
use crate::sessions::throttle::LoginThrottle;
use crate::tasks::TaskWaker;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What an [`AppState`] shares among its clones.
pub struct Shared {
    pub db: Db,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub plugins: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    pub notifier: Notifier,
    pub manager: PluginManager,
    pub throttle: Arc<LoginThrottle>,
    /// Wakes the background task runner after a commit that stored tasks.
    pub tasks: TaskWaker,
    /// Where every change goes: group-committed batches.
    pub pipeline: Pipeline,
    /// The Socket.IO server, for the operator's view of connected sockets.
    pub io: socketioxide::SocketIo,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Clock {
    fn from_ref(state: &AppState) -> Self {
        state.clock.clone()
    }
}

impl FromRef<AppState> for Notifier {
    fn from_ref(state: &AppState) -> Self {
        state.notifier.clone()
    }
}
