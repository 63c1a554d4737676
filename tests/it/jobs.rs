//! The `job` plugin over HTTP, ported from events-api's `tests/integration/job.spec.ts`:
//! listing, reading, describing and deleting jobs, who may do each, the audience of a job's
//! notifications (`getAudience`), and what deleting a job does to its events.
//!
//! Like the original's tests, most cases seed jobs and events straight into the store (the
//! original uses Prisma factories; here [`insert_record`] writes rows of the `records`
//! table), so that events can be in any state without walking them through the review
//! workflow. [`an_import_job_is_read_and_deleted_with_its_events`] goes through the `EVENT`
//! plugin's import end to end.

use std::time::Duration;

use host::db::records::{self, Write};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    jobs_need_a_session,
    users_list_their_own_jobs,
    owners_and_admins_read_a_job_with_its_events,
    users_change_the_description_and_admins_also_the_state,
    changes_are_told_to_the_audience_of_the_jobs_events,
    deleting_a_job_deletes_its_draft_events_and_the_job,
    a_job_with_submitted_events_stays_and_its_events_are_soft_deleted,
    deleting_is_idempotent_and_for_owners_and_admins,
    an_import_job_is_read_and_deleted_with_its_events,
    an_import_announces_its_job_as_a_read_gives_it,
);

const JOBS: &str = "/api/v1/jobs";
/// When seeded records were created.
const SEEDED: &str = "2026-11-01T08:00:00.000Z";
/// The pinned clock during the requests under test.
const NOW: &str = "2026-11-27T14:00:00.000Z";

/// Insert a record straight into the store, as the plugin that owns `record_type` would
/// have stored it (through the host's own write, so the element indexes the plugins declared
/// are kept too); returns its id.
pub(crate) async fn insert_record(host: &TestHost, record_type: &str, data: Value, at: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let db = &host.server.state.db;
    let write = Write::Upsert {
        record_type: record_type.into(),
        id: id.clone(),
        data: data.to_string(),
        expected_version: None,
    };
    let mut conn = db.pool.acquire().await.unwrap();
    records::apply(&mut conn, &db.elements, &write, at).await.unwrap().unwrap();
    id
}

/// A stored record's data, or `None` when it does not exist.
async fn stored_data(host: &TestHost, record_type: &str, id: &str) -> Option<Value> {
    let data: Option<String> = sqlx::query_scalar("SELECT data FROM records WHERE record_type = $1 AND id = $2")
        .bind(record_type)
        .bind(id)
        .fetch_optional(&host.server.state.db.pool)
        .await
        .unwrap();
    data.map(|d| serde_json::from_str(&d).unwrap())
}

/// An `EVENT` as the `EVENT` plugin stores it, with the original's column defaults.
pub(crate) fn event_data(author_id: &str, state: &str, job_id: Option<&str>) -> Value {
    json!({
        "authorId": author_id,
        "start": "2027-03-04T08:00:00.000Z",
        "end": "2027-03-04T12:00:00.000Z",
        "location": "",
        "description": format!("{state} event"),
        "descriptionLong": "",
        "state": state,
        "cloned": false,
        "jobId": job_id,
        "parentId": null,
        "clonedFromId": null,
        "classes": [],
        "classGroups": [],
        "audience": "STUDENTS",
        "affectsDepartment2": false,
        "teachingAffected": "YES",
        "deletedAt": null,
        "meta": null,
        "departmentIds": [],
        "linkedUserIds": [],
    })
}

/// A `JOB` as the `EVENT` plugin's import stores it.
fn import_job_data(user_id: &str) -> Value {
    json!({
        "type": "IMPORT", "state": "DONE", "userId": user_id, "semesterId": null, "syncDate": null,
        "description": "Bar", "filename": "terminplan.csv", "log": "# Success: 0/0 events imported\n",
    })
}

/// A job of `user_id` with one event per entry of `states`; returns the job's id and the
/// events' ids. The events are created a second apart, so their order is known.
async fn seed_job(host: &TestHost, user_id: &str, states: &[&str]) -> (String, Vec<String>) {
    let job = insert_record(host, "JOB", import_job_data(user_id), SEEDED).await;
    let mut events = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let at = format!("2026-11-01T08:00:{i:02}.000Z");
        events.push(insert_record(host, "EVENT", event_data(user_id, state, Some(&job)), &at).await);
    }
    (job, events)
}

/// A seeded record as the API returns it: `id`, the data, `createdAt`, `updatedAt`.
fn api_record(id: &str, data: &Value, at: &str) -> Value {
    let mut record = json!({ "id": id });
    record.as_object_mut().unwrap().extend(data.as_object().unwrap().clone());
    record["createdAt"] = json!(at);
    record["updatedAt"] = json!(at);
    record
}

/// A seeded event as the API returns it (`prepareEvent`): a falsy `meta` is left out and
/// `publishedVersionIds` is added.
fn api_event(id: &str, data: &Value, at: &str, published_version_ids: &[&str]) -> Value {
    let mut event = api_record(id, data, at);
    if event["meta"].is_null() {
        event.as_object_mut().unwrap().remove("meta");
    }
    event["publishedVersionIds"] = json!(published_version_ids);
    event
}

async fn pin_clock(host: &TestHost, now: &str) {
    let (status, body) = host.admin().await.put("/api/v1/admin/clock", &json!({ "now": now })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

fn ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

async fn jobs_need_a_session(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, user) = host.user("USER").await;
    let (job, _) = seed_job(&host, user["id"].as_str().unwrap(), &["DRAFT"]).await;
    let anonymous = host.anonymous();
    let path = format!("{JOBS}/{job}");
    let (status, _) = anonymous.get(JOBS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.get(&path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.put(&path, &json!({ "data": { "description": "Foo" } })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.delete(&path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!((host.stored("JOB").await, host.stored("EVENT").await), (1, 1));
    assert_eq!(host.logged_notifications().await, 0);
    host.stop().await;
}

async fn users_list_their_own_jobs(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, other) = host.user("USER").await;
    let semester = "3b0c4d0e-8f5a-4c7e-9d6b-2a1f0e9c8b7a";
    let mut mine = Vec::new();
    for owner in [&me, &other] {
        let owner = owner["id"].as_str().unwrap();
        let count = if owner == me["id"] { 5 } else { 2 };
        for _ in 0..count {
            let import = insert_record(&host, "JOB", import_job_data(owner), SEEDED).await;
            let sync = json!({
                "type": "SYNC_UNTIS", "state": "PENDING", "userId": owner, "semesterId": semester,
                "syncDate": "2026-09-15T00:00:00.000Z", "description": "", "filename": null, "log": "",
            });
            let sync = insert_record(&host, "JOB", sync, SEEDED).await;
            if owner == me["id"] {
                mine.extend([import, sync]);
            }
        }
    }
    mine.sort();

    let (status, list) = user.get(JOBS).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), mine);
    let first = &list[0];
    let data = stored_data(&host, "JOB", first["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(*first, api_record(first["id"].as_str().unwrap(), &data, SEEDED), "a job without its events");

    // Admins list their own jobs too, not everyone's.
    let (status, list) = host.admin().await.get(JOBS).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    host.stop().await;
}

async fn owners_and_admins_read_a_job_with_its_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (other, _) = host.user("USER").await;
    let admin = host.admin().await;
    let me_id = me["id"].as_str().unwrap();
    let position = host.log_position().await;

    let (empty, _) = seed_job(&host, me_id, &[]).await;
    let mut expected = api_record(&empty, &import_job_data(me_id), SEEDED);
    expected["events"] = json!([]);
    for client in [&user, &admin] {
        let (status, job) = client.get(&format!("{JOBS}/{empty}")).await;
        assert_eq!((status, &job), (StatusCode::OK, &expected));
    }
    let (status, _) = other.get(&format!("{JOBS}/{empty}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = user.get(&format!("{JOBS}/efce93f5-0ead-4d5d-8143-0fd7267db689")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The events come in their API shape, in creation order; a published event lists its
    // published versions, which need not belong to the job.
    let (job, events) = seed_job(&host, me_id, &["DRAFT", "PUBLISHED"]).await;
    let mut draft = event_data(me_id, "DRAFT", Some(&job));
    draft["meta"] = json!({ "infos": ["end has no time"] });
    sqlx::query("UPDATE records SET data = $1 WHERE id = $2")
        .bind(draft.to_string())
        .bind(&events[0])
        .execute(&host.server.state.db.pool)
        .await
        .unwrap();
    let mut version = event_data(me_id, "PUBLISHED", None);
    version["parentId"] = json!(events[1]);
    let version = insert_record(&host, "EVENT", version, "2026-11-02T08:00:00.000Z").await;
    let mut draft_version = event_data(me_id, "DRAFT", None);
    draft_version["parentId"] = json!(events[1]);
    insert_record(&host, "EVENT", draft_version, "2026-11-03T08:00:00.000Z").await;

    let (status, found) = user.get(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found["events"],
        json!([
            api_event(&events[0], &draft, "2026-11-01T08:00:00.000Z", &[]),
            api_event(&events[1], &event_data(me_id, "PUBLISHED", Some(&job)), "2026-11-01T08:00:01.000Z", &[&version]),
        ])
    );
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new(), "reads notify nobody");
    host.stop().await;
}

async fn users_change_the_description_and_admins_also_the_state(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (other, other_user) = host.user("USER").await;
    let admin = host.admin().await;
    let me_id = me["id"].as_str().unwrap();
    let (job, _) = seed_job(&host, me_id, &[]).await;
    let path = format!("{JOBS}/{job}");
    pin_clock(&host, NOW).await;
    let position = host.log_position().await;

    let (status, updated) = user.put(&path, &json!({ "data": { "description": "Foo" } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let mut expected = api_record(&job, &import_job_data(me_id), SEEDED);
    expected["description"] = json!("Foo");
    expected["updatedAt"] = json!(NOW);
    expected["events"] = json!([]);
    assert_eq!(updated, expected);
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "CHANGED_RECORD",
            "message": { "type": "JOB", "record": updated },
            "to": [me_id],
            "toSelf": false,
        })]
    );

    // Fields other than `description` are ignored for users, `state` included.
    let sync_job = json!({
        "type": "SYNC_UNTIS", "state": "ERROR", "userId": other_user["id"], "semesterId": "s1",
        "syncDate": NOW, "filename": "x", "log": "forged", "description": "Bar", "id": "other",
    });
    let (status, updated) = user.put(&path, &json!({ "data": sync_job })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    expected["description"] = json!("Bar");
    assert_eq!(updated, expected);

    // Admins may also set the state; the job's owner is told, not the admin.
    let position = host.log_position().await;
    let (status, updated) = admin.put(&path, &json!({ "data": { "state": "REVERTED", "log": "forged" } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    expected["state"] = json!("REVERTED");
    assert_eq!(updated, expected);
    assert_eq!(host.notified_since(position).await[0]["to"], json!([me_id]));

    // Refusals change nothing and tell nobody.
    let position = host.log_position().await;
    let (status, _) = admin.put(&path, &json!({ "data": { "state": "FINISHED" } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.put(&path, &json!({ "data": { "description": 42 } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.put(&path, &json!({ "description": "not wrapped in data" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = other.put(&path, &json!({ "data": { "description": "Mine now" } })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user.put(&format!("{JOBS}/missing"), &json!({ "data": { "description": "x" } })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, unchanged) = user.get(&path).await;
    assert_eq!(unchanged, expected);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn changes_are_told_to_the_audience_of_the_jobs_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let me_id = me["id"].as_str().unwrap();
    pin_clock(&host, NOW).await;

    // `getAudience`: everyone once an event is PUBLISHED, the admins while one is in REVIEW
    // or REFUSED, otherwise the owner.
    for (states, to) in [
        (vec!["DRAFT", "DRAFT"], json!([me_id])),
        (vec!["DRAFT", "PUBLISHED"], json!(["all"])),
        (vec!["REVIEW", "DRAFT"], json!(["admin"])),
        (vec!["REFUSED"], json!(["admin"])),
        (vec!["REFUSED", "PUBLISHED", "REVIEW"], json!(["all"])),
    ] {
        let (job, events) = seed_job(&host, me_id, &states).await;
        let position = host.log_position().await;
        let (status, updated) = user.put(&format!("{JOBS}/{job}"), &json!({ "data": { "description": "Foo" } })).await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        let mut expected_ids = events.clone();
        expected_ids.sort();
        assert_eq!(ids(&updated["events"]), expected_ids);
        assert_eq!(
            host.notified_since(position).await,
            [json!({
                "event": "CHANGED_RECORD",
                "message": { "type": "JOB", "record": updated },
                "to": to,
                "toSelf": false,
            })],
            "{states:?}"
        );
    }
    host.stop().await;
}

async fn deleting_a_job_deletes_its_draft_events_and_the_job(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let me_id = me["id"].as_str().unwrap();
    let (job, events) = seed_job(&host, me_id, &["DRAFT", "DRAFT"]).await;
    // A clone of one of the drafts, outside the job: it forgets its source, as the
    // original's `ON DELETE SET NULL` made it.
    let mut clone = event_data(me_id, "DRAFT", None);
    clone["cloned"] = json!(true);
    clone["clonedFromId"] = json!(events[0]);
    let clone = insert_record(&host, "EVENT", clone, SEEDED).await;
    let position = host.log_position().await;

    let (status, body) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(stored_data(&host, "JOB", &job).await, None);
    for event in &events {
        assert_eq!(stored_data(&host, "EVENT", event).await, None, "drafts are deleted for good");
    }
    assert_eq!(stored_data(&host, "EVENT", &clone).await.unwrap()["clonedFromId"], Value::Null);
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "DELETED_RECORD",
            "message": { "type": "JOB", "id": job },
            "to": [me_id],
            "toSelf": false,
        })]
    );

    // A job without events is simply deleted.
    let (job, _) = seed_job(&host, me_id, &[]).await;
    let (status, _) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(host.stored("JOB").await, 0);
    host.stop().await;
}

async fn a_job_with_submitted_events_stays_and_its_events_are_soft_deleted(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let me_id = me["id"].as_str().unwrap();
    let states = ["DRAFT", "DRAFT", "PUBLISHED", "PUBLISHED", "REFUSED", "REFUSED", "REVIEW", "REVIEW"];
    let (job, events) = seed_job(&host, me_id, &states).await;
    let (_, before) = user.get(&format!("{JOBS}/{job}")).await;
    pin_clock(&host, NOW).await;
    let position = host.log_position().await;

    let (status, _) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(host.stored("EVENT").await, 6);
    assert_eq!(stored_data(&host, "JOB", &job).await, Some(import_job_data(me_id)), "the job itself is unchanged");
    for (event, state) in events.iter().zip(states) {
        let stored = stored_data(&host, "EVENT", event).await;
        if state == "DRAFT" {
            assert_eq!(stored, None);
            continue;
        }
        let stored = stored.unwrap();
        assert_eq!((&stored["state"], &stored["deletedAt"]), (&json!(state), &json!(NOW)));
        assert_eq!(stored["jobId"], json!(job), "soft-deleted events keep their job");
    }
    // The original still announces the job as deleted, to everyone since an event of it is
    // PUBLISHED; clients drop the job, which is what the user asked for.
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "DELETED_RECORD",
            "message": { "type": "JOB", "id": job },
            "to": ["all"],
            "toSelf": false,
        })]
    );
    let (status, after) = user.get(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["events"].as_array().unwrap().len(), 6);
    assert_eq!(after["updatedAt"], before["updatedAt"]);
    assert!(after["events"].as_array().unwrap().iter().all(|e| e["deletedAt"] == NOW && e["updatedAt"] == NOW));

    // Deleting it again announces it again; an event keeps the time it was first deleted.
    pin_clock(&host, "2026-11-28T09:00:00.000Z").await;
    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, again) = user.get(&format!("{JOBS}/{job}")).await;
    assert_eq!(again, after);
    assert_eq!(host.notified_since(position).await.len(), 1);

    // Without a PUBLISHED event, the admins are told.
    let (job, _) = seed_job(&host, me_id, &["DRAFT", "REVIEW"]).await;
    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(host.notified_since(position).await[0]["to"], json!(["admin"]));
    host.stop().await;
}

async fn deleting_is_idempotent_and_for_owners_and_admins(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (other, _) = host.user("USER").await;
    let admin = host.admin().await;
    let me_id = me["id"].as_str().unwrap();
    let (job, _) = seed_job(&host, me_id, &["DRAFT"]).await;
    let path = format!("{JOBS}/{job}");
    let position = host.log_position().await;

    let (status, _) = other.delete(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!((host.stored("JOB").await, host.stored("EVENT").await), (1, 1));
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());

    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!((host.stored("JOB").await, host.stored("EVENT").await), (0, 0));
    let notified = host.notified_since(position).await;
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0]["to"], json!([me_id]), "the job's owner is told");

    // Gone is gone: 204 again, for anyone, without a notification.
    let position = host.log_position().await;
    for client in [&user, &other, &admin] {
        let (status, _) = client.delete(&path).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

/// Through the `EVENT` plugin: an import creates the job, its completion fills it, and the
/// job plugin reads and deletes it with its events.
async fn an_import_job_is_read_and_deleted_with_its_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let me_id = me["id"].as_str().unwrap();
    let csv = "start;end;description;location\n\
               2027-03-04 08:00;2027-03-04 12:00;Sporttag;Turnhalle\n\
               2027-03-05;2027-03-05;Projektwoche;\n";
    let (status, pending) =
        user.upload("/api/v1/events/import?type=V1", &[], ("terminplan", "terminplan.csv", csv.into())).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let job = pending["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&pending["state"], &pending["userId"], &pending["type"]),
        (&json!("PENDING"), &me["id"], &json!("IMPORT"))
    );

    let mut done = Value::Null;
    for _ in 0..200 {
        let (_, found) = user.get(&format!("{JOBS}/{job}")).await;
        if found["state"] != "PENDING" {
            done = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["state"], "DONE", "{done}");
    assert!(done["log"].as_str().unwrap().starts_with("# Success: 2/2 events imported"), "{done}");
    let events = done["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["state"] == "DRAFT" && e["jobId"] == job && e["authorId"] == me["id"]));
    let (_, list) = user.get(JOBS).await;
    assert_eq!(ids(&list), [job.as_str()]);

    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{JOBS}/{job}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!((host.stored("JOB").await, host.stored("EVENT").await), (0, 0));
    assert_eq!(
        host.notified_since(position).await,
        [json!({ "event": "DELETED_RECORD", "message": { "type": "JOB", "id": job }, "to": [me_id], "toSelf": false })]
    );
    host.stop().await;
}

/// A client that replaces its copy of a job with the one a finished import announced holds
/// what `GET /jobs/:id` gives right after: the same events in the same order. The events of
/// one import share `createdAt`, so a job lists them by id, and so must the announcement; the
/// file's rows are in another order (with six, the same one once in 720 runs).
async fn an_import_announces_its_job_as_a_read_gives_it(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let mut csv = String::from("start;end;description\n");
    for row in 0..6 {
        csv.push_str(&format!("2027-03-0{} 08:00;2027-03-0{} 12:00;Row {row}\n", row + 1, row + 1));
    }
    for _ in 0..3 {
        let position = host.log_position().await;
        let path = "/api/v1/events/import?type=V1";
        let (status, pending) = user.upload(path, &[], ("terminplan", "terminplan.csv", csv.clone().into())).await;
        assert_eq!(status, StatusCode::OK, "{pending}");
        let job = pending["id"].as_str().unwrap();
        let mut announced = Value::Null;
        for _ in 0..500 {
            let notes = host.notified_since(position).await;
            let done = notes.iter().find(|n| n["event"] == "CHANGED_RECORD" && n["message"]["record"]["id"] == job);
            if let Some(done) = done {
                announced = done["message"]["record"].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, read) = user.get(&format!("{JOBS}/{job}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(announced["events"].as_array().map(Vec::len), Some(6), "{announced}");
        assert_eq!(announced, read);
    }
    host.stop().await;
}
