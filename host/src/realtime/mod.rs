//! Socket.IO: the handshake (session cookie and Origin), the rooms each socket joins, and
//! client→server events routed to the plugin that declares them.
//!
//! Reads like a route table: [`register`] lists the namespace and its handlers.

pub mod admin;
mod handlers;

use std::sync::Arc;

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderValue, Uri};
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

/// Where Engine.IO serves (socketioxide's default).
const ENGINE_PATH: &str = "/socket.io/";

/// Copy a Socket.IO request's URI (and the router's [`OriginalUri`]) and header values out of
/// the connection's read buffer. hyper parses them as slices of that buffer (16 KiB once
/// grown), and Engine.IO keeps each socket's request head for the socket's life, so without
/// this every idle socket keeps the whole buffer alive; with it, a socket keeps a few hundred
/// bytes of head. Other requests are left alone: their head is dropped with the request.
pub async fn detach_request_head(mut request: Request) -> Request {
    if !request.uri().path().starts_with(ENGINE_PATH) {
        return request;
    }
    if let Ok(uri) = Uri::try_from(request.uri().to_string()) {
        // axum's router keeps a copy of the URI as it arrived.
        if let Some(OriginalUri(original)) = request.extensions_mut().get_mut::<OriginalUri>() {
            *original = uri.clone();
        }
        *request.uri_mut() = uri;
    }
    for value in request.headers_mut().values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
    request
}

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
    seater.seat(socket, &session, rooms, resume_after, position).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose URI and header values are slices of one buffer, as hyper parses them.
    fn request_in(buffer: &axum::body::Bytes, path: &str, cookie: &str) -> Request {
        let slice = |text: &str| {
            let at = buffer.windows(text.len()).position(|w| w == text.as_bytes()).unwrap();
            buffer.slice(at..at + text.len())
        };
        let mut request = Request::new(axum::body::Body::empty());
        *request.uri_mut() = Uri::from_maybe_shared(slice(path)).unwrap();
        request.headers_mut().insert("cookie", HeaderValue::from_maybe_shared(slice(cookie)).unwrap());
        let original = OriginalUri(request.uri().clone());
        request.extensions_mut().insert(original);
        request
    }

    fn points_into(buffer: &[u8], bytes: &[u8]) -> bool {
        buffer.as_ptr_range().contains(&bytes.as_ptr())
    }

    #[tokio::test]
    async fn a_socket_io_request_head_no_longer_points_into_the_read_buffer() {
        let buffer =
            axum::body::Bytes::from("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\ncookie: s=1\r\n\r\n");
        let request = detach_request_head(request_in(&buffer, "/socket.io/?EIO=4&transport=websocket", "s=1")).await;
        assert_eq!(request.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(request.headers()["cookie"], "s=1");
        let original = &request.extensions().get::<OriginalUri>().unwrap().0;
        assert_eq!(original, request.uri());
        for bytes in
            [request.headers()["cookie"].as_bytes(), request.uri().path().as_bytes(), original.path().as_bytes()]
        {
            assert!(!points_into(&buffer, bytes));
        }
    }

    #[tokio::test]
    async fn other_requests_are_left_as_they_are() {
        let buffer = axum::body::Bytes::from("GET /api/v1/departments HTTP/1.1\r\ncookie: s=1\r\n\r\n");
        let request = detach_request_head(request_in(&buffer, "/api/v1/departments", "s=1")).await;
        assert!(points_into(&buffer, request.headers()["cookie"].as_bytes()));
    }
}
