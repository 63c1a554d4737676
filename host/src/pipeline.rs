//! The write pipeline: the one path every change takes. An HTTP request that may write and a
//! background task's run both enter through [`Pipeline`], and one committer task applies them
//! in batches that share a transaction and a commit (group commit):
//!
//! ```text
//! BEGIN (the write lock)
//!   job 1: plugin call → checks → writes → stored tasks
//!   job 2: plugin call (sees job 1's writes) → checks → SAVEPOINT → writes … → RELEASE
//!   job 3: plugin call → checks → SAVEPOINT → writes (a version conflict) → ROLLBACK TO
//!   job 4: plugin call → checks → one write (no savepoint needed)
//!   …      jobs that arrive while the batch runs join it, up to MAX_BATCH / MAX_BATCH_TIME
//!   the notifications of jobs 1, 2 and 4 → the log, with the next offsets, in one insert
//! COMMIT (one fsync) → answer every job → hand the notifications to the emitter, in order
//! ```
//!
//! A job refused by its plugin or by the checks has written nothing; a savepoint guards the
//! writes of a job once the transaction holds earlier jobs' writes (the first job's failed
//! writes roll back the whole, still otherwise empty, transaction). A job whose writes are one
//! statement needs none: a version conflict is answered inside the statement (`ON CONFLICT DO
//! NOTHING`, a versioned `UPDATE`) rather than by its failure, and on SQLite a statement that
//! fails has changed nothing and the transaction goes on. On PostgreSQL a failed statement
//! aborts the transaction, so there the one statement must be sure not to fail for the
//! plugin's sake: a record too large to be surely indexable still takes a savepoint.
//!
//! Each job still sees the writes of those before it and fails alone: a refused or faulting
//! job writes, logs and notifies nothing. Nobody is answered before the commit, so an
//! acknowledged write is durable. Offsets are given to the notifications of the jobs that
//! applied, in job order, just before the commit, so the log stays gapless, in commit order.
//!
//! Plugins are pure controllers (their inputs are the request and their reads), so a batch the
//! database aborts for a transient reason, or whose transaction breaks, is simply run again.
//!
//! For the same reason a request need not wait for its turn to run its plugin: while the
//! committer is busy, a request calls its plugin on its own task, reading the last committed
//! state on a reader connection, and keeps each read with its answer
//! ([`Runtime::run_ahead`]). In its turn the committer asks those reads again in the batch's
//! transaction ([`Runtime::settle`]): if every answer is the same, so is the call's, and only
//! the writes are left to it; if one differs (a job before it wrote what it read), the plugin
//! is called again, in the transaction, as it would have been. The calls of a busy pipeline
//! thus run side by side, and the one serial path is left with the reads again and the
//! writes. A hostile call (a loop to its deadline) no longer holds up every write behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Any;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use crate::db::{self, Db};
use crate::dispatch::{self, DispatchError, Outcome};
use crate::notifications::Notifier;
use crate::plugin::{self, Ahead, LoadedPlugin, Prepared, Runtime, types};
use crate::tasks::TaskWaker;

/// Most jobs in one batch.
const MAX_BATCH: usize = 128;
/// After this long a batch takes no more jobs and commits, so that a steady stream of jobs
/// cannot hold back the answers of the first.
const MAX_BATCH_TIME: Duration = Duration::from_millis(2);
/// Most runs of a batch aborted by the database.
const MAX_ATTEMPTS: u32 = 4;
/// Jobs waiting for the committer; senders wait beyond it.
const QUEUE: usize = 1024;
/// How long the committer keeps the writers' connection from one batch to the next while jobs
/// keep coming, instead of giving it back to the pool (whose check of a returned connection
/// costs the next batch a wait) and taking it again. Other writing transactions (a new user, a
/// plugin being installed) wait for it at most about this long.
const KEEP_CONNECTION: Duration = Duration::from_millis(20);

/// A change to apply.
pub enum Work {
    /// An HTTP request routed to a plugin action that may write, with what
    /// [`Pipeline::apply`] did for it ahead of its turn.
    Request { plugin: Arc<LoadedPlugin>, req: Box<types::Request>, early: Early },
    /// A run of the stored task `task_id`: it is removed in the same savepoint, so when
    /// servers share the database the one that removes it runs it.
    Task { plugin: Arc<LoadedPlugin>, task_id: String, req: types::TaskRequest },
}

/// What a request's plugin call has from before its turn.
pub enum Early {
    Nothing,
    /// Its instance ([`Runtime::prepare`]).
    Instance(Prepared),
    /// The call itself, to be settled ([`Runtime::run_ahead`]).
    Call(Box<Ahead>),
}

/// What a job comes to: the outcome, or `None` for a task that was gone (run elsewhere).
pub type Done = Result<Option<Outcome>, DispatchError>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Done>,
}

/// The entry to the write pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    jobs: mpsc::Sender<Job>,
    db: Db,
    runtime: Arc<Runtime>,
    stats: Arc<PipelineStats>,
    /// Changes in [`Pipeline::apply`], from entry to answer.
    in_flight: Arc<AtomicUsize>,
}

/// Counters of the committer, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Jobs answered from committed batches.
    pub jobs: AtomicU64,
    /// Plugin calls run ahead of their turn whose reads answered the same in it.
    pub settled_ahead: AtomicU64,
    /// Plugin calls run ahead of their turn and made again in it, a read having changed.
    pub made_again: AtomicU64,
    /// Microseconds the committer spent running batches, from taking the first job to
    /// answering the last. Per second of wall-clock time it is the committer's load: near 1,
    /// writes queue for the one serial path.
    pub busy_micros: AtomicU64,
}

impl Work {
    /// The time the change happens at, as the plugin was told.
    fn now(&self) -> &str {
        match self {
            Work::Request { req, .. } => &req.now,
            Work::Task { req, .. } => &req.now,
        }
    }
}

impl Pipeline {
    /// Start the committer task.
    pub fn start(
        db: Db,
        runtime: Arc<Runtime>,
        notifier: Notifier,
        tasks: TaskWaker,
    ) -> (Pipeline, tokio::task::JoinHandle<()>) {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let stats = Arc::<PipelineStats>::default();
        let committer = Committer {
            db: db.clone(),
            runtime: Arc::clone(&runtime),
            notifier,
            tasks,
            queue,
            stats: Arc::clone(&stats),
        };
        let pipeline = Pipeline { jobs, db, runtime, stats, in_flight: Arc::default() };
        (pipeline, tokio::spawn(committer.run()))
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Apply `work` and answer once it is committed (or refused).
    pub async fn apply(&self, mut work: Work) -> Done {
        // An isolated plugin is answered at once, without waiting for a batch.
        let (Work::Request { plugin, .. } | Work::Task { plugin, .. }) = &work;
        plugin.available()?;
        let in_flight = InFlight::enter(self);
        // What can be done before the request's turn is done here, on its own task, rather
        // than by the committer, which runs one job at a time: with other changes under way,
        // the call itself (when a reader connection is free); else the instance for it.
        if let Work::Request { plugin, req, early } = &mut work {
            let ahead = match in_flight.others.then(|| self.db.try_reader()).flatten() {
                Some(reader) => {
                    let (ahead, idle) = self.runtime.run_ahead(plugin, req, reader).await;
                    if let Some(reader) = idle {
                        self.db.keep_reader(reader);
                    }
                    ahead
                }
                None => None,
            };
            *early = match ahead {
                Some(ahead) => Early::Call(Box::new(ahead)),
                None => self.runtime.prepare(plugin).await.map_or(Early::Nothing, Early::Instance),
            };
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || DispatchError::Internal("the write pipeline has stopped".into());
        self.jobs.send(Job { work, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Run a request that may write; see [`Pipeline::apply`].
    pub async fn write(&self, plugin: Arc<LoadedPlugin>, req: types::Request) -> Result<Outcome, DispatchError> {
        let outcome = self.apply(Work::Request { plugin, req: Box::new(req), early: Early::Nothing }).await?;
        outcome.ok_or_else(|| DispatchError::Internal("a request came back without an outcome".into()))
    }
}

/// A change counted in [`Pipeline::in_flight`] while this lives. The last one out gives the
/// readers kept for calls run ahead back to the pool ([`Db::keep_reader`]).
struct InFlight<'a> {
    pipeline: &'a Pipeline,
    /// Whether other changes were under way when this one entered.
    others: bool,
}

impl<'a> InFlight<'a> {
    fn enter(pipeline: &'a Pipeline) -> Self {
        InFlight { pipeline, others: pipeline.in_flight.fetch_add(1, Ordering::Relaxed) > 0 }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.pipeline.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.pipeline.db.release_readers();
        }
    }
}

struct Committer {
    db: Db,
    runtime: Arc<Runtime>,
    notifier: Notifier,
    tasks: TaskWaker,
    queue: mpsc::Receiver<Job>,
    stats: Arc<PipelineStats>,
}

/// The writers' connection, kept from the last batch (see [`KEEP_CONNECTION`]).
struct Kept {
    conn: Option<PoolConnection<Any>>,
    /// When the committer took it from the pool.
    since: Instant,
}

impl Committer {
    async fn run(mut self) {
        let mut kept = Kept { conn: None, since: Instant::now() };
        while let Some(first) = self.queue.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH
                && let Ok(job) = self.queue.try_recv()
            {
                jobs.push(job);
            }
            let started = Instant::now();
            self.commit(jobs, &mut kept).await;
            self.stats.busy_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            if self.queue.is_empty() || kept.since.elapsed() >= KEEP_CONNECTION {
                kept.conn = None;
            }
        }
    }

    /// Run `jobs` as one batch (taking in more while it runs), commit, and answer them.
    async fn commit(&mut self, mut jobs: Vec<Job>, kept: &mut Kept) {
        let mut attempt = 1;
        let results = loop {
            match self.batch(&mut jobs, attempt == 1, kept).await {
                Ok(results) => break results,
                Err(err) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, %err, jobs = jobs.len(), "a batch was aborted; running it again");
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    attempt += 1;
                }
                Err(err) => {
                    tracing::error!(%err, jobs = jobs.len(), "a batch failed");
                    for job in jobs {
                        let _ = job.reply.send(Err(DispatchError::Internal(err.to_string())));
                    }
                    return;
                }
            }
        };
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let mut notifications = Vec::new();
        let mut stored_tasks = false;
        for (job, mut result) in jobs.into_iter().zip(results) {
            if let Ok(Some(outcome)) = &mut result {
                notifications.append(&mut outcome.notifications);
                stored_tasks |= outcome.tasks > 0;
            }
            // The caller may have gone (a closed connection); its change is committed anyway.
            let _ = job.reply.send(result);
        }
        if !notifications.is_empty() {
            self.notifier.committed(notifications);
        }
        if stored_tasks {
            self.tasks.wake();
        }
    }

    /// One run of a batch in one transaction: every job's result, or the database error that
    /// aborted the batch. On the first run, jobs that arrive meanwhile join the batch. It runs
    /// on the connection in `kept`, if any, and leaves its connection there once committed.
    async fn batch(&mut self, jobs: &mut Vec<Job>, take_more: bool, kept: &mut Kept) -> Result<Vec<Done>, db::Error> {
        let started = Instant::now();
        if kept.conn.is_none() {
            kept.since = started;
        }
        let mut tx = self.db.begin_write_on(kept.conn.take()).await?;
        // Whether the transaction holds an earlier job's writes: until it does, a job needs no
        // savepoint (should its writes fail, the whole transaction is rolled back and begun
        // again), which saves two round trips on an idle server.
        let mut holds_writes = false;
        let mut results = Vec::with_capacity(jobs.len());
        // The notifications of the jobs applied, in order, logged together before the commit.
        let mut unlogged = Vec::new();
        let mut i = 0;
        while i < jobs.len() {
            let (result, back, writes) = self.job(&mut jobs[i].work, tx, holds_writes).await;
            tx =
                back.ok_or_else(|| db::Error::Corrupt("a batch's transaction was lost during a plugin call".into()))?;
            let result = match (result, writes) {
                // The database failed, not the job: the batch is run again.
                (Err(DispatchError::Db(err) | DispatchError::Plugin(plugin::Error::Host(err))), _) => return Err(err),
                (Ok(applied), writes) => {
                    if writes == Writes::InSavepoint {
                        sqlx::query("RELEASE SAVEPOINT job").execute(&mut *tx).await?;
                    }
                    holds_writes |= writes != Writes::None;
                    Ok(applied.map(|applied| {
                        let now = jobs[i].work.now().to_owned();
                        unlogged.extend(applied.notifications.into_iter().map(|n| (n, now.clone())));
                        (applied.outcome, unlogged.len())
                    }))
                }
                (Err(refused), Writes::None | Writes::OneStatement) => Err(refused),
                (Err(refused), Writes::InSavepoint) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT job").execute(&mut *tx).await?;
                    sqlx::query("RELEASE SAVEPOINT job").execute(&mut *tx).await?;
                    Err(refused)
                }
                (Err(refused), Writes::Unprotected) => {
                    let conn = tx.rollback_keeping().await?;
                    tx = self.db.begin_write_on(Some(conn)).await?;
                    Err(refused)
                }
            };
            results.push(result);
            i += 1;
            if take_more
                && i == jobs.len()
                && jobs.len() < MAX_BATCH
                && started.elapsed() < MAX_BATCH_TIME
                && let Ok(job) = self.queue.try_recv()
            {
                jobs.push(job);
            }
        }
        // Each applied job's outcome gets its own notifications back, now with offsets.
        let mut logged = dispatch::log(&mut tx, unlogged).await?.into_iter();
        let mut taken = 0;
        let results = results
            .into_iter()
            .map(|result| {
                result.map(|applied| {
                    applied.map(|(mut outcome, end)| {
                        outcome.notifications = logged.by_ref().take(end - taken).collect();
                        taken = end;
                        outcome
                    })
                })
            })
            .collect();
        kept.conn = Some(tx.commit_keeping().await?);
        Ok(results)
    }

    /// One job inside the batch's transaction: its result, the transaction (unless it was
    /// lost), and whether it wrote and how. Its writes are in a savepoint when `protect` (the
    /// transaction holds earlier jobs' writes) and they take more than one statement, or on
    /// PostgreSQL (where a failed statement aborts the transaction) one that could fail.
    async fn job(
        &self,
        work: &mut Work,
        mut tx: db::Tx,
        protect: bool,
    ) -> (Result<Option<dispatch::Applied>, DispatchError>, Option<db::Tx>, Writes) {
        // The plugin's checked output, and how far the job has written before applying it.
        let (plugin, checked, now, mut writes) = match work {
            Work::Request { plugin, req, early } => {
                let (result, back) = match std::mem::replace(early, Early::Nothing) {
                    Early::Nothing => self.runtime.handle(plugin, None, req, tx).await,
                    Early::Instance(prepared) => self.runtime.handle(plugin, Some(prepared), req, tx).await,
                    // A call run ahead stands if its reads answer the same in the transaction.
                    Early::Call(ahead) => match self.runtime.settle(plugin, *ahead, tx).await {
                        (Some(result), tx) => {
                            self.stats.settled_ahead.fetch_add(1, Ordering::Relaxed);
                            (result, Some(tx))
                        }
                        (None, tx) => {
                            self.stats.made_again.fetch_add(1, Ordering::Relaxed);
                            self.runtime.handle(plugin, None, req, tx).await
                        }
                    },
                };
                let Some(back) = back else { return (result.map(|_| None).map_err(Into::into), None, Writes::None) };
                tx = back;
                let checked = result.map_err(DispatchError::from).and_then(|response| {
                    dispatch::check(plugin, response, req, false).map_err(|m| dispatch::fault(&self.runtime, plugin, m))
                });
                (plugin, checked, &req.now, Writes::None)
            }
            Work::Task { plugin, task_id, req } => {
                // The task's removal is a write: in the savepoint with the run's writes.
                let writes = match Writes::begin(&mut tx, protect).await {
                    Ok(writes) => writes,
                    Err(err) => return (Err(err.into()), Some(tx), Writes::None),
                };
                match db::tasks::remove(&mut *tx, task_id).await {
                    Ok(true) => {}
                    Ok(false) => return (Ok(None), Some(tx), writes),
                    Err(err) => return (Err(err.into()), Some(tx), writes),
                }
                let (result, back) = self.runtime.run_task(plugin, req, tx).await;
                let Some(back) = back else { return (result.map(|_| None).map_err(Into::into), None, writes) };
                tx = back;
                // A task has no caller: no session to address, no socket to skip.
                let checked = result.map_err(DispatchError::from).and_then(|response| {
                    dispatch::check_for(plugin, response, &types::Actor::Anonymous, None, false)
                        .and_then(|checked| match checked.tasks.is_empty() {
                            true => Ok(checked),
                            false => Err("a task may not start tasks".into()),
                        })
                        .map_err(|message| dispatch::fault(&self.runtime, plugin, message))
                });
                (plugin, checked, &req.now, writes)
            }
        };
        // Refused by the plugin or by the checks: nothing more is written.
        let checked = match checked {
            Ok(checked) => checked,
            Err(err) => return (Err(err), Some(tx), writes),
        };
        self.runtime.record_outcome(plugin, false);
        if writes == Writes::None {
            writes = if protect && dispatch::one_safe_statement(&self.db, &checked) {
                Writes::OneStatement
            } else {
                match Writes::begin(&mut tx, protect).await {
                    Ok(writes) => writes,
                    Err(err) => return (Err(err.into()), Some(tx), Writes::None),
                }
            };
        }
        let done = dispatch::apply(&mut tx, &self.db, plugin, checked, now).await.map(Some);
        (done, Some(tx), writes)
    }
}

/// How a job's writes sit in the batch's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    /// It wrote nothing.
    None,
    /// In the open savepoint `job`.
    InSavepoint,
    /// Without a savepoint: the transaction held nothing before them.
    Unprotected,
    /// In one statement, without a savepoint: a version check is answered inside it; on SQLite
    /// a statement that fails has changed nothing and the transaction goes on, and on
    /// PostgreSQL it is one that cannot fail for the plugin's sake.
    OneStatement,
}

impl Writes {
    async fn begin(tx: &mut db::Tx, protect: bool) -> Result<Writes, db::Error> {
        if !protect {
            return Ok(Writes::Unprotected);
        }
        sqlx::query("SAVEPOINT job").execute(&mut **tx).await?;
        Ok(Writes::InSavepoint)
    }
}
