//! Emission of committed notifications to Socket.IO rooms. The only place that emits on
//! behalf of domain code, and the one place that names rooms.
//!
//! The notification log is the source of truth. A single emitter task per node emits every
//! entry in offset order to the node's sockets: a committing request hands its entries over
//! in memory, and the emitter reads the log for what was not handed over (entries committed
//! through other nodes, which wake it through `crate::cluster`). The same task seats new
//! sockets in their rooms and replays what a resuming socket missed, so a resumed socket
//! gets every entry exactly once: those up to the emitter's position by replay, the rest live.
//! It records how far it has emitted, per node, and prunes the log to the configured
//! retention, never past what a live node has emitted.

mod emitter;

pub use emitter::Emitter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::db::Db;
use crate::db::notifications::LoggedNotification;
use emitter::Handoff;

/// Every signed-in socket.
pub const ALL_ROOM: &str = "all";
/// Every socket of an ADMIN.
pub const ADMIN_ROOM: &str = "admin";
/// The event that ends a resume: `{"complete": bool, "offset": <last offset replayed>}`.
pub const RECOVERY_EVENT: &str = "RECOVERY";

/// The room of every socket of a user.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The room of every socket of a session.
pub fn session_room(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// The room holding just one socket, used to exclude the requester.
pub fn socket_room(socket_id: &str) -> String {
    format!("socket:{socket_id}")
}

/// How much of the log is kept for resuming clients.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Entries older than this are pruned…
    pub max_age: Duration,
    /// …and so is everything but the newest `max_entries`.
    pub max_entries: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(7 * 24 * 3600), max_entries: 100_000 }
    }
}

/// A socket to seat in its rooms, sending it the entries after `after` first: a replay the
/// client asked for (`resumed`, ended by [`RECOVERY_EVENT`]), or what committed while its
/// handshake completed.
pub(crate) struct Seat {
    socket: SocketRef,
    /// The session it signed in with.
    session: String,
    rooms: Vec<String>,
    after: i64,
    resumed: bool,
}

/// What the emitter seats: the sockets to seat, and the sessions that ended meanwhile.
pub(crate) struct Seats {
    requests: mpsc::Receiver<Seat>,
    ended: Arc<EndedSessions>,
}

/// Seats newly connected sockets through the emitter.
#[derive(Clone)]
pub struct Seater {
    seats: mpsc::Sender<Seat>,
    position: Arc<AtomicI64>,
}

/// Sessions this node was told had ended, kept for a while: a socket whose handshake was
/// authenticated before its session ended, but which is seated in its rooms only after the
/// session's sockets were disconnected, is disconnected when seated.
#[derive(Default)]
pub(crate) struct EndedSessions(Mutex<HashMap<String, Instant>>);

impl EndedSessions {
    /// Longer than any handshake takes from its authentication to its seat.
    const KEPT: Duration = Duration::from_secs(600);

    fn end(&self, session: &str) {
        let mut ended = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ended.retain(|_, at| at.elapsed() < Self::KEPT);
        ended.insert(session.to_owned(), Instant::now());
    }

    pub(crate) fn has_ended(&self, session: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains_key(session)
    }
}

impl Seater {
    /// The offset a socket connecting now must be sent everything after: call it before the
    /// socket's `connect` is sent, and pass it to [`Seater::seat`].
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::Acquire)
    }

    /// Put a newly connected socket in `rooms`. With `resume_after` (the last offset the
    /// client saw), first replay the entries it missed that `rooms` may see, then send
    /// [`RECOVERY_EVENT`]; without, send those after `position` (from [`Seater::position`]).
    /// A socket whose `session` has ended meanwhile is disconnected instead.
    pub async fn seat(
        &self,
        socket: SocketRef,
        session: String,
        rooms: Vec<String>,
        resume_after: Option<i64>,
        position: i64,
    ) {
        let after = resume_after.unwrap_or(position);
        let seat = Seat { socket, session, rooms, after, resumed: resume_after.is_some() };
        if self.seats.send(seat).await.is_err() {
            tracing::error!("the emitter has stopped; a socket could not be seated");
        }
    }
}

/// Emits committed notifications and disconnects sockets on the host's behalf.
#[derive(Clone)]
pub struct Notifier {
    io: SocketIo,
    handoff: Arc<Handoff>,
    seats: mpsc::Sender<Seat>,
    position: Arc<AtomicI64>,
    ended: Arc<EndedSessions>,
}

impl Notifier {
    /// A notifier and its emitter. Start the emitter once the namespace is registered: it
    /// first emits whatever was committed but not emitted before the last stop, then follows
    /// the log.
    pub async fn new(
        io: SocketIo,
        db: Db,
        clock: Clock,
        retention: Retention,
    ) -> Result<(Notifier, emitter::Emitter), crate::db::Error> {
        let handoff = Arc::new(Handoff::default());
        let position = Arc::new(AtomicI64::new(0));
        let (seats, seat_requests) = mpsc::channel(1024);
        let ended = Arc::<EndedSessions>::default();
        let emitter = emitter::Emitter::new(
            io.clone(),
            db,
            clock,
            retention,
            Arc::clone(&handoff),
            Arc::clone(&position),
            Seats { requests: seat_requests, ended: Arc::clone(&ended) },
        )
        .await?;
        Ok((Notifier { io, handoff, seats, position, ended }, emitter))
    }

    /// Hand the entries a transaction just committed to the emitter, which emits them at
    /// once (in offset order). Call right after the commit.
    pub fn committed(&self, entries: Vec<LoggedNotification>) {
        self.handoff.committed(entries);
    }

    /// Tell the emitter that entries were committed without handing them over (a host
    /// operation that logs its own notification): it reads them from the log.
    pub fn committed_to_log(&self) {
        self.handoff.read_log();
    }

    /// The log grew up to `seq` (another node said so): read it unless that is emitted already.
    pub fn log_grew(&self, seq: i64) {
        if seq > self.position.load(Ordering::Acquire) {
            self.handoff.read_log();
        }
    }

    /// The handle that seats new sockets. It holds no Socket.IO handle, so the namespace's
    /// connect handler can keep it without a reference cycle.
    pub fn seater(&self) -> Seater {
        Seater { seats: self.seats.clone(), position: Arc::clone(&self.position) }
    }

    /// Emit a host event (not a record notification) to every ADMIN socket, e.g.
    /// `PLUGIN_CHANGED`. Not logged and not replayed.
    pub async fn announce_to_admins(&self, event: &str, payload: &serde_json::Value) {
        if let Err(err) = self.io.to(ADMIN_ROOM).emit(event, payload).await {
            tracing::warn!(%err, event, "announcing to admins failed");
        }
    }

    /// Move every connected socket of a user into or out of the `admin` room (after a role
    /// change), so the change takes effect without a reconnect.
    pub async fn set_admin(&self, user_id: &str, admin: bool) {
        let moving: Vec<_> = self.io.within(user_room(user_id)).sockets().into_iter().map(|socket| socket.id).collect();
        let sockets = self.io.within(user_room(user_id));
        let moved = if admin { sockets.join(ADMIN_ROOM).await } else { sockets.leave(ADMIN_ROOM).await };
        if let Err(err) = moved {
            tracing::warn!(%err, "moving a user's sockets after a role change failed");
        }
        for id in moving {
            crate::realtime::admin::room_changed(&self.io, crate::realtime::NAMESPACE, id, ADMIN_ROOM, admin).await;
        }
    }

    /// Disconnect every socket of a session (after logout), including those not yet seated.
    pub async fn disconnect_session(&self, session_id: &str) {
        // First noted, then disconnected: the emitter seats a socket before it checks the
        // note, so a socket is either in the room now or finds the note when seated.
        self.ended.end(session_id);
        if let Err(err) = self.io.within(session_room(session_id)).disconnect().await {
            tracing::warn!(%err, "disconnecting a session's sockets failed");
        }
    }
}
