//! The web console at `/` and the official Socket.IO Admin UI at `/admin-ui/`: static files
//! embedded in the binary, so both work offline. A debug build reads them from `host/console`
//! and `host/admin-ui` at run time instead, so they can be edited without a rebuild.
//!
//! The console is same-origin only: its Content-Security-Policy forbids every other host,
//! inline scripts and inline styles. The Admin UI's files are the project's prebuilt ones
//! (`scripts/vendor-admin-ui`), made to request nothing from another host.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::http::ApiError;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "console/"]
struct Console;

#[derive(RustEmbed)]
#[folder = "admin-ui/"]
struct AdminUi;

const CONSOLE_CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The Admin UI (Vue and Vuetify) sets inline styles, and connects to whichever server its
/// user names.
const ADMIN_UI_CSP: &str = "default-src 'self'; connect-src *; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; font-src 'self' data:; script-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve::<Console>("index.html", CONSOLE_CSP, &headers) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve::<Console>(&path, CONSOLE_CSP, &headers)
            }),
        )
        .route("/admin-ui", get(|| async { Redirect::permanent("/admin-ui/") }))
        .route(
            "/admin-ui/",
            get(|headers: HeaderMap| async move { serve::<AdminUi>("index.html", ADMIN_UI_CSP, &headers) }),
        )
        .route(
            "/admin-ui/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve::<AdminUi>(&path, ADMIN_UI_CSP, &headers)
            }),
        )
}

/// One embedded file, revalidated by its sha256 (`ETag`, answered 304 when unchanged).
fn serve<Files: RustEmbed>(path: &str, csp: &'static str, headers: &HeaderMap) -> Response {
    let Some(file) = Files::get(path) else {
        return ApiError::NotFound("no such file".into()).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let mut response = if headers.get(IF_NONE_MATCH).is_some_and(|seen| seen.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, file.metadata.mimetype().to_owned())], file.data).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    response
}
