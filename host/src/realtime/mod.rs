//! Socket.IO: the handshake (session cookie and Origin), the rooms each socket joins, and
//! client→server events routed to the plugin that declares them.
//!
//! Reads like a route table: [`register`] lists the namespace and its handlers.

mod handlers;

use std::sync::Arc;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::notifications::{ADMIN_ROOM, ALL_ROOM, Seater, session_room, socket_room, user_room};
use crate::plugin::{Registry, Runtime};
use crate::sessions::Session;

/// What socket handlers need; held by socketioxide as its state.
#[derive(Clone)]
pub struct RealtimeState {
    pub db: Db,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub plugins: Arc<Registry>,
    pub runtime: Arc<Runtime>,
}

/// Register the namespace: authenticate, prepare (before `connect` is sent), then join
/// rooms (replaying what a resuming client missed) and route events.
pub fn register(io: &SocketIo, seater: Seater) {
    let prepare = {
        let seater = seater.clone();
        move |socket: SocketRef| prepare(socket, seater.position())
    };
    let on_connect = move |socket: SocketRef, session: Extension<Arc<Session>>, auth: TryData<Value>| {
        on_connect(socket, session, auth, seater.clone())
    };
    // Middlewares run in the reverse order of `with`: authenticate, then prepare.
    io.ns("/", on_connect.with(prepare).with(handlers::authenticate));
}

/// The emitter's position before `connect` was sent: the socket is sent everything after it.
#[derive(Clone, Copy)]
struct ConnectedAfter(i64);

/// Runs before socketioxide sends `connect`, so that a client may emit and be notified as
/// soon as it sees `connect`: the event handler is in place, and the emitter's position is
/// taken, from which the socket is sent every committed notification for its rooms.
async fn prepare(socket: SocketRef, position: i64) -> Result<(), handlers::ConnectError> {
    socket.on_fallback(handlers::plugin_event);
    socket.extensions.insert(ConnectedAfter(position));
    Ok(())
}

/// The handshake's `auth` payload may carry `{"offset": N}`, the last offset the client saw.
async fn on_connect(
    socket: SocketRef,
    Extension(session): Extension<Arc<Session>>,
    TryData(auth): TryData<Value>,
    seater: Seater,
) {
    let mut rooms = vec![
        ALL_ROOM.to_owned(),
        user_room(&session.user.id),
        session_room(&session.id),
        socket_room(socket.id.as_str()),
    ];
    if session.is_admin() {
        rooms.push(ADMIN_ROOM.to_owned());
    }
    let resume_after = auth.ok().and_then(|auth| auth.get("offset").and_then(Value::as_i64));
    let Some(ConnectedAfter(position)) = socket.extensions.get::<ConnectedAfter>() else {
        tracing::error!(socket = %socket.id, "a socket connected without passing the prepare middleware");
        return;
    };
    seater.seat(socket, rooms, resume_after, position).await;
}
