//! The `REGISTRATION_PERIOD` plugin: the windows in which teachers may submit events for
//! review, served under `/api/v1/registration_periods`. It ports events-api's
//! `src/controllers/registrationPeriods.ts` and `src/models/registrationPeriod.ts`: signed-in
//! users list and read periods, admins create, update and delete them, and every change is
//! broadcast to all signed-in sockets.
//!
//! A period is open from `start` to `end` (or whenever `isOpen` is set) for events that start
//! between `eventRangeStart` and `eventRangeEnd` and concern one of its `departmentIds`. This
//! plugin only keeps the periods; the `EVENT` plugin reads them when an event is submitted
//! (`change_state`), which is why `departmentIds` has an element index.

use chrono::{DateTime, Utc};
use plugin_sdk::field;
use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, get,
};
use serde::{Deserialize, Serialize};
use serde_json::Map;

const REGISTRATION_PERIOD: &str = "REGISTRATION_PERIOD";
const DEPARTMENT: &str = "DEPARTMENT";

struct RegistrationPeriods;
plugin_sdk::export!(RegistrationPeriods);

/// Each action once: its route, who may call it, and what serves it.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::SignedIn, |_| all()),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, |req| Ok(Response::ok(&find(req)?))),
    Route::new("create", Method::Post, "/", Access::Admin, create),
    Route::new("update", Method::Put, "/:id", Access::Admin, update),
    Route::new("destroy", Method::Delete, "/:id", Access::Admin, destroy),
];

impl Plugin for RegistrationPeriods {
    fn describe() -> Descriptor {
        // The original checks nothing in the model and relies on its route guard; the host
        // enforces the same `Access` before the plugin runs.
        Descriptor::new("registration-period", REGISTRATION_PERIOD, "registration_periods", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // `departmentIds` keeps only ids of existing departments.
            .reads(DEPARTMENT)
            // Queried by the EVENT plugin: the periods of an event's departments.
            .index_elements("departmentIds")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// A registration period as stored and as the API returns it (with `id`, `createdAt`,
/// `updatedAt` added by [`Record::to_json`]). The original keeps the departments in a join
/// table and adds `departmentIds` to every record it returns (`prepareRegistrationPeriod`);
/// here they are stored with the period.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationPeriod {
    name: String,
    description: String,
    /// When the period opens and closes for submissions.
    #[serde(with = "js_date")]
    start: DateTime<Utc>,
    #[serde(with = "js_date")]
    end: DateTime<Utc>,
    /// The range of event start dates the period accepts.
    #[serde(with = "js_date")]
    event_range_start: DateTime<Utc>,
    #[serde(with = "js_date")]
    event_range_end: DateTime<Utc>,
    /// Open regardless of `start` and `end`.
    is_open: bool,
    department_ids: Vec<String>,
}

impl RegistrationPeriod {
    /// Apply the fields of a `PUT` body: the original's updatable fields plus `departmentIds`
    /// (which replaces the set). Anything else (the client sends back the whole record, `id`
    /// and timestamps included) is ignored.
    fn apply(&mut self, changes: &Map<String, Value>) -> Result<()> {
        if let Some(name) = field(changes, "name")? {
            self.name = name;
        }
        if let Some(description) = field(changes, "description")? {
            self.description = description;
        }
        if let Some(start) = js_date::field(changes, "start")? {
            self.start = start;
        }
        if let Some(end) = js_date::field(changes, "end")? {
            self.end = end;
        }
        if let Some(event_range_start) = js_date::field(changes, "eventRangeStart")? {
            self.event_range_start = event_range_start;
        }
        if let Some(event_range_end) = js_date::field(changes, "eventRangeEnd")? {
            self.event_range_end = event_range_end;
        }
        if let Some(is_open) = field(changes, "isOpen")? {
            self.is_open = is_open;
        }
        if let Some(department_ids) = field::<Vec<String>>(changes, "departmentIds")? {
            self.department_ids = existing_departments(without_duplicates(department_ids))?;
        }
        Ok(())
    }

    /// The original's database checks (`start < end`, `event_range_start <
    /// event_range_end`), checked on the period as it will be stored.
    ///
    /// Deviation: the original's model refuses only `start > end` with a 400; an equal start
    /// and end, or an event range that ends before it starts, fail on its check constraints
    /// with a 500. All of these are the same 400 here.
    fn validate(&self) -> Result<()> {
        ensure!(self.start < self.end, PluginError::InvalidInput("Start date must be before end date".into()));
        ensure!(
            self.event_range_start < self.event_range_end,
            PluginError::InvalidInput("Event range start must be before event range end".into())
        );
        Ok(())
    }
}

/// `GET /`: every period, in creation order. The original leaves the order to the database;
/// a fixed order keeps responses stable.
fn all() -> Result<Response> {
    let periods = Query::new(REGISTRATION_PERIOD).order_by("createdAt").fetch::<RegistrationPeriod>()?;
    Ok(Response::ok(&periods))
}

/// The period named by the `:id` path parameter, or 404.
fn find(req: &Request) -> Result<Record<RegistrationPeriod>> {
    let id = req.param("id")?;
    get(REGISTRATION_PERIOD, id)?.ok_or_else(|| PluginError::NotFound("Registration Period not found".into()))
}

/// `POST /` with the bare body `{name, start, end, eventRangeStart, eventRangeEnd}`. Like the
/// original, every other field of the body is ignored: a new period has no description, is
/// not forced open and has no departments until it is updated.
fn create(req: &Request) -> Result<Response> {
    let body: Map<String, Value> = req.body()?;
    // Deviation: a missing field fails Prisma's validation in the original (a 500); here it
    // is a 400 naming the field.
    let name = field(&body, "name")?.ok_or_else(|| required("name"))?;
    let start = js_date::field(&body, "start")?.ok_or_else(|| required("start"))?;
    let end = js_date::field(&body, "end")?.ok_or_else(|| required("end"))?;
    let event_range_start = js_date::field(&body, "eventRangeStart")?.ok_or_else(|| required("eventRangeStart"))?;
    let event_range_end = js_date::field(&body, "eventRangeEnd")?.ok_or_else(|| required("eventRangeEnd"))?;

    let period = RegistrationPeriod {
        name,
        description: String::new(),
        start,
        end,
        event_range_start,
        event_range_end,
        is_open: false,
        department_ids: Vec::new(),
    };
    period.validate()?;

    let period = Record::new(REGISTRATION_PERIOD, req.now(), period);
    let json = period.to_json();
    Ok(Response::created(&json)
        .insert(&period)
        .notify(Notification::created(REGISTRATION_PERIOD, &period.id, &json).to(Target::All)))
}

/// `PUT /:id` with `{data: {...}}`; the checks apply to the period as it will be stored.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    let mut period = find(req)?;
    let changes = req.body::<Body>()?.data;
    period.data.apply(&changes)?;
    period.data.validate()?;

    period.touch(req.now());
    let json = period.to_json();
    Ok(Response::ok(&json)
        .update(&period)
        .notify(Notification::changed(REGISTRATION_PERIOD, &period.id, &json).to(Target::All)))
}

/// `DELETE /:id`.
fn destroy(req: &Request) -> Result<Response> {
    // Deviation: the original answers 500 for a missing period (Prisma's delete throws); we
    // answer 404.
    let period = find(req)?;
    Ok(Response::no_content()
        .delete(&period)
        .notify(Notification::deleted(REGISTRATION_PERIOD, &period.id).to(Target::All)))
}

/// The ids among `ids` that name a department, in their order.
///
/// Deviation: the original connects the ids through a join table, where an unknown id fails
/// the update with a 500. Here unknown ids are dropped: the client sends the whole record back
/// on every update, and an id left behind by a deleted department must not block the next
/// change of the period.
fn existing_departments(ids: Vec<String>) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut found = Vec::with_capacity(ids.len());
    // The host takes at most 1,000 values per `in` condition.
    for chunk in ids.chunks(1_000) {
        found.extend(Query::new(DEPARTMENT).is_in("id", chunk.iter().map(String::as_str)).fetch::<Value>()?);
    }
    Ok(ids.into_iter().filter(|id| found.iter().any(|department| department.id == *id)).collect())
}

/// The ids in the order given, each once: the original sets a relation, which holds each
/// department once.
fn without_duplicates(ids: Vec<String>) -> Vec<String> {
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    unique
}

fn required(name: &str) -> PluginError {
    PluginError::InvalidInput(format!("{name} is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: &str, end: &str, range_start: &str, range_end: &str) -> RegistrationPeriod {
        RegistrationPeriod {
            name: "HS26".into(),
            description: String::new(),
            start: js_date::parse(start).unwrap(),
            end: js_date::parse(end).unwrap(),
            event_range_start: js_date::parse(range_start).unwrap(),
            event_range_end: js_date::parse(range_end).unwrap(),
            is_open: false,
            department_ids: Vec::new(),
        }
    }

    #[test]
    fn both_ranges_must_run_forwards() {
        assert!(period("2026-01-01", "2026-02-01", "2026-08-01", "2027-01-01").validate().is_ok());
        for bad in [
            period("2026-02-01", "2026-01-01", "2026-08-01", "2027-01-01"),
            period("2026-01-01", "2026-01-01", "2026-08-01", "2027-01-01"),
            period("2026-01-01", "2026-02-01", "2027-01-01", "2026-08-01"),
            period("2026-01-01", "2026-02-01", "2026-08-01", "2026-08-01"),
        ] {
            assert!(matches!(bad.validate(), Err(PluginError::InvalidInput(_))));
        }
    }

    #[test]
    fn department_ids_keep_their_order_once_each() {
        let ids = without_duplicates(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(ids, ["b", "a"]);
    }
}
