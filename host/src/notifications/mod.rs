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
use crate::sessions::Session;
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
    /// The session it signed in with, its user, and when the session was read.
    session: String,
    user: String,
    read_at: Instant,
    rooms: Vec<String>,
    after: i64,
    resumed: bool,
}

/// What the emitter seats: the sockets to seat, and the changes made meanwhile.
pub(crate) struct Seats {
    requests: mpsc::Receiver<Seat>,
    changes: Arc<Changes>,
}

/// Seats newly connected sockets through the emitter.
#[derive(Clone)]
pub struct Seater {
    seats: mpsc::Sender<Seat>,
    position: Arc<AtomicI64>,
}

/// Sessions this node was told had ended, and users whose role it was told had changed, kept
/// for a while: a socket whose handshake was authenticated before such a change, but which is
/// seated in its rooms only after the change disconnected or moved the sockets in them, is
/// brought in line when seated.
#[derive(Default)]
pub(crate) struct Changes(Mutex<ChangeNotes>);

#[derive(Default)]
struct ChangeNotes {
    ended: HashMap<String, Instant>,
    /// By user: whether an ADMIN now.
    admin: HashMap<String, (bool, Instant)>,
}

/// What a socket being seated must change: its session ended, or its user's role changed.
pub(crate) struct SeatChanges {
    pub ended: bool,
    pub admin: Option<bool>,
}

impl Changes {
    /// Longer than any handshake takes from its authentication to its seat.
    const KEPT: Duration = Duration::from_secs(600);

    fn note(&self, change: impl FnOnce(&mut ChangeNotes)) {
        let mut notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        notes.ended.retain(|_, at| at.elapsed() < Self::KEPT);
        notes.admin.retain(|_, (_, at)| at.elapsed() < Self::KEPT);
        change(&mut notes);
    }

    fn session_ended(&self, session: &str) {
        self.note(|notes| {
            notes.ended.insert(session.to_owned(), Instant::now());
        });
    }

    fn role_changed(&self, user: &str, admin: bool) {
        self.note(|notes| {
            notes.admin.insert(user.to_owned(), (admin, Instant::now()));
        });
    }

    /// What changed for a socket of `session` and `user`, whose session was read at `read_at`.
    pub(crate) fn for_seat(&self, session: &str, user: &str, read_at: Instant) -> SeatChanges {
        let notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let admin = notes.admin.get(user).filter(|(_, at)| *at > read_at).map(|(admin, _)| *admin);
        SeatChanges { ended: notes.ended.contains_key(session), admin }
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
    /// A socket whose session has ended meanwhile is disconnected instead, and one whose user's
    /// role changed meanwhile joins or leaves `admin`.
    pub async fn seat(
        &self,
        socket: SocketRef,
        session: &Session,
        rooms: Vec<String>,
        resume_after: Option<i64>,
        position: i64,
    ) {
        let seat = Seat {
            socket,
            session: session.id.clone(),
            user: session.user.id.clone(),
            read_at: session.read_at,
            rooms,
            after: resume_after.unwrap_or(position),
            resumed: resume_after.is_some(),
        };
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
    changes: Arc<Changes>,
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
        let changes = Arc::<Changes>::default();
        let emitter = emitter::Emitter::new(
            io.clone(),
            db,
            clock,
            retention,
            Arc::clone(&handoff),
            Arc::clone(&position),
            Seats { requests: seat_requests, changes: Arc::clone(&changes) },
        )
        .await?;
        Ok((Notifier { io, handoff, seats, position, changes }, emitter))
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
        // First noted, then moved, as for a logout below.
        self.changes.role_changed(user_id, admin);
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
        self.changes.session_ended(session_id);
        if let Err(err) = self.io.within(session_room(session_id)).disconnect().await {
            tracing::warn!(%err, "disconnecting a session's sockets failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_seated_with_the_changes_made_after_its_session_was_read() {
        let changes = Changes::default();
        let read_before = Instant::now();
        changes.role_changed("u1", false);
        changes.session_ended("s1");
        std::thread::sleep(Duration::from_millis(1));
        let read_after = Instant::now();

        let seat = changes.for_seat("s1", "u1", read_before);
        assert!(seat.ended);
        assert_eq!(seat.admin, Some(false), "read before the demotion: leaves admin");
        let seat = changes.for_seat("s2", "u1", read_after);
        assert!(!seat.ended, "another session of the user");
        assert_eq!(seat.admin, None, "read after the demotion: its role is current");
        assert_eq!(changes.for_seat("s3", "u2", read_before).admin, None, "another user");
    }
}
