//! The task runner: background work that plugins ask for in a response (an import, say).
//!
//! A task is stored in the transaction of the request that asked for it, so it exists exactly
//! when that request committed. One runner task takes stored tasks in order and calls the
//! plugin's `run-task` in a transaction of its own; the run's writes, notifications and the
//! removal of the task commit together. A run that does not complete (the plugin refused or
//! faulted, or the process stopped) leaves the task stored and is tried again; the attempt is
//! counted before each run, so a crash counts too. The last attempt is a run with `failure`
//! set, so that the plugin can record why the work did not happen (e.g. a job ends ERROR);
//! if even that does not complete, the task is dropped and the failure logged.
//!
//! Nodes sharing a PostgreSQL database run each task once: a node claims a task for a lease
//! ([`LEASE`]) before counting the attempt and running it, and the others leave it alone until
//! the lease ends; a node that dies mid-run thus leaves the task to another after the lease.
//! A run also removes its task first, under the database's write lock, so even a run that
//! outlasted its lease never completes a task twice. A server alone on SQLite drops the
//! claims of its previous run at start and runs those tasks at once, as before.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::{Clock, iso};
use crate::db::Db;
use crate::db::tasks::{self, StoredTask};
use crate::dispatch::{self, DispatchError};
use crate::pipeline::{Pipeline, Work};
use crate::plugin::{Registry, types};

/// Runs before the final, failure-recording run.
pub const MAX_ATTEMPTS: i64 = 3;

/// How often the runner looks for tasks without being woken.
const TICK: Duration = Duration::from_secs(1);
/// How long a claim on a task lasts: far longer than a run (a plugin call is bounded to
/// seconds), short enough that a dead node's tasks are soon taken over.
pub const LEASE: Duration = Duration::from_secs(30);

/// Wakes the runner after a commit that stored tasks.
#[derive(Clone, Default)]
pub struct TaskWaker(Arc<Notify>);

impl TaskWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct TaskRunner {
    pub db: Db,
    pub clock: Clock,
    pub plugins: Arc<Registry>,
    pub pipeline: Pipeline,
    pub waker: TaskWaker,
}

impl TaskRunner {
    /// Run stored tasks until the server stops, starting with those a previous process left.
    /// On SQLite their claims are released before this returns, so that a claim made after
    /// the start is never taken for the previous run's.
    pub async fn start(self) -> JoinHandle<()> {
        if self.db.dialect == crate::db::Dialect::Sqlite
            && let Err(err) = tasks::release_all(&self.db.pool).await
        {
            tracing::error!(%err, "releasing the claims of the previous run failed");
        }
        tokio::spawn(async move {
            loop {
                match tasks::pending(&self.db.pool, 16, epoch_ms()).await {
                    Ok(pending) if !pending.is_empty() => {
                        let mut ran = false;
                        for task in pending {
                            ran |= self.run(task).await;
                        }
                        if ran {
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(%err, "reading the stored tasks failed"),
                }
                let _ = tokio::time::timeout(TICK, self.waker.0.notified()).await;
            }
        })
    }

    /// One attempt at `task`; `false` when the task waits because its plugin is isolated.
    async fn run(&self, task: StoredTask) -> bool {
        // An isolated plugin is not called: its tasks wait out the cool-down instead of
        // spending their attempts (and their failure run) on it.
        if self.plugins.active(&task.plugin).is_some_and(|plugin| plugin.available().is_err()) {
            return false;
        }
        let now = epoch_ms();
        let attempt = match tasks::claim(&self.db.pool, &task.id, now, now + LEASE.as_millis() as i64).await {
            Ok(Some(attempt)) => attempt,
            // Another node claimed it first.
            Ok(None) => return false,
            Err(err) => {
                tracing::error!(%err, task = task.id, "counting a task attempt failed");
                tokio::time::sleep(TICK).await;
                return true;
            }
        };
        let last = attempt > MAX_ATTEMPTS;
        let failure = last
            .then(|| task.last_error.clone().unwrap_or_else(|| "the server stopped while the task was running".into()));
        let result = self.attempt(&task, attempt, failure).await;
        let outcome = match result {
            Ok(Some(_)) => {
                tracing::info!(plugin = task.plugin, task = task.name, attempt, "task completed");
                return true;
            }
            // Another server on the same database completed it meanwhile.
            Ok(None) => return true,
            Err(err) => err,
        };
        let message = outcome.to_string();
        tracing::warn!(plugin = task.plugin, task = task.name, attempt, error = message, "task attempt failed");
        let recorded = if last {
            tracing::error!(plugin = task.plugin, task = task.name, "task dropped after its last attempt");
            tasks::remove(&self.db.pool, &task.id).await.map(drop)
        } else {
            tasks::record_error(&self.db.pool, &task.id, &message).await
        };
        if let Err(err) = recorded {
            tracing::error!(%err, task = task.id, "recording a task failure failed");
        }
        // Back off a little, so a failing task does not spin.
        tokio::time::sleep(Duration::from_millis(100 << attempt.clamp(0, 4))).await;
        true
    }

    async fn attempt(
        &self,
        task: &StoredTask,
        attempt: i64,
        failure: Option<String>,
    ) -> Result<Option<dispatch::Outcome>, DispatchError> {
        let plugin = self.plugins.active(&task.plugin).ok_or_else(|| {
            DispatchError::Plugin(crate::plugin::Error::Guest(types::PluginError::NotFound(format!(
                "plugin {} is not loaded",
                task.plugin
            ))))
        })?;
        let req = types::TaskRequest {
            name: task.name.clone(),
            input: task.input.clone(),
            now: iso(self.clock.now()),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            failure,
        };
        // Removed in the run's own savepoint, under the write lock: when several servers share
        // the database, the one that removes the task runs it, and the others find it gone.
        self.pipeline.apply(Work::Task { plugin, task_id: task.id.clone(), req }).await
    }
}

/// Wall-clock milliseconds since the Unix epoch: leases follow real time, not the settable
/// host clock.
fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
