//! Routes declared once: each action's name, method, path, access and handler in one table,
//! from which both the descriptor's actions and the dispatch of `handle` come, so the two
//! cannot drift apart.
//!
//! ```ignore
//! const ROUTES: &[Route] = &[
//!     Route::new("all", Method::Get, "/", Access::Public, all),
//!     Route::new("create", Method::Post, "/", Access::Admin, create),
//! ];
//!
//! impl Plugin for Departments {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("department", "DEPARTMENT", "departments", env!("CARGO_PKG_VERSION")).routes(ROUTES)
//!     }
//!     fn handle(req: Request) -> Result<Response> {
//!         plugin_sdk::routes::dispatch(ROUTES, &req)
//!     }
//! }
//! ```

use crate::{Access, Descriptor, Method, PluginError, Request, Response, Result};

/// One action: served at `method path` (relative to the collection, or an absolute
/// `/api/v1/user/...` view) for callers with `access`, by `handler`.
#[derive(Clone, Copy)]
pub struct Route {
    pub name: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: fn(&Request) -> Result<Response>,
}

impl Route {
    pub const fn new(
        name: &'static str,
        method: Method,
        path: &'static str,
        access: Access,
        handler: fn(&Request) -> Result<Response>,
    ) -> Self {
        Route { name, method, path, access, handler }
    }
}

impl Descriptor {
    /// Declare every route of `routes` as an action.
    pub fn routes(self, routes: &[Route]) -> Self {
        routes.iter().fold(self, |d, r| d.action(r.name, r.method, r.path, r.access))
    }
}

/// Run the handler of the route the host matched (`req.action()`).
pub fn dispatch(routes: &[Route], req: &Request) -> Result<Response> {
    match routes.iter().find(|r| r.name == req.action()) {
        Some(route) => (route.handler)(req),
        None => Err(PluginError::NotFound(format!("no action {}", req.action()))),
    }
}
