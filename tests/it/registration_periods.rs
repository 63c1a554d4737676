//! The `registration-period` plugin over HTTP, ported from events-api's
//! `tests/integration/registrationPeriod.spec.ts`: who may list, read, create, change and
//! delete periods, the date checks, and the exact notifications of each change.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, Client, TestHost, both_backends};

both_backends!(
    periods_are_for_signed_in_users_only,
    users_list_and_read_periods,
    admins_create_periods_from_the_original_fields,
    admins_update_periods,
    periods_hold_a_set_of_existing_departments,
    dates_must_run_forwards,
    users_cannot_change_periods,
    admins_delete_periods,
    a_period_opens_submissions_for_its_departments,
);

const PERIODS: &str = "/api/v1/registration_periods";

/// The original's fixture: two periods, HS2023 and FS2024.
async fn seed(admin: &Client) -> (Value, Value) {
    let hs = create(admin, "HS2023", "2023-03-01", "2023-06-28").await;
    let fs = create(admin, "FS2024", "2023-08-23", "2023-12-23").await;
    (hs, fs)
}

async fn create(admin: &Client, name: &str, start: &str, end: &str) -> Value {
    let body = json!({
        "name": name, "start": start, "end": end,
        "eventRangeStart": "2024-01-01T00:00:00.000Z", "eventRangeEnd": "2024-07-31T00:00:00.000Z"
    });
    let (status, period) = admin.post(PERIODS, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{period}");
    period
}

fn notification(event: &str, message: Value) -> Value {
    json!({ "event": event, "message": message, "to": ["all"], "toSelf": false })
}

async fn periods_are_for_signed_in_users_only(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (hs, _) = seed(&host.admin().await).await;
    let anonymous = host.anonymous();
    let position = host.log_position().await;
    let id = hs["id"].as_str().unwrap();
    for path in [PERIODS.to_owned(), format!("{PERIODS}/{id}")] {
        let (status, _) = anonymous.get(&path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = anonymous.post(PERIODS, &json!({ "name": "FOO" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.put(&format!("{PERIODS}/{id}"), &json!({ "data": { "name": "FOO" } })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.delete(&format!("{PERIODS}/{id}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(host.stored("REGISTRATION_PERIOD").await, 2);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn users_list_and_read_periods(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (hs, fs) = seed(&host.admin().await).await;
    let (user, _) = host.user("USER").await;
    let position = host.log_position().await;

    let (status, list) = user.get(PERIODS).await;
    assert_eq!(status, StatusCode::OK);
    // In creation order; the two may share a millisecond, so compare them as a set.
    let mut list: Vec<Value> = serde_json::from_value(list).unwrap();
    list.sort_by_key(|p| p["id"].as_str().unwrap().to_owned());
    let mut expected = vec![hs.clone(), fs];
    expected.sort_by_key(|p| p["id"].as_str().unwrap().to_owned());
    assert_eq!(list, expected);

    let (status, found) = user.get(&format!("{PERIODS}/{}", hs["id"].as_str().unwrap())).await;
    assert_eq!((status, &found), (StatusCode::OK, &hs));
    let (status, body) = user.get(&format!("{PERIODS}/efce93f5-0ead-4d5d-8143-0fd7267db689")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new(), "reads notify nobody");
    host.stop().await;
}

async fn admins_create_periods_from_the_original_fields(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    admin.put("/api/v1/admin/clock", &json!({ "now": "2026-11-27T08:00:00.000Z" })).await;
    let position = host.log_position().await;

    // Only `name`, `start`, `end` and the event range are taken; the rest is ignored.
    let body = json!({
        "name": "FOO",
        "start": "2026-12-01T07:00:00.000Z",
        "end": "2027-01-15T18:30:00.000+01:00",
        "eventRangeStart": "2027-02-01",
        "eventRangeEnd": "2027-07-31T00:00:00Z",
        "description": "ignored", "isOpen": true, "departmentIds": ["ignored"], "id": "mine"
    });
    let (status, period) = admin.post(PERIODS, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{period}");
    let id = period["id"].as_str().unwrap();
    assert_ne!(id, "mine");
    assert_eq!(
        period,
        json!({
            "id": id,
            "name": "FOO",
            "description": "",
            "start": "2026-12-01T07:00:00.000Z",
            "end": "2027-01-15T17:30:00.000Z",
            "eventRangeStart": "2027-02-01T00:00:00.000Z",
            "eventRangeEnd": "2027-07-31T00:00:00.000Z",
            "isOpen": false,
            "departmentIds": [],
            "createdAt": "2026-11-27T08:00:00.000Z",
            "updatedAt": "2026-11-27T08:00:00.000Z",
        })
    );
    assert_eq!(
        host.notified_since(position).await,
        [notification("NEW_RECORD", json!({ "type": "REGISTRATION_PERIOD", "record": period }))]
    );

    // Every field the original's database requires is required here (400, not a 500).
    let position = host.log_position().await;
    let full = json!({
        "name": "BAR", "start": "2026-12-01", "end": "2026-12-02",
        "eventRangeStart": "2027-02-01", "eventRangeEnd": "2027-03-01"
    });
    for missing in ["name", "start", "end", "eventRangeStart", "eventRangeEnd"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(missing);
        let (status, error) = admin.post(PERIODS, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "without {missing}: {error}");
        assert!(error["error"].as_str().unwrap().contains(missing), "{error}");
    }
    let mut bad_date = full.clone();
    bad_date["start"] = json!("next monday");
    let (status, _) = admin.post(PERIODS, &bad_date).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut long_name = full.clone();
    long_name["name"] = json!("x".repeat(10_001));
    let (status, _) = admin.post(PERIODS, &long_name).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(host.stored("REGISTRATION_PERIOD").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn admins_update_periods(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (hs, _) = seed(&admin).await;
    admin.put("/api/v1/admin/clock", &json!({ "now": "2026-11-27T09:00:00.000Z" })).await;
    let position = host.log_position().await;
    let path = format!("{PERIODS}/{}", hs["id"].as_str().unwrap());

    let (status, updated) = admin.put(&path, &json!({ "data": { "name": "FOO" } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let mut expected = hs.clone();
    expected["name"] = json!("FOO");
    expected["updatedAt"] = json!("2026-11-27T09:00:00.000Z");
    assert_eq!(updated, expected);

    // The client sends whole records back: read-only fields are ignored, the rest applies.
    let mut whole = updated.clone();
    whole["description"] = json!("Anmeldung HS");
    whole["isOpen"] = json!(true);
    whole["eventRangeEnd"] = json!("2024-08-31T00:00:00.000Z");
    whole["createdAt"] = json!("2000-01-01T00:00:00.000Z");
    let (status, again) = admin.put(&path, &json!({ "data": whole })).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let mut expected = updated.clone();
    expected["description"] = json!("Anmeldung HS");
    expected["isOpen"] = json!(true);
    expected["eventRangeEnd"] = json!("2024-08-31T00:00:00.000Z");
    assert_eq!(again, expected);

    let (_, found) = admin.get(&path).await;
    assert_eq!(found, again);
    assert_eq!(
        host.notified_since(position).await,
        [
            notification("CHANGED_RECORD", json!({ "type": "REGISTRATION_PERIOD", "record": updated })),
            notification("CHANGED_RECORD", json!({ "type": "REGISTRATION_PERIOD", "record": again })),
        ]
    );

    let (status, _) = admin.put(&format!("{PERIODS}/missing"), &json!({ "data": { "name": "x" } })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin.put(&path, &json!({ "name": "not wrapped in data" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin.put(&path, &json!({ "data": { "isOpen": "yes" } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, unchanged) = admin.get(&path).await;
    assert_eq!(unchanged, again);
    assert_eq!(host.notified_since(position).await.len(), 2);
    host.stop().await;
}

async fn periods_hold_a_set_of_existing_departments(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (hs, _) = seed(&admin).await;
    let (_, gymd) = admin.post("/api/v1/departments", &json!({ "name": "GYMD" })).await;
    let (_, gymf) = admin.post("/api/v1/departments", &json!({ "name": "GYMF" })).await;
    let (gymd, gymf) = (gymd["id"].as_str().unwrap(), gymf["id"].as_str().unwrap());
    let position = host.log_position().await;
    let path = format!("{PERIODS}/{}", hs["id"].as_str().unwrap());

    let (status, updated) = admin.put(&path, &json!({ "data": { "departmentIds": [gymd, gymf] } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["departmentIds"], json!([gymd, gymf]));
    assert_eq!(updated["name"], hs["name"]);
    assert_eq!(
        host.notified_since(position).await,
        [notification("CHANGED_RECORD", json!({ "type": "REGISTRATION_PERIOD", "record": updated }))]
    );

    // A set: each department once, in the order given; ids of no department are dropped, so
    // that an id left behind by a deleted department never blocks an update.
    let (status, updated) = admin.put(&path, &json!({ "data": { "departmentIds": [gymf, "gone", gymd, gymf] } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["departmentIds"], json!([gymf, gymd]));

    let (status, _) = admin.put(&path, &json!({ "data": { "departmentIds": gymd } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a list is required");
    let (status, updated) = admin.put(&path, &json!({ "data": { "departmentIds": [] } })).await;
    assert_eq!((status, &updated["departmentIds"]), (StatusCode::OK, &json!([])));
    host.stop().await;
}

async fn dates_must_run_forwards(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (hs, _) = seed(&admin).await;
    let position = host.log_position().await;
    let path = format!("{PERIODS}/{}", hs["id"].as_str().unwrap());

    // HS2023 runs from 2023-03-01 to 2023-06-28, for events from 2024-01-01 to 2024-07-31.
    for data in [
        json!({ "start": "2023-09-01T00:00:00.000Z" }),
        json!({ "end": "2023-01-01T00:00:00.000Z" }),
        json!({ "end": "2023-03-01T00:00:00.000Z" }),
        json!({ "eventRangeStart": "2025-01-01T00:00:00.000Z" }),
        json!({ "eventRangeEnd": "2024-01-01T00:00:00.000Z" }),
        json!({ "start": "2023-07-01", "end": "2023-06-30" }),
    ] {
        let (status, error) = admin.put(&path, &json!({ "data": data })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{data}: {error}");
    }
    for body in [
        json!({ "name": "x", "start": "2023-02-01", "end": "2023-01-01", "eventRangeStart": "2024-01-01", "eventRangeEnd": "2024-02-01" }),
        json!({ "name": "x", "start": "2023-01-01", "end": "2023-02-01", "eventRangeStart": "2024-02-01", "eventRangeEnd": "2024-02-01" }),
    ] {
        let (status, error) = admin.post(PERIODS, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
    }
    let (_, unchanged) = admin.get(&path).await;
    assert_eq!(unchanged, hs);
    assert_eq!(host.stored("REGISTRATION_PERIOD").await, 2);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());

    // Moving both ends at once is checked on the result.
    let (status, moved) = admin.put(&path, &json!({ "data": { "start": "2023-07-01", "end": "2023-08-01" } })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (&moved["start"], &moved["end"]),
        (&json!("2023-07-01T00:00:00.000Z"), &json!("2023-08-01T00:00:00.000Z"))
    );
    host.stop().await;
}

async fn users_cannot_change_periods(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (hs, _) = seed(&host.admin().await).await;
    let (user, _) = host.user("USER").await;
    let position = host.log_position().await;
    let path = format!("{PERIODS}/{}", hs["id"].as_str().unwrap());

    let (status, _) = user.put(&path, &json!({ "data": { "name": "FOO" } })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user.post(PERIODS, &json!({ "name": "FOO", "description": "BAR" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user.delete(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, unchanged) = user.get(&path).await;
    assert_eq!(unchanged, hs);
    assert_eq!(host.stored("REGISTRATION_PERIOD").await, 2);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn admins_delete_periods(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (hs, fs) = seed(&admin).await;
    let position = host.log_position().await;
    let id = hs["id"].as_str().unwrap();

    let (status, body) = admin.delete(&format!("{PERIODS}/{id}")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, list) = admin.get(PERIODS).await;
    assert_eq!(list, json!([fs]));
    assert_eq!(
        host.notified_since(position).await,
        [notification("DELETED_RECORD", json!({ "type": "REGISTRATION_PERIOD", "id": id }))]
    );

    // Deviation: the original answers 500 for a missing period.
    let (status, _) = admin.delete(&format!("{PERIODS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(host.notified_since(position).await.len(), 1);
    host.stop().await;
}

/// Through the `EVENT` plugin, which finds the periods of an event's departments by the
/// element index this plugin declares on `departmentIds`.
async fn a_period_opens_submissions_for_its_departments(backend: Backend) {
    let host = TestHost::start(backend).await;
    // Sessions follow the host clock: sign in once it is pinned.
    host.admin().await.put("/api/v1/admin/clock", &json!({ "now": "2027-03-15T00:00:00.000Z" })).await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    let (_, department) = admin.post("/api/v1/departments", &json!({ "name": "Gymnasium" })).await;
    let department = department["id"].as_str().unwrap();
    let body = json!({
        "name": "SJ27", "start": "2027-03-01", "end": "2027-03-31",
        "eventRangeStart": "2027-04-01", "eventRangeEnd": "2027-07-31",
    });
    let (_, period) = admin.post(PERIODS, &body).await;
    let path = format!("{PERIODS}/{}", period["id"].as_str().unwrap());

    let submit = async || {
        let (status, event) = user
            .post("/api/v1/events", &json!({ "start": "2027-05-03T08:00:00.000Z", "end": "2027-05-03T10:00:00.000Z" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{event}");
        let id = event["id"].as_str().unwrap();
        let (status, event) =
            user.put(&format!("/api/v1/events/{id}"), &json!({ "data": { "departmentIds": [department] } })).await;
        assert_eq!(status, StatusCode::OK, "{event}");
        let (status, _) =
            user.post("/api/v1/events/change_state", &json!({ "data": { "ids": [id], "state": "REVIEW" } })).await;
        status
    };

    assert_eq!(submit().await, StatusCode::BAD_REQUEST, "the period has no departments yet");
    let (status, _) = admin.put(&path, &json!({ "data": { "departmentIds": [department] } })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(submit().await, StatusCode::CREATED, "open for the department");
    let (status, _) = admin.put(&path, &json!({ "data": { "departmentIds": [] } })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(submit().await, StatusCode::BAD_REQUEST, "the department was taken out again");
    host.stop().await;
}
