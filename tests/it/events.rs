//! The `event` plugin over HTTP, ported from events-api's `tests/integration/event.spec.ts`:
//! who reads, lists, creates, edits, clones and deletes events, the review workflow with
//! its version swap and registration-period windows, the CSV import job, and the exact
//! notifications of each request (a refused request changes and announces nothing).
//!
//! Like the original's tests, most cases seed events straight into the store
//! ([`seed_event`]) so that they can start in any state; the requests under test then go
//! through the plugin.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use host::db::records::{self, Write};

use crate::jobs::{event_data, insert_record};
use crate::support::{Backend, Client, TestHost, both_backends};

both_backends!(
    anonymous_callers_list_the_published_events_of_a_semester,
    lists_by_ids_hold_what_the_caller_may_see,
    the_user_view_lists_own_events_except_published_roots,
    reading_one_event_follows_the_read_rules,
    creating_makes_a_draft_of_the_caller,
    editing_a_draft_changes_it_in_place,
    editing_a_published_event_creates_a_draft_version,
    batch_updates_skip_what_cannot_be_changed,
    meta_is_merged_for_drafts_and_reviews_only,
    normalizing_prunes_the_audience_of_drafts,
    deleting_drafts_removes_them_and_others_are_marked,
    deleting_many_announces_drafts_to_their_author,
    cloning_needs_read_access,
    allowed_transitions_are_announced_to_author_and_admins_or_all,
    forbidden_transitions_change_nothing,
    a_versioned_draft_is_reviewed_under_its_root,
    publishing_a_version_swaps_it_with_the_published_event,
    publishing_refuses_nested_reviews_too,
    publishing_keeps_the_reviews_departments_and_moves_groups,
    registration_periods_gate_submissions_by_users,
    change_state_is_atomic,
    importing_creates_a_job_that_ends_with_draft_events,
    an_import_of_900_rows_fits_and_more_end_the_job_error,
    a_task_that_cannot_complete_ends_its_job_error,
    overlapping_events_share_time_and_an_audience,
    lists_of_thousands_of_events_answer_in_pages,
);

pub(crate) const EVENTS: &str = "/api/v1/events";
/// When seeded records were created.
pub(crate) const SEEDED: &str = "2026-11-01T08:00:00.000Z";

/// Insert an `EVENT` of `author` in `state` with the fields of `extra` changed; its id.
pub(crate) async fn seed_event(host: &TestHost, author: &str, state: &str, extra: Value) -> String {
    seed_event_at(host, author, state, extra, SEEDED).await
}

pub(crate) async fn seed_event_at(host: &TestHost, author: &str, state: &str, extra: Value, at: &str) -> String {
    let mut data = event_data(author, state, None);
    data.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    insert_record(host, "EVENT", data, at).await
}

/// Insert an `EVENT_GROUP` with these members and events; its id.
pub(crate) async fn seed_group(host: &TestHost, name: &str, user_ids: &[&str], event_ids: &[&str]) -> String {
    let mut user_ids: Vec<&str> = user_ids.to_vec();
    user_ids.sort();
    let mut event_ids: Vec<&str> = event_ids.to_vec();
    event_ids.sort();
    let data = json!({
        "name": name, "description": "", "collection": "", "meta": {},
        "eventIds": event_ids, "userIds": user_ids,
    });
    insert_record(host, "EVENT_GROUP", data, SEEDED).await
}

/// Insert a `DEPARTMENT` with a letter and class letters; its id.
pub(crate) async fn seed_department(host: &TestHost, name: &str, letter: &str, class_letters: &[&str]) -> String {
    let data = json!({
        "name": name, "description": "", "letter": letter, "schoolYears": 4, "displayLetter": null,
        "classLetters": class_letters, "department1_Id": null, "department2_Id": null, "color": "#306cce",
    });
    insert_record(host, "DEPARTMENT", data, SEEDED).await
}

/// The stored data of a record, with its id; `None` when it does not exist.
pub(crate) async fn stored(host: &TestHost, record_type: &str, id: &str) -> Option<Value> {
    let data: Option<String> = sqlx::query_scalar("SELECT data FROM records WHERE record_type = $1 AND id = $2")
        .bind(record_type)
        .bind(id)
        .fetch_optional(&host.server.state.db.pool)
        .await
        .unwrap();
    data.map(|d| serde_json::from_str(&d).unwrap())
}

/// Pin the host clock.
pub(crate) async fn pin_clock(host: &TestHost, now: &str) {
    let (status, body) = host.admin().await.put("/api/v1/admin/clock", &json!({ "now": now })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

pub(crate) fn id_of(record: &Value) -> &str {
    record["id"].as_str().unwrap()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(id_of).collect()
}

pub(crate) fn note(event: &str, record_type: &str, record: &Value, to: &str, to_self: bool) -> Value {
    json!({ "event": event, "message": { "type": record_type, "record": record }, "to": [to], "toSelf": to_self })
}

pub(crate) fn deleted(record_type: &str, id: &str, to: &[&str], to_self: bool) -> Value {
    json!({ "event": "DELETED_RECORD", "message": { "type": record_type, "id": id }, "to": to, "toSelf": to_self })
}

fn changed(record: &Value, to: &str) -> Value {
    note("CHANGED_RECORD", "EVENT", record, to, false)
}

/// `CHANGED_RECORD` of an event to several rooms at once.
fn changed_to(record: &Value, to: &[&str]) -> Value {
    json!({ "event": "CHANGED_RECORD", "message": { "type": "EVENT", "record": record }, "to": to, "toSelf": false })
}

/// A `change_state` notification: to one room, to-self.
fn state_note(record: &Value, to: &str) -> Value {
    note("CHANGED_RECORD", "EVENT", record, to, true)
}

async fn change_state(client: &Client, ids: &[&str], state: &str) -> (StatusCode, Value) {
    client.post(&format!("{EVENTS}/change_state"), &json!({ "data": { "ids": ids, "state": state } })).await
}

/// An event as `client` reads it (the caller must be allowed to).
async fn read(client: &Client, id: &str) -> Value {
    let (status, event) = client.get(&format!("{EVENTS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    event
}

async fn anonymous_callers_list_the_published_events_of_a_semester(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, author) = host.user("USER").await;
    let author = id_of(&author);
    let admin = host.admin().await;
    let (_, semester) = admin
        .post(
            "/api/v1/semesters",
            &json!({ "name": "FS27", "start": "2027-02-01T00:00:00.000Z", "end": "2027-07-31T00:00:00.000Z" }),
        )
        .await;
    let published = seed_event(&host, author, "PUBLISHED", json!({})).await;
    let deleted = seed_event(&host, author, "PUBLISHED", json!({ "deletedAt": SEEDED })).await;
    let version = seed_event(&host, author, "PUBLISHED", json!({ "parentId": published })).await;
    for state in ["DRAFT", "REVIEW", "REFUSED"] {
        seed_event(&host, author, state, json!({})).await;
    }
    let outside = seed_event(
        &host,
        author,
        "PUBLISHED",
        json!({ "start": "2027-09-01T08:00:00.000Z", "end": "2027-09-01T09:00:00.000Z" }),
    )
    .await;
    let anonymous = host.anonymous();

    let (status, list) = anonymous.get(&format!("{EVENTS}?semesterId={}", id_of(&semester))).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut found = ids(&list);
    found.sort();
    let mut expected = vec![published.as_str(), deleted.as_str()];
    expected.sort();
    assert_eq!(found, expected, "published roots, soft-deleted ones included");
    let root = list.as_array().unwrap().iter().find(|e| e["id"] == published).unwrap();
    assert_eq!(root["publishedVersionIds"], json!([version]));

    // Without a semester: the current one at the host's time.
    pin_clock(&host, "2027-03-01T00:00:00.000Z").await;
    let (_, current) = anonymous.get(EVENTS).await;
    assert_eq!(current, list);
    pin_clock(&host, "2027-09-01T00:00:00.000Z").await;
    let (_, around_now) = anonymous.get(EVENTS).await;
    assert_eq!(ids(&around_now), [outside.as_str()], "no current semester: twelve weeks around now");

    let (status, _) = anonymous.get(&format!("{EVENTS}?semesterId=missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    host.stop().await;
}

async fn lists_by_ids_hold_what_the_caller_may_see(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (author_client, author) = host.user("USER").await;
    let (member_client, member) = host.user("USER").await;
    let (other_client, _) = host.user("USER").await;
    let admin = host.admin().await;
    let author = id_of(&author);
    let published = seed_event(&host, author, "PUBLISHED", json!({})).await;
    let draft = seed_event(&host, author, "DRAFT", json!({})).await;
    let review = seed_event(&host, author, "REVIEW", json!({})).await;
    let refused = seed_event(&host, author, "REFUSED", json!({})).await;
    seed_group(&host, "shared", &[id_of(&member)], &[&draft]).await;
    let all = [&published, &draft, &review, &refused];
    let query = all.iter().map(|id| format!("ids[]={id}")).collect::<Vec<_>>().join("&");
    let path = format!("{EVENTS}?{query}");

    let sorted = |list: Value| {
        let mut ids: Vec<String> = ids(&list).into_iter().map(str::to_owned).collect();
        ids.sort();
        ids
    };
    let expect = |ids: &[&String]| {
        let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(sorted(host.anonymous().get(&path).await.1), expect(&[&published]));
    assert_eq!(sorted(other_client.get(&path).await.1), expect(&[&published]));
    assert_eq!(sorted(author_client.get(&path).await.1), expect(&all));
    assert_eq!(sorted(member_client.get(&path).await.1), expect(&[&published, &draft]));
    assert_eq!(sorted(admin.get(&path).await.1), expect(&[&published, &review, &refused]));
    host.stop().await;
}

async fn the_user_view_lists_own_events_except_published_roots(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (other_client, other) = host.user("USER").await;
    let admin = host.admin().await;
    let (me, other) = (id_of(&me), id_of(&other));
    let root = seed_event(&host, me, "PUBLISHED", json!({})).await;
    let version = seed_event(&host, me, "PUBLISHED", json!({ "parentId": root })).await;
    let draft = seed_event(&host, me, "DRAFT", json!({})).await;
    let review = seed_event(&host, me, "REVIEW", json!({})).await;
    let refused = seed_event(&host, me, "REFUSED", json!({})).await;
    let deleted = seed_event(&host, me, "DRAFT", json!({ "deletedAt": SEEDED })).await;
    let others_review = seed_event(&host, other, "REVIEW", json!({})).await;
    let others_draft = seed_event(&host, other, "DRAFT", json!({})).await;

    let listed = async |client: &Client| {
        let (status, list) = client.get("/api/v1/user/events").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let mut ids: Vec<String> = ids(&list).into_iter().map(str::to_owned).collect();
        ids.sort();
        ids
    };
    let set = |ids: &[&String]| {
        let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(listed(&user).await, set(&[&version, &draft, &review, &refused, &deleted]));
    assert_eq!(listed(&other_client).await, set(&[&others_review, &others_draft]));
    assert_eq!(listed(&admin).await, set(&[&review, &refused, &others_review]));
    let (status, _) = host.anonymous().get("/api/v1/user/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = user.get(&format!("{EVENTS}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the view is not an event");
    host.stop().await;
}

async fn reading_one_event_follows_the_read_rules(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (author_client, author) = host.user("USER").await;
    let (member_client, member) = host.user("USER").await;
    let admin = host.admin().await;
    let author = id_of(&author);
    let published = seed_event(&host, author, "PUBLISHED", json!({})).await;
    let draft = seed_event(&host, author, "DRAFT", json!({ "meta": { "k": 1 } })).await;
    let review = seed_event(&host, author, "REVIEW", json!({})).await;
    seed_group(&host, "shared", &[id_of(&member)], &[&draft]).await;

    let (status, event) = host.anonymous().get(&format!("{EVENTS}/{published}")).await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = event_data(author, "PUBLISHED", None);
    expected["id"] = json!(published);
    expected["createdAt"] = json!(SEEDED);
    expected["updatedAt"] = json!(SEEDED);
    expected["publishedVersionIds"] = json!([]);
    expected.as_object_mut().unwrap().remove("meta");
    assert_eq!(event, expected, "the API shape leaves out a null meta");
    assert_eq!(read(&author_client, &draft).await["meta"], json!({ "k": 1 }));
    assert_eq!(read(&admin, &review).await["state"], "REVIEW");
    for (client, id, expected) in [
        (&host.anonymous(), &draft, StatusCode::FORBIDDEN),
        (&admin, &draft, StatusCode::FORBIDDEN),
        (&member_client, &draft, StatusCode::FORBIDDEN),
        (&member_client, &review, StatusCode::FORBIDDEN),
        (&admin, &"missing".to_owned(), StatusCode::NOT_FOUND),
    ] {
        let (status, body) = client.get(&format!("{EVENTS}/{id}")).await;
        assert_eq!(status, expected, "{id}: {body}");
    }
    host.stop().await;
}

async fn creating_makes_a_draft_of_the_caller(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let position = host.log_position().await;
    let (status, event) = user
        .post(
            EVENTS,
            &json!({ "start": "2027-01-10T08:00:00.000Z", "end": "2027-01-10T09:00:00.000Z", "state": "PUBLISHED",
                     "description": "ignored" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let mut expected = event_data(id_of(&me), "DRAFT", None);
    expected.as_object_mut().unwrap().extend(
        json!({
            "id": id_of(&event), "start": "2027-01-10T08:00:00.000Z", "end": "2027-01-10T09:00:00.000Z",
            "description": "", "createdAt": "2026-11-27T10:00:00.000Z", "updatedAt": "2026-11-27T10:00:00.000Z",
            "publishedVersionIds": [],
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    expected.as_object_mut().unwrap().remove("meta");
    assert_eq!(event, expected);
    assert_eq!(host.notified_since(position).await, [note("NEW_RECORD", "EVENT", &event, id_of(&me), false)]);

    let position = host.log_position().await;
    for body in [
        json!({ "start": "2027-01-10T08:00:00.000Z" }),
        json!({ "start": "2027-01-10T10:00:00.000Z", "end": "2027-01-10T09:00:00.000Z" }),
        json!({ "start": "tomorrow", "end": "2027-01-10T09:00:00.000Z" }),
    ] {
        let (status, error) = user.post(EVENTS, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
    }
    let (status, _) = host.anonymous().post(EVENTS, &json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(host.stored("EVENT").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn editing_a_draft_changes_it_in_place(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (member_client, member) = host.user("USER").await;
    let (other, _) = host.user("USER").await;
    let me = id_of(&me);
    let draft = seed_event(&host, me, "DRAFT", json!({ "cloned": true })).await;
    let shared = seed_event(&host, me, "DRAFT", json!({})).await;
    seed_group(&host, "shared", &[me, id_of(&member)], &[&shared]).await;

    let position = host.log_position().await;
    let (status, event) = user
        .put(
            &format!("{EVENTS}/{draft}"),
            &json!({ "data": { "description": "Sporttag", "classes": ["26Ga"], "state": "PUBLISHED",
                               "affectsDepartment2": true, "audience": "ALL" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(
        (&event["id"], &event["description"], &event["classes"], &event["state"], &event["audience"]),
        (&json!(draft), &json!("Sporttag"), &json!(["26Ga"]), &json!("DRAFT"), &json!("ALL"))
    );
    assert_eq!((&event["cloned"], &event["affectsDepartment2"]), (&json!(false), &json!(false)));
    assert_eq!(host.notified_since(position).await, [changed(&event, me)]);

    // A shared draft goes to the group's members too, and members may edit it.
    let position = host.log_position().await;
    let (status, event) =
        member_client.put(&format!("{EVENTS}/{shared}"), &json!({ "data": { "location": "Aula" } })).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    let to = [id_of(&member), me];
    assert_eq!(host.notified_since(position).await, [changed_to(&event, &to)]);

    let position = host.log_position().await;
    let before = stored(&host, "EVENT", &draft).await;
    for (client, body, expected) in [
        (&other, json!({ "data": { "description": "x" } }), StatusCode::FORBIDDEN),
        (&user, json!({ "data": { "start": "2027-03-05T08:00:00.000Z" } }), StatusCode::BAD_REQUEST),
        (&user, json!({ "data": { "audience": "EVERYONE" } }), StatusCode::BAD_REQUEST),
        (&user, json!({ "data": { "departmentIds": ["missing"] } }), StatusCode::BAD_REQUEST),
        (&user, json!({ "description": "not wrapped" }), StatusCode::BAD_REQUEST),
    ] {
        let (status, error) = client.put(&format!("{EVENTS}/{draft}"), &body).await;
        assert_eq!(status, expected, "{body}: {error}");
    }
    let (status, _) = user.put(&format!("{EVENTS}/missing"), &json!({ "data": {} })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stored(&host, "EVENT", &draft).await, before);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn editing_a_published_event_creates_a_draft_version(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, author) = host.user("USER").await;
    let (editor, me) = host.user("USER").await;
    let department = seed_department(&host, "Gymnasium", "G", &["a"]).await;
    let published = seed_event(
        &host,
        id_of(&author),
        "PUBLISHED",
        json!({ "meta": { "k": 1 }, "departmentIds": [department], "affectsDepartment2": true }),
    )
    .await;
    let before = stored(&host, "EVENT", &published).await;
    let position = host.log_position().await;
    let (status, version) =
        editor.put(&format!("{EVENTS}/{published}"), &json!({ "data": { "description": "changed" } })).await;
    assert_eq!(status, StatusCode::OK, "{version}");
    assert_ne!(version["id"], json!(published));
    assert_eq!(
        (&version["state"], &version["parentId"], &version["clonedFromId"], &version["authorId"]),
        (&json!("DRAFT"), &json!(published), &json!(published), &me["id"])
    );
    assert_eq!(
        (&version["description"], &version["meta"], &version["departmentIds"], &version["affectsDepartment2"]),
        (&json!("changed"), &json!({ "k": 1 }), &json!([department]), &json!(false))
    );
    assert_eq!(host.notified_since(position).await, [changed(&version, id_of(&me))]);
    assert_eq!(stored(&host, "EVENT", &published).await, before, "the published event is untouched");
    assert_eq!(host.stored("EVENT").await, 2);
    host.stop().await;
}

async fn batch_updates_skip_what_cannot_be_changed(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, other) = host.user("USER").await;
    let me = id_of(&me);
    let first = seed_event(&host, me, "DRAFT", json!({})).await;
    let second = seed_event(&host, me, "DRAFT", json!({})).await;
    let foreign = seed_event(&host, id_of(&other), "DRAFT", json!({})).await;
    let position = host.log_position().await;
    let (status, updated) = user
        .put(
            EVENTS,
            &json!({ "data": [
                { "id": first, "description": "one" },
                { "id": foreign, "description": "not mine" },
                { "id": second, "description": "two" },
                { "id": "missing", "description": "gone" },
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(ids(&updated), [first.as_str(), second.as_str()]);
    assert_eq!(updated[1]["description"], "two");
    assert_eq!(host.notified_since(position).await, [changed(&updated[0], me), changed(&updated[1], me)]);
    assert_eq!(stored(&host, "EVENT", &foreign).await.unwrap()["description"], "DRAFT event");
    host.stop().await;
}

async fn meta_is_merged_for_drafts_and_reviews_only(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let admin = host.admin().await;
    let me = id_of(&me);
    let draft = seed_event(&host, me, "DRAFT", json!({ "meta": { "a": 1, "b": 2 } })).await;
    let review = seed_event(&host, me, "REVIEW", json!({})).await;

    let position = host.log_position().await;
    let (status, event) = user.put(&format!("{EVENTS}/{draft}/meta"), &json!({ "data": { "b": 3, "c": [1] } })).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["meta"], json!({ "a": 1, "b": 3, "c": [1] }));
    assert_eq!(host.notified_since(position).await, [changed(&event, me)]);
    let (_, cleared) = user.put(&format!("{EVENTS}/{draft}/meta"), &json!({ "data": null })).await;
    assert!(cleared.get("meta").is_none(), "{cleared}");
    assert_eq!(stored(&host, "EVENT", &draft).await.unwrap()["meta"], Value::Null);

    for (client, caller) in [(&user, me.to_owned()), (&admin, admin_id(&host).await)] {
        let position = host.log_position().await;
        let (status, event) =
            client.put(&format!("{EVENTS}/{review}/meta"), &json!({ "data": { "by": caller } })).await;
        assert_eq!(status, StatusCode::OK, "{event}");
        assert_eq!(host.notified_since(position).await, [changed(&event, &caller)]);
    }

    let position = host.log_position().await;
    for state in ["PUBLISHED", "REFUSED"] {
        let id = seed_event(&host, me, state, json!({})).await;
        for client in [&user, &admin] {
            let (status, _) = client.put(&format!("{EVENTS}/{id}/meta"), &json!({ "data": { "x": 1 } })).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{state}");
        }
    }
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

/// The bootstrap admin's user id.
pub(crate) async fn admin_id(host: &TestHost) -> String {
    let (_, user) = host.admin().await.get("/api/v1/user").await;
    user["id"].as_str().unwrap().to_owned()
}

async fn normalizing_prunes_the_audience_of_drafts(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (member_client, member) = host.user("USER").await;
    let me = id_of(&me);
    seed_department(&host, "Gymnasium", "G", &["a", "b"]).await;
    seed_department(&host, "Fachmittelschule", "F", &["a", "b"]).await;
    let wms = seed_department(&host, "Wirtschaftsmittelschule", "W", &["a"]).await;
    let draft = seed_event(
        &host,
        me,
        "DRAFT",
        json!({
            "start": "2025-04-08T08:00:00.000Z", "end": "2025-04-08T10:00:00.000Z", "departmentIds": [wms],
            "classes": ["28Ga", "26Fb", "27Fa", "24Ga", "29Ga", "25Gz", "26Wa"], "classGroups": ["27F", "24G", "25W"],
        }),
    )
    .await;
    seed_group(&host, "shared", &[me, id_of(&member)], &[&draft]).await;

    let position = host.log_position().await;
    let (status, event) = member_client.post(&format!("{EVENTS}/{draft}/normalize_audience"), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!((&event["classes"], &event["classGroups"]), (&json!(["28Ga", "26Fb"]), &json!(["27F"])));
    let to = [id_of(&member), me];
    assert_eq!(host.notified_since(position).await, [changed_to(&event, &to)]);

    let position = host.log_position().await;
    let review = seed_event(&host, me, "REVIEW", json!({})).await;
    let (status, _) = user.post(&format!("{EVENTS}/{review}/normalize_audience"), &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn deleting_drafts_removes_them_and_others_are_marked(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (other, _) = host.user("USER").await;
    let me = id_of(&me);
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let draft = seed_event(&host, me, "DRAFT", json!({})).await;
    let group = seed_group(&host, "with the draft", &[me], &[&draft]).await;

    let (status, _) = other.delete(&format!("{EVENTS}/{draft}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{EVENTS}/{draft}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(&host, "EVENT", &draft).await, None);
    assert_eq!(stored(&host, "EVENT_GROUP", &group).await.unwrap()["eventIds"], json!([]), "the group drops it");
    assert_eq!(host.notified_since(position).await, [deleted("EVENT", &draft, &[me], false)]);

    for state in ["PUBLISHED", "REVIEW", "REFUSED"] {
        let id = seed_event(&host, me, state, json!({})).await;
        let position = host.log_position().await;
        let (status, _) = user.delete(&format!("{EVENTS}/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{state}");
        let data = stored(&host, "EVENT", &id).await.unwrap();
        assert_eq!(data["deletedAt"], "2026-11-27T10:00:00.000Z");
        let record = read(&user, &id).await;
        assert_eq!(host.notified_since(position).await, [changed(&record, "all")], "{state}");
    }
    host.stop().await;
}

async fn deleting_many_announces_drafts_to_their_author(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, author) = host.user("USER").await;
    let (member_client, member) = host.user("USER").await;
    let author = id_of(&author);
    let first = seed_event(&host, author, "DRAFT", json!({})).await;
    let second = seed_event(&host, author, "DRAFT", json!({})).await;
    let not_shared = seed_event(&host, author, "DRAFT", json!({})).await;
    seed_group(&host, "shared", &[author, id_of(&member)], &[&first, &second]).await;

    let position = host.log_position().await;
    let (status, body) = member_client
        .delete(&format!("{EVENTS}?ids[]={first}&ids[]={not_shared}&ids[]={second}&ids[]=missing&ids[]={first}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([first, second]));
    assert_eq!(
        host.notified_since(position).await,
        [deleted("EVENT", &first, &[author], false), deleted("EVENT", &second, &[author], false)]
    );
    assert_eq!(host.stored("EVENT").await, 1);
    host.stop().await;
}

async fn cloning_needs_read_access(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, other) = host.user("USER").await;
    let (me, other) = (id_of(&me), id_of(&other));
    let own = seed_event(&host, me, "REVIEW", json!({ "meta": { "k": 1 }, "affectsDepartment2": true })).await;
    let published = seed_event(&host, other, "PUBLISHED", json!({ "classes": ["26Ga"] })).await;
    let shared = seed_event(&host, other, "DRAFT", json!({})).await;
    seed_group(&host, "shared", &[me, other], &[&shared]).await;

    for source in [&own, &published, &shared] {
        let position = host.log_position().await;
        let (status, clone) = user.post(&format!("{EVENTS}/{source}/clone"), &json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{clone}");
        let original = stored(&host, "EVENT", source).await.unwrap();
        assert_eq!(
            (&clone["cloned"], &clone["clonedFromId"], &clone["parentId"], &clone["authorId"], &clone["state"]),
            (&json!(true), &json!(source), &Value::Null, &json!(me), &json!("DRAFT"))
        );
        assert_eq!((&clone["classes"], &clone["start"]), (&original["classes"], &original["start"]));
        assert!(clone.get("meta").is_none(), "meta is not cloned");
        assert_eq!(clone["affectsDepartment2"], false);
        assert_eq!(host.notified_since(position).await, [note("NEW_RECORD", "EVENT", &clone, me, false)]);
    }

    let position = host.log_position().await;
    let count = host.stored("EVENT").await;
    for state in ["DRAFT", "REVIEW", "REFUSED"] {
        let foreign = seed_event(&host, other, state, json!({})).await;
        let (status, _) = user.post(&format!("{EVENTS}/{foreign}/clone"), &json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{state}");
    }
    let (status, _) = user.post(&format!("{EVENTS}/missing/clone"), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(host.stored("EVENT").await, count + 3);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

/// A department and an open registration period for it, for users' submissions.
async fn open_registration(host: &TestHost) -> String {
    let department = seed_department(host, "Gymnasium", "G", &["a"]).await;
    insert_record(
        host,
        "REGISTRATION_PERIOD",
        json!({
            "name": "FS27", "description": "", "start": "2026-01-01T00:00:00.000Z", "end": "2030-01-01T00:00:00.000Z",
            "eventRangeStart": "2027-01-01T00:00:00.000Z", "eventRangeEnd": "2027-12-31T00:00:00.000Z",
            "isOpen": false, "departmentIds": [department],
        }),
        SEEDED,
    )
    .await;
    department
}

async fn allowed_transitions_are_announced_to_author_and_admins_or_all(backend: Backend) {
    let host = TestHost::start(backend).await;
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let department = open_registration(&host).await;
    let (user, me) = host.user("USER").await;
    let admin = host.admin().await;
    let admin_id = admin_id(&host).await;
    let cases: [(&Client, &str, &str, &str, &[&str]); 4] = [
        (&user, id_of(&me), "DRAFT", "REVIEW", &["author", "admin"]),
        (&admin, &admin_id, "DRAFT", "REVIEW", &["author", "admin"]),
        (&admin, &admin_id, "REVIEW", "PUBLISHED", &["all"]),
        (&admin, &admin_id, "REVIEW", "REFUSED", &["author", "admin"]),
    ];
    for (client, author, from, to, rooms) in cases {
        let event = seed_event(&host, author, from, json!({ "departmentIds": [department] })).await;
        let position = host.log_position().await;
        let (status, body) = change_state(client, &[&event], to).await;
        assert_eq!(status, StatusCode::CREATED, "{from} → {to}: {body}");
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["state"], to);
        let expected: Vec<Value> =
            rooms.iter().map(|r| state_note(&body[0], if *r == "author" { author } else { r })).collect();
        assert_eq!(host.notified_since(position).await, expected, "{from} → {to}");
    }
    host.stop().await;
}

async fn forbidden_transitions_change_nothing(backend: Backend) {
    let host = TestHost::start(backend).await;
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let department = open_registration(&host).await;
    let (user, me) = host.user("USER").await;
    let admin = host.admin().await;
    let admin_id = admin_id(&host).await;
    let (both, admin_only, user_only): (&[&str], &[&str], &[&str]) = (&["USER", "ADMIN"], &["ADMIN"], &["USER"]);
    let cases: [(&str, &str, &[&str], StatusCode); 14] = [
        ("DRAFT", "DRAFT", both, StatusCode::BAD_REQUEST),
        ("DRAFT", "PUBLISHED", both, StatusCode::BAD_REQUEST),
        ("DRAFT", "REFUSED", both, StatusCode::BAD_REQUEST),
        ("PUBLISHED", "PUBLISHED", both, StatusCode::BAD_REQUEST),
        ("PUBLISHED", "DRAFT", both, StatusCode::BAD_REQUEST),
        ("PUBLISHED", "REFUSED", both, StatusCode::BAD_REQUEST),
        ("PUBLISHED", "REVIEW", both, StatusCode::BAD_REQUEST),
        ("REVIEW", "REVIEW", admin_only, StatusCode::BAD_REQUEST),
        ("REVIEW", "DRAFT", user_only, StatusCode::FORBIDDEN),
        ("REVIEW", "DRAFT", admin_only, StatusCode::BAD_REQUEST),
        ("REFUSED", "REFUSED", both, StatusCode::BAD_REQUEST),
        ("REFUSED", "DRAFT", both, StatusCode::BAD_REQUEST),
        ("REFUSED", "PUBLISHED", both, StatusCode::BAD_REQUEST),
        ("REFUSED", "REVIEW", both, StatusCode::BAD_REQUEST),
    ];
    let position = host.log_position().await;
    for (from, to, roles, expected) in cases {
        for role in roles {
            let (client, author) = if *role == "ADMIN" { (&admin, admin_id.as_str()) } else { (&user, id_of(&me)) };
            let event = seed_event(&host, author, from, json!({ "departmentIds": [department] })).await;
            let before = stored(&host, "EVENT", &event).await;
            let (status, body) = change_state(client, &[&event], to).await;
            assert_eq!(status, expected, "{role}: {from} → {to}: {body}");
            let message = match from {
                _ if expected == StatusCode::FORBIDDEN => "Forbidden",
                "DRAFT" => "Draft can only be set to review",
                "REVIEW" => "Review can only be set to Published or to Refused",
                "PUBLISHED" => "PUBLISHED state is immutable",
                _ => "REFUSED state is immutable",
            };
            assert_eq!(body["error"], message, "{role}: {from} → {to}");
            assert_eq!(stored(&host, "EVENT", &event).await, before);
        }
    }
    // Others' events, unknown ids and unknown states.
    let foreign = seed_event(&host, &admin_id, "DRAFT", json!({ "departmentIds": [department] })).await;
    let (status, body) = change_state(&user, &[&foreign], "REVIEW").await;
    assert_eq!((status, &body["error"]), (StatusCode::FORBIDDEN, &json!("Not authorized")));
    let (status, body) = change_state(&user, &["missing"], "REVIEW").await;
    assert_eq!((status, &body["error"]), (StatusCode::NOT_FOUND, &json!("Event not found")));
    assert_eq!(change_state(&user, &[&foreign], "ARCHIVED").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn a_versioned_draft_is_reviewed_under_its_root(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let me = id_of(&me);
    // No registration period at all: versions of published events need none.
    let event = seed_event(&host, me, "PUBLISHED", json!({})).await;
    let edit1 = seed_event(&host, me, "DRAFT", json!({ "parentId": event })).await;
    let edit2 = seed_event(&host, me, "DRAFT", json!({ "parentId": edit1 })).await;
    let position = host.log_position().await;
    let (status, body) = change_state(&user, &[&edit2], "REVIEW").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((&body[0]["state"], &body[0]["parentId"]), (&json!("REVIEW"), &json!(event)));
    assert_eq!(host.notified_since(position).await, [state_note(&body[0], me), state_note(&body[0], "admin")]);
    host.stop().await;
}

async fn publishing_a_version_swaps_it_with_the_published_event(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let me = admin_id(&host).await;
    let (_, other) = host.user("USER").await;
    let other = id_of(&other);
    //   event[PUBLISHED]                    event[PUBLISHED, edit3's content]
    //    ^            ^                      ^                  ^
    //  edit1[REVIEW]  edit3[REVIEW]   →    edit3[PUBLISHED,     edit1[REFUSED]
    //    ^                                  event's content]     ^
    //  edit2[DRAFT]                                            edit2[DRAFT]
    let event = seed_event(&host, &me, "PUBLISHED", json!({ "description": "v1", "location": "old" })).await;
    let edit1 = seed_event(&host, other, "REVIEW", json!({ "parentId": event, "clonedFromId": event })).await;
    let edit2 = seed_event(&host, other, "DRAFT", json!({ "parentId": edit1, "clonedFromId": edit1 })).await;
    let edit3 = seed_event(
        &host,
        other,
        "REVIEW",
        json!({ "parentId": event, "clonedFromId": event, "description": "v2", "location": "new" }),
    )
    .await;
    let clone_of_edit3 = seed_event(&host, other, "DRAFT", json!({ "clonedFromId": edit3, "cloned": true })).await;
    let [old_event, old_edit1, old_edit2, old_edit3] = [
        stored(&host, "EVENT", &event).await.unwrap(),
        stored(&host, "EVENT", &edit1).await.unwrap(),
        stored(&host, "EVENT", &edit2).await.unwrap(),
        stored(&host, "EVENT", &edit3).await.unwrap(),
    ];
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;

    let position = host.log_position().await;
    let (status, body) = change_state(&admin, &[&edit3], "PUBLISHED").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!((&body[0]["id"], &body[0]["state"]), (&json!(event), &json!("PUBLISHED")));

    // The published id holds edit3's content; edit3 holds the old content as a version.
    let mut expected = old_edit3.clone();
    expected["state"] = json!("PUBLISHED");
    expected["parentId"] = Value::Null;
    expected["clonedFromId"] = json!(edit3);
    assert_eq!(stored(&host, "EVENT", &event).await.unwrap(), expected);
    let mut expected = old_event.clone();
    expected["parentId"] = json!(event);
    assert_eq!(stored(&host, "EVENT", &edit3).await.unwrap(), expected);
    let mut expected = old_edit1.clone();
    expected["state"] = json!("REFUSED");
    assert_eq!(stored(&host, "EVENT", &edit1).await.unwrap(), expected);
    assert_eq!(stored(&host, "EVENT", &edit2).await.unwrap(), old_edit2, "the nested draft is untouched");
    assert_eq!(stored(&host, "EVENT", &clone_of_edit3).await.unwrap()["clonedFromId"], json!(event));
    assert_eq!(body[0]["publishedVersionIds"], json!([edit3]));

    let previous = read(&admin, &edit3).await;
    let refused = read(&admin, &edit1).await;
    assert_eq!(previous["updatedAt"], "2026-11-27T10:00:00.000Z");
    assert_eq!(
        host.notified_since(position).await,
        [
            state_note(&body[0], "all"),
            state_note(&previous, "all"),
            state_note(&refused, other),
            state_note(&refused, "admin"),
        ]
    );
    // The published list holds the published id only, with its versions.
    let (_, list) = host.anonymous().get(&format!("{EVENTS}?ids[]={event}&ids[]={edit3}")).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "both are PUBLISHED");
    host.stop().await;
}

async fn publishing_refuses_nested_reviews_too(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let me = admin_id(&host).await;
    let event = seed_event(&host, &me, "PUBLISHED", json!({})).await;
    let edit1 = seed_event(&host, &me, "REVIEW", json!({ "parentId": event })).await;
    let edit2 = seed_event(&host, &me, "REVIEW", json!({ "parentId": edit1 })).await;
    let edit3 = seed_event(&host, &me, "REVIEW", json!({ "parentId": event })).await;
    let position = host.log_position().await;
    let (status, body) = change_state(&admin, &[&edit3], "PUBLISHED").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let previous = read(&admin, &edit3).await;
    let refused1 = read(&admin, &edit1).await;
    let refused2 = read(&admin, &edit2).await;
    assert_eq!((&refused1["state"], &refused2["state"]), (&json!("REFUSED"), &json!("REFUSED")));
    assert_eq!(
        host.notified_since(position).await,
        [
            state_note(&body[0], "all"),
            state_note(&previous, "all"),
            state_note(&refused1, &me),
            state_note(&refused1, "admin"),
            state_note(&refused2, &me),
            state_note(&refused2, "admin"),
        ]
    );
    host.stop().await;
}

async fn publishing_keeps_the_reviews_departments_and_moves_groups(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let me = admin_id(&host).await;
    let gym = seed_department(&host, "Gymnasium", "G", &["a"]).await;
    let fms = seed_department(&host, "FMS", "F", &["a"]).await;
    let event = seed_event(&host, &me, "PUBLISHED", json!({ "departmentIds": [gym] })).await;
    let review = seed_event(&host, &me, "REVIEW", json!({ "parentId": event, "departmentIds": [fms] })).await;
    let group = seed_group(&host, "of the review", &[&me], &[&review]).await;
    let (status, body) = change_state(&admin, &[&review], "PUBLISHED").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body[0]["departmentIds"], json!([fms]));
    assert_eq!(stored(&host, "EVENT", &review).await.unwrap()["departmentIds"], json!([gym]));
    assert_eq!(stored(&host, "EVENT_GROUP", &group).await.unwrap()["eventIds"], json!([event]));
    host.stop().await;
}

async fn registration_periods_gate_submissions_by_users(backend: Backend) {
    let host = TestHost::start(backend).await;
    // Sessions follow the host clock: sign in at the pinned time, and move it by days only.
    pin_clock(&host, "2027-03-09T00:00:00.000Z").await;
    let (user, me) = host.user("USER").await;
    let (_, linked) = host.user("USER").await;
    let admin = host.admin().await;
    let me = id_of(&me);
    let gym = seed_department(&host, "Gymnasium", "G", &["a", "b"]).await;
    let fms = seed_department(&host, "FMS", "F", &["a"]).await;
    // Open for submissions on 10 and 11 March 2027, for events from April to July 2027,
    // Gymnasium only.
    insert_record(
        &host,
        "REGISTRATION_PERIOD",
        json!({
            "name": "SJ27", "description": "", "start": "2027-03-10T00:00:00.000Z", "end": "2027-03-12T00:00:00.000Z",
            "eventRangeStart": "2027-04-01T00:00:00.000Z", "eventRangeEnd": "2027-07-31T00:00:00.000Z",
            "isOpen": false, "departmentIds": [gym],
        }),
        SEEDED,
    )
    .await;
    let in_range = json!({ "start": "2027-05-03T08:00:00.000Z", "end": "2027-05-03T10:00:00.000Z" });
    let with = |extra: Value| {
        let mut data = in_range.clone();
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        data
    };
    let submit = async |client: &Client, extra: Value| {
        let id = seed_event(&host, me, "DRAFT", with(extra)).await;
        change_state(client, &[&id], "REVIEW").await.0
    };

    assert_eq!(submit(&user, json!({ "departmentIds": [gym] })).await, StatusCode::BAD_REQUEST, "before");
    assert_eq!(submit(&admin, json!({ "departmentIds": [gym] })).await, StatusCode::CREATED, "admins any time");

    pin_clock(&host, "2027-03-11T00:00:00.000Z").await;
    assert_eq!(submit(&user, json!({ "departmentIds": [gym] })).await, StatusCode::CREATED, "open");
    assert_eq!(submit(&user, json!({ "classes": ["27Gb"] })).await, StatusCode::CREATED, "by its class");
    assert_eq!(submit(&user, json!({ "classGroups": ["27G"] })).await, StatusCode::CREATED, "by its group");
    assert_eq!(submit(&user, json!({ "departmentIds": [fms] })).await, StatusCode::BAD_REQUEST, "other department");
    assert_eq!(submit(&user, json!({})).await, StatusCode::BAD_REQUEST, "no audience");
    let late =
        json!({ "departmentIds": [gym], "start": "2027-08-03T08:00:00.000Z", "end": "2027-08-03T10:00:00.000Z" });
    assert_eq!(submit(&user, late).await, StatusCode::BAD_REQUEST, "outside the event range");
    let linked_only = json!({ "linkedUserIds": [linked["id"]] });
    assert_eq!(submit(&user, linked_only.clone()).await, StatusCode::CREATED, "linked users: by the event range");
    let linked_late = json!({ "linkedUserIds": [linked["id"]], "start": "2027-08-03T08:00:00.000Z",
                               "end": "2027-08-03T10:00:00.000Z" });
    assert_eq!(submit(&user, linked_late).await, StatusCode::BAD_REQUEST, "linked users outside the range");

    pin_clock(&host, "2027-03-13T00:00:00.000Z").await;
    assert_eq!(submit(&user, json!({ "departmentIds": [gym] })).await, StatusCode::BAD_REQUEST, "closed");
    assert_eq!(submit(&user, linked_only).await, StatusCode::BAD_REQUEST, "linked users: closed");
    insert_record(
        &host,
        "REGISTRATION_PERIOD",
        json!({
            "name": "FMS", "description": "", "start": "2027-01-01T00:00:00.000Z", "end": "2027-01-02T00:00:00.000Z",
            "eventRangeStart": "2027-04-01T00:00:00.000Z", "eventRangeEnd": "2027-07-31T00:00:00.000Z",
            "isOpen": true, "departmentIds": [fms],
        }),
        SEEDED,
    )
    .await;
    assert_eq!(submit(&user, json!({ "departmentIds": [fms] })).await, StatusCode::CREATED, "open by isOpen");
    let published = seed_event(&host, me, "PUBLISHED", with(json!({ "departmentIds": [gym] }))).await;
    let version = with(json!({ "departmentIds": [gym], "parentId": published }));
    assert_eq!(submit(&user, version).await, StatusCode::CREATED, "versions need no open period");
    for state in ["PUBLISHED", "REFUSED"] {
        let review = seed_event(&host, me, "REVIEW", with(json!({ "departmentIds": [gym] }))).await;
        assert_eq!(change_state(&admin, &[&review], state).await.0, StatusCode::CREATED, "admins decide any time");
    }
    host.stop().await;
}

async fn change_state_is_atomic(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let me = admin_id(&host).await;
    let first = seed_event(&host, &me, "REVIEW", json!({})).await;
    let second = seed_event(&host, &me, "REVIEW", json!({})).await;
    let published = seed_event(&host, &me, "PUBLISHED", json!({})).await;
    let position = host.log_position().await;
    let (status, _) = change_state(&admin, &[&first, &published], "PUBLISHED").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&host, "EVENT", &first).await.unwrap()["state"], "REVIEW", "nothing was applied");
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());

    let (status, body) = change_state(&admin, &[&first, &second, &first], "PUBLISHED").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(ids(&body), [first.as_str(), second.as_str()]);
    assert_eq!(host.notified_since(position).await, [state_note(&body[0], "all"), state_note(&body[1], "all")]);
    host.stop().await;
}

/// Wait for the import job `id` to leave PENDING; its stored data.
pub(crate) async fn finished_job(host: &TestHost, id: &str) -> Value {
    for _ in 0..200 {
        let job = stored(host, "JOB", id).await.unwrap();
        if job["state"] != "PENDING" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the import job {id} did not finish");
}

async fn importing_creates_a_job_that_ends_with_draft_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let admin = host.admin().await;
    let me = id_of(&me);
    let gym = seed_department(&host, "Gymnasium", "G", &["a"]).await;
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let csv = "start;end;description;location;classes;departments;audience\n\
               2027-03-04 08:00;2027-03-04 12:00;Sporttag;Turnhalle;26Ga 26Gb;Gymnasium;ALL\n\
               2027-03-05;2027-03-05;Projektwoche;;;Nowhere;\n\
               2027-03-06;;Kaputt;;;;\n\
               04.03.2027 08:00;04.03.2027 10:00;\"Konzert; Aula\";Aula;;G;KLP\n";

    let position = host.log_position().await;
    let path = format!("{EVENTS}/import?type=V1");
    let (status, job) = user.upload(&path, &[], ("terminplan", "terminplan.csv", csv.into())).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        job,
        json!({
            "id": id_of(&job), "type": "IMPORT", "state": "PENDING", "userId": me, "semesterId": null,
            "syncDate": null, "description": "", "filename": "terminplan.csv", "log": "",
            "createdAt": "2026-11-27T10:00:00.000Z", "updatedAt": "2026-11-27T10:00:00.000Z",
        })
    );
    let done = finished_job(&host, id_of(&job)).await;
    assert_eq!(done["state"], "DONE", "{done}");
    assert_eq!(
        done["log"],
        "# Success: 3/4 events imported\n\
         # Failed\n\
         Error at row: 4: end: a date is required\n\
         # Warnings\n\
         Row 3: Unknown department \"Nowhere\" was left out\n\
         # Infos\n\
         Row 3: end has no time: the event lasts until the end of that day\n"
    );
    let notes = host.notified_since(position).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(notes[0], note("NEW_RECORD", "JOB", &job, me, false));
    let record = &notes[1]["message"]["record"];
    assert_eq!((&notes[1]["event"], &notes[1]["to"]), (&json!("CHANGED_RECORD"), &json!(["all"])));
    assert_eq!((&record["state"], &record["log"]), (&json!("DONE"), &done["log"]));
    let events = record["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["state"] == "DRAFT" && e["jobId"] == job["id"] && e["authorId"] == me));
    // A job's events come by `createdAt`, then id (as `GET /jobs/:id` lists them), not by row.
    let by_id: Vec<&str> = events.iter().map(id_of).collect();
    assert!(by_id.is_sorted(), "{by_id:?}");
    let row = |description: &str| events.iter().find(|e| e["description"] == description).unwrap();
    let (sport, week, concert) = (row("Sporttag"), row("Projektwoche"), row("Konzert; Aula"));
    assert_eq!(
        (&sport["classes"], &sport["departmentIds"], &sport["audience"]),
        (&json!(["26Ga", "26Gb"]), &json!([gym]), &json!("ALL"))
    );
    assert_eq!(
        (&week["start"], &week["end"]),
        (&json!("2027-03-05T00:00:00.000Z"), &json!("2027-03-06T00:00:00.000Z"))
    );
    assert_eq!(week["meta"]["warnings"], json!(["Unknown department \"Nowhere\" was left out"]));
    assert_eq!(concert["departmentIds"], json!([gym]));
    assert_eq!(host.stored("EVENT").await, 3);

    // Legacy types are for admins; a file that is not the format ends the job ERROR.
    let position = host.log_position().await;
    for kind in ["GBSL_XLSX", "GBJB_CSV"] {
        let path = format!("{EVENTS}/import?type={kind}");
        let (status, _) = user.upload(&path, &[], ("terminplan", "t.csv", csv.into())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind}");
    }
    let (status, _) = user.upload(&format!("{EVENTS}/import?type=XLS"), &[], ("terminplan", "t.csv", csv.into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.upload(&path, &[], ("other", "t.csv", csv.into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.upload(&path, &[], ("terminplan", "t.csv", vec![0xff, 0xfe, 0x00])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(host.stored("JOB").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());

    let corrupted = b"PK\x03\x04 not a csv at all".to_vec();
    let path = format!("{EVENTS}/import?type=GBSL_XLSX");
    let (status, job) = admin.upload(&path, &[], ("terminplan", "terminplan.xlsx", corrupted)).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let failed = finished_job(&host, id_of(&job)).await;
    assert_eq!(failed["state"], "ERROR");
    assert!(failed["log"].as_str().unwrap().starts_with("Missing column: start"), "{failed}");
    assert_eq!(host.stored("EVENT").await, 3);
    host.stop().await;
}

async fn an_import_of_900_rows_fits_and_more_end_the_job_error(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let file = |rows: usize| {
        let mut csv = String::from("start,end,description,location,classes\n");
        for row in 0..rows {
            let day = 1 + row % 28;
            csv.push_str(&format!("2027-03-{day:02} 08:00,2027-03-{day:02} 09:00,Event {row},Room {row},26Ga 26Gb\n"));
        }
        csv.into_bytes()
    };
    let path = format!("{EVENTS}/import?type=V1");
    let (status, job) = user.upload(&path, &[], ("terminplan", "big.csv", file(900))).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let done = finished_job(&host, id_of(&job)).await;
    assert!(done["log"].as_str().unwrap().starts_with("# Success: 900/900 events imported"), "{done}");
    assert_eq!(host.stored("EVENT").await, 900);

    let (_, job) = user.upload(&path, &[], ("terminplan", "bigger.csv", file(901))).await;
    let failed = finished_job(&host, id_of(&job)).await;
    assert_eq!(
        (&failed["state"], &failed["log"]),
        (&json!("ERROR"), &json!("Too many rows: an import creates at most 900 events"))
    );
    assert_eq!(host.stored("EVENT").await, 900);
    host.stop().await;
}

/// The host runs a task that keeps failing once more with `failure` set; the import then
/// ends its job ERROR with the reason and imports nothing. The task is stored as a request
/// would have left it after its last ordinary attempt.
async fn a_task_that_cannot_complete_ends_its_job_error(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, me) = host.user("USER").await;
    let job = insert_record(
        &host,
        "JOB",
        json!({ "type": "IMPORT", "state": "PENDING", "userId": me["id"], "semesterId": null, "syncDate": null,
                "description": "", "filename": "t.csv", "log": "" }),
        SEEDED,
    )
    .await;
    let input = json!({ "jobId": job, "csv": "start,end,description\n2027-03-04,2027-03-04,x\n" });
    // Taken before the task is stored: the task runner may run it at once.
    let position = host.log_position().await;
    sqlx::query(
        "INSERT INTO tasks (id, plugin, name, input, attempts, last_error, created_at) \
         VALUES ($1, 'event', 'import', $2, $3, 'the plugin timed out', $4)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(input.to_string())
    .bind(host::tasks::MAX_ATTEMPTS)
    .bind(SEEDED)
    .execute(&host.server.state.db.pool)
    .await
    .unwrap();
    host.server.state.tasks.wake();
    let failed = finished_job(&host, &job).await;
    assert_eq!((&failed["state"], &failed["log"]), (&json!("ERROR"), &json!("the plugin timed out")));
    assert_eq!(host.stored("EVENT").await, 0);
    let notes = host.notified_since(position).await;
    assert_eq!(notes.len(), 1);
    assert_eq!((&notes[0]["message"]["record"]["state"], &notes[0]["to"]), (&json!("ERROR"), &json!(["all"])));
    assert_eq!(notes[0]["message"]["record"]["events"], json!([]));
    host.stop().await;
}

/// Ask the `event` plugin `events:overlapping` as `user` would over a socket; the
/// acknowledgement's payload (without `state`), or the refusal's message.
async fn overlapping(host: &TestHost, user: &Value, event_id: &str) -> Result<Value, String> {
    use host::plugin::types::{Role, SocketRequest, User};
    let state = &host.server.state;
    let plugin = state.plugins.by_socket_event("events:overlapping").expect("the event plugin declares it");
    let request = SocketRequest {
        actor: User { id: id_of(user).to_owned(), role: Role::User, session_id: "s".into() },
        event: "events:overlapping".into(),
        args: json!([event_id]).to_string(),
        now: "2026-11-27T10:00:00.000Z".into(),
    };
    let tx = state.db.begin_read().await.unwrap();
    match state.runtime.socket_event(&plugin, &request, tx).await {
        Ok(json) => Ok(serde_json::from_str(&json).unwrap()),
        Err(host::plugin::Error::Guest(refusal)) => Err(host::plugin::refusal_message(&refusal).to_owned()),
        Err(other) => panic!("the plugin failed: {other}"),
    }
}

async fn overlapping_events_share_time_and_an_audience(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, me) = host.user("USER").await;
    let author = id_of(&me);
    let gym = seed_department(&host, "Gymnasium", "G", &["a", "b"]).await;
    let fms = seed_department(&host, "FMS", "F", &["a"]).await;
    let at = |start: &str, end: &str, extra: Value| {
        let mut data =
            json!({ "start": format!("2027-03-04T{start}:00.000Z"), "end": format!("2027-03-04T{end}:00.000Z") });
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        data
    };
    let event = seed_event(&host, author, "DRAFT", at("08:00", "10:00", json!({ "classes": ["26Ga"] }))).await;
    let same_class = seed_event(&host, author, "PUBLISHED", at("09:00", "11:00", json!({ "classes": ["26Ga"] }))).await;
    let by_group =
        seed_event(&host, author, "PUBLISHED", at("07:00", "08:30", json!({ "classGroups": ["26G"] }))).await;
    let by_department =
        seed_event(&host, author, "PUBLISHED", at("09:30", "12:00", json!({ "departmentIds": [gym] }))).await;
    for (state, extra) in [
        ("PUBLISHED", at("10:00", "11:00", json!({ "classes": ["26Ga"] }))),
        ("PUBLISHED", at("08:00", "10:00", json!({ "departmentIds": [fms] }))),
        ("PUBLISHED", at("08:00", "10:00", json!({ "classes": ["26Ga"], "deletedAt": SEEDED }))),
        ("PUBLISHED", at("08:00", "10:00", json!({ "classes": ["26Ga"], "parentId": same_class }))),
        ("REVIEW", at("08:00", "10:00", json!({ "classes": ["26Ga"] }))),
    ] {
        seed_event(&host, author, state, extra).await;
    }
    let answer = overlapping(&host, &me, &event).await.unwrap();
    assert_eq!(answer, json!({ "ids": [by_group, same_class, by_department] }));
    assert_eq!(overlapping(&host, &me, "missing").await, Err("Event not found".into()));
    host.stop().await;
}

/// `count` events of `author` in `state`, about 1 KiB each, seeded in one transaction: two
/// by two an hour apart from eleven weeks before the pinned `NOW` on (so that pages end amid
/// equal starts). Their ids in the lists' order: by `start`, then id.
async fn seed_many_events(host: &TestHost, author: &str, state: &str, count: usize) -> Vec<String> {
    let first = chrono::DateTime::parse_from_rfc3339(NOW).unwrap() - chrono::Duration::weeks(11);
    let db = &host.server.state.db;
    let mut tx = db.begin_write().await.unwrap();
    let mut seeded = Vec::new();
    for i in 0..count {
        let start = first + chrono::Duration::hours((i / 2) as i64);
        let at = |t: chrono::DateTime<chrono::FixedOffset>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let mut data = event_data(author, state, None);
        data["start"] = json!(at(start));
        data["end"] = json!(at(start + chrono::Duration::hours(1)));
        data["description"] = json!(format!("Event {i}: {}", "x".repeat(900)));
        let id = uuid::Uuid::new_v4().to_string();
        let write = Write::Upsert {
            record_type: "EVENT".into(),
            id: id.clone(),
            data: data.to_string(),
            expected_version: None,
        };
        records::apply(&mut tx, &db.elements, &write, SEEDED).await.unwrap().unwrap();
        seeded.push((at(start), id));
    }
    tx.commit().await.unwrap();
    seeded.sort();
    seeded.into_iter().map(|(_, id)| id).collect()
}

/// The pinned clock of [`lists_of_thousands_of_events_answer_in_pages`].
const NOW: &str = "2026-11-27T10:00:00.000Z";

/// A list longer than one plugin response may be (4 MiB) comes in pages that the host joins:
/// the public list and the user's view answer 200 with every event, in their order, each as
/// a read gives it (across page boundaries too), and the plugin counts no fault.
async fn lists_of_thousands_of_events_answer_in_pages(backend: Backend) {
    let host = TestHost::start(backend).await;
    pin_clock(&host, NOW).await;
    let (user, me) = host.user("USER").await;
    let published = seed_many_events(&host, "someone", "PUBLISHED", 6_000).await;
    let drafts = seed_many_events(&host, id_of(&me), "DRAFT", 5_000).await;
    // The statistics autovacuum gathers after a bulk load (PostgreSQL plans with them).
    records::analyze(&host.server.state.db).await.unwrap();
    let anonymous = host.anonymous();
    for (client, path, expected) in [(&anonymous, EVENTS, &published), (&user, "/api/v1/user/events", &drafts)] {
        let response = client.http.get(client.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.len() > 4 << 20, "{path}: {} bytes, which one response could hold", text.len());
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ids(&list), *expected, "{path}");
        for i in [0, 1, 499, 500, 501, 2_999, expected.len() - 1] {
            assert_eq!(list[i], read(client, &expected[i]).await, "{path}: element {i}");
        }
    }
    let event = host.server.state.plugins.active("event").unwrap();
    assert_eq!(event.stats.faults.load(std::sync::atomic::Ordering::Relaxed), 0);
    host.stop().await;
}
