//! The emitter task: emits committed notifications in offset order, seats sockets (with
//! replay for resuming ones), records its position, and prunes the log.
//!
//! Entries reach it two ways. A committing request of this node hands its entries over in
//! memory right after its commit ([`Handoff`]), so they leave without a database read; the
//! log is read to fill a gap (an entry committed by a request that did not hand it over), when
//! another node says the log grew (`crate::cluster` hears it), and every [`TICK`] regardless,
//! which covers a lost listening connection.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::Notify;

use crate::clock::{Clock, iso};
use crate::db::notifications::{self as log, LoggedNotification};
use crate::db::{Db, cluster};
use crate::notifications::{ADMIN_ROOM, RECOVERY_EVENT, Retention, Seat, Seats, socket_room};

/// How often the emitter reads the log without being asked to.
const TICK: Duration = Duration::from_millis(500);
/// How long a gap in the handed-over entries may last before the log is read to fill it
/// (the missing entry is usually a moment behind, handed over by a request still running).
const GAP_WAIT: Duration = Duration::from_millis(2);
/// How often the emitted position is written to the database when it moved (not every round:
/// that write would compete with every request for the write lock)…
const RECORD_EVERY: Duration = Duration::from_secs(1);
/// …and at least this often, as the node's sign of life.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A node whose position is older than this is taken for dead: pruning no longer waits for it.
const NODE_ALIVE: Duration = Duration::from_secs(60);
/// How often the log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most log entries read per round.
const BATCH: i64 = 500;
/// Most entries waiting in the handoff; past it, entries are left for the log read.
const MAX_HANDED_OFF: usize = 10_000;
/// How long a replay waits for a socket whose buffer is full.
const SLOW_CONSUMER_WAIT: Duration = Duration::from_secs(5);
/// How long a cut socket's disconnect packet is retried (longer than the Engine.IO heartbeat,
/// which closes a client that reads nothing at all).
const CUT_RETRY_FOR: Duration = Duration::from_secs(60);

/// Committed entries handed from the committing requests to the emitter.
#[derive(Default)]
pub(super) struct Handoff {
    pending: Mutex<BTreeMap<i64, LoggedNotification>>,
    /// Something was committed that was not handed over: read the log.
    read_log: AtomicBool,
    wake: Notify,
}

impl Handoff {
    pub(super) fn committed(&self, entries: Vec<LoggedNotification>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() + entries.len() <= MAX_HANDED_OFF {
            pending.extend(entries.into_iter().map(|n| (n.seq, n)));
            drop(pending);
            self.wake.notify_one();
        } else {
            drop(pending);
            self.read_log();
        }
    }

    /// Entries were committed that are not at hand: the emitter reads them from the log.
    pub(super) fn read_log(&self) {
        self.read_log.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The emitter task's state; [`Emitter::start`] runs it.
pub struct Emitter {
    io: SocketIo,
    db: Db,
    clock: Clock,
    retention: Retention,
    /// The highest offset emitted…
    last: i64,
    /// …shared with the connect handler, which seats a new socket from there, and with the
    /// bookkeeping task, which records it in the database.
    position: Arc<AtomicI64>,
    handoff: Arc<Handoff>,
    seats: Seats,
}

impl Emitter {
    pub(super) async fn new(
        io: SocketIo,
        db: Db,
        clock: Clock,
        retention: Retention,
        handoff: Arc<Handoff>,
        position: Arc<AtomicI64>,
        seats: Seats,
    ) -> Result<Emitter, crate::db::Error> {
        // A new node has no sockets yet: it starts at the log's head. (Clients of a stopped
        // node resume by offset, here or on any other node.) On SQLite the server is alone,
        // so whatever positions an earlier run recorded are stale.
        let last = log::counter(&db.pool, "notification_seq").await?;
        if db.dialect == crate::db::Dialect::Sqlite {
            cluster::forget_nodes(&db.pool, i64::MAX).await?;
        }
        cluster::record_position(&db.pool, &db.node, last, epoch_ms()).await?;
        position.store(last, Ordering::Release);
        Ok(Emitter { io, db, clock, retention, last, position, handoff, seats })
    }

    /// Run the emitter on its own task. Call after the Socket.IO namespace is registered.
    /// Abort the returned task to stop it (it holds the Socket.IO handle).
    pub fn start(mut self) -> tokio::task::JoinHandle<()> {
        // Writing the position and pruning wait for the database's write lock, which a busy
        // server's write pipeline holds most of the time: on a task of their own, so that
        // emission never waits for them. It ends with the emitter.
        let (caught_up, start_bookkeeping) = tokio::sync::oneshot::channel();
        let bookkeeper = AbortOnDrop(tokio::spawn(bookkeeping(
            self.db.clone(),
            self.clock.clone(),
            self.retention,
            Arc::clone(&self.position),
            start_bookkeeping,
        )));
        tokio::spawn(async move {
            let _bookkeeper = bookkeeper;
            let mut caught_up = Some(caught_up);
            // The first round reads the log: whatever was committed before the start.
            let mut last_read: Option<Instant> = None;
            let mut gap_since: Option<Instant> = None;
            loop {
                let gap = self.emit_handed_off();
                gap_since = if gap { gap_since.or_else(|| Some(Instant::now())) } else { None };
                let read_log = last_read.is_none_or(|t| t.elapsed() >= TICK)
                    || gap_since.is_some_and(|t| t.elapsed() >= GAP_WAIT)
                    || self.handoff.read_log.swap(false, Ordering::AcqRel);
                if read_log {
                    last_read = Some(Instant::now());
                    match self.follow().await {
                        // What was committed before the start is emitted: record it and prune.
                        Ok(()) => drop(caught_up.take().map(|tx| tx.send(()))),
                        Err(err) => tracing::error!(%err, "reading the notification log failed; retrying"),
                    }
                    if !self.emit_handed_off() {
                        gap_since = None;
                    }
                }
                tokio::select! {
                    () = self.handoff.wake.notified() => {}
                    seat = self.seats.requests.recv() => match seat {
                        Some(seat) => self.seat(seat).await,
                        None => return,
                    },
                    () = tokio::time::sleep(if gap_since.is_some() { GAP_WAIT } else { TICK }) => {}
                }
            }
        })
    }
}

/// Aborts a task when dropped: a helper task that must not outlive its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Record this node's emitted position (at most once a [`RECORD_EVERY`], at least once a
/// [`HEARTBEAT_EVERY`]) and prune the log to the retention (once the emitter has caught up at
/// start, then once a [`PRUNE_EVERY`]; never past the position of a live node).
async fn bookkeeping(
    db: Db,
    clock: Clock,
    retention: Retention,
    position: Arc<AtomicI64>,
    caught_up: tokio::sync::oneshot::Receiver<()>,
) {
    let _ = caught_up.await;
    let mut recorded = (i64::MIN, Instant::now());
    let mut last_prune: Option<Instant> = None;
    loop {
        let emitted = position.load(Ordering::Acquire);
        if emitted != recorded.0 || recorded.1.elapsed() >= HEARTBEAT_EVERY {
            match cluster::record_position(&db.pool, &db.node, emitted, epoch_ms()).await {
                Ok(()) => recorded = (emitted, Instant::now()),
                Err(err) => tracing::warn!(%err, "recording the emitted position failed"),
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            if let Err(err) = prune(&db, &clock, retention).await {
                tracing::warn!(%err, "pruning the notification log failed");
            }
        }
        tokio::time::sleep(RECORD_EVERY).await;
    }
}

/// Prune under the write lock: nodes sharing the database prune one at a time, and the
/// second finds nothing left to do.
async fn prune(db: &Db, clock: &Clock, retention: Retention) -> Result<(), crate::db::Error> {
    let older_than = clock.now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    let alive_since = epoch_ms() - NODE_ALIVE.as_millis() as i64;
    let mut tx = db.begin_write().await?;
    cluster::forget_nodes(&mut *tx, alive_since).await?;
    log::prune(&mut tx, retention.max_entries, &iso(older_than), alive_since).await?;
    tx.commit().await?;
    Ok(())
}

/// Wall-clock milliseconds since the Unix epoch: node liveness follows real time, not the
/// settable host clock.
fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Emitter {
    /// Emit the handed-over entries that follow `last` without a gap. Returns whether some
    /// are left waiting behind a gap.
    fn emit_handed_off(&mut self) -> bool {
        let (ready, gap) = {
            let mut pending = self.handoff.pending.lock().unwrap_or_else(|p| p.into_inner());
            // Entries the log read already emitted.
            let mut newer = pending.split_off(&(self.last + 1));
            std::mem::swap(&mut *pending, &mut newer);
            let mut ready = Vec::new();
            while let Some(entry) = pending.first_entry().filter(|e| *e.key() == self.last + 1 + ready.len() as i64) {
                ready.push(entry.remove());
            }
            (ready, !pending.is_empty())
        };
        if let Some(newest) = ready.last().map(|n| n.seq) {
            for n in &ready {
                emit(&self.io, n);
            }
            self.advance(newest);
        }
        gap
    }

    /// Emit every committed entry after `last` from the log, in order.
    async fn follow(&mut self) -> Result<(), crate::db::Error> {
        loop {
            let batch = log::after(&self.db.pool, self.last, BATCH).await?;
            let Some(newest) = batch.last().map(|n| n.seq) else { return Ok(()) };
            for n in &batch {
                emit(&self.io, n);
            }
            self.advance(newest);
            if (batch.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }

    fn advance(&mut self, emitted: i64) {
        self.last = emitted;
        self.position.store(emitted, Ordering::Release);
    }

    /// Put a socket in its rooms, then send it what it missed: the entries in `(after, last]`
    /// for its rooms. Runs on the emitter task, between rounds, so every entry after `after`
    /// reaches it exactly once: replayed up to `last`, live after. `after` is the offset the
    /// client resumed from (then [`RECOVERY_EVENT`] ends the replay), or else the emitter's
    /// position before the handshake completed, so nothing committed after `connect` is lost.
    /// A socket whose session ended before it was in the session's room is disconnected; one
    /// whose user's role changed before it was in the user's room joins or leaves `admin`.
    async fn seat(&mut self, Seat { socket, session, user, read_at, mut rooms, after, resumed }: Seat) {
        socket.join(rooms.clone());
        let changes = self.seats.changes.for_seat(&session, &user, read_at);
        if changes.ended {
            tracing::debug!(socket = %socket.id, "a socket's session ended during its handshake");
            let _ = socket.disconnect();
            return;
        }
        if let Some(admin) = changes.admin.filter(|admin| *admin != rooms.iter().any(|room| room == ADMIN_ROOM)) {
            if admin {
                socket.join(ADMIN_ROOM);
                rooms.push(ADMIN_ROOM.to_owned());
            } else {
                socket.leave(ADMIN_ROOM);
                rooms.retain(|room| room != ADMIN_ROOM);
            }
            // The Admin UI is told, as for sockets moved by `Notifier::set_admin`.
            crate::realtime::admin::room_changed(&self.io, crate::realtime::NAMESPACE, socket.id, ADMIN_ROOM, admin)
                .await;
        }
        if !resumed {
            if after < self.last
                && let Err(err) = self.replay(&socket, &rooms, after).await
            {
                tracing::error!(%err, "sending a new socket what committed during its handshake failed");
            }
            return;
        }
        let complete = match self.replay(&socket, &rooms, after).await {
            Ok(complete) => complete,
            Err(err) => {
                tracing::error!(%err, "replaying the notification log failed");
                false
            }
        };
        send_paced(&socket, RECOVERY_EVENT, &json!({ "complete": complete, "offset": self.last })).await;
    }

    /// Send `socket` the entries in `(after, last]` addressed to one of `rooms`. Returns
    /// whether that is everything it missed (nothing was pruned, the offset is not ahead).
    async fn replay(&self, socket: &SocketRef, rooms: &[String], after: i64) -> Result<bool, crate::db::Error> {
        let pruned = log::counter(&self.db.pool, "pruned_seq").await?;
        let rooms: HashSet<&str> = rooms.iter().map(String::as_str).collect();
        let mut from = after.max(0);
        while from < self.last {
            let batch = log::after(&self.db.pool, from, BATCH).await?;
            for n in batch.iter().filter(|n| n.seq <= self.last) {
                let targets: Vec<String> = serde_json::from_str(&n.targets).unwrap_or_default();
                if targets.iter().any(|t| rooms.contains(t.as_str()))
                    && let Some(payload) = payload(n)
                    && !send_paced(socket, &n.event, &payload).await
                {
                    return Ok(false);
                }
            }
            match batch.last() {
                Some(n) if (batch.len() as i64) == BATCH => from = n.seq,
                _ => break,
            }
        }
        Ok(after >= pruned && after <= self.last)
    }
}

/// Send to one socket, waiting while its bounded buffer is full. A socket that cannot take
/// the packet within [`SLOW_CONSUMER_WAIT`] is disconnected (it can resume by offset later).
/// Returns whether the packet was queued.
async fn send_paced(socket: &SocketRef, event: &str, payload: &(impl serde::Serialize + ?Sized)) -> bool {
    let deadline = Instant::now() + SLOW_CONSUMER_WAIT;
    loop {
        match socket.emit(event, payload) {
            Ok(()) => return true,
            Err(SendError::Socket(SocketError::InternalChannelFull)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(socket = %socket.id, "disconnecting a socket that does not keep up with its replay");
                cut(socket);
                return false;
            }
            Err(_) => return false, // gone
        }
    }
}

/// Disconnect a socket whose buffer is full. It leaves its rooms at once, so it receives
/// nothing more and cannot see a gap; the disconnect packet itself needs room in the full
/// buffer, so it is retried until the client has read enough to take it (a client that never
/// reads is closed by the Engine.IO heartbeat instead). The client then resumes by offset.
fn cut(socket: &SocketRef) {
    socket.leave_all();
    let socket = socket.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + CUT_RETRY_FOR;
        while Instant::now() < deadline && socket.connected() {
            match socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => return,
            }
        }
    });
}

/// The payload as stored: serialized verbatim for each socket, never parsed into a tree and
/// written out again.
fn payload(n: &LoggedNotification) -> Option<Box<RawValue>> {
    match RawValue::from_string(n.payload.clone()) {
        Ok(payload) => Some(payload),
        Err(err) => {
            tracing::error!(offset = n.seq, %err, "a logged notification does not parse; not emitted");
            None
        }
    }
}

/// Emit one notification to each socket in the union of its rooms (one copy per socket),
/// except to the socket it names. Sockets are addressed one by one so that a socket whose
/// bounded buffer is full can be told apart: it is disconnected rather than silently missing
/// the notification, and resumes by offset when it reconnects.
fn emit(io: &SocketIo, n: &LoggedNotification) {
    let Some(payload) = payload(n) else { return };
    let rooms: Vec<String> = serde_json::from_str(&n.targets).unwrap_or_default();
    let mut to = io.to(rooms);
    if let Some(socket) = &n.exclude_socket {
        to = to.except(socket_room(socket));
    }
    for socket in to.sockets() {
        match socket.emit(&n.event, &payload) {
            Ok(()) | Err(SendError::Socket(SocketError::Closed)) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(socket = %socket.id, offset = n.seq, "disconnecting a socket that does not keep up");
                cut(&socket);
            }
            Err(err) => tracing::warn!(offset = n.seq, %err, "emitting a notification failed"),
        }
    }
}
