//! Emission of committed notifications to Socket.IO rooms. The only place that emits on
//! behalf of domain code, and the one place that names rooms.
//!
//! The notification log is the source of truth: a single emitter task tails it and emits
//! every entry in offset order. A committing request only wakes the emitter, so emission
//! order is commit order across all requests, and an entry whose request was cut off after
//! the commit (a client that hung up) is still emitted on the next wake-up or tick.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::SocketIo;
use tokio::sync::Notify;

use crate::db::Db;
use crate::db::notifications::{self as log, LoggedNotification};

/// Every signed-in socket.
pub const ALL_ROOM: &str = "all";
/// Every socket of an ADMIN.
pub const ADMIN_ROOM: &str = "admin";

/// How often the emitter looks at the log without being woken.
const TICK: Duration = Duration::from_millis(500);
/// Most log entries read per round.
const BATCH: i64 = 500;

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

/// Emits committed notifications and disconnects sockets on the host's behalf.
#[derive(Clone)]
pub struct Notifier {
    io: SocketIo,
    wake: Arc<Notify>,
}

impl Notifier {
    /// Start the emitter task. It emits what is committed after this call; entries already in
    /// the log are history (clients get them by replay, not live).
    pub async fn start(io: SocketIo, db: Db) -> Result<Notifier, crate::db::Error> {
        let last = log::last_seq(&db.pool).await?;
        let wake = Arc::new(Notify::new());
        tokio::spawn(emit_forever(io.clone(), db, Arc::clone(&wake), last));
        Ok(Notifier { io, wake })
    }

    /// Tell the emitter that notifications were committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Emit a host event (not a record notification) to every ADMIN socket, e.g.
    /// `PLUGIN_CHANGED`. Not logged and not replayed.
    pub async fn announce_to_admins(&self, event: &str, payload: &serde_json::Value) {
        if let Err(err) = self.io.to(ADMIN_ROOM).emit(event, payload).await {
            tracing::warn!(%err, event, "announcing to admins failed");
        }
    }

    /// Disconnect every socket of a session (after logout).
    pub async fn disconnect_session(&self, session_id: &str) {
        if let Err(err) = self.io.within(session_room(session_id)).disconnect().await {
            tracing::warn!(%err, "disconnecting a session's sockets failed");
        }
    }
}

async fn emit_forever(io: SocketIo, db: Db, wake: Arc<Notify>, mut last: i64) {
    loop {
        match log::after(&db.pool, last, BATCH).await {
            Ok(batch) => {
                for n in &batch {
                    emit(&io, n).await;
                    last = n.seq;
                }
                if batch.len() as i64 == BATCH {
                    continue;
                }
            }
            Err(err) => tracing::error!(%err, "reading the notification log failed; retrying"),
        }
        let _ = tokio::time::timeout(TICK, wake.notified()).await;
    }
}

/// Emit one notification to the union of its rooms (one copy per socket), except to the
/// socket it names.
async fn emit(io: &SocketIo, n: &LoggedNotification) {
    let rooms: Vec<String> = serde_json::from_str(&n.targets).unwrap_or_default();
    let payload: serde_json::Value = match serde_json::from_str(&n.payload) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::error!(offset = n.seq, %err, "a logged notification does not parse; not emitted");
            return;
        }
    };
    let mut to = io.to(rooms);
    if let Some(socket) = &n.exclude_socket {
        to = to.except(socket_room(socket));
    }
    if let Err(err) = to.emit(&n.event, &payload).await {
        tracing::warn!(offset = n.seq, %err, "emitting a notification failed");
    }
}
