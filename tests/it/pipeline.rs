//! The write pipeline under concurrency: requests share group-committed batches, and each
//! fails alone. A refused or faulting request in the middle of a batch writes, logs and
//! notifies nothing; every other commits once, with gapless offsets in commit order. A plugin
//! call run ahead of its turn counts once, and is made again when what it read has changed.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    concurrent_writes_share_batches_and_fail_alone,
    concurrent_writes_fail_alone_when_their_calls_run_ahead,
    a_call_run_ahead_is_made_again_when_what_it_read_has_changed,
    host_owned_fields_are_stamped_by_the_host,
    other_writers_get_their_turn_during_a_stream_of_writes
);

async fn concurrent_writes_share_batches_and_fail_alone(backend: Backend) {
    // A small pool: only two calls or instances may be made ahead of their turn, so most
    // jobs call their plugin in the committer, some not.
    writes_fail_alone(backend, 8).await;
}

async fn concurrent_writes_fail_alone_when_their_calls_run_ahead(backend: Backend) {
    // The default pool: calls run ahead while the committer is busy and a reader is free.
    // In one burst the readers may all be taken by the session lookups that come first:
    // go on until some calls ran ahead (every run is checked whole).
    for _ in 0..5 {
        if writes_fail_alone(backend, host::plugin::Limits::default().max_instances).await > 0 {
            return;
        }
    }
    panic!("no call run ahead was settled in 5 runs");
}

/// A cycle of successes, refusals and faults, 12 times, all at once, with a pool of
/// `max_instances`; returns how many calls run ahead were settled.
async fn writes_fail_alone(backend: Backend, max_instances: u32) -> u64 {
    // Faults must not isolate the plugin halfway through.
    let host = TestHost::start_with(backend, |c| {
        c.limits.isolate_after = 10_000;
        c.limits.max_instances = max_instances;
    })
    .await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    let position = host.log_position().await;
    let stats = host.server.state.pipeline.stats();
    let (batches, jobs) = (stats.batches.load(Ordering::Relaxed), stats.jobs.load(Ordering::Relaxed));
    let settled = stats.settled_ahead.load(Ordering::Relaxed);

    // Each kind of refusal or fault between successes: a trap, invalid output (a status, an
    // ungranted write or notification, another session), a version conflict after a write,
    // and one as the only write (such a job runs without a savepoint), and a value too large
    // for PostgreSQL's index as the only write (there, it is refused alone; SQLite takes it),
    // a record holding U+0000 (which PostgreSQL cannot store), and reads naming U+0000 (which
    // it cannot compare) before a normal write.
    let too_large = match backend {
        Backend::Sqlite => StatusCode::CREATED,
        Backend::Postgres => StatusCode::BAD_REQUEST,
    };
    let cycle = [
        "ok",
        "trap",
        "ok",
        "conflict",
        "ok",
        "bad-status",
        "ok",
        "write-other",
        "notify-other",
        "other-session",
        "stale",
        "too-large",
        "nul-data",
        "nul-read",
    ];
    let busy = stats.busy_micros.load(Ordering::Relaxed);
    let burst = std::time::Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for round in 0..12 {
        for action in cycle {
            let (http, url) = (user.http.clone(), user.url(&format!("/api/v1/faults/{action}")));
            requests.spawn(async move {
                let res = http.post(url).json(&json!({ "round": round })).send().await.unwrap();
                let status = res.status();
                (action, status, res.json::<Value>().await.unwrap_or(Value::Null))
            });
        }
    }
    let answers = requests.join_all().await;
    let elapsed = burst.elapsed();

    let mut created = BTreeSet::new();
    let mut error_ids = BTreeSet::new();
    for (action, status, body) in &answers {
        let expected = match *action {
            "ok" | "nul-read" => StatusCode::CREATED,
            "conflict" | "stale" => StatusCode::CONFLICT,
            "too-large" => too_large,
            _ => StatusCode::BAD_GATEWAY,
        };
        assert_eq!(*status, expected, "{action}: {body}");
        if *action == "nul-read" {
            assert_eq!(body["get"], "Ok(false)", "no id holds U+0000: {body}");
            let find = body["find"].as_str().unwrap();
            assert!(find.starts_with("Err(") && find.contains("U+0000"), "the query is refused: {body}");
        }
        match *action {
            "ok" | "nul-read" | "too-large" if expected == StatusCode::CREATED => {
                created.insert(body["id"].as_str().unwrap().to_owned())
            }
            _ if expected == StatusCode::BAD_GATEWAY => error_ids.insert(body["errorId"].as_str().unwrap().to_owned()),
            _ => false,
        };
    }
    assert_eq!(created.len(), 12 * if too_large == StatusCode::CREATED { 6 } else { 5 });
    assert_eq!(host.stored("FAULT").await, created.len() as i64, "only the successes wrote");
    assert_eq!(host.stored("DEPARTMENT").await, 0, "the ungranted write left nothing");

    let notified = host.notified_since(position).await;
    let ids: Vec<&str> = notified.iter().map(|n| n["message"]["record"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), created.len(), "one notification per success, none for the rest");
    assert_eq!(ids.iter().map(|id| (*id).to_owned()).collect::<BTreeSet<_>>(), created);
    let offsets: Vec<i64> = sqlx::query_scalar("SELECT seq FROM notification_log WHERE seq > $1 ORDER BY seq")
        .bind(position)
        .fetch_all(&host.server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(offsets, (position + 1..=position + created.len() as i64).collect::<Vec<_>>(), "gapless");
    let check = host.server.state.db.check().await.unwrap();
    assert!(check.offsets_gapless && check.offsets_consistent, "{check:?}");

    // Each call counted once in the plugin's journal, whether it ran ahead or in its turn: one
    // fault per failed request, and one panic message per trap.
    let (_, journal) = admin.get("/api/v1/admin/plugins/fault-misbehave/logs").await;
    let journal = journal.as_array().unwrap();
    let faults: BTreeSet<String> =
        journal.iter().filter(|e| e["level"] == "fault").map(|e| e["errorId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(faults, error_ids, "one fault in the journal per failed request");
    assert_eq!(journal.iter().filter(|e| e["level"] == "fault").count(), error_ids.len());
    let panics = journal.iter().filter(|e| e["message"].as_str().unwrap().contains("traps on purpose")).count();
    assert_eq!(panics, 12, "one panic message per trap");

    let batches = stats.batches.load(Ordering::Relaxed) - batches;
    let jobs = stats.jobs.load(Ordering::Relaxed) - jobs;
    assert_eq!(jobs, answers.len() as u64, "every request went through the pipeline once");
    assert!(batches < jobs, "concurrent requests shared batches: {jobs} jobs in {batches} batches");
    // The committer is one serial path: its busy time is some of the burst's, never more.
    let busy = std::time::Duration::from_micros(stats.busy_micros.load(Ordering::Relaxed) - busy);
    assert!(!busy.is_zero() && busy <= elapsed, "the committer was busy {busy:?} of the burst's {elapsed:?}");
    let settled = stats.settled_ahead.load(Ordering::Relaxed) - settled;

    // The readers kept for calls run ahead go back to the pool once the writes have stopped.
    let pool = &host.server.state.db.pool;
    for _ in 0..100 {
        if pool.num_idle() == pool.size() as usize {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(pool.num_idle(), pool.size() as usize, "every connection is back in the pool once writes stopped");
    host.stop().await;
    settled
}

/// Departments of one name created all at once: each call run ahead finds the name free, but
/// only the first to commit may take it. The others' reads answer otherwise in their turn,
/// so their calls are made again there and refuse, as if the requests had come one by one.
async fn a_call_run_ahead_is_made_again_when_what_it_read_has_changed(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let stats = host.server.state.pipeline.stats();
    let position = host.log_position().await;
    let again = stats.made_again.load(Ordering::Relaxed);
    // Whether a call runs ahead and reads before the first commit depends on timing: go on
    // until some have (every round is checked whole).
    let mut rounds = 0;
    while stats.made_again.load(Ordering::Relaxed) == again && rounds < 30 {
        rounds += 1;
        let name = format!("Same name {rounds}");
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (http, url, name) = (admin.http.clone(), admin.url("/api/v1/departments"), name.clone());
            requests.spawn(async move { http.post(url).json(&json!({ "name": name })).send().await.unwrap().status() });
        }
        let mut statuses = requests.join_all().await;
        statuses.sort();
        let mut expected = vec![StatusCode::CONFLICT; 15];
        expected.insert(0, StatusCode::CREATED);
        assert_eq!(statuses, expected, "round {rounds}: one department per name");
        assert_eq!(host.stored("DEPARTMENT").await, rounds);
        assert_eq!(host.notified_since(position).await.len() as i64, rounds, "one notification per department");
    }
    assert!(stats.made_again.load(Ordering::Relaxed) > again, "no call was made again in {rounds} rounds");

    // Operators see both counts.
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    for (metric, count) in [
        ("tidings_pipeline_calls_made_again_total", &stats.made_again),
        ("tidings_pipeline_calls_settled_ahead_total", &stats.settled_ahead),
    ] {
        let line = format!("\n{metric} {}\n", count.load(Ordering::Relaxed));
        assert!(metrics.contains(&line), "{line:?} in {metrics}");
    }
    let busy = stats.busy_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let line = format!("\ntidings_pipeline_committer_busy_seconds_total {busy}\n");
    assert!(busy > 0.0 && metrics.contains(&line), "{line:?} in {metrics}");
}

/// The host stamps `createdAt` and `updatedAt` on what it stores and on the notified copy of a
/// record the same response wrote, and keeps no host-owned field from a plugin's data
/// (`fault-misbehave`'s `forge` puts `version` and `updatedAt` in its data and notifies times
/// of 1999).
async fn host_owned_fields_are_stamped_by_the_host(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let position = host.log_position().await;
    let (status, created) = user.post("/api/v1/faults/forge", &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (stored_data, created_at, updated_at): (String, String, String) =
        sqlx::query_as("SELECT data, created_at, updated_at FROM records WHERE id = $1")
            .bind(id)
            .fetch_one(&host.server.state.db.pool)
            .await
            .unwrap();
    let stored_data: Value = serde_json::from_str(&stored_data).unwrap();
    for owned in ["id", "createdAt", "updatedAt", "version"] {
        assert!(stored_data.get(owned).is_none(), "{owned} is not kept in data: {stored_data}");
    }
    assert!(!created_at.starts_with("1999"), "{created_at}");
    let notified = host.notified_since(position).await;
    let record = &notified[0]["message"]["record"];
    assert_eq!((&record["createdAt"], &record["updatedAt"]), (&json!(created_at), &json!(updated_at)));
    host.stop().await;
}

/// The committer keeps the writers' connection from batch to batch while writes keep coming;
/// a writing transaction outside the pipeline (creating a user) still gets its turn while
/// they do, rather than after the stream ends.
async fn other_writers_get_their_turn_during_a_stream_of_writes(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, _) = host.user("USER").await;
    let admin = host.admin().await;
    let stats = host.server.state.pipeline.stats();
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, writing) = (user.http.clone(), user.url("/api/v1/faults/ok"), writing.clone());
        writers.spawn(async move {
            let mut answered = 0;
            while writing.load(Ordering::Relaxed) {
                let status = http.post(&url).json(&json!({})).send().await.unwrap().status();
                assert_eq!(status, StatusCode::CREATED);
                answered += 1;
            }
            answered
        });
    }
    // Wait until the stream runs in batches.
    let before = stats.batches.load(Ordering::Relaxed);
    batches_reach(stats, before + 20).await;

    let jobs_before = stats.jobs.load(Ordering::Relaxed);
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body) =
        admin.post("/api/v1/users", &json!({ "email": email, "password": "password123", "role": "USER" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let jobs_during = stats.jobs.load(Ordering::Relaxed) - jobs_before;

    // The stream still runs: the user was not created once it had ended (were the writers'
    // connection never given back, the creation would wait for a pool timeout and fail).
    batches_reach(stats, stats.batches.load(Ordering::Relaxed) + 5).await;
    writing.store(false, Ordering::Relaxed);
    let answered: u64 = writers.join_all().await.into_iter().sum();
    assert!(answered > 0);
    assert!(jobs_during > 0, "no write was committed while the user was being created");
}

/// Wait until the committer has committed `count` batches in all; fail after 30 s.
async fn batches_reach(stats: &host::pipeline::PipelineStats, count: u64) {
    let reached = async {
        while stats.batches.load(Ordering::Relaxed) < count {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), reached)
        .await
        .unwrap_or_else(|_| panic!("the stream of writes stopped before {count} batches"));
}
