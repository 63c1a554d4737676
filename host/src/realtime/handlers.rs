//! Socket handlers: the connect middleware that authenticates a handshake, and the
//! fallback that routes client→server events with acknowledgements to plugins.

use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Event, Extension, SocketRef, State, TryData};
use std::sync::Arc;

use axum_extra::extract::CookieJar;

use crate::clock::iso;
use crate::dispatch::{self, DispatchError};
use crate::plugin::types::{self, Role};
use crate::realtime::RealtimeState;
use crate::sessions::origin::origin_allowed;
use crate::sessions::{self, COOKIE_NAME, Session};

/// Why a handshake is refused; the message is the client's `connect_error`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("origin not allowed")]
    OriginNotAllowed,
    #[error("server error")]
    Internal,
    #[error("admins only")]
    AdminsOnly,
    #[error("too many failed sign-ins; wait and retry")]
    Throttled,
}

/// Connect middleware: the Origin rule, then the session cookie.
pub async fn authenticate(socket: SocketRef, State(state): State<RealtimeState>) -> Result<(), ConnectError> {
    let headers = &socket.req_parts().headers;
    if !origin_allowed(headers, &state.config.allowed_origins, state.config.secure_cookies) {
        return Err(ConnectError::OriginNotAllowed);
    }
    let jar = CookieJar::from_headers(headers);
    let token = jar.get(COOKIE_NAME).ok_or(ConnectError::Unauthorized)?;
    let session = sessions::authenticate(&state.db, &state.clock, token.value())
        .await
        .map_err(|err| {
            tracing::error!(%err, "session lookup failed during a handshake");
            ConnectError::Internal
        })?
        .ok_or(ConnectError::Unauthorized)?;
    socket.extensions.insert(session);
    socket.extensions.insert(Arc::new(EventRate::new()));
    Ok(())
}

/// Any event without a host handler: routed to the plugin that declares it. The ack gets
/// `{"state": "success", ...}` or `{"state": "error", "message": ...}`.
#[allow(clippy::too_many_arguments)] // extractors, as socketioxide hands them
pub async fn plugin_event(
    socket: SocketRef,
    io: socketioxide::SocketIo,
    Event(event): Event,
    TryData(args): TryData<Args>,
    ack: AckSender,
    Extension(session): Extension<Arc<Session>>,
    Extension(rate): Extension<Arc<EventRate>>,
    State(state): State<RealtimeState>,
) {
    // An event sent without arguments still gets an answer.
    let args = args.map_or_else(|_| Vec::new(), |Args(args)| args);
    crate::realtime::admin::event_received(&io, socket.id, &event, &args).await;
    let reply = match rate.admit() {
        false => json!({ "state": "error", "message": "too many events; slow down" }),
        true => match answer(&state, &session, &event, args).await {
            Ok(Value::Object(mut fields)) => {
                fields.insert("state".into(), "success".into());
                Value::Object(fields)
            }
            Ok(other) => json!({ "state": "success", "result": other }),
            Err(message) => json!({ "state": "error", "message": message }),
        },
    };
    if let Err(err) = ack.send(&reply) {
        tracing::debug!(%err, event, "could not send an ack");
    }
}

/// A per-socket token bucket for client→server events: a burst of [`EventRate::BURST`], then
/// [`EventRate::PER_SECOND`] a second. Events over it get an error ack and reach no plugin.
pub struct EventRate {
    bucket: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl EventRate {
    pub const BURST: f64 = 40.0;
    pub const PER_SECOND: f64 = 20.0;

    pub fn new() -> Self {
        EventRate { bucket: std::sync::Mutex::new((Self::BURST, std::time::Instant::now())) }
    }

    /// Take a token if there is one.
    pub fn admit(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *bucket;
        let now = std::time::Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * Self::PER_SECOND).min(Self::BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Every argument of an event. socketioxide hands a handler all arguments only when the
/// extracted type deserializes as a tuple (otherwise just the first), so this asks for one.
pub struct Args(pub Vec<Value>);

impl<'de> serde::Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        deserializer.deserialize_tuple(usize::MAX, Visit)
    }
}

async fn answer(state: &RealtimeState, session: &Session, event: &str, args: Vec<Value>) -> Result<Value, String> {
    let plugin = state.plugins.by_socket_event(event).ok_or_else(|| format!("unknown event {event}"))?;
    // An isolated plugin answers at once, without a transaction or an error logged per call.
    plugin.available().map_err(|isolated| isolated.to_string())?;
    let request = types::SocketRequest {
        actor: types::User {
            id: session.user.id.clone(),
            role: if session.is_admin() { Role::Admin } else { Role::User },
            session_id: session.id.clone(),
        },
        event: event.to_owned(),
        args: Value::Array(args).to_string(),
        now: iso(state.clock.now()),
    };
    let tx = state.db.begin_read().await.map_err(|e| {
        tracing::error!(%e, "could not open a read transaction for a socket event");
        "server error".to_owned()
    })?;
    let reply = state.runtime.socket_event(&plugin, &request, tx).await;
    match reply.map_err(DispatchError::from).and_then(|json| dispatch::check_reply(&state.runtime, &plugin, &json)) {
        Ok(reply) => Ok(reply),
        Err(DispatchError::Plugin(crate::plugin::Error::Guest(refusal))) => {
            Err(crate::plugin::refusal_message(&refusal).to_owned())
        }
        // The reason is in the plugin's journal, under the id.
        Err(DispatchError::Plugin(
            crate::plugin::Error::Fault { error_id, .. } | crate::plugin::Error::Internal { error_id, .. },
        )) => Err(format!("the plugin failed (errorId {error_id})")),
        Err(err) => {
            tracing::error!(%err, event, "plugin socket event failed");
            Err("the plugin failed".to_owned())
        }
    }
}
