//! Bench binary: lists of tens of thousands of events, which the `event` plugin answers in
//! pages of 500 and the host joins into one JSON array (`host/src/pages.rs`). For each list
//! size it times `GET /api/v1/events` (anonymous; every event PUBLISHED) and
//! `GET /api/v1/user/events` (the admin's own DRAFTs), to the first byte and to the last, and
//! reads the server's peak resident memory during each request (`VmHWM`, reset before the
//! request through `/proc/<pid>/clear_refs`), against its resident memory before the first
//! list request: the memory a list takes should not grow with the list.
//!
//! The server runs in a process of its own, this binary started again with
//! `TIDINGS_BENCH_SERVE=<data dir>`, so that its memory is not mixed with the client's, which
//! reads and parses every body to check it. The events (about 1 KiB each, two by two at the
//! same `start`) are written straight into the store before the server starts.
//!
//! Run with `cargo bench -p integration-tests --bench long_list`: sizes 5,000 and 50,000 on
//! SQLite; `-- 50000` picks the sizes, `-- --postgres` uses a fresh database on the server at
//! `TIDINGS_TEST_POSTGRES_URL` (as the tests do) instead.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use host::clock::Clock;
use host::config::Config;
use host::db::records::{self, Write};
use host::db::{Db, users};
use integration_tests::TempDir;
use serde_json::{Value, json};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "correct horse battery";
/// Requests per list after the first; their medians and largest peak are reported.
const RUNS: usize = 3;

fn main() {
    if let Ok(dir) = std::env::var("TIDINGS_BENCH_SERVE") {
        return serve(dir.into(), std::env::var("TIDINGS_BENCH_DATABASE").ok());
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--") || a == "--postgres").collect();
    let postgres = args.iter().any(|a| a == "--postgres");
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![5_000, 50_000];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "| events | backend | route | first byte | last byte | body | server RSS before | peak, first request | peak, later requests |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        runtime.block_on(bench(size, postgres));
    }
}

/// The server's side: start on `dir` (and `database`, if given), print the URL, and serve
/// until standard input closes.
fn serve(dir: std::path::PathBuf, database: Option<String>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut config = Config::for_tests(dir);
        config.database_url = database;
        let server = host::Server::start(config).await.expect("the server starts");
        println!("{}", server.url());
        std::io::stdout().flush().unwrap();
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
        server.stop().await.unwrap();
    });
}

async fn bench(size: usize, postgres: bool) {
    let dir = TempDir::new("bench-long-list");
    let database = match postgres {
        true => Some(create_postgres_db().await),
        false => None,
    };
    let started = Instant::now();
    let db = Db::connect(database.as_ref().map(|(url, _)| url.as_str()), dir.path()).await.unwrap();
    host::sessions::bootstrap_admin(&db, &Clock::default(), ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let (admin, _) = users::by_email(&db.pool, ADMIN_EMAIL).await.unwrap().unwrap();
    seed(&db, "someone else", "PUBLISHED", size).await;
    seed(&db, &admin.id, "DRAFT", size).await;
    db.pool.close().await;
    eprintln!("seeded 2 x {size} events in {:.1} s", started.elapsed().as_secs_f64());

    // The first start builds the indexes of the seeded events (and on PostgreSQL, analyzes
    // them), reading them all at once for the element indexes (see
    // `records::ensure_element_indexes`); measure a server that starts as usual.
    Server::start(dir.path(), database.as_ref().map(|(url, _)| url.as_str())).stop();
    let server = Server::start(dir.path(), database.as_ref().map(|(url, _)| url.as_str()));
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD });
    let res = client.post(format!("{}/api/v1/auth/login", server.url)).json(&login).send().await.unwrap();
    assert!(res.status().is_success());
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    for route in ["/api/v1/events", "/api/v1/user/events"] {
        let url = format!("{}{route}", server.url);
        // The first request (cold caches) apart: what a list adds to a server that never
        // served one.
        let before = server.memory("VmRSS");
        server.reset_peak();
        let _ = client.get(&url).send().await.unwrap().bytes().await.unwrap();
        let first_peak = server.memory("VmHWM");
        let (mut first, mut last, mut peak, mut bytes) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..RUNS {
            server.reset_peak();
            let start = Instant::now();
            let res = client.get(&url).send().await.unwrap();
            assert_eq!(res.status(), reqwest::StatusCode::OK, "{route}");
            first.push(start.elapsed());
            let body = res.bytes().await.expect("the whole body");
            last.push(start.elapsed());
            peak = peak.max(server.memory("VmHWM"));
            bytes = body.len();
            let list: Value = serde_json::from_slice(&body).expect("one JSON array");
            assert_eq!(list.as_array().map(Vec::len), Some(size), "{route}");
        }
        let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
        println!(
            "| {size} | {backend} | `GET {route}` | {} | {} | {:.1} MiB | {} | {} | {} |",
            millis(median(first)),
            millis(median(last)),
            bytes as f64 / f64::from(1 << 20),
            mib(before),
            mib(first_peak),
            mib(peak),
        );
    }
    server.stop();
    if let Some((_, name)) = database {
        drop_postgres_db(&name).await;
    }
    if std::env::var_os("TIDINGS_BENCH_KEEP").is_some() {
        eprintln!("kept {}", dir.path().display());
        std::mem::forget(dir);
    }
}

/// `count` events of `author` in `state`, about 1 KiB each, in one transaction: from ten weeks
/// ago on (the published list shows the twelve weeks around now), two by two at one `start`.
async fn seed(db: &Db, author: &str, state: &str, count: usize) {
    let first = Utc::now() - chrono::Duration::weeks(10);
    let step = chrono::Duration::weeks(20) / i32::try_from(count).unwrap();
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let now = at(Utc::now());
    let mut tx = db.begin_write().await.unwrap();
    for i in 0..count {
        let start = first + step * i32::try_from(i / 2 * 2).unwrap();
        let data = json!({
            "authorId": author, "start": at(start), "end": at(start + chrono::Duration::hours(1)),
            "location": "Aula", "description": format!("Event {i}: {}", "x".repeat(700)),
            "descriptionLong": "", "state": state, "cloned": false, "jobId": null, "parentId": null,
            "clonedFromId": null, "classes": ["26Ga", "26Gb"], "classGroups": [], "audience": "STUDENTS",
            "affectsDepartment2": false, "teachingAffected": "YES", "deletedAt": null, "meta": null,
            "departmentIds": [], "linkedUserIds": [],
        });
        let id = uuid::Uuid::new_v4().to_string();
        let write = Write::Upsert { record_type: "EVENT".into(), id, data: data.to_string(), expected_version: None };
        records::apply(&mut tx, &db.elements, &write, &now).await.unwrap().unwrap();
    }
    tx.commit().await.unwrap();
}

/// The server process.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &std::path::Path, database: Option<&str>) -> Server {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env("TIDINGS_BENCH_SERVE", dir).stdin(Stdio::piped()).stdout(Stdio::piped());
        if let Some(url) = database {
            command.env("TIDINGS_BENCH_DATABASE", url);
        }
        let mut child = command.spawn().unwrap();
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
        Server { child, url: url.trim().to_owned() }
    }

    /// A memory figure of `/proc/<pid>/status`, in KiB.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Start counting the peak resident memory (`VmHWM`) afresh.
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        self.child.wait().unwrap();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn postgres_admin_url() -> String {
    std::env::var("TIDINGS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database: its URL and name.
async fn create_postgres_db() -> (String, String) {
    sqlx::any::install_default_drivers();
    let name = format!("tidings_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let base = postgres_admin_url();
    let server = base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server).to_owned();
    (format!("{server}/{name}"), name)
}

async fn drop_postgres_db(name: &str) {
    let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .unwrap();
}
