//! The emitter task: follows the notification log in offset order, seats sockets (with
//! replay for resuming ones), records its position, and prunes the log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::{Notify, mpsc};

use crate::clock::{Clock, iso};
use crate::db::Db;
use crate::db::notifications::{self as log, LoggedNotification};
use crate::notifications::{RECOVERY_EVENT, Retention, Seat, socket_room};

/// How often the emitter looks at the log without being woken.
const TICK: Duration = Duration::from_millis(500);
/// How often the log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most log entries read per round.
const BATCH: i64 = 500;
/// How long a replay waits for a socket whose buffer is full.
const SLOW_CONSUMER_WAIT: Duration = Duration::from_secs(5);
/// How long a cut socket's disconnect packet is retried (longer than the Engine.IO heartbeat,
/// which closes a client that reads nothing at all).
const CUT_RETRY_FOR: Duration = Duration::from_secs(60);

/// The emitter task's state; [`Emitter::start`] runs it.
pub struct Emitter {
    io: SocketIo,
    db: Db,
    clock: Clock,
    retention: Retention,
    /// The highest offset emitted.
    last: i64,
    wake: Arc<Notify>,
    seats: mpsc::Receiver<Seat>,
}

impl Emitter {
    pub(super) async fn new(
        io: SocketIo,
        db: Db,
        clock: Clock,
        retention: Retention,
        wake: Arc<Notify>,
        seats: mpsc::Receiver<Seat>,
    ) -> Result<Emitter, crate::db::Error> {
        let last = log::counter(&db.pool, "emitted_seq").await?;
        Ok(Emitter { io, db, clock, retention, last, wake, seats })
    }

    /// Run the emitter on its own task. Call after the Socket.IO namespace is registered.
    /// Abort the returned task to stop it (it holds the Socket.IO handle).
    pub fn start(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_prune = Instant::now() - PRUNE_EVERY;
            loop {
                if let Err(err) = self.follow().await {
                    tracing::error!(%err, "reading the notification log failed; retrying");
                }
                if last_prune.elapsed() >= PRUNE_EVERY {
                    last_prune = Instant::now();
                    if let Err(err) = self.prune().await {
                        tracing::warn!(%err, "pruning the notification log failed");
                    }
                }
                tokio::select! {
                    seat = self.seats.recv() => match seat {
                        Some(seat) => self.seat(seat).await,
                        None => return,
                    },
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        })
    }
}

impl Emitter {
    /// Emit every committed entry after `last`, in order, and record the new position.
    async fn follow(&mut self) -> Result<(), crate::db::Error> {
        loop {
            let batch = log::after(&self.db.pool, self.last, BATCH).await?;
            let Some(newest) = batch.last().map(|n| n.seq) else { return Ok(()) };
            for n in &batch {
                emit(&self.io, n);
            }
            self.last = newest;
            log::set_emitted(&self.db.pool, newest).await?;
            if (batch.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }

    /// Put a socket in its rooms; for a resuming one, replay what it missed first. Runs on the
    /// emitter task, between rounds, so no entry is both replayed and emitted live.
    async fn seat(&mut self, Seat { socket, rooms, after }: Seat) {
        // Anything committed up to now is replayed rather than emitted live.
        if let Err(err) = self.follow().await {
            tracing::error!(%err, "reading the notification log failed while seating a socket");
        }
        socket.join(rooms.clone());
        let Some(after) = after else { return };
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

    async fn prune(&self) -> Result<(), crate::db::Error> {
        let older_than =
            self.clock.now() - chrono::Duration::from_std(self.retention.max_age).unwrap_or(chrono::Duration::MAX);
        let mut tx = self.db.begin_write().await?;
        log::prune(&mut tx, self.retention.max_entries, &iso(older_than)).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Send to one socket, waiting while its bounded buffer is full. A socket that cannot take
/// the packet within [`SLOW_CONSUMER_WAIT`] is disconnected (it can resume by offset later).
/// Returns whether the packet was queued.
async fn send_paced(socket: &SocketRef, event: &str, payload: &Value) -> bool {
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

fn payload(n: &LoggedNotification) -> Option<Value> {
    match serde_json::from_str(&n.payload) {
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
