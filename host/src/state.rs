//! `AppState`: the cheap clones every handler may need, with `FromRef` substates so each
//! handler takes only what it uses.

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
pub struct AppState {
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
