//! The plugin boundary: faults (trap, timeout, memory and stack exhaustion, invalid or
//! oversized output) and grant violations are
//! contained — the mapped status, nothing written, nothing logged for emission — and the
//! next call to the same plugin works.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    faults_are_contained_and_the_plugin_keeps_serving,
    a_plugin_that_keeps_faulting_is_isolated,
    limits_can_be_set_per_plugin,
    guests_that_try_to_wait_hold_nothing,
    the_reason_behind_an_error_id_is_in_the_plugins_journal,
    outgoing_http_is_refused,
);

/// A client that gets a 502 sees only an `errorId`; the plugin's author (an ADMIN) finds the
/// reason under it in the plugin's journal, beside what the plugin printed.
async fn the_reason_behind_an_error_id_is_in_the_plugins_journal(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    let logs = "/api/v1/admin/plugins/fault-misbehave/logs";
    let error_id = async |action: &str| {
        let (status, body) = user.post(&format!("/api/v1/faults/{action}"), &json!({})).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{action}: {body}");
        assert_eq!(body["error"], "the plugin failed", "{action}: the client is told no more");
        body["errorId"].as_str().unwrap().to_owned()
    };
    let reason = async |id: &str| {
        let (status, entries) = admin.get(&format!("{logs}?errorId={id}")).await;
        assert_eq!(status, StatusCode::OK, "{entries}");
        let entries = entries.as_array().unwrap().clone();
        assert_eq!(entries.len(), 1, "one fault per errorId: {entries:?}");
        assert_eq!(entries[0]["level"], "fault");
        assert_eq!(entries[0]["version"], "0.1.0");
        entries[0]["message"].as_str().unwrap().to_owned()
    };

    let trapped = error_id("trap").await;
    let message = reason(&trapped).await;
    assert!(message.starts_with("trap: "), "{message}");
    let invalid = error_id("notify-other").await;
    let message = reason(&invalid).await;
    assert_eq!(message, "invalid output: record type DEPARTMENT is not in the plugin's write grants");
    let internal = error_id("read-other").await;
    let message = reason(&internal).await;
    assert!(message.starts_with("internal error: ") && message.contains("DEPARTMENT"), "{message}");

    // What the plugin printed is there too: a Rust panic's message goes to stderr.
    let (_, all) = admin.get(logs).await;
    let all = all.as_array().unwrap();
    assert!(
        all.iter().any(|e| e["level"] == "output" && e["message"].as_str().unwrap().contains("traps on purpose")),
        "{all:?}"
    );
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first: {seqs:?}");
    let (_, after) = admin.get(&format!("{logs}?since={}", seqs[seqs.len() - 2])).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "since: only what came after");

    assert_eq!(user.get(logs).await.0, StatusCode::FORBIDDEN, "admins only");
    assert_eq!(host.anonymous().get(logs).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(admin.get("/api/v1/admin/plugins/nothing/logs").await.0, StatusCode::NOT_FOUND);
    host.stop().await;
}

/// A component that imports `wasi:http` (as componentize-js output does) loads, and its
/// outgoing request is refused in the host: the guest sees `HTTP-request-denied`.
async fn outgoing_http_is_refused(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let (status, body) = user.post("/api/v1/faults/fetch", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "ErrorCode::HttpRequestDenied", "{body}");
    host.stop().await;
}

async fn faults_are_contained_and_the_plugin_keeps_serving(backend: Backend) {
    let host = TestHost::start_with(backend, |c| c.limits.timeout = Duration::from_millis(200)).await;
    let (user, _) = host.user("USER").await;

    let (status, body) = user.post("/api/v1/faults/ok", &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let counts =
        async || (host.stored("FAULT").await, host.stored("DEPARTMENT").await, host.logged_notifications().await);
    let mut baseline = counts().await;
    assert_eq!(baseline, (1, 0, 1));

    let cases = [
        ("trap", StatusCode::BAD_GATEWAY),
        ("loop", StatusCode::GATEWAY_TIMEOUT),
        // Waiting is denied: the timer traps at once.
        ("sleep", StatusCode::BAD_GATEWAY),
        ("bad-status", StatusCode::BAD_GATEWAY),
        ("write-other", StatusCode::BAD_GATEWAY),
        ("notify-other", StatusCode::BAD_GATEWAY),
        ("read-other", StatusCode::BAD_GATEWAY),
        ("conflict", StatusCode::CONFLICT),
        ("memory-bomb", StatusCode::BAD_GATEWAY),
        ("recurse", StatusCode::BAD_GATEWAY),
        ("huge-body", StatusCode::BAD_GATEWAY),
        // Building 100,000 notifications may outrun the deadline first: 504 then.
        ("flood", StatusCode::BAD_GATEWAY),
        ("other-session", StatusCode::BAD_GATEWAY),
    ];
    for (action, expected) in cases {
        let started = Instant::now();
        let (status, body) = user.post(&format!("/api/v1/faults/{action}"), &json!({})).await;
        let timed_out_instead = action == "flood" && status == StatusCode::GATEWAY_TIMEOUT;
        assert!(status == expected || timed_out_instead, "{action}: {status} {body}");
        assert!(body["error"].is_string(), "{action}: {body}");
        if status.is_server_error() {
            assert!(body["errorId"].is_string(), "5xx answers carry an error id: {body}");
        }
        if action == "loop" {
            assert!(started.elapsed() < Duration::from_secs(5), "the endless loop was stopped");
        }
        if action == "sleep" {
            assert!(started.elapsed() < Duration::from_secs(2), "the sleep was not waited out");
            assert!(body["error"].as_str().is_some(), "{body}");
        }
        assert_eq!(counts().await, baseline, "{action} changed stored data or logged a notification");
        let (status, _) = user.post("/api/v1/faults/ok", &json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "the plugin serves again after {action}");
        baseline = (baseline.0 + 1, baseline.1, baseline.2 + 1);
        assert_eq!(counts().await, baseline);
    }
    host.stop().await;
}

async fn a_plugin_that_keeps_faulting_is_isolated(backend: Backend) {
    let host = TestHost::start_with(backend, |c| {
        c.limits.isolate_after = 3;
        c.limits.cool_down = Duration::from_millis(1500);
    })
    .await;
    let (user, _) = host.user("USER").await;
    // Traps and invalid output count alike.
    for action in ["bad-status", "trap", "huge-body"] {
        assert_eq!(user.post(&format!("/api/v1/faults/{action}"), &json!({})).await.0, StatusCode::BAD_GATEWAY);
    }
    let started = Instant::now();
    let (status, body) = user.post("/api/v1/faults/ok", &json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "isolated: {body}");
    assert!(started.elapsed() < Duration::from_millis(500), "answered at once, without calling the plugin");
    assert_eq!(host.anonymous().get("/api/v1/departments").await.0, StatusCode::OK, "other plugins serve on");

    // After the cool-down the plugin is on probation: one fault isolates it again at once.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(user.post("/api/v1/faults/trap", &json!({})).await.0, StatusCode::BAD_GATEWAY, "tried again");
    assert_eq!(user.post("/api/v1/faults/ok", &json!({})).await.0, StatusCode::SERVICE_UNAVAILABLE, "isolated again");

    // A call that does not fault ends the probation: it takes three faults again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        user.post("/api/v1/faults/ok", &json!({})).await.0,
        StatusCode::CREATED,
        "tried again after the cool-down"
    );
    for _ in 0..2 {
        assert_eq!(user.post("/api/v1/faults/trap", &json!({})).await.0, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(user.post("/api/v1/faults/ok", &json!({})).await.0, StatusCode::CREATED, "two faults of three");
    host.stop().await;
}

async fn limits_can_be_set_per_plugin(backend: Backend) {
    let host = TestHost::start_with(backend, |c| {
        c.limits.timeout = Duration::from_secs(2);
        let mut strict = c.limits.clone();
        strict.timeout = Duration::from_millis(50);
        c.limits.per_plugin.insert("fault-misbehave".into(), strict);
    })
    .await;
    let admin = host.admin().await;
    let started = Instant::now();
    assert_eq!(admin.post("/api/v1/faults/loop", &json!({})).await.0, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(1500), "the plugin's own 50 ms deadline applied");

    let (_, list) = admin.get("/api/v1/admin/plugins").await;
    let limits = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["limits"].clone();
    assert_eq!(limits("fault-misbehave")["timeoutMs"], 50, "the operator sees the override");
    assert_eq!(limits("department")["timeoutMs"], 2000, "other plugins keep the global limits");
    host.stop().await;
}

/// A guest that sleeps would wait in the host, where no epoch deadline reaches it, holding
/// the write lock and a connection. Waiting is denied, so concurrent sleepers take nothing
/// from well-behaved requests, and each is counted as a fault at once.
async fn guests_that_try_to_wait_hold_nothing(backend: Backend) {
    // Counted faults, not isolation, are the point here.
    let host = TestHost::start_with(backend, |c| c.limits.isolate_after = 100).await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    let started = Instant::now();
    let mut sleepers = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let (http, url) = (user.http.clone(), user.url("/api/v1/faults/sleep"));
        sleepers.spawn(async move { http.post(url).json(&json!({})).send().await.unwrap().status() });
    }
    let department = json!({ "name": "Gymnasium", "description": "G" });
    let anonymous = host.anonymous();
    let create = admin.post("/api/v1/departments", &department);
    let list = anonymous.get("/api/v1/departments");
    let ((created, _), (listed, _), sleepers) = tokio::join!(create, list, sleepers.join_all());
    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(listed, StatusCode::OK);
    assert!(sleepers.iter().all(|status| *status == StatusCode::BAD_GATEWAY), "{sleepers:?}");
    // Before, each sleeper held the write lock for its 3 s in turn.
    assert!(started.elapsed() < Duration::from_secs(5), "nobody waited out a sleep: {:?}", started.elapsed());
    let (_, list) = admin.get("/api/v1/admin/plugins").await;
    let stats = &list.as_array().unwrap().iter().find(|p| p["name"] == "fault-misbehave").unwrap()["stats"];
    assert!(stats["faults"].as_u64().unwrap() >= 9, "each sleeper counted as a fault: {stats}");
    host.stop().await;
}
