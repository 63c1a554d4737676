//! Plugin collections over HTTP: `/api/v1/<collection>[/<rest>]` is routed to the plugin
//! that declared the collection, through `dispatch`, and its notifications are emitted after
//! the commit. Also the JSON body extractors with the contract's 400/413/415 answers.

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::WithRejection;
use serde::de::DeserializeOwned;

use crate::clock::iso;
use crate::db::records;
use crate::dispatch;
use crate::http::ApiError;
use crate::pages;
use crate::plugin::types::{self, Access, Actor, Role};
use crate::sessions::extract::MaybeUser;
use crate::state::AppState;

use crate::http::SOCKET_ID_HEADER;

pub async fn dispatch_root(
    state: State<AppState>,
    user: MaybeUser,
    method: Method,
    WithRejection(Path(collection), _): WithRejection<Path<String>, ApiError>,
    query: WithRejection<Query<Vec<(String, String)>>, ApiError>,
    headers: HeaderMap,
    body: PluginBody,
) -> Result<Response, ApiError> {
    run(state, user, method, collection, "/".into(), query, headers, body).await
}

/// `/api/v1/users` for every method but the host's `POST` (user creation).
pub async fn dispatch_users(
    state: State<AppState>,
    user: MaybeUser,
    method: Method,
    query: WithRejection<Query<Vec<(String, String)>>, ApiError>,
    headers: HeaderMap,
    body: PluginBody,
) -> Result<Response, ApiError> {
    run(state, user, method, "users".into(), "/".into(), query, headers, body).await
}

pub async fn dispatch(
    state: State<AppState>,
    user: MaybeUser,
    method: Method,
    WithRejection(Path((collection, rest)), _): WithRejection<Path<(String, String)>, ApiError>,
    query: WithRejection<Query<Vec<(String, String)>>, ApiError>,
    headers: HeaderMap,
    body: PluginBody,
) -> Result<Response, ApiError> {
    run(state, user, method, collection, format!("/{rest}"), query, headers, body).await
}

#[allow(clippy::too_many_arguments)]
async fn run(
    State(state): State<AppState>,
    MaybeUser(session): MaybeUser,
    method: Method,
    collection: String,
    path: String,
    WithRejection(Query(query), _): WithRejection<Query<Vec<(String, String)>>, ApiError>,
    headers: HeaderMap,
    PluginBody { json: body, upload }: PluginBody,
) -> Result<Response, ApiError> {
    // Without a session, a missing route and a private one look the same: 401.
    let hidden = |session: &Option<_>| {
        if session.is_none() { ApiError::Unauthorized } else { ApiError::NotFound("no such route".into()) }
    };
    let Some(wit_method) = wit_method(&method) else { return Err(hidden(&session)) };
    // A collection's own routes, or a plugin's view under `/api/v1/user/`.
    let absolute = format!("/api/v1/{collection}{path}");
    let (plugin, view) = match state.plugins.by_collection(&collection) {
        Some(plugin) => (plugin, false),
        None => (state.plugins.user_view(wit_method, &absolute).ok_or_else(|| hidden(&session))?, true),
    };
    let route = if view { plugin.user_view(wit_method, &absolute) } else { plugin.route(wit_method, &path) };
    let route = route.ok_or_else(|| hidden(&session))?;
    match (route.action.access, &session) {
        (Access::Public, _) => {}
        (_, None) => return Err(ApiError::Unauthorized),
        (Access::Admin, Some(s)) if !s.is_admin() => return Err(ApiError::Forbidden("admins only".into())),
        _ => {}
    }
    let actor = match &session {
        None => Actor::Anonymous,
        Some(s) => Actor::User(types::User {
            id: s.user.id.clone(),
            role: if s.is_admin() { Role::Admin } else { Role::User },
            session_id: s.id.clone(),
        }),
    };
    let request = types::Request {
        actor,
        action: route.action.name.clone(),
        params: route.params,
        query,
        body,
        now: iso(state.clock.now()),
        socket_id: headers.get(SOCKET_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned),
        upload,
        cursor: None,
    };
    // The write pipeline hands the notifications to the emitter and wakes the task runner.
    let outcome = match method {
        Method::GET => {
            let mut outcome = dispatch::read(&state.db, &state.runtime, &plugin, &request).await?;
            // A list in pages: the first page now, the rest as the client reads (`pages`).
            if let Some(rest) = outcome.next.take() {
                let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
                let first = outcome.body.unwrap_or_default();
                let body = Body::from_stream(pages::stream(state.runtime.clone(), plugin, request, first, rest));
                return Ok((status, [(CONTENT_TYPE, "application/json")], body).into_response());
            }
            outcome
        }
        _ => state.pipeline.write(plugin, request).await?,
    };

    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    Ok(match outcome.body {
        Some(body) => (status, [(CONTENT_TYPE, "application/json")], body).into_response(),
        None => status.into_response(),
    })
}

/// Parse a JSON body, refusing U+0000 in any string (PostgreSQL cannot store it).
fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    if records::json_holds_nul(&value) {
        return Err(ApiError::BadRequest("NUL characters (U+0000) are not allowed in JSON strings".into()));
    }
    Ok(value)
}

fn wit_method(method: &Method) -> Option<types::Method> {
    Some(match *method {
        Method::GET => types::Method::Get,
        Method::POST => types::Method::Post,
        Method::PUT => types::Method::Put,
        Method::PATCH => types::Method::Patch,
        Method::DELETE => types::Method::Delete,
        _ => return None,
    })
}

/// A JSON request body parsed into `T`: 415 for another content type, 413 when too large,
/// 400 when it does not parse or fit.
pub struct JsonBody<T>(pub T);

/// An optional JSON body, checked to be JSON and passed on as text (plugins parse it).
pub struct OptionalJson(pub Option<String>);

/// The body of a request to a plugin: optional JSON, or a `multipart/form-data` form whose
/// first file becomes the upload and whose text fields become a JSON object of strings.
pub struct PluginBody {
    pub json: Option<String>,
    pub upload: Option<types::Upload>,
}

async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Option<Bytes>, ApiError> {
    let is_json =
        req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
            |mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            },
        );
    let has_type = req.headers().contains_key(CONTENT_TYPE);
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(if has_type {
            "the body must be application/json".into()
        } else {
            "a body needs Content-Type: application/json".into()
        }));
    }
    Ok(Some(bytes))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            json_bytes(req, state).await?.ok_or_else(|| ApiError::BadRequest("a JSON body is required".into()))?;
        let value = parse_json(&bytes)?;
        serde_json::from_value(value).map(JsonBody).map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
    }
}

impl<S: Send + Sync> FromRequest<S> for PluginBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_multipart = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
        if !is_multipart {
            let OptionalJson(json) = OptionalJson::from_request(req, state).await?;
            return Ok(PluginBody { json, upload: None });
        }
        let bad = |e: MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("invalid multipart body: {}", e.body_text()))
            }
        };
        let mut form = Multipart::from_request(req, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let (mut fields, mut upload) = (serde_json::Map::new(), None);
        let nul = || ApiError::BadRequest("NUL characters are not allowed in form fields".into());
        while let Some(part) = form.next_field().await.map_err(bad)? {
            let name = part.name().unwrap_or_default().to_owned();
            if name.contains('\0') || part.file_name().is_some_and(|f| f.contains('\0')) {
                return Err(nul());
            }
            match part.file_name().map(|f| f.rsplit(['/', '\\']).next().unwrap_or_default().to_owned()) {
                Some(filename) if upload.is_none() => {
                    let content_type = part.content_type().map(str::to_owned);
                    let data = part.bytes().await.map_err(bad)?.to_vec();
                    upload = Some(types::Upload { field: name, filename, content_type, data });
                }
                Some(_) => return Err(ApiError::BadRequest("one file per request".into())),
                None => {
                    let text = part.text().await.map_err(bad)?;
                    if text.contains('\0') {
                        return Err(nul());
                    }
                    fields.insert(name, serde_json::Value::String(text));
                }
            }
        }
        let json = (!fields.is_empty()).then(|| serde_json::Value::Object(fields).to_string());
        Ok(PluginBody { json, upload })
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(bytes) = json_bytes(req, state).await? else { return Ok(OptionalJson(None)) };
        // Parse once here so that a plugin never sees malformed JSON.
        Ok(OptionalJson(Some(parse_json(&bytes)?.to_string())))
    }
}
