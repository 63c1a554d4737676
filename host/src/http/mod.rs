//! The HTTP API: host routes (auth, users, health) plus the plugin collections.
//!
//! Architecture invariant: nothing here imports wasmtime; plugins are reached through
//! `dispatch` and `plugin::Registry`.

mod auth;
mod console;
mod drain;
mod error;
mod openapi;
mod plugins;
mod records;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};

pub use error::ApiError;

/// The header naming the requester's socket, whose notifications are not echoed to it.
pub const SOCKET_ID_HEADER: &str = "x-metadata-socketid";

use crate::sessions::origin::{cross_site, origin_allowed};
use crate::state::AppState;

/// The HTTP routes, without the Socket.IO layer.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        // events-api's global routes, for its clients.
        .route("/", get(auth::welcome))
        .route("/checklogin", get(auth::check_login))
        .route("/auth/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/user", get(auth::current_user))
        // The host creates users; the other methods go to the plugin serving `users`.
        .route("/users", post(auth::create_user).fallback(records::dispatch_users))
        .route("/users/{id}/set_role", put(auth::set_role))
        .route("/admin/clock", put(auth::set_clock))
        .route("/admin/plugins", get(plugins::list))
        .route(
            "/admin/plugins/{name}",
            put(plugins::install).layer(DefaultBodyLimit::max(plugins::MAX_COMPONENT_BYTES)),
        )
        .route("/admin/plugins/{name}/rollback", post(plugins::rollback))
        .route("/admin/plugins/{name}/logs", get(plugins::logs))
        .route("/admin/sockets", get(plugins::sockets))
        .route("/openapi.json", get(openapi::document))
        .route("/{collection}", any(records::dispatch_root))
        .route("/{collection}/{*rest}", any(records::dispatch));
    Router::new()
        .merge(console::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(plugins::metrics))
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard_origin))
        .layer(middleware::from_fn(refuse_nul))
        // Outermost, so that every refusal above (and any handler's) reaches a client still
        // sending its body; bounded by the largest body any route accepts.
        .layer(middleware::from_fn_with_state(
            state.config.max_body_bytes.max(plugins::MAX_COMPONENT_BYTES),
            drain::drain_unread_body,
        ))
        .with_state(state)
}

/// Refuse a path or query that decodes to U+0000: never meaningful, and PostgreSQL cannot
/// store it (every route's ids and query values end up in SQL parameters).
async fn refuse_nul(req: Request, next: Next) -> Response {
    let encoded = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    if encoded.to_ascii_lowercase().contains("%00") {
        return ApiError::BadRequest("NUL characters are not allowed in paths or queries".into()).into_response();
    }
    next.run(req).await
}

/// Refuse state-changing requests from foreign origins (CSRF defence in depth besides the
/// SameSite cookie).
async fn guard_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let headers = req.headers();
        if cross_site(headers) || !origin_allowed(headers, &state.config.allowed_origins, state.config.secure_cookies) {
            return ApiError::Forbidden("cross-origin request refused".into()).into_response();
        }
    }
    next.run(req).await
}

/// 200 when the database answers and the plugins are loaded.
async fn healthz(State(state): State<AppState>) -> Response {
    let db_ok = state.db.ping().await.is_ok();
    let plugins_ok = !state.config.bundled_plugins || !state.plugins.all().is_empty();
    let body = serde_json::json!({ "database": db_ok, "plugins": state.plugins.all().len() });
    if db_ok && plugins_ok {
        (axum::http::StatusCode::OK, axum::Json(body)).into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

async fn not_found(crate::sessions::extract::MaybeUser(session): crate::sessions::extract::MaybeUser) -> ApiError {
    // A caller without a session learns nothing about which routes exist.
    if session.is_none() { ApiError::Unauthorized } else { ApiError::NotFound("no such route".into()) }
}
