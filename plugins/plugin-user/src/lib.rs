//! The `USER` plugin: the users and their profile flags, served under `/api/v1/users`. It
//! ports events-api's `src/controllers/users.ts` and `src/models/user.ts` as far as they do
//! not need Untis or ICS files.
//!
//! Users are the host's accounts: the host creates each `USER` record when it creates the
//! account and keeps `email`, `firstName`, `lastName` and `role` in step (it refuses a plugin
//! write that changes them). Role changes (`PUT /users/:id/set_role`) and user creation
//! (`POST /users`) are served by the host itself. This plugin lists users and lets each user,
//! or an admin, change the notification flags.

use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, field, get,
};
use serde::Deserialize;
use serde_json::Map;

const USER: &str = "USER";
const SUBSCRIPTION: &str = "SUBSCRIPTION";

/// The flags a user (or an admin) may change (`src/models/user.ts:L11-15`).
const UPDATABLE: [&str; 3] = ["notifyOnEventUpdate", "notifyAdminOnReviewRequest", "notifyAdminOnReviewDecision"];

struct Users;
plugin_sdk::export!(Users);

/// Each action once: its route, who may call it, and what serves it.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::SignedIn, all),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, find),
    Route::new("update", Method::Put, "/:id", Access::SignedIn, update),
];

impl Plugin for Users {
    fn describe() -> Descriptor {
        // `POST /users` and `PUT /users/:id/set_role` are the host's routes.
        Descriptor::new("user", USER, "users", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // A user's own entry carries their subscription.
            .reads(SUBSCRIPTION)
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// A stored user: the host's account fields plus this plugin's flags, kept as JSON so that
/// fields this plugin does not know (the host's) pass through unchanged.
type User = Map<String, Value>;

/// `GET /`: every user, in creation order; the caller's own entry with their subscription.
fn all(req: &Request) -> Result<Response> {
    let me = req.require_user()?;
    let users: Vec<Value> = Query::new(USER)
        .order_by("createdAt")
        .fetch::<User>()?
        .iter()
        .map(|user| if user.id == me.id { api_user(user) } else { Ok(user.to_json()) })
        .collect::<Result<_>>()?;
    Ok(Response::ok(&users))
}

/// `GET /:id`: the user with their subscription. Like the original, an unknown id answers
/// 200 with `null`.
fn find(req: &Request) -> Result<Response> {
    match get::<User>(USER, req.param("id")?)? {
        Some(user) => Ok(Response::ok(&api_user(&user)?)),
        None => Ok(Response::ok(&Value::Null)),
    }
}

/// `PUT /:id` with `{data: {...}}`: the user themself or an admin changes the flags; any
/// other field of the body is ignored. Notifies the caller (not the target), as the original.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    let me = req.require_user()?;
    let id = req.param("id")?;
    ensure!(me.id == id || req.is_admin(), PluginError::Forbidden("Not authorized".into()));
    let changes = req.body::<Body>()?.data;
    let mut user = get::<User>(USER, id)?.ok_or_else(|| PluginError::NotFound(format!("User {id} not found")))?;
    for flag in UPDATABLE {
        if let Some(value) = field::<bool>(&changes, flag)? {
            user.data.insert(flag.into(), value.into());
        }
    }
    user.touch(req.now());
    let json = api_user(&user)?;
    Ok(Response::ok(&json).update(&user).notify(Notification::changed(USER, id, &json).to(Target::User(me.id.clone()))))
}

/// The original's `ApiUser`: the user plus `subscription` (without `userId`) when they have
/// one.
fn api_user(user: &Record<User>) -> Result<Value> {
    let mut json = user.to_json();
    if let Some(subscription) = Query::new(SUBSCRIPTION).eq("userId", user.id.as_str()).first::<Map<String, Value>>()? {
        let mut subscription = subscription.to_json();
        if let Value::Object(fields) = &mut subscription {
            fields.remove("userId");
        }
        json["subscription"] = subscription;
    }
    Ok(json)
}
