//! The `subscription` plugin over HTTP, ported from events-api's
//! `tests/integration/subscriptions.spec.ts`: get-or-create for the caller, updates by the
//! owner or an admin, and the exact notifications of each.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::jobs::{event_data, insert_record};
use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    subscriptions_need_a_session,
    the_first_post_creates_the_callers_subscription,
    a_later_post_returns_it_unchanged_and_tells_nobody,
    owners_update_their_subscription,
    the_lists_are_sets_of_existing_records,
    only_the_owner_and_admins_may_update,
);

const SUBSCRIPTIONS: &str = "/api/v1/subscriptions";

async fn subscriptions_need_a_session(backend: Backend) {
    let host = TestHost::start(backend).await;
    let anonymous = host.anonymous();
    let (status, _) = anonymous.post(SUBSCRIPTIONS, &json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.put(&format!("{SUBSCRIPTIONS}/some-id"), &json!({ "data": {} })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The original serves no GET: a subscription is read as part of the user.
    let (user, _) = host.user("USER").await;
    let (status, _) = user.get(SUBSCRIPTIONS).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(host.stored("SUBSCRIPTION").await, 0);
    host.stop().await;
}

async fn the_first_post_creates_the_callers_subscription(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    admin.put("/api/v1/admin/clock", &json!({ "now": "2026-11-27T10:00:00.000Z" })).await;
    let (user, me) = host.user("USER").await;
    let position = host.log_position().await;

    // No body is needed (the original's client sends none); a body is ignored.
    let response = user.http.post(user.url(SUBSCRIPTIONS)).send().await.unwrap();
    let (status, subscription) = crate::support::Client::read(response).await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    let id = subscription["id"].as_str().unwrap();
    let locator = subscription["icsLocator"].as_str().unwrap();
    let uuid = locator.strip_suffix(".ics").expect("<uuid>.ics");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{locator}");
    assert_eq!(
        subscription,
        json!({
            "id": id,
            "userId": me["id"],
            "subscribeToAffected": true,
            "icsLocator": locator,
            "departmentIds": [],
            "ignoredEventIds": [],
            "untisClassIds": [],
            "createdAt": "2026-11-27T10:00:00.000Z",
            "updatedAt": "2026-11-27T10:00:00.000Z",
        })
    );
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "NEW_RECORD",
            "message": { "type": "SUBSCRIPTION", "record": subscription },
            "to": [me["id"]],
            "toSelf": false,
        })]
    );

    // Each user gets their own, with a locator of its own.
    let (other, other_user) = host.user("USER").await;
    let (status, theirs) = other.post(SUBSCRIPTIONS, &json!({ "userId": me["id"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(theirs["userId"], other_user["id"], "the owner is always the caller");
    assert_ne!(theirs["icsLocator"], subscription["icsLocator"]);
    assert_eq!(host.stored("SUBSCRIPTION").await, 2);
    host.stop().await;
}

async fn a_later_post_returns_it_unchanged_and_tells_nobody(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let (_, created) = user.post(SUBSCRIPTIONS, &json!({})).await;
    let position = host.log_position().await;

    let (status, again) = user.post(SUBSCRIPTIONS, &json!({ "subscribeToAffected": false })).await;
    assert_eq!((status, &again), (StatusCode::OK, &created));
    assert_eq!(host.stored("SUBSCRIPTION").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn owners_update_their_subscription(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, me) = host.user("USER").await;
    let (_, created) = user.post(SUBSCRIPTIONS, &json!({})).await;
    admin.put("/api/v1/admin/clock", &json!({ "now": "2026-11-27T11:00:00.000Z" })).await;
    let position = host.log_position().await;
    let path = format!("{SUBSCRIPTIONS}/{}", created["id"].as_str().unwrap());

    let (status, updated) = user.put(&path, &json!({ "data": { "subscribeToAffected": false } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let mut expected = created.clone();
    expected["subscribeToAffected"] = json!(false);
    expected["updatedAt"] = json!("2026-11-27T11:00:00.000Z");
    assert_eq!(updated, expected);
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "CHANGED_RECORD",
            "message": { "type": "SUBSCRIPTION", "record": updated },
            "to": [me["id"]],
            "toSelf": false,
        })]
    );

    // The client sends the whole record back: the owner and the locator stay as they are.
    let mut whole = updated.clone();
    whole["userId"] = json!("someone-else");
    whole["icsLocator"] = json!("guessable.ics");
    whole["untisClassIds"] = json!([12, 7, 12]);
    let (status, again) = user.put(&path, &json!({ "data": whole })).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let mut expected = updated.clone();
    expected["untisClassIds"] = json!([12, 7]);
    assert_eq!(again, expected);
    host.stop().await;
}

async fn the_lists_are_sets_of_existing_records(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, me) = host.user("USER").await;
    let (_, created) = user.post(SUBSCRIPTIONS, &json!({})).await;
    let (_, gymd) = admin.post("/api/v1/departments", &json!({ "name": "GYMD" })).await;
    let (_, gymf) = admin.post("/api/v1/departments", &json!({ "name": "GYMF" })).await;
    let (gymd, gymf) = (gymd["id"].as_str().unwrap(), gymf["id"].as_str().unwrap());
    let at = "2026-11-27T12:00:00.000Z";
    let event = insert_record(&host, "EVENT", event_data(me["id"].as_str().unwrap(), "PUBLISHED", None), at).await;
    let path = format!("{SUBSCRIPTIONS}/{}", created["id"].as_str().unwrap());

    // Each id once, in the order given; ids that name no record are dropped, so that an id
    // left behind by a deleted department or event never blocks an update.
    let (status, updated) = user
        .put(
            &path,
            &json!({ "data": {
                "departmentIds": [gymf, "no-such-department", gymd, gymf],
                "ignoredEventIds": [event, "no-such-event", event],
            } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["departmentIds"], json!([gymf, gymd]));
    assert_eq!(updated["ignoredEventIds"], json!([event]));

    let position = host.log_position().await;
    for data in [
        json!({ "subscribeToAffected": "no" }),
        json!({ "departmentIds": gymd }),
        json!({ "ignoredEventIds": [1] }),
        json!({ "untisClassIds": ["26Ga"] }),
    ] {
        let (status, error) = user.put(&path, &json!({ "data": data })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{data}: {error}");
    }
    let (status, _) = user.put(&path, &json!({ "subscribeToAffected": false })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the body is {{data: ...}}");
    let (_, unchanged) = user.post(SUBSCRIPTIONS, &json!({})).await;
    assert_eq!(unchanged, updated);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn only_the_owner_and_admins_may_update(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (_, admin_user) = admin.get("/api/v1/user").await;
    let (user, me) = host.user("USER").await;
    let (other, _) = host.user("USER").await;
    let (_, created) = user.post(SUBSCRIPTIONS, &json!({})).await;
    let position = host.log_position().await;
    let path = format!("{SUBSCRIPTIONS}/{}", created["id"].as_str().unwrap());

    let (status, _) = other.put(&path, &json!({ "data": { "subscribeToAffected": false } })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = other.put(&format!("{SUBSCRIPTIONS}/missing"), &json!({ "data": {} })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, unchanged) = user.post(SUBSCRIPTIONS, &json!({})).await;
    assert_eq!(unchanged, created);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());

    // Deviation: the original tells only the caller; the owner is told too.
    let (status, updated) = admin.put(&path, &json!({ "data": { "subscribeToAffected": false } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((&updated["userId"], &updated["subscribeToAffected"]), (&me["id"], &json!(false)));
    assert_eq!(
        host.notified_since(position).await,
        [json!({
            "event": "CHANGED_RECORD",
            "message": { "type": "SUBSCRIPTION", "record": updated },
            "to": [admin_user["id"], me["id"]],
            "toSelf": false,
        })]
    );
    host.stop().await;
}
