//! Criterion benchmarks of whole HTTP requests against a real Tidings server (SQLite, bundled
//! plugins, loopback TCP, reqwest client with the admin's session cookie):
//! `POST /api/v1/departments` (create + notification) and, for comparison,
//! `GET /api/v1/departments` over five departments. No Socket.IO client is connected, so
//! the NEW_RECORD notification is logged and emitted to empty rooms.
//!
//! Run with `cargo bench -p integration-tests --bench http_create`; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use host::Server;
use host::config::Config;
use integration_tests::TempDir;

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-password-1";
/// Departments stored before the list is measured.
const SEEDED_DEPARTMENTS: usize = 5;

fn department_body() -> serde_json::Value {
    serde_json::json!({
        "name": format!("Department {}", uuid::Uuid::new_v4()),
        "description": "created by the http_create benchmark",
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building tokio");
    let dir = TempDir::new("bench-http");
    let (server, client) = rt.block_on(async {
        let mut config = Config::for_tests(dir.path().to_path_buf());
        config.bootstrap_admin = Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into()));
        let server = Server::start(config).await.expect("starting the server");
        let client = reqwest::Client::builder().cookie_store(true).build().expect("building the client");
        let login = client
            .post(format!("{}/api/v1/auth/login", server.url()))
            .json(&serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("logging in");
        assert!(login.status().is_success(), "login answered {}", login.status());
        (server, client)
    });
    let departments = format!("{}/api/v1/departments", server.url());

    let mut group = c.benchmark_group("http");
    group.sample_size(100).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    // For comparison, first: the list of a handful of departments (public, read-only).
    rt.block_on(async {
        for _ in 0..SEEDED_DEPARTMENTS {
            let response = client.post(&departments).json(&department_body()).send().await.expect("seeding");
            assert_eq!(response.status().as_u16(), 201);
        }
    });
    group.bench_function("get_list_departments", |b| {
        b.to_async(&rt).iter(|| async {
            let response = client.get(&departments).send().await.expect("GET");
            assert_eq!(response.status().as_u16(), 200);
            black_box(response.bytes().await.expect("reading the body"))
        })
    });

    // One create: HTTP/1.1 keep-alive request → session lookup → route → dispatch (write tx,
    // plugin, INSERT, notification log, COMMIT) → wake the emitter → 201 with the record.
    // The department is deleted again (`DELETE /departments/:id`, not timed) so the number
    // of stored departments stays at five.
    group.sample_size(50).measurement_time(Duration::from_secs(5));
    group.bench_function("post_create_department", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (client, url) = (&client, &departments);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let body = department_body();
                    let start = Instant::now();
                    let response = client.post(url).json(&body).send().await.expect("POST");
                    let status = response.status().as_u16();
                    let bytes = response.bytes().await.expect("reading the body");
                    total += start.elapsed();
                    assert_eq!(status, 201);
                    let created: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
                    let id = created["id"].as_str().expect("an id");
                    let deleted = client.delete(format!("{url}/{id}")).send().await.expect("DELETE");
                    assert!(deleted.status().is_success(), "DELETE answered {}", deleted.status());
                }
                total
            }
        })
    });

    group.finish();

    rt.block_on(async {
        drop(client);
        server.stop().await.expect("stopping the server");
    });
    drop(dir);
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
