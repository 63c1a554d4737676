//! Criterion benchmarks of the plugin call path. `call_path` is the issue's definition:
//! a fresh pooled instance + `handle` + output validation, for a plugin action that does
//! no store reads (the `notify-rooms` test guest's `create`). The rest use the bundled
//! `department` plugin: a bare
//! `Runtime::handle` call, `dispatch::read` for a GET list, and the write pipeline for a POST
//! create on SQLite (with 5 and with 2,000 stored departments), plus two probes (a plugin
//! call that does no store reads, an empty read transaction) that split the path into parts.
//!
//! The runtime, database and plugin are those of a real server started with
//! `Config::for_tests`, so the pooling and limit settings are the production ones; no HTTP
//! request is made. Run with `cargo bench -p integration-tests --bench plugin_call`; see
//! BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use host::Server;
use host::config::Config;
use host::db::Db;
use host::dispatch;
use host::plugin::types::{Actor, Request, Role, User};
use host::plugin::{LoadedPlugin, Runtime};
use integration_tests::TempDir;

/// Departments stored for the list and the small create benchmarks.
const SEEDED_DEPARTMENTS: usize = 5;
/// Departments stored for the large create benchmark.
const MANY_DEPARTMENTS: usize = 2_000;

/// A started server (SQLite, bundled plugins) whose database, runtime and department plugin
/// the benchmarks call directly.
struct Fixture {
    server: Server,
    plugin: Arc<LoadedPlugin>,
}

impl Fixture {
    async fn start(dir: &TempDir) -> Fixture {
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugin_dir).expect("creating the plugin dir");
        std::fs::copy(integration_tests::NOTIFY_ROOMS, plugin_dir.join("notify_rooms.wasm")).expect("copying a guest");
        let mut config = Config::for_tests(dir.path().to_path_buf());
        config.plugin_dir = Some(plugin_dir);
        let server = Server::start(config).await.expect("starting the server");
        let plugin = server.state.plugins.by_collection("departments").expect("the department plugin is loaded");
        Fixture { server, plugin }
    }

    fn db(&self) -> &Db {
        &self.server.state.db
    }

    fn runtime(&self) -> &Runtime {
        &self.server.state.runtime
    }

    /// A GET through `dispatch::read`, anything else through the write pipeline.
    async fn dispatch(&self, req: &Request, read_only: bool) -> dispatch::Outcome {
        dispatch_to(self, &self.plugin, req, read_only).await
    }
}

async fn dispatch_to(f: &Fixture, plugin: &Arc<LoadedPlugin>, req: &Request, read_only: bool) -> dispatch::Outcome {
    let outcome = match read_only {
        true => dispatch::read(f.db(), f.runtime(), plugin, req).await,
        false => f.server.state.pipeline.write(Arc::clone(plugin), req.clone()).await,
    };
    outcome.expect("dispatch")
}

/// The host clock's "now", as the HTTP layer stamps requests.
fn now() -> String {
    host::clock::iso(host::clock::Clock::default().now())
}

/// What the HTTP layer would build for a signed-in ADMIN calling `action`.
fn request(action: &str, body: Option<String>) -> Request {
    Request {
        actor: Actor::User(User { id: "bench-admin".into(), role: Role::Admin, session_id: "bench-session".into() }),
        action: action.into(),
        params: Vec::new(),
        query: Vec::new(),
        body,
        now: now(),
        socket_id: None,
        upload: None,
        cursor: None,
    }
}

/// `POST /departments` with a name no other department has.
fn create_request() -> Request {
    let body = serde_json::json!({
        "name": format!("Department {}", uuid::Uuid::new_v4()),
        "description": "created by the plugin_call benchmark",
    });
    request("create", Some(body.to_string()))
}

/// The id of the department a create answered with.
fn created_id(outcome: &dispatch::Outcome) -> String {
    let body: serde_json::Value = serde_json::from_str(outcome.body.as_deref().expect("a body")).expect("JSON");
    body["id"].as_str().expect("an id").to_owned()
}

/// Store `count` departments in one transaction, bypassing the plugin (setup only).
async fn seed_directly(db: &Db, count: usize) {
    let mut tx = db.begin_write().await.expect("begin");
    let stamp = now();
    for i in 0..count {
        let data = serde_json::json!({
            "name": format!("Seeded department {i}"), "description": "", "letter": "", "schoolYears": 4,
            "displayLetter": null, "classLetters": [], "department1_Id": null, "department2_Id": null,
            "color": "#306cce",
        });
        sqlx::query(
            "INSERT INTO records (record_type, id, data, version, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind("DEPARTMENT")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(data.to_string())
        .bind(&stamp)
        .execute(&mut *tx)
        .await
        .expect("seeding");
    }
    tx.commit().await.expect("commit");
}

/// `iters` timed creates through the write pipeline; each created department is deleted again
/// outside the timed region, so the number of stored departments stays the same.
async fn timed_creates(f: &Fixture, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let req = create_request();
        let start = Instant::now();
        let outcome = f.dispatch(&req, false).await;
        total += start.elapsed();
        assert_eq!((outcome.status, outcome.notifications.len()), (201, 1));
        sqlx::query("DELETE FROM records WHERE record_type = 'DEPARTMENT' AND id = $1")
            .bind(created_id(&outcome))
            .execute(&f.db().pool)
            .await
            .expect("deleting the created department");
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building tokio");
    let dir = TempDir::new("bench-plugin-call");
    let f = rt.block_on(async {
        let f = Fixture::start(&dir).await;
        for _ in 0..SEEDED_DEPARTMENTS {
            assert_eq!(f.dispatch(&create_request(), false).await.status, 201);
        }
        f
    });
    let list = request("all", None);
    // An action the plugin does not have: it refuses at once, without store reads.
    let noop = request("no-such-action", None);

    // Sanity: the list answers with the seeded departments.
    rt.block_on(async {
        let outcome = f.dispatch(&list, true).await;
        let body: serde_json::Value = serde_json::from_str(outcome.body.as_deref().unwrap_or("null")).unwrap();
        assert_eq!(body.as_array().map(Vec::len), Some(SEEDED_DEPARTMENTS));
    });

    let mut group = c.benchmark_group("plugin_call");
    group.sample_size(100).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    // The call path: instance + handle (builds a record, a write and a notification; no
    // store reads) + the host's checks of the output. The transaction it would read in is
    // opened and ended outside the timed region.
    let notes = f.server.state.plugins.by_collection("notes").expect("the notify-rooms guest is loaded");
    let note = request("create", Some(r#"{"targets": ["all", "admins"], "toSelf": false}"#.into()));
    group.bench_function("call_path", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (f, notes, note) = (&f, &notes, &note);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let tx = f.db().begin_read().await.expect("begin_read");
                    let start = Instant::now();
                    let (result, tx) = f.runtime().handle(notes, None, note, tx).await;
                    let checked = dispatch::check(notes, result.expect("the note is created"), note, false);
                    total += start.elapsed();
                    assert!(black_box(checked).is_ok());
                    tx.expect("the transaction comes back").rollback().await.expect("rollback");
                }
                total
            }
        })
    });

    // (a) The bare plugin call: fresh pooled instance + `handle` (one `find` through the
    // store import) + lifting the response + dropping the store. The read transaction is
    // opened before and ended after the timed region.
    for (name, req) in [("handle_get_list", &list), ("handle_noop", &noop)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let f = &f;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let tx = f.db().begin_read().await.expect("begin_read");
                        let start = Instant::now();
                        let (result, tx) = f.runtime().handle(&f.plugin, None, req, tx).await;
                        total += start.elapsed();
                        black_box(result).ok();
                        tx.expect("the transaction comes back").rollback().await.expect("rollback");
                    }
                    total
                }
            })
        });
    }

    // Probe: what `dispatch::read` adds around the call for a GET, without a plugin: pool
    // acquire (with sqlx's liveness ping) + BEGIN + ROLLBACK + release.
    group.bench_function("read_tx_begin_rollback", |b| {
        b.to_async(&rt).iter(|| async {
            let tx = f.db().begin_read().await.expect("begin_read");
            tx.rollback().await.expect("rollback");
        })
    });

    // (b) The whole read pipeline: read transaction + instance + handle + output checks.
    group.bench_function("dispatch_get_list", |b| {
        b.to_async(&rt).iter(|| async { black_box(f.dispatch(&list, true).await) })
    });

    // The cost of the notification log on the write path: the same insert through
    // the write pipeline, with one notification (offset counter + log row) and without.
    group.sample_size(50).measurement_time(Duration::from_secs(5));
    let noted = request("create", Some(r#"{"targets": ["all"]}"#.into()));
    let quiet = request("create", Some(r#"{"targets": []}"#.into()));
    for (name, req, logged) in [("write_with_log", &noted, 1), ("write_without_log", &quiet, 0)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let outcome = dispatch_to(&f, &notes, req, false).await;
                assert_eq!(outcome.status, 201, "{logged} logged");
            })
        });
    }

    // (c) The write pipeline: BEGIN IMMEDIATE + instance + handle (name check: one `find`)
    // + output checks + INSERT + notification counter and log + COMMIT (WAL, synchronous=FULL).
    group.sample_size(50).measurement_time(Duration::from_secs(5));
    group.bench_function(format!("dispatch_post_create_{SEEDED_DEPARTMENTS}_stored"), |b| {
        b.to_async(&rt).iter_custom(|iters| timed_creates(&f, iters))
    });
    rt.block_on(seed_directly(f.db(), MANY_DEPARTMENTS));
    group.bench_function(format!("dispatch_post_create_{}_stored", SEEDED_DEPARTMENTS + MANY_DEPARTMENTS), |b| {
        b.to_async(&rt).iter_custom(|iters| timed_creates(&f, iters))
    });
    group.finish();

    rt.block_on(async {
        let Fixture { server, plugin } = f;
        drop(plugin);
        server.stop().await.expect("stopping the server");
    });
    drop(dir);
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
