//! Host-owned routes: login, logout, the current user, user creation by ADMINs, and the
//! test clock.

use axum::Json;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;

use crate::http::ApiError;
use crate::http::records::JsonBody;
use crate::sessions::client_addr::client_addr;
use crate::sessions::extract::CurrentUser;
use crate::sessions::{self, COOKIE_NAME, NewUser};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

/// The client's address, when the server was started with connection info: the peer, or
/// what a trusted proxy forwarded (see `sessions::client_addr`).
pub struct ClientAddr(Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(ClientAddr(peer.map(|peer| client_addr(peer, &parts.headers, &state.config.trusted_proxies))))
    }
}

/// `POST /api/v1/auth/login`: a new session (any session from the presented cookie ends).
/// A client address that keeps failing waits longer after each failure (429 with
/// `Retry-After`); see `sessions::throttle` for the rules.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    JsonBody(creds): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    if let Err(wait) = state.throttle.admit(&creds.email, address, Instant::now()) {
        // Whole seconds, rounded up: a client that waits as told is admitted.
        return Err(ApiError::TooManyRequests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)));
    }
    let (session, token) = match sessions::login(&state.db, &state.clock, &creds.email, &creds.password).await {
        Ok(signed_in) => {
            state.throttle.answered(&state.db, &creds.email, address, true).await;
            signed_in
        }
        Err(sessions::AuthError::Unauthorized) => {
            state.throttle.answered(&state.db, &creds.email, address, false).await;
            return Err(ApiError::WrongCredentials);
        }
        Err(other) => return Err(other.into()),
    };
    // Rotate: the cookie from before the login stops working.
    if let Some(old) = jar.get(COOKIE_NAME)
        && let Ok(Some(old)) = sessions::authenticate(&state.db, &state.clock, old.value()).await
    {
        sessions::logout(&state.db, &old.id).await?;
        state.notifier.disconnect_session(&old.id).await;
    }
    let cookie = Cookie::build((COOKIE_NAME, token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies)
        .path("/")
        .build();
    Ok((jar.add(cookie), Json(session.user.clone())).into_response())
}

/// `POST /api/v1/logout`: end the session and disconnect its sockets.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    CurrentUser(session): CurrentUser,
) -> Result<Response, ApiError> {
    sessions::logout(&state.db, &session.id).await?;
    state.notifier.disconnect_session(&session.id).await;
    let jar = jar.remove(Cookie::build(COOKIE_NAME).path("/"));
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}

/// `GET /api/v1`: events-api's greeting, a JSON string.
pub async fn welcome() -> Json<&'static str> {
    Json("Welcome to the EVENTES-API V1.0")
}

/// `GET /api/v1/checklogin`: events-api's session probe: 200 `"OK"` when signed in, else 401.
pub async fn check_login(CurrentUser(_): CurrentUser) -> Json<&'static str> {
    Json("OK")
}

/// `GET /api/v1/user`: the signed-in user.
pub async fn current_user(CurrentUser(session): CurrentUser) -> Json<sessions::User> {
    Json(session.user.clone())
}

/// `POST /api/v1/users` (ADMIN): create a user.
pub async fn create_user(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<sessions::User>), ApiError> {
    if !session.is_admin() {
        return Err(ApiError::Forbidden("only admins create users".into()));
    }
    let user = sessions::create_user(&state.db, &state.clock, new).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
pub struct RoleBody {
    data: RoleData,
}

#[derive(Deserialize)]
pub struct RoleData {
    role: sessions::Role,
}

/// `PUT /api/v1/users/<id>/set_role` (ADMIN), body `{"data": {"role": "ADMIN"|"USER"}}`:
/// the host decides role changes; connected sockets of that user move into or out of the
/// `admin` room at once.
pub async fn set_role(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !session.is_admin() {
        return Err(ApiError::Forbidden("only admins change roles".into()));
    }
    let socket = headers.get(crate::http::SOCKET_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (user, record) = sessions::set_role(&state.db, &state.clock, &id, body.data.role, socket).await?;
    state.notifier.set_admin(&user.id, user.role == sessions::Role::Admin).await;
    state.notifier.committed_to_log();
    Ok(Json(record))
}

#[derive(Deserialize)]
pub struct ClockBody {
    /// The instant to pin (ISO 8601), or `null` for the system clock.
    now: Option<chrono::DateTime<chrono::Utc>>,
}

/// `PUT /api/v1/admin/clock` (ADMIN, only with `--test-clock`): pin the host clock.
pub async fn set_clock(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    JsonBody(body): JsonBody<ClockBody>,
) -> Result<StatusCode, ApiError> {
    if !state.config.test_clock {
        return Err(ApiError::NotFound("no such route".into()));
    }
    if !session.is_admin() {
        return Err(ApiError::Forbidden("only admins set the clock".into()));
    }
    state.clock.set(body.now);
    Ok(StatusCode::NO_CONTENT)
}
