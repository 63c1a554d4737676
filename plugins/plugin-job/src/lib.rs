//! The `JOB` plugin: background jobs, served under `/api/v1/jobs`. It ports events-api's
//! `src/controllers/jobs.ts` and `src/models/job.ts`: signed-in users list their own jobs,
//! read, describe and delete them; admins may read, change and delete anyone's.
//!
//! Jobs are created elsewhere: the `EVENT` plugin's import (`POST /events/import`) stores a
//! PENDING `IMPORT` job and ends it DONE or ERROR in a background task. An import job owns
//! the events it created (their `jobId`), so deleting the job deletes those events, and who
//! is told about a job depends on the states of its events ([`audience`]). The events are
//! read and written through `events-model`, the model the `EVENT` plugin uses, so that both
//! see one stored shape and one API shape.

use events_model::event::{Event, EventState};
use events_model::{Changes, EVENT, EVENT_GROUP, JOB};
use plugin_sdk::field;
use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, get,
};
use serde::{Deserialize, Serialize};
use serde_json::Map;

struct Jobs;
plugin_sdk::export!(Jobs);

/// Each action once: its route, who may call it, and what serves it. Every action is open to
/// signed-in users; "owner or admin" is checked per job.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::SignedIn, all),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, find_with_events),
    Route::new("update", Method::Put, "/:id", Access::SignedIn, update),
    Route::new("destroy", Method::Delete, "/:id", Access::SignedIn, destroy),
];

impl Plugin for Jobs {
    fn describe() -> Descriptor {
        Descriptor::new("job", JOB, "jobs", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // Deleting a job deletes its events; a hard-deleted event also leaves its groups
            // and its clones, as the original's foreign keys made it.
            .writes(EVENT)
            .writes(EVENT_GROUP)
            .index("userId")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// `JobType` (`prisma/schema.prisma`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum JobType {
    Import,
    Clone,
    SyncUntis,
}

/// `JobState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum JobState {
    Pending,
    Error,
    Done,
    Reverted,
}

/// A job as stored and as `GET /` returns it (with `id`, `createdAt`, `updatedAt` added by
/// [`Record::to_json`]): the original's `Job` columns. The `EVENT` plugin writes the same
/// shape when it imports.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    #[serde(rename = "type")]
    kind: JobType,
    state: JobState,
    user_id: String,
    /// Untis sync jobs only (not ported yet).
    semester_id: Option<String>,
    sync_date: Option<String>,
    #[serde(default)]
    description: String,
    /// Import jobs: the uploaded file's name.
    filename: Option<String>,
    /// What the job did; an import writes its `# Success` / `# Failed` report here.
    #[serde(default)]
    log: String,
}

impl Job {
    /// Apply the fields of a `PUT` body (`PROPS` and `ADMIN_PROPS` in `src/models/job.ts`):
    /// everyone may change `description`, admins also `state`. Anything else is ignored.
    fn apply(&mut self, changes: &Map<String, Value>, is_admin: bool) -> Result<()> {
        if let Some(description) = field(changes, "description")? {
            self.description = description;
        }
        if is_admin && let Some(state) = field(changes, "state")? {
            self.state = state;
        }
        Ok(())
    }
}

/// Who hears about a job (`getAudience`, `src/controllers/jobs.ts`): everyone once one of its
/// events is PUBLISHED, the admins while one is in REVIEW or REFUSED, otherwise its owner.
fn audience(job: &Record<Job>, events: &[Record<Event>]) -> Target {
    let has = |states: &[EventState]| events.iter().any(|e| states.contains(&e.data.state));
    if has(&[EventState::Published]) {
        Target::All
    } else if has(&[EventState::Review, EventState::Refused]) {
        Target::Admins
    } else {
        Target::User(job.data.user_id.clone())
    }
}

/// `GET /`: the caller's jobs (admins' too: only their own), in creation order, without
/// their events, as in the original.
fn all(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let jobs = Query::new(JOB).eq("userId", user.id.as_str()).order_by("createdAt").fetch::<Job>()?;
    Ok(Response::ok(&jobs))
}

/// The job named by `:id` if the caller owns it or is an admin: 404 when it is missing, 403
/// when it is someone else's (`Jobs.findModel`).
fn find(req: &Request) -> Result<Record<Job>> {
    let user = req.require_user()?;
    let id = req.param("id")?;
    let job: Record<Job> = get(JOB, id)?.ok_or_else(|| PluginError::NotFound(format!("Job with id {id} not found")))?;
    ensure!(job.data.user_id == user.id || req.is_admin(), PluginError::Forbidden("Not authorized".into()));
    Ok(job)
}

/// A job as `GET /:id` returns it and as its notifications carry it: the job with its
/// `events` in their API shape, in the order of `Changes::events_of_job` (by `createdAt`, then
/// `id`; the original leaves the order to the database).
///
/// Deviation: the original's update and delete return the events as raw database rows
/// (without `departmentIds`, `linkedUserIds` and `publishedVersionIds`), while its find and
/// the import's completion return API events. Here a job always carries API events, so a
/// client handles one shape.
fn job_with_events(changes: &mut Changes, job: &Record<Job>, events: &[Record<Event>]) -> Result<Value> {
    let mut json = job.to_json();
    json["events"] = Value::Array(changes.api_events(events)?);
    Ok(json)
}

/// `GET /:id`: the job with its events.
fn find_with_events(req: &Request) -> Result<Response> {
    let job = find(req)?;
    let mut changes = Changes::new(req.now());
    let events = changes.events_of_job(&job.id)?;
    Ok(Response::ok(&job_with_events(&mut changes, &job, &events)?))
}

/// `PUT /:id` with `{data: {description?, state?}}`: `CHANGED_RECORD` with the job and its
/// events, to the job's [`audience`].
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    let mut job = find(req)?;
    job.data.apply(&req.body::<Body>()?.data, req.is_admin())?;
    job.touch(req.now());

    let mut changes = Changes::new(req.now());
    let events = changes.events_of_job(&job.id)?;
    let json = job_with_events(&mut changes, &job, &events)?;
    let to = audience(&job, &events);
    Ok(Response::ok(&json).update(&job).notify(Notification::changed(JOB, &job.id, &json).to(to)))
}

/// `DELETE /:id` (`Jobs.destroy`, `src/models/job.ts`): every event of the job is deleted as
/// `DELETE /events/:id` would delete it (`_forceDestroy`): a DRAFT for good, any other state
/// softly (`deletedAt`), keeping its `jobId`. The job itself is deleted only when none of its
/// events remain; a job that still holds soft-deleted events stays as their anchor.
///
/// The answer is 204 either way, with one `DELETED_RECORD` for the job to its [`audience`] as
/// it is left, as in the original (clients drop the job from their list, which is what the
/// user asked for). The events' own changes are not announced, as in the original.
fn destroy(req: &Request) -> Result<Response> {
    // Idempotent: a job that is gone (e.g. by an earlier call) is a 204 without a
    // notification. Someone else's job is still a 403.
    let job = match find(req) {
        Err(PluginError::NotFound(_)) => return Ok(Response::no_content()),
        other => other?,
    };

    let now = req.now();
    let mut changes = Changes::new(now);
    for event in changes.events_of_job(&job.id)? {
        // Deleting a draft also deletes its versions, which may be events of this job too.
        let Some(mut event) = changes.events.get(&event.id)? else { continue };
        if event.data.state == EventState::Draft {
            changes.hard_delete(&event)?;
        } else if event.data.deleted_at.is_none() {
            // Deviation: the original stamps `deletedAt` again on every delete; an event that
            // is already soft-deleted keeps the time it was first deleted.
            event.data.deleted_at = Some(now.into());
            changes.events.update(event);
        }
    }

    let remaining = changes.events_of_job(&job.id)?;
    let mut response = Response::no_content();
    if remaining.is_empty() {
        response = response.delete(&job);
    }
    let response = response.notify(Notification::deleted(JOB, &job.id).to(audience(&job, &remaining)));
    Ok(changes.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Record<Job> {
        let data = serde_json::from_value(json!({
            "type": "IMPORT", "state": "PENDING", "userId": "u1", "semesterId": null, "syncDate": null,
            "description": "", "filename": "plan.csv", "log": ""
        }))
        .unwrap();
        Record::new(JOB, "2026-11-27T00:00:00.000Z", data)
    }

    fn event(state: EventState) -> Record<Event> {
        let mut event = Event::draft("u1", "2026-01-01T00:00:00.000Z".into(), "2026-01-02T00:00:00.000Z".into());
        event.state = state;
        Record::new(EVENT, "2026-11-27T00:00:00.000Z", event)
    }

    #[test]
    fn the_audience_follows_the_most_public_event() {
        let job = job();
        let user = |t: Target| matches!(t, Target::User(id) if id == "u1");
        assert!(user(audience(&job, &[])));
        assert!(user(audience(&job, &[event(EventState::Draft)])));
        assert!(matches!(audience(&job, &[event(EventState::Draft), event(EventState::Refused)]), Target::Admins));
        assert!(matches!(audience(&job, &[event(EventState::Review)]), Target::Admins));
        assert!(matches!(audience(&job, &[event(EventState::Review), event(EventState::Published)]), Target::All));
    }

    #[test]
    fn users_change_the_description_and_admins_also_the_state() {
        let mut job = job();
        let changes = json!({ "description": "Plan", "state": "DONE", "userId": "u2", "type": "CLONE" });
        job.data.apply(changes.as_object().unwrap(), false).unwrap();
        assert_eq!((job.data.description.as_str(), job.data.state), ("Plan", JobState::Pending));
        job.data.apply(changes.as_object().unwrap(), true).unwrap();
        assert_eq!(job.data.state, JobState::Done);
        assert_eq!((job.data.user_id.as_str(), job.data.kind), ("u1", JobType::Import));
        let bad = json!({ "state": "FINISHED" });
        assert!(matches!(job.data.apply(bad.as_object().unwrap(), true), Err(PluginError::InvalidInput(_))));
        assert!(job.data.apply(bad.as_object().unwrap(), false).is_ok(), "users' state is ignored, valid or not");
    }
}
