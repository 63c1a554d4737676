//! Host services that the events-api port asked for, for every plugin: list queries (`in`,
//! `contains` over an element index), uploads, background tasks that survive a restart
//! (shown with the `work-batches` test guest), and user views outside a collection
//! (`notify-rooms`' `GET /api/v1/user/notes`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::jobs::insert_record;
use crate::support::{Backend, Client, TestHost, both_backends};

both_backends!(
    list_queries_find_records_by_element_and_by_value,
    an_upload_starts_a_task_that_commits_after_the_response,
    a_task_that_keeps_failing_ends_with_its_failure_recorded,
    a_task_waits_while_its_plugin_is_isolated,
    a_task_left_by_a_stopped_host_runs_after_the_restart,
    a_claimed_task_is_left_to_its_node_until_the_lease_ends,
    a_plugin_serves_a_user_view_outside_its_collection,
    bad_uploads_are_refused_and_change_nothing,
    lists_in_pages_join_in_order,
    a_list_that_fails_after_its_first_page_is_cut,
);

async fn bad_uploads_are_refused_and_change_nothing(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let url = user.url("/api/v1/batches");
    let part = |name: &str| reqwest::multipart::Part::bytes(b"a\n".to_vec()).file_name(name.to_owned());
    let two_files = reqwest::multipart::Form::new().part("file", part("a.txt")).part("other", part("b.txt"));
    let (status, error) = Client::read(user.http.post(&url).multipart(two_files).send().await.unwrap()).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("one file per request")));
    for nul in [
        reqwest::multipart::Form::new().part("file", part("a.txt")).text("mode", "o\0k"),
        reqwest::multipart::Form::new().part("file", part("a\0.txt")),
    ] {
        let (status, _) = Client::read(user.http.post(&url).multipart(nul).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let broken = user
        .http
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nno end")
        .send()
        .await
        .unwrap();
    assert_eq!(Client::read(broken).await.0, StatusCode::BAD_REQUEST);
    let text = user.http.post(&url).header("content-type", "text/csv").body("a,b\n").send().await.unwrap();
    assert_eq!(Client::read(text).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Without a file the plugin refuses; with one it serves.
    assert_eq!(user.post("/api/v1/batches", &json!({})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!((host.stored("BATCH").await, stored_tasks(&host).await), (0, 0));
    upload(&user, "", "ok").await;
    host.stop().await;
}

async fn a_plugin_serves_a_user_view_outside_its_collection(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let (status, _) = user.post("/api/v1/notes", &json!({ "targets": [] })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(user.get("/api/v1/user/notes").await, (StatusCode::OK, json!({ "count": 1 })));
    // The host's own `/user` is untouched; other views do not exist; anonymous callers get 401.
    let (status, me) = user.get("/api/v1/user").await;
    assert_eq!((status, me["role"].as_str()), (StatusCode::OK, Some("USER")));
    assert_eq!(user.get("/api/v1/user/nothing").await.0, StatusCode::NOT_FOUND);
    assert_eq!(user.post("/api/v1/user/notes", &json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(host.anonymous().get("/api/v1/user/notes").await.0, StatusCode::UNAUTHORIZED);
    host.stop().await;
}

/// Upload a batch with `tags` and the task `mode`; returns its id.
async fn upload(client: &Client, tags: &str, mode: &str) -> String {
    let (status, batch) = client
        .upload("/api/v1/batches", &[("tags", tags), ("mode", mode)], ("file", "lines.txt", b"a\nb\nc\n".to_vec()))
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!((batch["state"].as_str(), batch["filename"].as_str()), (Some("PENDING"), Some("lines.txt")));
    batch["id"].as_str().unwrap().to_owned()
}

/// The batch as the last notification about it showed it, once it is no longer PENDING.
async fn settled(host: &TestHost, id: &str) -> Value {
    for _ in 0..400 {
        let last = host
            .notified_since(0)
            .await
            .into_iter()
            .rev()
            .find(|n| n["message"]["record"]["id"] == id)
            .map(|n| n["message"]["record"].clone());
        if let Some(batch) = last.filter(|b| b["state"] != "PENDING") {
            return batch;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} never settled");
}

async fn ids(client: &Client, path: &str) -> Vec<String> {
    let (status, ids) = client.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {ids}");
    serde_json::from_value(ids).unwrap()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn list_queries_find_records_by_element_and_by_value(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let red = upload(&admin, "red,blue", "ok").await;
    let blue = upload(&admin, "blue", "ok").await;
    let plain = upload(&admin, "", "refuse").await;

    assert_eq!(ids(&admin, "/api/v1/batches/tagged/red").await, vec![red.clone()]);
    assert_eq!(ids(&admin, "/api/v1/batches/tagged/blue").await, sorted(vec![red.clone(), blue.clone()]));
    assert_eq!(ids(&admin, "/api/v1/batches/tagged/green").await, Vec::<String>::new());
    assert_eq!(ids(&admin, "/api/v1/batches/any?tags[]=red&tags[]=green").await, vec![red.clone()]);
    assert_eq!(ids(&admin, "/api/v1/batches/any").await, Vec::<String>::new(), "an empty list matches nothing");
    let by_ids = format!("/api/v1/batches/by_ids?ids[]={red}&ids[]={plain}&ids[]=missing");
    assert_eq!(ids(&admin, &by_ids).await, sorted(vec![red.clone(), plain.clone()]));

    // The element index follows every write: the task rewrites each batch (same tags), and
    // `by_state` sees the new values.
    settled(&host, &red).await;
    settled(&host, &blue).await;
    assert_eq!(ids(&admin, "/api/v1/batches/tagged/blue").await, sorted(vec![red.clone(), blue.clone()]));
    assert_eq!(ids(&admin, "/api/v1/batches/by_state?states[]=DONE").await, sorted(vec![red, blue]));
    host.stop().await;
}

async fn an_upload_starts_a_task_that_commits_after_the_response(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let id = upload(&user, "", "ok").await;
    let batch = settled(&host, &id).await;
    assert_eq!((batch["state"].as_str(), batch["lines"].as_u64()), (Some("DONE"), Some(3)), "{batch}");
    assert_eq!(batch["log"], "attempt 1");
    let notified: Vec<Value> = host.notified_since(0).await.into_iter().map(|n| n["event"].clone()).collect();
    assert_eq!(notified, vec![json!("NEW_RECORD"), json!("CHANGED_RECORD")]);
    assert_eq!(stored_tasks(&host).await, 0, "a completed task is removed with its run's commit");
    host.stop().await;
}

async fn a_task_that_keeps_failing_ends_with_its_failure_recorded(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    for mode in ["trap", "refuse"] {
        let id = upload(&admin, "", mode).await;
        let batch = settled(&host, &id).await;
        assert_eq!(batch["state"], "ERROR", "{batch}");
        let log = batch["log"].as_str().unwrap();
        assert!(log.starts_with("attempt 4: "), "three runs, then the failure run: {log}");
        let expected = if mode == "trap" { "plugin" } else { "asked to refuse" };
        assert!(log.contains(expected), "the reason is the last attempt's error: {log}");
    }
    assert_eq!(stored_tasks(&host).await, 0);
    // The plugin keeps serving.
    let id = upload(&admin, "", "ok").await;
    assert_eq!(settled(&host, &id).await["state"], "DONE");
    host.stop().await;
}

async fn a_task_waits_while_its_plugin_is_isolated(backend: Backend) {
    // Two faults isolate the plugin, so a failing task's own attempts isolate it: its later
    // attempts and its failure run must wait for the cool-downs, not be spent on them.
    let host = TestHost::start_with(backend, |c| {
        c.limits.isolate_after = 2;
        c.limits.cool_down = Duration::from_secs(2);
    })
    .await;
    let admin = host.admin().await;
    let id = upload(&admin, "", "trap").await;
    let batch = settled(&host, &id).await;
    assert_eq!(batch["state"], "ERROR", "{batch}");
    let log = batch["log"].as_str().unwrap();
    assert!(log.starts_with("attempt 4: ") && log.contains("plugin"), "three runs, then the failure run: {log}");
    assert_eq!(stored_tasks(&host).await, 0);
    host.stop().await;
}

async fn a_task_left_by_a_stopped_host_runs_after_the_restart(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let resumed = upload(&admin, "", "ok").await;
    let given_up = upload(&admin, "", "ok").await;
    settled(&host, &resumed).await;
    settled(&host, &given_up).await;
    // Put both back as a host that stopped mid-run would leave them: the batch PENDING and
    // its task stored, one after its first attempt, one after its last.
    let position = host.log_position().await;
    let host = host
        .restart_after(async |pool| {
            for (id, attempts) in [(&resumed, 1i64), (&given_up, 3)] {
                sqlx::query(
                    "UPDATE records SET data = replace(data, '\"state\":\"DONE\"', '\"state\":\"PENDING\"') \
                     WHERE id = $1",
                )
                .bind(id)
                .execute(pool)
                .await
                .unwrap();
                let input = json!({ "id": id, "text": "1\n2\n", "mode": "ok" }).to_string();
                sqlx::query(
                    "INSERT INTO tasks (id, plugin, name, input, attempts, last_error, created_at) \
                     VALUES ($1, 'work-batches', 'count', $2, $3, NULL, '2026-01-01T00:00:00.000Z')",
                )
                .bind(format!("task-{id}"))
                .bind(input)
                .bind(attempts)
                .execute(pool)
                .await
                .unwrap();
            }
        })
        .await;
    let after = |id: &String| {
        let id = id.clone();
        let host = &host;
        async move {
            for _ in 0..200 {
                if let Some(n) =
                    host.notified_since(position).await.into_iter().find(|n| n["message"]["record"]["id"] == id)
                {
                    return n["message"]["record"].clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no notification for {id} after the restart");
        }
    };
    let batch = after(&resumed).await;
    assert_eq!((batch["state"].as_str(), batch["lines"].as_u64()), (Some("DONE"), Some(2)), "{batch}");
    assert_eq!(batch["log"], "attempt 2");
    let batch = after(&given_up).await;
    assert_eq!(batch["state"], "ERROR", "{batch}");
    assert_eq!(batch["log"], "attempt 4: the server stopped while the task was running");
    assert_eq!(stored_tasks(&host).await, 0);
    host.stop().await;
}

/// Nodes sharing a database run a task once: a claim excludes the others until its lease ends,
/// and then one other node (the first to claim) takes the task over, as from a dead node.
async fn a_claimed_task_is_left_to_its_node_until_the_lease_ends(backend: Backend) {
    use host::db::tasks;
    let host = TestHost::start(backend).await;
    let pool = &host.server.state.db.pool;
    let now = chrono::Utc::now().timestamp_millis();
    let lease = host::tasks::LEASE.as_millis() as i64;
    // Claimed by another node a moment ago, so this host's runner leaves it alone.
    sqlx::query(
        "INSERT INTO tasks (id, plugin, name, input, attempts, last_error, created_at, claimed_until) \
         VALUES ('claimed', 'work-batches', 'count', '{}', 1, NULL, '2026-01-01T00:00:00.000Z', $1)",
    )
    .bind(now + lease)
    .execute(pool)
    .await
    .unwrap();
    assert!(
        tasks::pending(pool, 16, now).await.unwrap().iter().all(|t| t.id != "claimed"),
        "not pending while claimed"
    );
    assert_eq!(tasks::claim(pool, "claimed", now, now + lease).await.unwrap(), None, "held by its node");
    // The lease ended (its node died): the first node to claim it takes it, the next does not.
    let later = now + lease + 1;
    assert!(tasks::pending(pool, 16, later).await.unwrap().iter().any(|t| t.id == "claimed"));
    let claims =
        futures_util::future::join_all((0..4).map(|_| tasks::claim(pool, "claimed", later, later + lease))).await;
    let won: Vec<_> = claims.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(won, vec![2], "one claim of four at once wins, counting the attempt");
    sqlx::query("DELETE FROM tasks WHERE id = 'claimed'").execute(pool).await.unwrap();
    host.stop().await;
}

async fn stored_tasks(host: &TestHost) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tasks").fetch_one(&host.server.state.db.pool).await.unwrap()
}

/// Batches with ranks that tie, a JSON null and a missing rank, and tags `a`, `b` (some
/// both); their `(rank, id, tags)`.
async fn seed_ranked_batches(host: &TestHost) -> Vec<(Option<i64>, String, Vec<&'static str>)> {
    let ranks = [Some(3), None, Some(1), Some(3), Some(-2), None, Some(1), Some(7), Some(3), None, Some(0)];
    let mut seeded = Vec::new();
    for (i, rank) in ranks.into_iter().enumerate() {
        let tags = [vec!["a"], vec!["b"], vec!["a", "b"], vec![]][i % 4].clone();
        let mut data = json!({ "state": "DONE", "tags": tags, "filename": "f", "lines": null, "log": "" });
        match (rank, i % 2) {
            (Some(rank), _) => data["rank"] = json!(rank),
            (None, 0) => data["rank"] = Value::Null,
            (None, _) => {}
        }
        seeded.push((rank, insert_record(host, "BATCH", data, "2026-11-01T08:00:00.000Z").await, tags));
    }
    seeded
}

/// The ids of a paged list, checking each element's rank.
async fn paged(client: &Client, path: &str) -> Vec<String> {
    let (status, list) = client.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {list}");
    list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect()
}

/// Pages (keyset paging in the store, the SDK's `Page`, the host joining them) give the
/// list in its order on both backends: by id, or by a field with ties by id and nulls
/// first (ascending) or last (descending); a union of queries once each.
async fn lists_in_pages_join_in_order(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let batches = seed_ranked_batches(&host).await;
    let mut by_id: Vec<String> = batches.iter().map(|(_, id, _)| id.clone()).collect();
    by_id.sort();
    let mut ascending: Vec<(Option<i64>, String)> = batches.iter().map(|(r, id, _)| (*r, id.clone())).collect();
    ascending.sort();
    let mut descending = ascending.clone();
    descending.sort_by(|(r, a), (s, b)| match (r, s) {
        (Some(r), Some(s)) => s.cmp(r).then_with(|| a.cmp(b)),
        _ => r.is_none().cmp(&s.is_none()).then_with(|| a.cmp(b)),
    });
    let ids = |list: &[(Option<i64>, String)]| list.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>();
    let tagged: Vec<(Option<i64>, String)> = ascending
        .iter()
        .filter(|(_, id)| batches.iter().any(|(_, b, tags)| b == id && !tags.is_empty()))
        .cloned()
        .collect();
    for size in [1, 2, 3, 100] {
        assert_eq!(paged(&user, &format!("/api/v1/batches/pages?size={size}")).await, by_id, "by id, {size}");
        let path = format!("/api/v1/batches/pages?size={size}&order=rank");
        assert_eq!(paged(&user, &path).await, ids(&ascending), "ascending, {size}");
        let path = format!("/api/v1/batches/pages?size={size}&order=rank&desc=true");
        assert_eq!(paged(&user, &path).await, ids(&descending), "descending, {size}");
        let path = format!("/api/v1/batches/union?size={size}&tags[]=a&tags[]=b");
        assert_eq!(paged(&user, &path).await, ids(&tagged), "union, {size}");
    }
    // Only a GET answers in pages.
    assert_eq!(user.post("/api/v1/batches/pages", &json!({})).await.0, StatusCode::BAD_GATEWAY);
    host.stop().await;
}

/// Once the first page is sent, so is the status: a later page that traps, is refused, is
/// not a JSON array or does not move on cuts the body (the client cannot read a complete
/// list), counts a fault, and the next request is served as usual.
async fn a_list_that_fails_after_its_first_page_is_cut(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    seed_ranked_batches(&host).await;
    let plugin = host.server.state.plugins.active("work-batches").unwrap();
    let faults = || plugin.stats.faults.load(std::sync::atomic::Ordering::Relaxed);
    for fault in ["trap", "refuse", "object", "same"] {
        let before = faults();
        let response =
            user.http.get(user.url(&format!("/api/v1/batches/pages?size=2&fault={fault}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{fault}");
        let body = response.text().await;
        assert!(body.is_err(), "{fault}: the body was read whole: {body:?}");
        assert_eq!(faults(), before + 1, "{fault}");
        assert_eq!(paged(&user, "/api/v1/batches/pages?size=100").await.len(), 11, "after {fault}");
    }
    host.stop().await;
}
