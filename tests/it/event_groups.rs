//! The `event-group` plugin over HTTP, ported from events-api's
//! `tests/integration/eventGroup.spec.ts`: groups are for their members only (404 for
//! everyone else, admins included), and each change is announced to exactly the members
//! the original tells.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::events::{SEEDED, deleted, id_of, note, pin_clock, seed_event, seed_group, stored};
use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    groups_are_invisible_to_non_members,
    creating_keeps_the_events_the_caller_may_see,
    members_list_their_groups_and_their_root_events,
    updates_are_announced_to_each_member,
    deleting_unlinks_the_events,
    deleting_with_destroy_drafts_deletes_the_drafts,
    cloning_copies_the_group_and_clones_its_events,
);

const GROUPS: &str = "/api/v1/event_groups";

async fn groups_are_invisible_to_non_members(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (_, member) = host.user("USER").await;
    let (stranger, _) = host.user("USER").await;
    let admin = host.admin().await;
    let group = seed_group(&host, "private", &[id_of(&member)], &[]).await;
    let position = host.log_position().await;
    for client in [&stranger, &admin] {
        for (status, body) in [
            client.get(&format!("{GROUPS}/{group}")).await,
            client.get(&format!("{GROUPS}/{group}/events")).await,
            client.put(&format!("{GROUPS}/{group}"), &json!({ "data": { "name": "mine" } })).await,
            client.delete(&format!("{GROUPS}/{group}")).await,
            client.post(&format!("{GROUPS}/{group}/clone"), &json!({})).await,
        ] {
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        }
        let (_, list) = client.get(GROUPS).await;
        assert_eq!(list, json!([]));
    }
    let (status, _) = host.anonymous().get(GROUPS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&host, "EVENT_GROUP", &group).await.unwrap()["name"], "private");
    assert_eq!(host.stored("EVENT_GROUP").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn creating_keeps_the_events_the_caller_may_see(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, other) = host.user("USER").await;
    let me = id_of(&me);
    pin_clock(&host, "2026-11-27T10:00:00.000Z").await;
    let mine = seed_event(&host, me, "DRAFT", json!({})).await;
    let published = seed_event(&host, id_of(&other), "PUBLISHED", json!({})).await;
    let foreign = seed_event(&host, id_of(&other), "DRAFT", json!({})).await;

    let position = host.log_position().await;
    let (status, group) = user
        .post(
            GROUPS,
            &json!({ "name": "Sporttag", "description": "all of it", "event_ids": [mine, published, foreign] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let mut event_ids = vec![mine.clone(), published.clone()];
    event_ids.sort();
    assert_eq!(
        group,
        json!({
            "id": id_of(&group), "name": "Sporttag", "description": "all of it", "collection": "", "meta": {},
            "eventIds": event_ids, "userIds": [me],
            "createdAt": "2026-11-27T10:00:00.000Z", "updatedAt": "2026-11-27T10:00:00.000Z",
        })
    );
    assert_eq!(host.notified_since(position).await, [note("NEW_RECORD", "EVENT_GROUP", &group, me, false)]);

    let position = host.log_position().await;
    let (status, _) = user.post(GROUPS, &json!({ "name": "x".repeat(10_001) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.post(GROUPS, &json!({ "name": "x", "event_ids": "not a list" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(host.stored("EVENT_GROUP").await, 1);
    assert_eq!(host.notified_since(position).await, Vec::<Value>::new());
    host.stop().await;
}

async fn members_list_their_groups_and_their_root_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, other) = host.user("USER").await;
    let me = id_of(&me);
    let root = seed_event(&host, me, "PUBLISHED", json!({})).await;
    let version = seed_event(&host, me, "DRAFT", json!({ "parentId": root })).await;
    let mine = seed_group(&host, "mine", &[me, id_of(&other)], &[&root, &version]).await;
    seed_group(&host, "theirs", &[id_of(&other)], &[&root]).await;

    let (status, list) = user.get(GROUPS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], json!(mine));
    let (status, found) = user.get(&format!("{GROUPS}/{mine}")).await;
    assert_eq!((status, &found), (StatusCode::OK, &list[0]));
    let (status, events) = user.get(&format!("{GROUPS}/{mine}/events")).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!((&events[0]["id"], &events[0]["createdAt"]), (&json!(root), &json!(SEEDED)));
    host.stop().await;
}

async fn updates_are_announced_to_each_member(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, friend) = host.user("USER").await;
    let (_, leaving) = host.user("USER").await;
    let (me, friend, leaving) = (id_of(&me), id_of(&friend), id_of(&leaving));
    let event = seed_event(&host, me, "DRAFT", json!({})).await;
    let foreign = seed_event(&host, friend, "DRAFT", json!({})).await;
    let group = seed_group(&host, "team", &[me, leaving], &[]).await;

    let position = host.log_position().await;
    let (status, updated) = user
        .put(
            &format!("{GROUPS}/{group}"),
            &json!({ "data": { "name": "Team", "collection": "2027", "eventIds": [event, foreign],
                               "userIds": [me, friend] } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["name"], &updated["collection"], &updated["eventIds"]),
        (&json!("Team"), &json!("2027"), &json!([event]))
    );
    let mut members = vec![me, friend];
    members.sort();
    assert_eq!(updated["userIds"], json!(members));
    let expected: Vec<Value> =
        members.iter().map(|m| note("CHANGED_RECORD", "EVENT_GROUP", &updated, m, false)).collect();
    assert_eq!(host.notified_since(position).await, expected, "the members after the update, not {leaving}");
    host.stop().await;
}

async fn deleting_unlinks_the_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, friend) = host.user("USER").await;
    let (me, friend) = (id_of(&me), id_of(&friend));
    let draft = seed_event(&host, me, "DRAFT", json!({})).await;
    let group = seed_group(&host, "team", &[me, friend], &[&draft]).await;
    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{GROUPS}/{group}?eventAction=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = user.delete(&format!("{GROUPS}/{group}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut members = vec![me, friend];
    members.sort();
    assert_eq!(host.notified_since(position).await, [deleted("EVENT_GROUP", &group, &members, false)]);
    assert_eq!((host.stored("EVENT_GROUP").await, host.stored("EVENT").await), (0, 1));
    host.stop().await;
}

async fn deleting_with_destroy_drafts_deletes_the_drafts(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, friend) = host.user("USER").await;
    let (me, friend) = (id_of(&me), id_of(&friend));
    let first = seed_event(&host, me, "DRAFT", json!({})).await;
    let second = seed_event(&host, friend, "DRAFT", json!({})).await;
    let published = seed_event(&host, me, "PUBLISHED", json!({})).await;
    let group = seed_group(&host, "team", &[me, friend], &[&first, &second, &published]).await;
    let other_group = seed_group(&host, "other", &[friend], &[&first, &published]).await;
    let position = host.log_position().await;
    let (status, _) = user.delete(&format!("{GROUPS}/{group}?eventAction=destroy_drafts")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut members = vec![me, friend];
    members.sort();
    let mut drafts = [first.clone(), second.clone()];
    drafts.sort();
    assert_eq!(
        host.notified_since(position).await,
        [
            deleted("EVENT_GROUP", &group, &members, false),
            deleted("EVENT", &drafts[0], &members, true),
            deleted("EVENT", &drafts[1], &members, true),
        ]
    );
    assert_eq!(host.stored("EVENT").await, 1, "the published event stays");
    assert_eq!(stored(&host, "EVENT_GROUP", &other_group).await.unwrap()["eventIds"], json!([published]));
    host.stop().await;
}

async fn cloning_copies_the_group_and_clones_its_events(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let (_, friend) = host.user("USER").await;
    let (me, friend) = (id_of(&me), id_of(&friend));
    let root = seed_event(&host, friend, "DRAFT", json!({ "classes": ["26Ga"] })).await;
    let version = seed_event(&host, friend, "DRAFT", json!({ "parentId": root })).await;
    let group = seed_group(&host, "Sporttag", &[me, friend], &[&root, &version]).await;
    let position = host.log_position().await;
    let (status, clone) = user.post(&format!("{GROUPS}/{group}/clone"), &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{clone}");
    assert_eq!(
        (&clone["name"], &clone["collection"], &clone["userIds"]),
        (&json!("Sporttag 📋"), &json!(""), &json!([me]))
    );
    let event_ids = clone["eventIds"].as_array().unwrap();
    assert_eq!(event_ids.len(), 1, "only root events are cloned");
    let cloned = stored(&host, "EVENT", event_ids[0].as_str().unwrap()).await.unwrap();
    assert_eq!(
        (&cloned["cloned"], &cloned["clonedFromId"], &cloned["authorId"], &cloned["classes"]),
        (&json!(true), &json!(root), &json!(me), &json!(["26Ga"]))
    );
    assert_eq!(host.notified_since(position).await, [note("NEW_RECORD", "EVENT_GROUP", &clone, me, false)]);
    host.stop().await;
}
