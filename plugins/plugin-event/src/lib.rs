//! The `EVENT` plugin: the school's events, served under `/api/v1/events`. It ports
//! events-api's `src/controllers/events.ts` and `src/models/event.ts`: anyone reads
//! published events; signed-in users create drafts, edit them (editing a non-draft creates a
//! new DRAFT version), share them through event groups, clone, delete and submit them for
//! review; admins publish or refuse. Publishing a version swaps it with the published event,
//! so a published event keeps its id (see `state.rs`). Imports of a CSV file run as a
//! background task that ends a `JOB` (see `import.rs`).
//!
//! The record shapes, access rules and the unit of work are shared with the `EVENT_GROUP`
//! plugin in the `events-model` crate; this crate holds the routes.

mod import;
mod state;

use std::collections::BTreeSet;

use events_model::access::{all_by_ids, find_model, find_record};
use events_model::audience::{self, all_departments};
use events_model::event::{Event, EventState};
use events_model::{Changes, DEPARTMENT, EVENT, EVENT_GROUP, JOB, REGISTRATION_PERIOD, SEMESTER, date};
use plugin_sdk::{
    Access, Comparison, Descriptor, FieldValue, Method, Notification, Page, Plugin, PluginError, Query, Record,
    Request, Response, Result, Route, SocketRequest, Target, TaskRequest, User, Value, field, get,
};
use serde::Deserialize;
use serde_json::Map;

struct Events;
plugin_sdk::export!(Events);

/// Each action once: its route, who may call it, and what serves it.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::Public, all),
    Route::new("find", Method::Get, "/:id", Access::Public, find),
    Route::new("create", Method::Post, "/", Access::SignedIn, create),
    Route::new("import", Method::Post, "/import", Access::SignedIn, import::start),
    Route::new("change_state", Method::Post, "/change_state", Access::SignedIn, state::change_state),
    Route::new("update_batch", Method::Put, "/", Access::SignedIn, update_batch),
    Route::new("update", Method::Put, "/:id", Access::SignedIn, update),
    Route::new("update_meta", Method::Put, "/:id/meta", Access::SignedIn, update_meta),
    Route::new("normalize_audience", Method::Post, "/:id/normalize_audience", Access::SignedIn, normalize_audience),
    Route::new("clone", Method::Post, "/:id/clone", Access::SignedIn, clone),
    Route::new("destroy", Method::Delete, "/:id", Access::SignedIn, destroy),
    Route::new("destroy_many", Method::Delete, "/", Access::SignedIn, destroy_many),
    // A user view, outside the collection: the original's `GET /user/events`.
    Route::new("for_user", Method::Get, "/api/v1/user/events", Access::SignedIn, for_user),
];

impl Plugin for Events {
    fn describe() -> Descriptor {
        Descriptor::new("event", EVENT, "events", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            .socket_event("events:overlapping")
            // Groups give access and move with the version swap; an import ends a job.
            .writes(EVENT_GROUP)
            .writes(JOB)
            .reads(DEPARTMENT)
            .reads(SEMESTER)
            .reads(REGISTRATION_PERIOD)
            // Every field this plugin and the others (event groups, jobs, subscriptions,
            // users) query events on.
            .index("state")
            .index("parentId")
            .index("authorId")
            .index("clonedFromId")
            .index("jobId")
            .index("start")
            .index("end")
            // The lists by `start`, in pages: the published ones, a user's own, the reviews.
            .index_ordered("state", "start")
            .index_ordered("authorId", "start")
            .index_elements("departmentIds")
            .index_elements("linkedUserIds")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }

    /// `socket.emit("events:overlapping", eventId, ack)` → `{state: "success", ids: [...]}`.
    fn on_socket_event(req: SocketRequest) -> Result<Value> {
        match req.event.as_str() {
            "events:overlapping" => overlapping(&req),
            other => Err(PluginError::NotFound(format!("no socket event {other}"))),
        }
    }

    fn run_task(req: TaskRequest) -> Result<Response> {
        match req.name.as_str() {
            "import" => import::run(&req),
            other => Err(PluginError::NotFound(format!("no task {other}"))),
        }
    }
}

/// Events per page of a list that can grow without bound (about 0.5 MiB of ordinary
/// events; the host joins the pages, see `plugin_sdk::Page`).
const PAGE_SIZE: u32 = 500;

/// `GET /?semesterId=&ids[]=`: with `ids[]`, those of the events that the caller may see
/// (`allByIds`, at most as many as the ids asked for); without, the published root events of
/// the semester (`published`), in pages.
fn all(req: &Request) -> Result<Response> {
    let mut changes = Changes::new(req.now());
    if req.query("ids[]").is_some() || req.query("ids").is_some() {
        let ids: Vec<String> = req.query_all("ids[]").chain(req.query_all("ids")).map(str::to_owned).collect();
        let events = all_by_ids(&mut changes, req.user(), &ids)?;
        return Ok(Response::ok(&changes.api_events(&events)?));
    }
    let page = published(req)?.page::<Event>(req.cursor(), PAGE_SIZE)?;
    Ok(Response::ok(&changes.api_events(&page.records)?).next_page(page.next))
}

/// `GET /api/v1/user/events` (`Events.forUser`): the caller's own events except published
/// root events (those are in the public list), and for admins also every REVIEW and
/// REFUSED event; by `start`, in pages. Soft-deleted events are included, as in the original.
fn for_user(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let published = EventState::Published.as_str();
    let mine = || Query::new(EVENT).eq("authorId", user.id.as_str()).order_by("start");
    let mut lists = vec![
        mine().filter("state", Comparison::Ne, published),
        mine().eq("state", published).filter("parentId", Comparison::Ne, FieldValue::Null),
    ];
    if req.is_admin() {
        for state in [EventState::Review, EventState::Refused] {
            let others =
                Query::new(EVENT).eq("state", state.as_str()).filter("authorId", Comparison::Ne, user.id.as_str());
            lists.push(others.order_by("start"));
        }
    }
    let page = Page::<Event>::union(lists, req.cursor(), PAGE_SIZE)?;
    let mut changes = Changes::new(req.now());
    Ok(Response::ok(&changes.api_events(&page.records)?).next_page(page.next))
}

/// The dates of a `SEMESTER` record.
#[derive(Deserialize)]
struct SemesterDates {
    start: String,
    end: String,
}

/// The PUBLISHED root events that overlap the semester `semesterId`, or the current one, or
/// (without a current semester) the twelve weeks around now; by `start`. Soft-deleted
/// events are included, as in the original: clients must handle them.
///
/// Deviation: an unknown `semesterId` is a 404, like any missing record.
fn published(req: &Request) -> Result<Query> {
    let (start, end) = match req.query("semesterId") {
        Some(id) => {
            let semester = get::<SemesterDates>(SEMESTER, id)?
                .ok_or_else(|| PluginError::NotFound(format!("Semester with id {id} not found")))?;
            (semester.data.start, semester.data.end)
        }
        None => match Query::new(SEMESTER)
            .filter("start", Comparison::Le, req.now())
            .filter("end", Comparison::Ge, req.now())
            .order_by("start")
            .first::<SemesterDates>()?
        {
            Some(semester) => (semester.data.start, semester.data.end),
            None => (date::add_weeks(req.now(), -12), date::add_weeks(req.now(), 12)),
        },
    };
    Ok(Query::new(EVENT)
        .eq("state", EventState::Published.as_str())
        .eq("parentId", FieldValue::Null)
        .filter("start", Comparison::Le, end)
        .filter("end", Comparison::Ge, start)
        .order_by("start"))
}

/// `GET /:id`: the event if the caller may see it (`findModel`).
fn find(req: &Request) -> Result<Response> {
    let mut changes = Changes::new(req.now());
    let event = find_model(&mut changes, req.user(), req.param("id")?)?;
    Ok(Response::ok(&changes.api_events(&[event])?.remove(0)))
}

/// `POST /` with the bare body `{start, end}`: a new DRAFT by the caller. Like the
/// original, every other field of the body is ignored (the state too).
///
/// Deviation: a missing or malformed date, or `start` after `end`, is a 400 with nothing
/// stored; the original failed in Prisma or on its check constraint.
fn create(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let body: Map<String, Value> = req.body()?;
    let start = date::field_of(&body, "start")?.ok_or_else(|| required("start"))?;
    let end = date::field_of(&body, "end")?.ok_or_else(|| required("end"))?;
    let event = Event::draft(&user.id, start, end);
    event.check_dates()?;

    let mut changes = Changes::new(req.now());
    let event = changes.events.insert(Record::new(EVENT, req.now(), event));
    let json = changes.api_events(std::slice::from_ref(&event))?.remove(0);
    let response = Response::created(&json)
        .notify(Notification::created(EVENT, &event.id, &json).to(Target::User(user.id.clone())));
    Ok(changes.into_response(response))
}

/// `updateModel`: a DRAFT is changed in place (and is no longer marked `cloned`); any
/// other event gets a new DRAFT version by the caller, a child of it. Returns the changed
/// or new draft.
fn update_model(changes: &mut Changes, user: &User, id: &str, data: &Map<String, Value>) -> Result<Record<Event>> {
    let record = find_record(changes, Some(user), id, false)?;
    if data.contains_key("departmentIds") {
        check_departments(data)?;
    }
    if record.data.state == EventState::Draft {
        let mut record = record;
        record.data.apply_update(data)?;
        record.data.cloned = false;
        Ok(changes.events.update(record))
    } else {
        let mut version = Event::version_of(&record, &user.id);
        version.apply_update(data)?;
        Ok(changes.events.insert(Record::new(EVENT, changes.now(), version)))
    }
}

/// Deviation: the original connects departments by id and fails with a 500 on an unknown
/// one; here it is a 400 and nothing changes.
fn check_departments(data: &Map<String, Value>) -> Result<()> {
    let ids: BTreeSet<String> =
        field::<Option<Vec<String>>>(data, "departmentIds")?.flatten().unwrap_or_default().into_iter().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<String> =
        Query::new(DEPARTMENT).is_in("id", ids.iter().cloned()).fetch::<Value>()?.into_iter().map(|d| d.id).collect();
    match ids.difference(&known).next() {
        Some(missing) => Err(PluginError::InvalidInput(format!("departmentIds: no department with id {missing}"))),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct UpdateBody {
    data: Map<String, Value>,
}

/// `PUT /:id` with `{data: {...}}`. The draft goes to the caller and, when it is shared,
/// to the members of its groups (a new version has no groups yet).
fn update(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let data = req.body::<UpdateBody>()?.data;
    let mut changes = Changes::new(req.now());
    let event = update_model(&mut changes, user, req.param("id")?, &data)?;

    let mut audience = vec![user.id.clone()];
    for group in changes.groups_of_event(&event.id)? {
        audience.extend(group.data.user_ids);
    }
    let json = changes.api_events(std::slice::from_ref(&event))?.remove(0);
    let response = Response::ok(&json).notify(to_users(Notification::changed(EVENT, &event.id, &json), &audience));
    Ok(changes.into_response(response))
}

/// `PUT /` with `{data: [event, ...]}`: each item goes through `updateModel`; an item that
/// cannot be updated (missing, forbidden, invalid) is skipped, as in the original. Each
/// updated event goes to the caller only.
///
/// Deviation: an event named twice gets the second change on top of the first (one write);
/// the original raced two updates.
fn update_batch(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Vec<Value>,
    }
    let user = req.require_user()?;
    let items = req.body::<Body>()?.data;
    let mut changes = Changes::new(req.now());
    let mut updated = Vec::new();
    for item in &items {
        let Some(data) = item.as_object() else { continue };
        let Some(id) = data.get("id").and_then(Value::as_str) else { continue };
        match update_model(&mut changes, user, id, data) {
            Ok(event) => updated.push(event.id),
            Err(PluginError::Internal(e)) => return Err(PluginError::Internal(e)),
            Err(_) => continue,
        }
    }
    let events = current(&mut changes, &updated)?;
    let json = changes.api_events(&events)?;
    let mut response = Response::ok(&json);
    for (event, json) in events.iter().zip(&json) {
        let to = if event.data.state == EventState::Published { Target::All } else { Target::User(user.id.clone()) };
        response = response.notify(Notification::changed(EVENT, &event.id, json).to(to));
    }
    Ok(changes.into_response(response))
}

/// `PUT /:id/meta` with `{data: {...} | null}`: merges into `meta` (shallow); `null` clears
/// it. Only DRAFT and REVIEW events, else 404 `Not allowed`, as in the original.
///
/// Deviation: `data` that is neither an object nor `null` is a 400.
fn update_meta(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let body: Map<String, Value> = req.body()?;
    let data: Value = field(&body, "data")?.ok_or_else(|| required("data"))?;
    let mut changes = Changes::new(req.now());
    let mut event = find_record(&mut changes, Some(user), req.param("id")?, true)?;
    if !matches!(event.data.state, EventState::Draft | EventState::Review) {
        return Err(PluginError::NotFound("Not allowed".into()));
    }
    event.data.meta = match data {
        Value::Null => None,
        Value::Object(changes) => {
            let mut meta = match event.data.meta.take() {
                Some(Value::Object(meta)) => meta,
                _ => Map::new(),
            };
            meta.extend(changes);
            Some(Value::Object(meta))
        }
        _ => return Err(PluginError::InvalidInput("data: expected an object or null".into())),
    };
    let event = changes.events.update(event);
    let json = changes.api_events(std::slice::from_ref(&event))?.remove(0);
    let to = if event.data.state == EventState::Published { Target::All } else { Target::User(user.id.clone()) };
    let response = Response::ok(&json).notify(Notification::changed(EVENT, &event.id, &json).to(to));
    Ok(changes.into_response(response))
}

/// `POST /:id/normalize_audience`: prunes the draft's classes and class groups (see
/// `events_model::audience::normalize`). 201, as in the original. Goes to the caller and
/// the members of the draft's groups.
fn normalize_audience(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut changes = Changes::new(req.now());
    let mut event = find_record(&mut changes, Some(user), req.param("id")?, true)?;
    if event.data.state != EventState::Draft {
        return Err(PluginError::InvalidInput("Only drafts can be normalized".into()));
    }
    let (classes, class_groups) = audience::normalize(&all_departments()?, &event.data);
    event.data.classes = classes;
    event.data.class_groups = class_groups;
    let event = changes.events.update(event);

    let mut audience = vec![user.id.clone()];
    for group in changes.groups_of_event(&event.id)? {
        audience.extend(group.data.user_ids);
    }
    let json = changes.api_events(std::slice::from_ref(&event))?.remove(0);
    let response = Response::created(&json).notify(to_users(Notification::changed(EVENT, &event.id, &json), &audience));
    Ok(changes.into_response(response))
}

/// `POST /:id/clone`: a new DRAFT copy by the caller (`cloneModel`). Any published event
/// can be cloned; others only by their author, their groups' members and admins.
fn clone(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut changes = Changes::new(req.now());
    let source = find_record(&mut changes, Some(user), req.param("id")?, false)?;
    let event = changes.events.insert(Record::new(EVENT, req.now(), Event::clone_of(&source, &user.id)));
    let json = changes.api_events(std::slice::from_ref(&event))?.remove(0);
    let response = Response::created(&json)
        .notify(Notification::created(EVENT, &event.id, &json).to(Target::User(user.id.clone())));
    Ok(changes.into_response(response))
}

/// What deleting one event did.
enum Deleted {
    /// A draft, gone: announced to its author.
    Hard { id: String, author_id: String },
    /// Any other state, marked `deletedAt`: announced to everyone.
    Soft(String),
}

/// `_forceDestroy`: a DRAFT is deleted (with its versions; see `Changes::hard_delete`),
/// anything else is soft-deleted.
fn destroy_one(changes: &mut Changes, mut event: Record<Event>, now: &str) -> Result<Deleted> {
    if event.data.state == EventState::Draft {
        changes.hard_delete(&event)?;
        Ok(Deleted::Hard { id: event.id, author_id: event.data.author_id })
    } else {
        event.data.deleted_at = Some(now.into());
        let event = changes.events.update(event);
        Ok(Deleted::Soft(event.id))
    }
}

/// The notifications for `deleted`, in order.
fn announce_deletions(changes: &mut Changes, deleted: &[Deleted], mut response: Response) -> Result<Response> {
    for outcome in deleted {
        response = match outcome {
            Deleted::Hard { id, author_id } => {
                response.notify(Notification::deleted(EVENT, id).to(Target::User(author_id.clone())))
            }
            Deleted::Soft(id) => {
                let event = current(changes, std::slice::from_ref(id))?;
                let json = changes.api_events(&event)?.remove(0);
                response.notify(Notification::changed(EVENT, id, &json).to(Target::All))
            }
        };
    }
    Ok(response)
}

/// `DELETE /:id`: 204. Only the author, the members of the event's groups and admins.
fn destroy(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut changes = Changes::new(req.now());
    let event = find_record(&mut changes, Some(user), req.param("id")?, true)?;
    let deleted = destroy_one(&mut changes, event, req.now())?;
    let response = announce_deletions(&mut changes, &[deleted], Response::no_content())?;
    Ok(changes.into_response(response))
}

/// `DELETE /?ids[]=`: deletes each event the caller may delete, skips the others (the
/// original logs and ignores them); 200 with the ids deleted.
fn destroy_many(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let mut changes = Changes::new(req.now());
    let mut deleted = Vec::new();
    let mut seen = BTreeSet::new();
    for id in req.query_all("ids[]").chain(req.query_all("ids")).filter(|id| seen.insert(*id)) {
        match find_record(&mut changes, Some(user), id, true) {
            Ok(event) => deleted.push(destroy_one(&mut changes, event, req.now())?),
            Err(PluginError::Internal(e)) => return Err(PluginError::Internal(e)),
            Err(_) => continue,
        }
    }
    let ids: Vec<&str> = deleted
        .iter()
        .map(|d| match d {
            Deleted::Hard { id, .. } | Deleted::Soft(id) => id.as_str(),
        })
        .collect();
    let response = announce_deletions(&mut changes, &deleted, Response::ok(&ids))?;
    Ok(changes.into_response(response))
}

/// `events:overlapping` with `[eventId]`: the ids of the PUBLISHED, not deleted root events
/// that overlap the event in time and share a department or a class with it, by `start`.
/// Any signed-in socket may ask about any event, as with the original's `affectedLessons`.
fn overlapping(req: &SocketRequest) -> Result<Value> {
    let args: Vec<Value> = serde_json::from_str(&req.args)
        .map_err(|_| PluginError::InvalidInput("expected the arguments [eventId]".into()))?;
    let Some(id) = args.first().and_then(Value::as_str) else {
        return Err(PluginError::InvalidInput("expected the arguments [eventId]".into()));
    };
    let event = get::<Event>(EVENT, id)?.ok_or_else(|| PluginError::NotFound("Event not found".into()))?;
    let departments = all_departments()?;
    let own = audience::departments_of(&departments, &event.data);
    let candidates = Query::new(EVENT)
        .eq("state", EventState::Published.as_str())
        .eq("parentId", FieldValue::Null)
        .eq("deletedAt", FieldValue::Null)
        .filter("start", Comparison::Lt, event.data.end.as_str())
        .filter("end", Comparison::Gt, event.data.start.as_str())
        .order_by("start")
        .fetch::<Event>()?;
    let ids: Vec<String> = candidates
        .into_iter()
        .filter(|other| other.id != event.id && Some(&other.id) != event.data.parent_id.as_ref())
        .filter(|other| {
            !own.is_disjoint(&audience::departments_of(&departments, &other.data))
                || audience::share_a_class(&event.data, &other.data)
        })
        .map(|other| other.id)
        .collect();
    Ok(serde_json::json!({ "ids": ids }))
}

/// The records `ids` as this request leaves them.
fn current(changes: &mut Changes, ids: &[String]) -> Result<Vec<Record<Event>>> {
    let mut events = Vec::new();
    for id in ids {
        if let Some(event) = changes.events.get(id)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// `notification` to each of `user_ids` once, in order.
fn to_users(mut notification: Notification, user_ids: &[String]) -> Notification {
    let mut seen = BTreeSet::new();
    for id in user_ids {
        if seen.insert(id) {
            notification = notification.to(Target::User(id.clone()));
        }
    }
    notification
}

fn required(name: &str) -> PluginError {
    PluginError::InvalidInput(format!("{name} is required"))
}
