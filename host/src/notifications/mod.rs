//! Emission of committed notifications to Socket.IO rooms. The only place that emits on
//! behalf of domain code, and the one place that names rooms.

use socketioxide::SocketIo;

use crate::db::notifications::LoggedNotification;

/// Every signed-in socket.
pub const ALL_ROOM: &str = "all";
/// Every socket of an ADMIN.
pub const ADMIN_ROOM: &str = "admin";

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
}

impl Notifier {
    pub fn new(io: SocketIo) -> Self {
        Notifier { io }
    }

    /// Emit each notification to the union of its rooms (one copy per socket), in order,
    /// except to the socket it names. Call only after the change is committed.
    pub async fn publish(&self, notifications: &[LoggedNotification]) {
        for n in notifications {
            let rooms: Vec<String> = serde_json::from_str(&n.targets).unwrap_or_default();
            let payload: serde_json::Value = match serde_json::from_str(&n.payload) {
                Ok(payload) => payload,
                Err(err) => {
                    tracing::error!(offset = n.seq, %err, "a logged notification does not parse; not emitted");
                    continue;
                }
            };
            let mut to = self.io.to(rooms);
            if let Some(socket) = &n.exclude_socket {
                to = to.except(socket_room(socket));
            }
            if let Err(err) = to.emit(&n.event, &payload).await {
                tracing::warn!(offset = n.seq, %err, "emitting a notification failed");
            }
        }
    }

    /// Disconnect every socket of a session (after logout).
    pub async fn disconnect_session(&self, session_id: &str) {
        if let Err(err) = self.io.within(session_room(session_id)).disconnect().await {
            tracing::warn!(%err, "disconnecting a session's sockets failed");
        }
    }
}
