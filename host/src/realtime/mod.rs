//! Socket.IO: the handshake (session cookie and Origin), the rooms each socket joins, and
//! client→server events routed to the plugin that declares them.
//!
//! Reads like a route table: [`register`] lists the namespace and its handlers.

pub mod admin;
mod handlers;

use std::sync::Arc;

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::notifications::{ADMIN_ROOM, ALL_ROOM, Seater, session_room, socket_room, user_room};
use crate::plugin::{Registry, Runtime};
use crate::sessions::Session;
use crate::sessions::throttle::LoginThrottle;

/// What socket handlers need; held by socketioxide as its state.
#[derive(Clone)]
pub struct RealtimeState {
    pub db: Db,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub plugins: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    pub throttle: Arc<LoginThrottle>,
    /// Connections and disconnections for the Admin UI's `server_stats`.
    pub admin_events: Arc<admin::Aggregates>,
}

/// The namespace clients connect to.
pub const NAMESPACE: &str = "/";

/// Register the namespaces: for clients, authenticate, prepare (before `connect` is sent),
/// then join rooms (replaying what a resuming client missed) and route events; and the
/// Admin UI's. The returned task sends the Admin UI's statistics until the server stops.
pub fn register(io: &SocketIo, seater: Seater, admin_events: Arc<admin::Aggregates>) -> tokio::task::JoinHandle<()> {
    let prepare = {
        let seater = seater.clone();
        move |socket: SocketRef, State(state): State<RealtimeState>| prepare(socket, state, seater.position())
    };
    let on_connect =
        move |socket: SocketRef,
              io: SocketIo,
              State(state): State<RealtimeState>,
              session: Extension<Arc<Session>>,
              auth: TryData<Value>| { on_connect(socket, io, state, session, auth, seater.clone()) };
    // Middlewares run in the reverse order of `with`: authenticate, then prepare.
    io.ns(NAMESPACE, on_connect.with(prepare).with(handlers::authenticate));
    admin::register(io, admin_events)
}

/// The emitter's position before `connect` was sent: the socket is sent everything after it.
#[derive(Clone, Copy)]
struct ConnectedAfter(i64);

/// Runs before socketioxide sends `connect`, so that a client may emit and be notified as
/// soon as it sees `connect`: the event handler is in place, and the emitter's position is
/// taken, from which the socket is sent every committed notification for its rooms.
async fn prepare(socket: SocketRef, state: RealtimeState, position: i64) -> Result<(), handlers::ConnectError> {
    socket.on_fallback(handlers::plugin_event);
    socket.on_disconnect(
        |socket: SocketRef, io: SocketIo, State(state): State<RealtimeState>, reason: DisconnectReason| async move {
            admin::socket_disconnected(&io, &state, socket.id, reason).await;
        },
    );
    socket.extensions.insert(admin::Connected::new(&socket, &state));
    socket.extensions.insert(ConnectedAfter(position));
    Ok(())
}

/// The handshake's `auth` payload may carry `{"offset": N}`, the last offset the client saw.
async fn on_connect(
    socket: SocketRef,
    io: SocketIo,
    state: RealtimeState,
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
    admin::socket_connected(&io, &state, &socket, &rooms).await;
    seater.seat(socket, rooms, resume_after, position).await;
}
