//! The `/admin` namespace that the official Socket.IO Admin UI (socket.io-admin-ui 0.5)
//! connects to, for ADMIN sessions only; and the listing of connected sockets that it and
//! `GET /api/v1/admin/sockets` share.
//!
//! It sends what the Node package's `instrument()` sends: `config` and `all_sockets` on
//! connect, `server_stats` every two seconds, then `socket_connected`, `socket_disconnected`,
//! `room_joined`, `room_left` and `event_received` as they happen; and it obeys the UI's
//! `emit`, `join`, `leave` and `_disconnect` commands. A handshake authenticates with the
//! session cookie, with `auth: {sessionId}` (a session the UI was given before), or with
//! `auth: {username, password}` (an ADMIN's e-mail and password, under the login throttle;
//! the new session is sent as `session`, which the UI keeps for its reconnects).
//!
//! What socketioxide does not report: Engine.IO packet and byte counts (`aggregatedEvents`
//! holds connections and disconnections only), the Engine.IO id (`clientId` is the socket
//! id), and events sent to clients (`event_sent`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::SerializeTuple;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::{SocketIo, TransportType};

use crate::clock::iso;
use crate::realtime::RealtimeState;
use crate::realtime::handlers::{Args, ConnectError};
use crate::sessions::client_addr::client_addr;
use crate::sessions::origin::origin_allowed;
use crate::sessions::{self, COOKIE_NAME, Session};

/// The namespace the Admin UI connects to by default.
pub const NAMESPACE: &str = "/admin";
/// How often `server_stats` is sent, as socket.io-admin-ui does.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// Request headers the UI shows, with these values hidden: they carry credentials.
const SECRET_HEADERS: [&str; 3] = ["cookie", "authorization", "proxy-authorization"];

/// When and from where a socket connected; set by the connect middlewares of both
/// namespaces.
#[derive(Clone)]
pub struct Connected {
    at: DateTime<Utc>,
    address: Option<IpAddr>,
}

impl Connected {
    pub fn new(socket: &SocketRef, state: &RealtimeState) -> Connected {
        let parts = socket.req_parts();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let address = peer.map(|peer| client_addr(peer, &parts.headers, &state.config.trusted_proxies));
        Connected { at: Utc::now(), address }
    }
}

/// Connections and disconnections per second since the last `server_stats`, which the UI
/// plots (its `aggregatedEvents`).
#[derive(Default)]
pub struct Aggregates(Mutex<BTreeMap<AggregateKey, u64>>);

/// The second (as a millisecond timestamp), the kind (`rawConnection`, `rawDisconnection`)
/// and its detail (a disconnection's reason).
type AggregateKey = (i64, &'static str, Option<String>);

impl Aggregates {
    fn push(&self, kind: &'static str, sub_type: Option<String>) {
        let second = Utc::now().timestamp() * 1000;
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry((second, kind, sub_type)).or_default() += 1;
    }

    fn take(&self) -> Vec<Value> {
        let counts = std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        counts
            .into_iter()
            .map(|((timestamp, kind, sub_type), count)| {
                json!({ "timestamp": timestamp, "type": kind, "subType": sub_type, "count": count })
            })
            .collect()
    }
}

/// A connected socket as `GET /api/v1/admin/sockets` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketView {
    pub id: String,
    pub nsp: String,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub role: Option<&'static str>,
    pub transport: &'static str,
    pub rooms: Vec<String>,
    pub address: Option<String>,
    pub connected_at: Option<String>,
}

/// Every socket of this node, in both namespaces.
pub fn sockets(io: &SocketIo) -> Vec<SocketView> {
    every_socket(io).iter().flat_map(|(nsp, sockets)| sockets.iter().map(|socket| view(nsp, socket))).collect()
}

/// Each namespace of this node with its sockets: the clients' and this one.
fn every_socket(io: &SocketIo) -> Vec<(&'static str, Vec<SocketRef>)> {
    [crate::realtime::NAMESPACE, NAMESPACE]
        .into_iter()
        .filter_map(|nsp| io.of(nsp).map(|ns| (nsp, ns.sockets())))
        .collect()
}

fn view(nsp: &str, socket: &SocketRef) -> SocketView {
    let session = socket.extensions.get::<Arc<Session>>();
    let connected = socket.extensions.get::<Connected>();
    let mut rooms: Vec<String> = socket.rooms().into_iter().map(|room| room.to_string()).collect();
    rooms.sort();
    SocketView {
        id: socket.id.to_string(),
        nsp: nsp.to_owned(),
        user_id: session.as_ref().map(|s| s.user.id.clone()),
        email: session.as_ref().map(|s| s.user.email.clone()),
        role: session.as_ref().map(|s| s.user.role.as_str()),
        transport: transport(socket),
        rooms,
        address: connected.as_ref().and_then(|c| c.address).map(|a| a.to_string()),
        connected_at: connected.map(|c| iso(c.at)),
    }
}

fn transport(socket: &SocketRef) -> &'static str {
    match socket.transport_type() {
        TransportType::Websocket => "websocket",
        TransportType::Polling => "polling",
    }
}

/// A socket as socket.io-admin-ui serializes it (`SerializedSocket`).
fn serialize(nsp: &str, socket: &SocketRef) -> Value {
    let SocketView { id, user_id, email, role, transport, rooms, address, connected_at, .. } = view(nsp, socket);
    let parts = socket.req_parts();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                "(hidden)".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), Value::String(value))
        })
        .collect();
    let query: serde_json::Map<String, Value> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    let issued = socket.extensions.get::<Connected>().map(|c| c.at.timestamp_millis());
    json!({
        "id": id,
        "clientId": id,
        "transport": transport,
        "nsp": nsp,
        "data": { "userId": user_id, "email": email, "role": role },
        "handshake": {
            "address": address,
            "headers": headers,
            "query": query,
            "issued": issued,
            "time": connected_at,
            "secure": false,
            "url": parts.uri.to_string(),
            "xdomain": parts.headers.contains_key("origin"),
        },
        "rooms": rooms,
    })
}

/// The `/admin` namespace's sockets, if any is connected: the feed is built only for them.
fn listeners(io: &SocketIo) -> Option<socketioxide::operators::BroadcastOperators> {
    io.of(NAMESPACE).filter(|admin| !admin.clone().sockets().is_empty())
}

/// A socket of the default namespace connected and is being seated in `rooms`.
pub async fn socket_connected(io: &SocketIo, state: &RealtimeState, socket: &SocketRef, rooms: &[String]) {
    state.admin_events.push("rawConnection", None);
    if let Some(admin) = listeners(io) {
        let mut serialized = serialize(crate::realtime::NAMESPACE, socket);
        serialized["rooms"] = json!(rooms);
        admin.emit("socket_connected", &(serialized, iso(Utc::now()))).await.ok();
    }
}

/// A socket of the default namespace left.
pub async fn socket_disconnected(io: &SocketIo, state: &RealtimeState, id: Sid, reason: DisconnectReason) {
    state.admin_events.push("rawDisconnection", Some(reason_name(reason).to_owned()));
    if let Some(admin) = listeners(io) {
        let now = iso(Utc::now());
        admin
            .emit("socket_disconnected", &(crate::realtime::NAMESPACE, id.to_string(), reason_name(reason), now))
            .await
            .ok();
    }
}

/// A socket joined (`joined`) or left a room on the host's or the UI's behalf.
pub async fn room_changed(io: &SocketIo, nsp: &str, id: Sid, room: &str, joined: bool) {
    if let Some(admin) = listeners(io) {
        let event = if joined { "room_joined" } else { "room_left" };
        admin.emit(event, &(nsp, room, id.to_string(), iso(Utc::now()))).await.ok();
    }
}

/// A client event reached the server (`event_received`: the event and its arguments).
pub async fn event_received(io: &SocketIo, id: Sid, event: &str, args: &[Value]) {
    if let Some(admin) = listeners(io) {
        let mut all = vec![Value::String(event.to_owned())];
        all.extend_from_slice(args);
        admin.emit("event_received", &(crate::realtime::NAMESPACE, id.to_string(), all, iso(Utc::now()))).await.ok();
    }
}

/// Socket.IO's reasons, as a Node server names them.
fn reason_name(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport close",
        DisconnectReason::MultipleHttpPollingError | DisconnectReason::PacketParsingError => "parse error",
        DisconnectReason::TransportError => "transport error",
        DisconnectReason::HeartbeatTimeout => "ping timeout",
        DisconnectReason::ClientNSDisconnect => "client namespace disconnect",
        DisconnectReason::ServerNSDisconnect => "server namespace disconnect",
        DisconnectReason::ClosingServer => "server shutting down",
    }
}

/// Register the namespace and start sending `server_stats`; the task ends with the server.
pub fn register(io: &SocketIo, events: Arc<Aggregates>) -> tokio::task::JoinHandle<()> {
    io.ns(NAMESPACE, on_connect.with(authenticate));
    let io = io.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(STATS_EVERY);
        loop {
            every.tick().await;
            // Taken every tick, listened to or not, so that the counts stay bounded.
            let aggregated = events.take();
            if let Some(admin) = listeners(&io) {
                admin.emit("server_stats", &stats(&io, started, aggregated)).await.ok();
            }
        }
    })
}

/// A session the UI signed in with, sent back as `session` for its reconnects.
#[derive(Clone)]
struct NewSession(String);

/// The Admin UI's handshake `auth`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AdminAuth {
    session_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Connect middleware: the Origin rule, then an ADMIN session from the cookie, the UI's
/// `sessionId` or its username and password.
async fn authenticate(
    socket: SocketRef,
    State(state): State<RealtimeState>,
    TryData(auth): TryData<AdminAuth>,
) -> Result<(), ConnectError> {
    let headers = &socket.req_parts().headers;
    if !origin_allowed(headers, &state.config.allowed_origins, state.config.secure_cookies) {
        return Err(ConnectError::OriginNotAllowed);
    }
    let connected = Connected::new(&socket, &state);
    let auth = auth.unwrap_or_default();
    let lookup = |err: sessions::AuthError| {
        tracing::error!(%err, "session lookup failed during an admin handshake");
        ConnectError::Internal
    };
    let cookie = CookieJar::from_headers(headers).get(COOKIE_NAME).map(|c| c.value().to_owned());
    let mut session = None;
    for token in [cookie, auth.session_id].into_iter().flatten() {
        session = sessions::authenticate(&state.db, &state.clock, &token).await.map_err(lookup)?;
        if session.is_some() {
            break;
        }
    }
    if session.is_none()
        && let (Some(email), Some(password)) = (&auth.username, &auth.password)
    {
        let now = tokio::time::Instant::now().into_std();
        if state.throttle.admit(email, connected.address, now).is_err() {
            return Err(ConnectError::Throttled);
        }
        match sessions::login(&state.db, &state.clock, email, password).await {
            Ok((signed_in, token)) => {
                state.throttle.answered(&state.db, email, connected.address, true).await;
                if !signed_in.is_admin() {
                    sessions::logout(&state.db, &signed_in.id).await.map_err(lookup)?;
                    return Err(ConnectError::AdminsOnly);
                }
                socket.extensions.insert(NewSession(token));
                session = Some(Arc::new(signed_in));
            }
            Err(sessions::AuthError::Unauthorized) => {
                state.throttle.answered(&state.db, email, connected.address, false).await;
                return Err(ConnectError::Unauthorized);
            }
            Err(err) => return Err(lookup(err)),
        }
    }
    let session = session.ok_or(ConnectError::Unauthorized)?;
    if !session.is_admin() {
        return Err(ConnectError::AdminsOnly);
    }
    socket.extensions.insert(session);
    socket.extensions.insert(connected);
    Ok(())
}

async fn on_connect(socket: SocketRef, io: SocketIo, State(state): State<RealtimeState>) {
    state.admin_events.push("rawConnection", None);
    socket.on_disconnect(|State(state): State<RealtimeState>, reason: DisconnectReason| async move {
        state.admin_events.push("rawDisconnection", Some(reason_name(reason).to_owned()));
    });
    if let Some(NewSession(token)) = socket.extensions.get::<NewSession>() {
        socket.emit("session", &token).ok();
    }
    socket.emit("config", &json!({ "supportedFeatures": FEATURES })).ok();
    let all: Vec<Value> = every_socket(&io)
        .iter()
        .flat_map(|(nsp, sockets)| sockets.iter().map(|socket| serialize(nsp, socket)))
        .collect();
    socket.emit("all_sockets", &all).ok();
    socket.on("emit", command_emit);
    socket.on("join", |io: SocketIo, TryData(args): TryData<Args>| command_room(io, args, true));
    socket.on("leave", |io: SocketIo, TryData(args): TryData<Args>| command_room(io, args, false));
    socket.on("_disconnect", command_disconnect);
}

/// What this server does of socket.io-admin-ui's features.
const FEATURES: [&str; 9] =
    ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"];

fn stats(io: &SocketIo, started: Instant, aggregated: Vec<Value>) -> Value {
    let namespaces = every_socket(io);
    let clients: usize = namespaces.iter().map(|(_, sockets)| sockets.len()).sum();
    let polling = namespaces
        .iter()
        .flat_map(|(_, sockets)| sockets)
        .filter(|socket| socket.transport_type() == TransportType::Polling)
        .count();
    let host = hostname();
    json!({
        "serverId": format!("{host}#{}", std::process::id()),
        "hostname": host,
        "pid": std::process::id(),
        "uptime": started.elapsed().as_secs_f64(),
        "clientsCount": clients,
        "pollingClientsCount": polling,
        "aggregatedEvents": aggregated,
        "namespaces": namespaces
            .iter()
            .map(|(name, sockets)| json!({ "name": name, "socketsCount": sockets.len() }))
            .collect::<Vec<_>>(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The sockets a command names: all of the namespace, one socket by id, or a room's.
fn targets(io: &SocketIo, nsp: &str, filter: Option<&str>) -> Vec<SocketRef> {
    let Some(ns) = io.of(nsp) else { return Vec::new() };
    match filter {
        None | Some("") => ns.sockets(),
        Some(filter) => match filter.parse::<Sid>().ok().and_then(|sid| ns.get_socket(sid)) {
            Some(socket) => vec![socket],
            None => ns.within(filter.to_owned()).sockets(),
        },
    }
}

fn text(args: &[Value], i: usize) -> Option<&str> {
    args.get(i).and_then(Value::as_str)
}

/// `emit(nsp, filter, event, ...args)`.
async fn command_emit(io: SocketIo, TryData(args): TryData<Args>) {
    let Ok(Args(args)) = args else { return };
    let (Some(nsp), Some(event)) = (text(&args, 0), text(&args, 2)) else { return };
    let payload = Tuple(args.get(3..).unwrap_or_default());
    for socket in targets(&io, nsp, text(&args, 1)) {
        socket.emit(event, &payload).ok();
    }
}

/// `join(nsp, room, filter?)` and `leave(nsp, room, filter?)`.
async fn command_room(io: SocketIo, args: Result<Args, impl std::fmt::Debug>, join: bool) {
    let Ok(Args(args)) = args else { return };
    let (Some(nsp), Some(room)) = (text(&args, 0), text(&args, 1)) else { return };
    for socket in targets(&io, nsp, text(&args, 2)) {
        if join {
            socket.join(room.to_owned());
        } else {
            socket.leave(room.to_owned());
        }
        room_changed(&io, nsp, socket.id, room, join).await;
    }
}

/// `_disconnect(nsp, close, filter?)`.
async fn command_disconnect(io: SocketIo, TryData(args): TryData<Args>) {
    let Ok(Args(args)) = args else { return };
    let Some(nsp) = text(&args, 0) else { return };
    for socket in targets(&io, nsp, text(&args, 2)) {
        socket.disconnect().ok();
    }
}

/// Values sent as separate event arguments (socketioxide sends a tuple's items apart).
struct Tuple<'a>(&'a [Value]);

impl Serialize for Tuple<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for value in self.0 {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}
