//! The `EVENT_GROUP` plugin: named sets of events shared by their members, served under
//! `/api/v1/event_groups`. It ports events-api's `src/controllers/eventGroups.ts` and
//! `src/models/eventGroup.ts`: membership (`userIds`) is the only ownership, and a group is
//! invisible to non-members (404, admins included). Being a member of a group gives access
//! to its events' drafts (see `events_model::access`), which is how teachers plan together.
//!
//! The record shapes and the unit of work are shared with the `EVENT` plugin in the
//! `events-model` crate.

use events_model::access::all_by_ids;
use events_model::event::{Event, EventState, sorted_set};
use events_model::group::{EventGroup, api_group, empty_object};
use events_model::{Changes, EVENT, EVENT_GROUP};
use plugin_sdk::{
    Access, Descriptor, FieldValue, Method, Notification, Plugin, PluginError, Query, Record, Request, Response,
    Result, Route, Target, User, Value, field,
};
use serde::Deserialize;
use serde_json::Map;

struct EventGroups;
plugin_sdk::export!(EventGroups);

/// Each action once: its route, who may call it, and what serves it.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::SignedIn, all),
    Route::new("create", Method::Post, "/", Access::SignedIn, create),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, |req| {
        let group = find(&mut Changes::new(req.now()), req)?;
        Ok(Response::ok(&api_group(&group)))
    }),
    Route::new("update", Method::Put, "/:id", Access::SignedIn, update),
    Route::new("destroy", Method::Delete, "/:id", Access::SignedIn, destroy),
    Route::new("events", Method::Get, "/:id/events", Access::SignedIn, events),
    Route::new("clone", Method::Post, "/:id/clone", Access::SignedIn, clone),
];

impl Plugin for EventGroups {
    fn describe() -> Descriptor {
        Descriptor::new("event-group", EVENT_GROUP, "event_groups", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // Deleting a group may delete its drafts; cloning one clones its events.
            .writes(EVENT)
            // A user's groups, and an event's groups (read by the `event` plugin too).
            .index_elements("userIds")
            .index_elements("eventIds")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// `GET /`: the caller's groups, in creation order.
fn all(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut groups = Changes::new(req.now()).groups_of_user(&user.id)?;
    groups.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    Ok(Response::ok(&groups.iter().map(api_group).collect::<Vec<_>>()))
}

/// The group `:id` if the caller is a member; 404 otherwise, for admins too.
fn find(changes: &mut Changes, req: &Request) -> Result<Record<EventGroup>> {
    let user = req.require_user()?;
    let id = req.param("id")?;
    match changes.groups.get(id)? {
        Some(group) if group.data.has_member(&user.id) => Ok(group),
        _ => Err(PluginError::NotFound(format!("Event group with id {id} not found"))),
    }
}

/// Of `ids`, those the caller may see (`Events.allByIds`), in `ids`' order.
fn visible_event_ids(changes: &mut Changes, user: &User, ids: Vec<String>) -> Result<Vec<String>> {
    let ids = sorted_set(ids);
    let visible = all_by_ids(changes, Some(user), &ids)?;
    Ok(sorted_set(visible.into_iter().map(|e| e.id).collect()))
}

/// `POST /` with the bare body `{name, description, collection?, event_ids}`: a group with
/// the caller as its only member and the events of `event_ids` the caller may see.
fn create(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let body: Map<String, Value> = req.body()?;
    let mut changes = Changes::new(req.now());
    let event_ids = field::<Option<Vec<String>>>(&body, "event_ids")?.flatten().unwrap_or_default();
    let group = EventGroup {
        name: field::<Option<String>>(&body, "name")?.flatten().unwrap_or_default(),
        description: field::<Option<String>>(&body, "description")?.flatten().unwrap_or_default(),
        collection: field::<Option<String>>(&body, "collection")?.flatten().unwrap_or_default(),
        meta: empty_object(),
        event_ids: visible_event_ids(&mut changes, user, event_ids)?,
        user_ids: vec![user.id.clone()],
    };
    let group = changes.groups.insert(Record::new(EVENT_GROUP, req.now(), group));
    let json = api_group(&group);
    let response = Response::created(&json)
        .notify(Notification::created(EVENT_GROUP, &group.id, &json).to(Target::User(user.id.clone())));
    Ok(changes.into_response(response))
}

/// `PUT /:id` with `{data: {name?, description?, collection?, meta?, eventIds?, userIds?}}`:
/// `eventIds` keeps the events the caller may see; `userIds` is taken as given (so a member
/// may leave, or hand the group over). Announced to each member after the update, one
/// notification each; removed members are not told, as in the original.
///
/// Deviation: `meta` (an object) can be set too; it is the only way a client can change it.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }
    let user = req.require_user()?;
    let data = req.body::<Body>()?.data;
    let mut changes = Changes::new(req.now());
    let mut group = find(&mut changes, req)?;
    if let Some(name) = field::<Option<String>>(&data, "name")?.flatten() {
        group.data.name = name;
    }
    if let Some(description) = field::<Option<String>>(&data, "description")?.flatten() {
        group.data.description = description;
    }
    if let Some(collection) = field::<Option<String>>(&data, "collection")?.flatten() {
        group.data.collection = collection;
    }
    if let Some(meta) = field::<Option<Map<String, Value>>>(&data, "meta")?.flatten() {
        group.data.meta = Value::Object(meta);
    }
    if let Some(event_ids) = field::<Option<Vec<String>>>(&data, "eventIds")?.flatten() {
        group.data.event_ids = visible_event_ids(&mut changes, user, event_ids)?;
    }
    if let Some(user_ids) = field::<Option<Vec<String>>>(&data, "userIds")?.flatten() {
        group.data.user_ids = sorted_set(user_ids);
    }
    let group = changes.groups.update(group);
    let json = api_group(&group);
    let mut response = Response::ok(&json);
    for member in &group.data.user_ids {
        response =
            response.notify(Notification::changed(EVENT_GROUP, &group.id, &json).to(Target::User(member.clone())));
    }
    Ok(changes.into_response(response))
}

/// `DELETE /:id?eventAction=unlink|destroy_drafts`: 204. `unlink` (the default) leaves the
/// events alone; `destroy_drafts` also deletes the group's DRAFT events. The deletion goes
/// to all members, then each deleted draft to all members, the caller's socket included.
///
/// Deviation: another `eventAction` is a 400; the original unlinked for anything but
/// `destroy_drafts`.
fn destroy(req: &Request) -> Result<Response> {
    let destroy_drafts = match req.query("eventAction") {
        None | Some("unlink") => false,
        Some("destroy_drafts") => true,
        Some(other) => {
            return Err(PluginError::InvalidInput(format!(
                "eventAction must be unlink or destroy_drafts, not {other:?}"
            )));
        }
    };
    let mut changes = Changes::new(req.now());
    let group = find(&mut changes, req)?;
    let mut drafts = Vec::new();
    if destroy_drafts {
        for id in &group.data.event_ids {
            if let Some(event) = changes.events.get(id)?
                && event.data.state == EventState::Draft
            {
                changes.hard_delete(&event)?;
                drafts.push(event.id);
            }
        }
    }
    // `hard_delete` took the drafts out of this group too; the group goes anyway.
    let group = changes.groups.get(&group.id)?.expect("the group was read above");
    changes.groups.delete(&group);

    let members = |notification: Notification| {
        group.data.user_ids.iter().fold(notification, |n, member| n.to(Target::User(member.clone())))
    };
    let mut response = Response::no_content().notify(members(Notification::deleted(EVENT_GROUP, &group.id)));
    for id in &drafts {
        response = response.notify(members(Notification::deleted(EVENT, id)).to_self());
    }
    Ok(changes.into_response(response))
}

/// `GET /:id/events`: the group's root events (`parentId` null), by `start`.
fn events(req: &Request) -> Result<Response> {
    let mut changes = Changes::new(req.now());
    let group = find(&mut changes, req)?;
    let mut events = root_events(&group)?;
    events.sort_by(|a, b| (&a.data.start, &a.id).cmp(&(&b.data.start, &b.id)));
    Ok(Response::ok(&changes.api_events(&events)?))
}

fn root_events(group: &Record<EventGroup>) -> Result<Vec<Record<Event>>> {
    if group.data.event_ids.is_empty() {
        return Ok(Vec::new());
    }
    Query::new(EVENT).is_in("id", group.data.event_ids.iter().cloned()).eq("parentId", FieldValue::Null).fetch()
}

/// `POST /:id/clone`: a new group `"<name> 📋"` with the same description and meta, an
/// empty collection, the caller as its only member, and a basic clone (a DRAFT by the
/// caller) of each of the group's root events. 201; announced to the caller.
///
/// Deviation: the clone keeps the group's `meta`.
fn clone(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut changes = Changes::new(req.now());
    let source = find(&mut changes, req)?;
    let mut event_ids = Vec::new();
    for event in root_events(&source)? {
        let clone = Record::new(EVENT, req.now(), Event::clone_of(&event, &user.id));
        event_ids.push(changes.events.insert(clone).id);
    }
    let group = EventGroup {
        name: format!("{} 📋", source.data.name),
        description: source.data.description.clone(),
        collection: String::new(),
        meta: source.data.meta.clone(),
        event_ids: sorted_set(event_ids),
        user_ids: vec![user.id.clone()],
    };
    let group = changes.groups.insert(Record::new(EVENT_GROUP, req.now(), group));
    let json = api_group(&group);
    let response = Response::created(&json)
        .notify(Notification::created(EVENT_GROUP, &group.id, &json).to(Target::User(user.id.clone())));
    Ok(changes.into_response(response))
}
