//! The `SEMESTER` plugin: the school's semesters, served under `/api/v1/semesters`. It ports
//! events-api's `src/controllers/semesters.ts` and `src/models/semester.ts`: anyone may list
//! semesters, signed-in users read one, and admins create, update and delete them; every
//! change is broadcast to all signed-in sockets. A semester runs from `start` to `end` and
//! has an `untisSyncDate` inside that range: the week whose timetable the Untis sync reads.
//! The sync itself (`POST /:id/sync_untis`) is not ported yet.

use chrono::{DateTime, Utc};
use plugin_sdk::field;
use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, get,
};
use serde::{Deserialize, Serialize};
use serde_json::Map;

const SEMESTER: &str = "SEMESTER";

struct Semesters;
plugin_sdk::export!(Semesters);

/// Each action once: its route, who may call it, and what serves it. The host enforces the
/// access before the plugin runs, so the original's admin checks (in the guard and again in
/// the model) live here and nowhere else.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::Public, |_| all()),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, |req| Ok(Response::ok(&find(req)?))),
    Route::new("create", Method::Post, "/", Access::Admin, create),
    Route::new("update", Method::Put, "/:id", Access::Admin, update),
    Route::new("destroy", Method::Delete, "/:id", Access::Admin, destroy),
];

impl Plugin for Semesters {
    fn describe() -> Descriptor {
        Descriptor::new("semester", SEMESTER, "semesters", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // Not queried here, but by the plugins that look up the semester of a date
            // (`start <= date <= end`); the fixed-width date format makes that a text range.
            .index("start")
            .index("end")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// A semester as stored and as the API returns it (with `id`, `createdAt`, `updatedAt` added
/// by [`Record::to_json`]). Field names follow the original Prisma model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Semester {
    name: String,
    #[serde(with = "js_date")]
    start: DateTime<Utc>,
    #[serde(with = "js_date")]
    end: DateTime<Utc>,
    #[serde(with = "js_date")]
    untis_sync_date: DateTime<Utc>,
}

impl Semester {
    /// Apply the fields of a `PUT` body. These are the original's updatable fields; anything
    /// else (the client sends back the whole record, `id` and timestamps included) is ignored.
    fn apply(&mut self, changes: &Map<String, Value>) -> Result<()> {
        if let Some(name) = field(changes, "name")? {
            self.name = name;
        }
        if let Some(start) = js_date::field(changes, "start")? {
            self.start = start;
        }
        if let Some(end) = js_date::field(changes, "end")? {
            self.end = end;
        }
        if let Some(untis_sync_date) = js_date::field(changes, "untisSyncDate")? {
            self.untis_sync_date = untis_sync_date;
        }
        Ok(())
    }

    /// The original's model checks plus its database checks (`start < end`,
    /// `start < untisSyncDate < end`).
    ///
    /// Deviation: the model accepts a sync date equal to `start` or `end`, which the
    /// database then refuses with a 500; here that is the same 400 as any date outside.
    fn validate(&self) -> Result<()> {
        ensure!(self.start < self.end, PluginError::InvalidInput("End date must be after start date".into()));
        ensure!(
            self.start < self.untis_sync_date && self.untis_sync_date < self.end,
            PluginError::InvalidInput("Sync date must be between start and end date".into())
        );
        Ok(())
    }
}

/// `GET /`: every semester, in creation order. The original leaves the order to the
/// database; a fixed order keeps responses stable.
fn all() -> Result<Response> {
    let semesters = Query::new(SEMESTER).order_by("createdAt").fetch::<Semester>()?;
    Ok(Response::ok(&semesters))
}

/// The semester named by the `:id` path parameter, or 404.
fn find(req: &Request) -> Result<Record<Semester>> {
    let id = req.param("id")?;
    get(SEMESTER, id)?.ok_or_else(|| PluginError::NotFound(format!("Semester with id {id} not found")))
}

/// `POST /` with the bare body `{name, start, end}`; the sync date is the middle of the
/// semester. Like the original, every other field of the body is ignored.
fn create(req: &Request) -> Result<Response> {
    let body: Map<String, Value> = req.body()?;
    let name = field(&body, "name")?.ok_or_else(|| required("name"))?;
    let start = js_date::field(&body, "start")?.ok_or_else(|| required("start"))?;
    let end = js_date::field(&body, "end")?.ok_or_else(|| required("end"))?;

    let midpoint = start.timestamp_millis() + (end.timestamp_millis() - start.timestamp_millis()) / 2;
    let untis_sync_date = DateTime::from_timestamp_millis(midpoint).expect("between two valid dates");
    let semester = Semester { name, start, end, untis_sync_date };
    semester.validate()?;

    let semester = Record::new(SEMESTER, req.now(), semester);
    let json = semester.to_json();
    Ok(Response::created(&json)
        .insert(&semester)
        .notify(Notification::created(SEMESTER, &semester.id, &json).to(Target::All)))
}

/// `PUT /:id` with `{data: {...}}`; the checks apply to the semester as it will be stored.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    let mut semester = find(req)?;
    semester.data.apply(&req.body::<Body>()?.data)?;
    semester.data.validate()?;

    semester.touch(req.now());
    let json = semester.to_json();
    Ok(Response::ok(&json)
        .update(&semester)
        .notify(Notification::changed(SEMESTER, &semester.id, &json).to(Target::All)))
}

/// `DELETE /:id`.
fn destroy(req: &Request) -> Result<Response> {
    // Deviation: the original answers 500 for a missing semester (Prisma's delete throws);
    // we answer 404.
    let semester = find(req)?;

    // In the original, deleting a semester deletes its Untis lessons (cascade) and unlinks
    // its sync jobs (`jobs.semester_id` is set to null). Tidings has neither lessons nor
    // sync jobs yet; handle them here when it does.
    Ok(Response::no_content().delete(&semester).notify(Notification::deleted(SEMESTER, &semester.id).to(Target::All)))
}

fn required(name: &str) -> PluginError {
    PluginError::InvalidInput(format!("{name} is required"))
}
