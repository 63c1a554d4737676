//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the host's routes and of every
//! serving plugin's actions, built from the registry on each request, so it follows every
//! swap and rollback at once.
//!
//! Plugins declare method, path and access, not body shapes: their operations accept and
//! return any JSON. `x-tidings-access` names each operation's access level, and
//! `x-tidings-collections` lists the collections with their record types and plugins.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa::openapi::extensions::{Extensions, ExtensionsBuilder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, Required, ResponseBuilder};

use crate::http::ApiError;
use crate::plugin::types::{Access, Method};
use crate::sessions::COOKIE_NAME;
use crate::sessions::extract::CurrentUser;
use crate::state::AppState;

/// The tag of the host's own routes.
const HOST_TAG: &str = "host";
const SESSION_SCHEME: &str = "session";

/// A host route: method, path, access, summary.
type HostRoute = (Method, &'static str, Access, &'static str);

/// The host's routes, as `http::router` serves them.
const HOST_ROUTES: &[HostRoute] = &[
    (Method::Post, "/api/v1/auth/login", Access::Public, "Sign in: a new session cookie; the user"),
    (Method::Post, "/api/v1/logout", Access::SignedIn, "End the session and disconnect its sockets"),
    (Method::Get, "/api/v1/user", Access::SignedIn, "The signed-in user"),
    (Method::Get, "/api/v1/checklogin", Access::SignedIn, "200 \"OK\" when signed in"),
    (Method::Post, "/api/v1/users", Access::Admin, "Create a user"),
    (Method::Put, "/api/v1/users/{id}/set_role", Access::Admin, "Change a user's role: {\"data\": {\"role\": ...}}"),
    (Method::Put, "/api/v1/admin/clock", Access::Admin, "Set or reset the server clock (tests)"),
    (Method::Get, "/api/v1/admin/plugins", Access::Admin, "Every serving plugin with its counters"),
    (Method::Put, "/api/v1/admin/plugins/{name}", Access::Admin, "Install a plugin version (application/wasm)"),
    (Method::Post, "/api/v1/admin/plugins/{name}/rollback", Access::Admin, "Return to the previous version"),
    (Method::Get, "/api/v1/admin/sockets", Access::Admin, "The connected sockets and their rooms"),
    (Method::Get, "/api/v1/openapi.json", Access::SignedIn, "This document"),
    (Method::Get, "/healthz", Access::Public, "200 when the database answers and plugins are loaded"),
    (Method::Get, "/metrics", Access::Admin, "Prometheus metrics (or a bearer token)"),
];

/// `GET /api/v1/openapi.json` (signed in).
pub async fn document(State(state): State<AppState>, CurrentUser(_): CurrentUser) -> Result<Json<Value>, ApiError> {
    let doc = build(&state);
    serde_json::to_value(&doc).map(Json).map_err(|err| ApiError::Internal(err.to_string()))
}

fn build(state: &AppState) -> OpenApi {
    let mut paths = Paths::new();
    for &(method, path, access, summary) in HOST_ROUTES {
        let id = format!("host.{}", operation_name(method, path));
        paths.add_path_operation(
            path,
            vec![http_method(method)],
            operation(HOST_TAG, &id, summary, path, access, has_body(method)),
        );
    }
    let plugins = state.plugins.all();
    let mut tags = vec![TagBuilder::new().name(HOST_TAG).description(Some("The host's own routes")).build()];
    let mut collections = Vec::new();
    for plugin in &plugins {
        let d = &plugin.descriptor;
        tags.push(
            TagBuilder::new()
                .name(&d.collection)
                .description(Some(format!("{} records, served by the plugin {} {}", d.record_type, d.name, d.version)))
                .build(),
        );
        collections.push(json!({
            "collection": d.collection,
            "recordType": d.record_type,
            "plugin": d.name,
            "version": d.version,
        }));
        for action in &d.actions {
            let path = openapi_path(&d.collection, &action.path);
            let method = http_method(action.method);
            // A host route at the same method and path answers first (`POST /users`).
            if paths.get_path_operation(&path, method.clone()).is_some() {
                continue;
            }
            let id = format!("{}.{}", d.name, action.name);
            let summary = format!("{} ({})", action.name, d.record_type);
            let op = operation(&d.collection, &id, &summary, &path, action.access, has_body(action.method));
            paths.add_path_operation(&path, vec![method], op);
        }
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            SESSION_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                COOKIE_NAME,
                "The session cookie set by POST /api/v1/auth/login",
            ))),
        )
        .schema(
            "Error",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("error", ObjectBuilder::new().schema_type(Type::String))
                .required("error"),
        )
        .build();
    let mut doc = OpenApiBuilder::new()
        .info(InfoBuilder::new().title("Tidings").version(env!("CARGO_PKG_VERSION")).description(Some(
            "The host's routes and every serving plugin's actions. Plugin actions accept and answer \
                     JSON of the plugin's own shape. Changes are also pushed over Socket.IO (/socket.io/).",
        )))
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags))
        .build();
    doc.extensions = Some(ExtensionsBuilder::new().add("x-tidings-collections", collections).build());
    doc
}

/// One operation: its tag and id, the path's parameters, the session it needs, any JSON in
/// and out, and the error shape.
fn operation(tag: &str, id: &str, summary: &str, path: &str, access: Access, body: bool) -> OperationBuilder {
    let mut op = OperationBuilder::new()
        .tag(tag)
        .operation_id(Some(id))
        .summary(Some(summary))
        .response(
            "200",
            ResponseBuilder::new().description("Success").content("application/json", ContentBuilder::new().build()),
        )
        .response(
            "default",
            ResponseBuilder::new().description("An error with the server's message").content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build(),
            ),
        )
        .extensions(Some(access_extension(access)));
    for name in path_parameters(path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    op = match access {
        Access::Public => op.securities(Some(Vec::<SecurityRequirement>::new())),
        Access::SignedIn | Access::Admin => op.security(SecurityRequirement::new(SESSION_SCHEME, Vec::<String>::new())),
    };
    if body {
        op = op.request_body(Some(
            RequestBodyBuilder::new().content("application/json", ContentBuilder::new().build()).build(),
        ));
    }
    op
}

fn access_extension(access: Access) -> Extensions {
    ExtensionsBuilder::new().add("x-tidings-access", access.as_str()).build()
}

/// `/api/v1/<collection>` plus an action's path, with `:id` written `{id}`; `/` is the
/// collection itself.
fn openapi_path(collection: &str, action_path: &str) -> String {
    let rest: Vec<String> = action_path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect();
    let mut path = format!("/api/v1/{collection}");
    for segment in rest {
        path.push('/');
        path.push_str(&segment);
    }
    path
}

/// The names of a path's `{parameters}`.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// `post.admin.plugins.{name}` → a stable id for a host route.
fn operation_name(method: Method, path: &str) -> String {
    let method = method.as_str().to_lowercase();
    let rest: Vec<&str> = path
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
        .collect();
    format!("{method}.{}", rest.join("."))
}

fn has_body(method: Method) -> bool {
    matches!(method, Method::Post | Method::Put | Method::Patch)
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Put => HttpMethod::Put,
        Method::Patch => HttpMethod::Patch,
        Method::Delete => HttpMethod::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_paths_become_openapi_paths() {
        assert_eq!(openapi_path("events", "/"), "/api/v1/events");
        assert_eq!(openapi_path("events", "/:id"), "/api/v1/events/{id}");
        assert_eq!(openapi_path("events", "/:id/clone"), "/api/v1/events/{id}/clone");
        assert_eq!(openapi_path("jobs", "/change_state"), "/api/v1/jobs/change_state");
        assert_eq!(path_parameters("/api/v1/events/{id}/versions/{version}").collect::<Vec<_>>(), ["id", "version"]);
    }
}
