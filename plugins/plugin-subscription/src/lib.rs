//! The `SUBSCRIPTION` plugin: each user's calendar subscription, served under
//! `/api/v1/subscriptions`. It ports events-api's `src/controllers/subscriptions.ts` and
//! `src/models/subscription.ts`: a signed-in user gets (or creates) their own subscription
//! and changes what it holds; admins may change anyone's.
//!
//! A subscription says which events a user's calendar feed shows: those of some departments
//! and Untis classes, those that affect the user (`subscribeToAffected`), minus the events the
//! user chose to ignore. The feed itself, an `.ics` file named by `icsLocator`, is out of
//! scope: the original writes it on every create and update (`createIcsFromSubscription`);
//! Tidings only keeps the locator, so a feed generator can be added without changing records.

use plugin_sdk::field;
use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, get,
};
use serde::{Deserialize, Serialize};
use serde_json::Map;

const SUBSCRIPTION: &str = "SUBSCRIPTION";
const DEPARTMENT: &str = "DEPARTMENT";
const EVENT: &str = "EVENT";

struct Subscriptions;
plugin_sdk::export!(Subscriptions);

/// Each action once: its route, who may call it, and what serves it.
const ROUTES: &[Route] = &[
    Route::new("create", Method::Post, "/", Access::SignedIn, create),
    Route::new("update", Method::Put, "/:id", Access::SignedIn, update),
];

impl Plugin for Subscriptions {
    fn describe() -> Descriptor {
        // The original serves no GET: clients read a subscription as part of their user
        // (`GET /user`, `ApiUser.subscription`).
        Descriptor::new("subscription", SUBSCRIPTION, "subscriptions", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // `departmentIds` and `ignoredEventIds` keep only ids of existing records.
            .reads(DEPARTMENT)
            .reads(EVENT)
            // One subscription per user: looked up by owner here and by the USER plugin.
            .index("userId")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// A subscription as stored and as the API returns it (`ApiSubscription`, with `id`,
/// `createdAt`, `updatedAt` added by [`Record::to_json`]). The original keeps the three id
/// lists in join tables and adds them to every record it returns; here they are stored with
/// the subscription.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    /// The owner; unique.
    user_id: String,
    /// Also show the events that affect the user (as a teacher, through their classes).
    subscribe_to_affected: bool,
    /// The feed's file name, `<uuid>.ics`; unique and unguessable.
    ics_locator: String,
    department_ids: Vec<String>,
    ignored_event_ids: Vec<String>,
    /// Untis class ids are integers in the original.
    untis_class_ids: Vec<i64>,
}

impl Subscription {
    /// A new subscription with the original's column defaults.
    fn new(user_id: &str) -> Self {
        Subscription {
            user_id: user_id.into(),
            subscribe_to_affected: true,
            ics_locator: format!("{}.ics", uuid::Uuid::new_v4()),
            department_ids: Vec::new(),
            ignored_event_ids: Vec::new(),
            untis_class_ids: Vec::new(),
        }
    }

    /// Apply the fields of a `PUT` body: `subscribeToAffected`, and the three id lists, each
    /// replacing the set it names. Anything else (the client sends back the whole record) is
    /// ignored, `userId` and `icsLocator` included.
    fn apply(&mut self, changes: &Map<String, Value>) -> Result<()> {
        if let Some(subscribe_to_affected) = field(changes, "subscribeToAffected")? {
            self.subscribe_to_affected = subscribe_to_affected;
        }
        if let Some(department_ids) = field::<Vec<String>>(changes, "departmentIds")? {
            self.department_ids = existing(DEPARTMENT, without_duplicates(department_ids))?;
        }
        if let Some(ignored_event_ids) = field::<Vec<String>>(changes, "ignoredEventIds")? {
            self.ignored_event_ids = existing(EVENT, without_duplicates(ignored_event_ids))?;
        }
        if let Some(untis_class_ids) = field::<Vec<i64>>(changes, "untisClassIds")? {
            // Untis classes are out of scope, so there is nothing to check these against.
            self.untis_class_ids = without_duplicates(untis_class_ids);
        }
        Ok(())
    }
}

/// `POST /`: the caller's subscription, created on first use. An existing one is returned
/// as it is with 200 and no notification; a new one with 201 and `NEW_RECORD` to the caller.
/// The body, if any, is ignored.
fn create(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    if let Some(existing) = Query::new(SUBSCRIPTION).eq("userId", user.id.as_str()).first::<Subscription>()? {
        return Ok(Response::ok(&existing));
    }
    // Writing requests are serialized by the host, so no other request can create a second
    // subscription for this user between the lookup above and this insert.
    let subscription = Record::new(SUBSCRIPTION, req.now(), Subscription::new(&user.id));
    let json = subscription.to_json();
    Ok(Response::created(&json)
        .insert(&subscription)
        .notify(Notification::created(SUBSCRIPTION, &subscription.id, &json).to(Target::User(user.id.clone()))))
}

/// `PUT /:id` with `{data: {...}}`, by the owner or an admin.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    let user = req.require_user()?;
    let id = req.param("id")?;
    let mut subscription: Record<Subscription> =
        get(SUBSCRIPTION, id)?.ok_or_else(|| PluginError::NotFound("Subscription not found".into()))?;
    ensure!(subscription.data.user_id == user.id || req.is_admin(), PluginError::Forbidden("Not authorized".into()));
    subscription.data.apply(&req.body::<Body>()?.data)?;

    subscription.touch(req.now());
    let json = subscription.to_json();
    // The original tells the caller only. Deviation: when an admin changes someone else's
    // subscription, the owner is told too, so that the owner's open clients stay current.
    let mut notification =
        Notification::changed(SUBSCRIPTION, &subscription.id, &json).to(Target::User(user.id.clone()));
    if subscription.data.user_id != user.id {
        notification = notification.to(Target::User(subscription.data.user_id.clone()));
    }
    Ok(Response::ok(&json).update(&subscription).notify(notification))
}

/// The ids among `ids` that name a record of `record_type`, in their order.
///
/// Deviation: the original connects the ids through join tables, where an unknown id fails
/// the update with a 500. Here unknown ids are dropped: clients send the whole list back on
/// every update, and an id left behind by a deleted department or event must not block the
/// user's next change.
fn existing(record_type: &str, ids: Vec<String>) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut found = Vec::with_capacity(ids.len());
    // The host takes at most 1,000 values per `in` condition.
    for chunk in ids.chunks(1_000) {
        found.extend(Query::new(record_type).is_in("id", chunk.iter().map(String::as_str)).fetch::<Value>()?);
    }
    Ok(ids.into_iter().filter(|id| found.iter().any(|record| record.id == *id)).collect())
}

/// `items` in their order, each once: the original's lists are relations, which hold each
/// record once.
fn without_duplicates<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut unique = Vec::with_capacity(items.len());
    for item in items {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_subscription_has_the_original_defaults() {
        let subscription = Subscription::new("u1");
        assert!(subscription.subscribe_to_affected);
        let locator = subscription.ics_locator.strip_suffix(".ics").unwrap();
        assert_eq!(locator.len(), 36, "a UUID: {locator}");
        assert!(subscription.department_ids.is_empty() && subscription.untis_class_ids.is_empty());
    }

    #[test]
    fn an_update_ignores_owner_and_locator_and_checks_types() {
        let mut subscription = Subscription::new("u1");
        let locator = subscription.ics_locator.clone();
        let changes =
            json!({ "userId": "u2", "icsLocator": "x.ics", "subscribeToAffected": false, "untisClassIds": [3, 1, 3] });
        subscription.apply(changes.as_object().unwrap()).unwrap();
        assert_eq!((subscription.user_id.as_str(), subscription.ics_locator.as_str()), ("u1", locator.as_str()));
        assert!(!subscription.subscribe_to_affected);
        assert_eq!(subscription.untis_class_ids, [3, 1]);
        for bad in [json!({ "subscribeToAffected": "no" }), json!({ "untisClassIds": ["1"] })] {
            assert!(matches!(subscription.apply(bad.as_object().unwrap()), Err(PluginError::InvalidInput(_))));
        }
    }
}
