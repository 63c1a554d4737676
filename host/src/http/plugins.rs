//! Operator routes: list, install and roll back plugins, read their logs, and list sockets
//! (ADMIN only), and
//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::ApiError;
use crate::lifecycle::{InstallError, describe};
use crate::plugin::{BUCKETS_US, LoadedPlugin};
use crate::sessions::Session;
use crate::sessions::extract::{CurrentUser, MaybeUser};
use crate::state::AppState;

/// Largest component accepted by an install.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

fn require_admin(session: &Session) -> Result<(), ApiError> {
    if session.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("admins only".into())) }
}

/// `GET /api/v1/admin/plugins`: every serving plugin with its previous version and counters.
pub async fn list(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<Value>, ApiError> {
    require_admin(&session)?;
    let plugins: Vec<Value> = state
        .plugins
        .all()
        .iter()
        .map(|p| {
            let mut entry = with_stats(p);
            entry["state"] = "active".into();
            let limits = state.runtime.limits_for(&p.descriptor.name);
            entry["limits"] = json!({
                "timeoutMs": limits.timeout.as_millis() as u64,
                "memoryBytes": limits.max_memory,
                "readBytes": limits.max_bytes_read,
                "isolateAfter": limits.isolate_after,
                "coolDownMs": limits.cool_down.as_millis() as u64,
            });
            entry["previous"] = state.plugins.previous(&p.descriptor.name).map_or(
                Value::Null,
                |prev| json!({ "version": prev.descriptor.version, "sha256": prev.sha256, "loadedAt": prev.loaded_at }),
            );
            entry
        })
        .collect();
    Ok(Json(Value::Array(plugins)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallOptions {
    #[serde(default)]
    approve_grants: bool,
}

/// `PUT /api/v1/admin/plugins/<name>` with the component as an `application/wasm` body.
///
/// The caller and the content type are checked before the body is buffered, so a refused
/// upload costs no memory; `http::drain` still reads it, so that the refusal reaches the client.
pub async fn install(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(name): Path<String>,
    Query(options): Query<InstallOptions>,
    request: Request,
) -> Result<Response, ApiError> {
    require_admin(&session)?;
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/wasm") {
        return Err(ApiError::UnsupportedMediaType("a plugin is uploaded as application/wasm".into()));
    }
    let body = Bytes::from_request(request, &state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let serving = state
        .manager
        .install(body.to_vec(), &session.user.id, options.approve_grants, Some(&name))
        .await
        .map_err(install_error)?;
    Ok((StatusCode::OK, Json(describe(&serving))).into_response())
}

/// `POST /api/v1/admin/plugins/<name>/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&session)?;
    let serving = state.manager.rollback(&name).await.map_err(install_error)?;
    Ok(Json(describe(&serving)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    since: Option<u64>,
    error_id: Option<String>,
}

/// `GET /api/v1/admin/plugins/<name>/logs[?since=SEQ][&errorId=ID]`: the plugin's journal on
/// this node, oldest first: its log lines, what it printed, and the reason behind each
/// `errorId` its clients were answered with.
pub async fn logs(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<Vec<crate::plugin::journal::Entry>>, ApiError> {
    require_admin(&session)?;
    let journal = state.runtime.journal(&name).ok_or_else(|| ApiError::NotFound(format!("no plugin {name:?}")))?;
    Ok(Json(journal.entries(query.since, query.error_id.as_deref())))
}

/// `GET /api/v1/admin/sockets`: this node's connected sockets, their users and rooms.
pub async fn sockets(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
) -> Result<Json<Vec<crate::realtime::admin::SocketView>>, ApiError> {
    require_admin(&session)?;
    Ok(Json(crate::realtime::admin::sockets(&state.io)))
}

fn install_error(err: impl Into<InstallError>) -> ApiError {
    match err.into() {
        InstallError::Load(e) => ApiError::UnprocessablePlugin(e.to_string()),
        InstallError::Refused(m) => ApiError::UnprocessablePlugin(m),
        e @ InstallError::UnknownPlugin(_) => ApiError::NotFound(e.to_string()),
        e @ InstallError::NoPrevious(_) => ApiError::Conflict(e.to_string()),
        InstallError::Db(e) => ApiError::Internal(e.to_string()),
    }
}

/// `GET /metrics`: plugin counters and latency histograms. Served to ADMIN sessions, or to a
/// scraper presenting `Authorization: Bearer <TIDINGS_METRICS_TOKEN>`.
pub async fn metrics(
    State(state): State<AppState>,
    MaybeUser(session): MaybeUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token_ok = state.config.metrics_token.as_deref().is_some_and(|token| {
        headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
    });
    match &session {
        _ if token_ok => {}
        Some(session) => require_admin(session)?,
        None => return Err(ApiError::Unauthorized),
    }
    let mut out = String::new();
    let plugins = state.plugins.all();
    let counter = |out: &mut String, metric: &str, help: &str, get: &dyn Fn(&LoadedPlugin) -> u64| {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for p in &plugins {
            let _ = writeln!(
                out,
                "{metric}{{plugin=\"{}\",version=\"{}\"}} {}",
                p.descriptor.name,
                p.descriptor.version,
                get(p)
            );
        }
    };
    counter(&mut out, "tidings_plugin_calls_total", "Plugin calls.", &|p| p.stats.calls.load(Ordering::Relaxed));
    counter(&mut out, "tidings_plugin_refusals_total", "Typed errors returned by plugins.", &|p| {
        p.stats.guest_errors.load(Ordering::Relaxed)
    });
    counter(&mut out, "tidings_plugin_faults_total", "Traps, invalid output and limit breaches.", &|p| {
        p.stats.faults.load(Ordering::Relaxed)
    });
    counter(&mut out, "tidings_plugin_timeouts_total", "Calls stopped at their deadline.", &|p| {
        p.stats.timeouts.load(Ordering::Relaxed)
    });
    let pipeline = state.pipeline.stats();
    for (metric, help, value) in [
        ("tidings_pipeline_batches_total", "Batches the write pipeline committed.", &pipeline.batches),
        ("tidings_pipeline_jobs_total", "Changes answered from committed batches.", &pipeline.jobs),
        (
            "tidings_pipeline_calls_settled_ahead_total",
            "Plugin calls run ahead of their turn whose reads answered the same in it.",
            &pipeline.settled_ahead,
        ),
        (
            "tidings_pipeline_calls_made_again_total",
            "Plugin calls run ahead of their turn and made again in it, a read having changed.",
            &pipeline.made_again,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let metric = "tidings_pipeline_committer_busy_seconds_total";
    let busy = pipeline.busy_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP {metric} Time the write pipeline's committer spent on batches; its rate near 1 means writes queue for it.\n# TYPE {metric} counter\n{metric} {busy}"
    );
    let metric = "tidings_plugin_call_duration_seconds";
    let _ = writeln!(out, "# HELP {metric} Plugin call latency.\n# TYPE {metric} histogram");
    for p in &plugins {
        let labels = format!("plugin=\"{}\",version=\"{}\"", p.descriptor.name, p.descriptor.version);
        let mut cumulative = 0;
        for (i, bucket) in p.stats.latency.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BUCKETS_US.get(i).map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = p.stats.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{metric}_sum{{{labels}}} {sum}\n{metric}_count{{{labels}}} {cumulative}");
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// The admin view of a plugin plus its counters and latency percentiles (µs, bucket bounds).
fn with_stats(p: &LoadedPlugin) -> Value {
    let s = &p.stats;
    let mut entry = describe(p);
    entry["stats"] = json!({
        "calls": s.calls.load(Ordering::Relaxed),
        "refusals": s.guest_errors.load(Ordering::Relaxed),
        "faults": s.faults.load(Ordering::Relaxed),
        "timeouts": s.timeouts.load(Ordering::Relaxed),
        "latencyMicros": { "p50": s.quantile_us(0.5), "p90": s.quantile_us(0.9), "p99": s.quantile_us(0.99) },
    });
    entry
}
