//! Operating plugins on a running server: installs through the admin API and the watched
//! directory, refusals that leave the running version serving, rollback, restarts that serve
//! the installed version from the precompiled cache, and the metrics.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::support::{Backend, Client, TestHost, both_backends};

both_backends!(
    refused_installs_leave_the_running_version_serving,
    rollback_and_restart_serve_the_chosen_version,
    the_plugin_directory_is_watched,
);

async fn install(client: &Client, name: &str, guest: &str, query: &str) -> (StatusCode, Value) {
    let bytes = std::fs::read(guest).unwrap();
    let url = client.url(&format!("/api/v1/admin/plugins/{name}{query}"));
    Client::read(client.http.put(url).header(CONTENT_TYPE, "application/wasm").body(bytes).send().await.unwrap()).await
}

async fn generation(host: &TestHost) -> Value {
    let (status, body) = host.anonymous().get("/api/v1/swaps").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["generation"].clone()
}

async fn refused_installs_leave_the_running_version_serving(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    let (status, body) = install(&admin, "swap", integration_tests::SWAP_ONE, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["name"].as_str(), body["version"].as_str()), (Some("swap"), Some("1.0.0")));
    assert_eq!(generation(&host).await, 1);

    let garbage = admin
        .http
        .put(admin.url("/api/v1/admin/plugins/swap"))
        .header(CONTENT_TYPE, "application/wasm")
        .body("not a component")
        .send()
        .await
        .unwrap();
    let (status, body) = Client::read(garbage).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("not a valid WebAssembly component"), "{body}");

    // A valid but empty component: it compiles, but exports no `handler`.
    let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let wrong_world = admin
        .http
        .put(admin.url("/api/v1/admin/plugins/swap"))
        .header(CONTENT_TYPE, "application/wasm")
        .body(empty_component.to_vec())
        .send()
        .await
        .unwrap();
    let (status, body) = Client::read(wrong_world).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("does not match the tidings:plugin interface"), "{body}");

    let cases = [
        ("swap", integration_tests::SWAP_RETYPED, "", "RETYPED"),
        ("swap", integration_tests::SWAP_WIDER, "", "wider grants"),
        ("department", integration_tests::SWAP_TWO, "", "describes plugin \"swap\""),
        ("swap", integration_tests::FAULT_MISBEHAVE, "", "describes plugin \"fault-misbehave\""),
    ];
    for (name, guest, query, reason) in cases {
        let (status, body) = install(&admin, name, guest, query).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{guest}: {body}");
        assert!(body["error"].as_str().unwrap().contains(reason), "{guest}: {body}");
        assert_eq!(generation(&host).await, 1, "still serving after refusing {guest}");
    }
    let text = admin.http.put(admin.url("/api/v1/admin/plugins/swap")).body("x").send().await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(install(&user, "swap", integration_tests::SWAP_TWO, "").await.0, StatusCode::FORBIDDEN);
    assert_eq!(install(&host.anonymous(), "swap", integration_tests::SWAP_TWO, "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(generation(&host).await, 1, "no refused install changed the serving version");

    let (status, body) = install(&admin, "swap", integration_tests::SWAP_WIDER, "?approveGrants=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["grants"]["read"], json!(["DEPARTMENT"]));
    assert_eq!(generation(&host).await, 3);
    host.stop().await;
}

async fn rollback_and_restart_serve_the_chosen_version(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    assert_eq!(admin.post("/api/v1/admin/plugins/swap/rollback", &json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(install(&admin, "swap", integration_tests::SWAP_ONE, "").await.0, StatusCode::OK);
    assert_eq!(admin.post("/api/v1/admin/plugins/swap/rollback", &json!({})).await.0, StatusCode::CONFLICT);
    assert_eq!(install(&admin, "swap", integration_tests::SWAP_TWO, "").await.0, StatusCode::OK);
    assert_eq!(generation(&host).await, 2);
    let (status, _) = admin.post("/api/v1/swaps", &json!({})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, list) = admin.get("/api/v1/admin/plugins").await;
    let swap = list.as_array().unwrap().iter().find(|p| p["name"] == "swap").unwrap().clone();
    assert_eq!((swap["version"].as_str(), swap["previous"]["version"].as_str()), (Some("2.0.0"), Some("1.0.0")));
    assert_eq!(swap["stats"]["calls"], 2, "{swap}");
    assert!(swap["stats"]["latencyMicros"]["p50"].as_u64().is_some(), "{swap}");
    for bundled in ["department", "semester"] {
        assert!(list.as_array().unwrap().iter().any(|p| p["name"] == bundled), "{list}");
    }

    let started = Instant::now();
    let (status, body) = admin.post("/api/v1/admin/plugins/swap/rollback", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1), "a rollback to the warm version is quick");
    assert_eq!(generation(&host).await, 1);

    let (status, metrics) = admin.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("tidings_plugin_calls_total{plugin=\"swap\",version=\"1.0.0\"}"), "{metrics}");
    assert!(metrics.contains("tidings_plugin_call_duration_seconds_bucket"), "{metrics}");
    assert_eq!(host.anonymous().get("/metrics").await.0, StatusCode::UNAUTHORIZED);

    // A restart serves the rolled-back version from the database, from the precompiled cache.
    let cache = host.config.data_dir.join("cache");
    let cached = std::fs::read_dir(&cache).unwrap().count();
    assert!(cached >= 4, "bundled and installed plugins are cached: {cached}");
    let host = host.restart().await;
    assert_eq!(generation(&host).await, 1);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), cached, "the restart compiled nothing new");
    let admin = host.admin().await;
    let (status, body) = admin.post("/api/v1/admin/plugins/swap/rollback", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "the previous version is warm after a restart: {body}");
    assert_eq!(generation(&host).await, 2);
    host.stop().await;
}

async fn the_plugin_directory_is_watched(backend: Backend) {
    let host = TestHost::start(backend).await;
    let dir = host.config.plugin_dir.clone().unwrap();
    std::fs::copy(integration_tests::SWAP_ONE, dir.join("swap.wasm")).unwrap();
    wait_for_generation(&host, 1).await;
    // A refused component is logged and changes nothing.
    std::fs::copy(integration_tests::SWAP_RETYPED, dir.join("swap.wasm")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(generation(&host).await, 1);
    std::fs::copy(integration_tests::SWAP_TWO, dir.join("swap.wasm")).unwrap();
    wait_for_generation(&host, 2).await;
    host.stop().await;
}

async fn wait_for_generation(host: &TestHost, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = host.anonymous().get("/api/v1/swaps").await;
        if status == StatusCode::OK && body["generation"] == expected {
            return;
        }
        assert!(Instant::now() < deadline, "generation {expected} never served; last answer {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
