//! Bench binary: does a hostile plugin hurt a well-behaved one? Measures the p50/p99 latency of
//! `GET /api/v1/departments` (the bundled plugin) alone, then while a client calls each hostile
//! action of the `fault-misbehave` test guest 100 times a second. Prints a table for
//! BENCHMARKS.md.
//!
//! Run with `cargo bench -p integration-tests --bench isolation`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use host::Server;
use host::config::Config;
use integration_tests::TempDir;
use serde_json::json;

const SAMPLES: usize = 3_000;
const HOSTILE: [&str; 5] = ["loop", "memory-bomb", "recurse", "huge-body", "flood"];
/// One hostile call every this often: steady load from the hostile plugin's clients (100/s),
/// rather than a flood of HTTP requests that would measure the load generator instead.
const HOSTILE_PERIOD: Duration = Duration::from_millis(10);

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

async fn measure(client: &reqwest::Client, url: &str) -> Percentiles {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let res = client.get(url).send().await.expect("GET");
        assert!(res.status().is_success());
        res.bytes().await.expect("body");
        samples.push(start.elapsed());
    }
    samples.sort();
    Percentiles { p50: samples[SAMPLES / 2], p99: samples[SAMPLES * 99 / 100] }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let dir = TempDir::new("bench-isolation");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(integration_tests::FAULT_MISBEHAVE, plugins.join("fault_misbehave.wasm")).unwrap();
        let mut config = Config::for_tests(dir.path().to_path_buf());
        config.plugin_dir = Some(plugins);
        config.bootstrap_admin = Some(("admin@example.com".into(), "bench password".into()));
        let server = Server::start(config).await.expect("server");
        let base = server.url();
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let login = json!({ "email": "admin@example.com", "password": "bench password" });
        client.post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap();
        for i in 0..5 {
            let body = json!({ "name": format!("Department {i}") });
            client.post(format!("{base}/api/v1/departments")).json(&body).send().await.unwrap();
        }
        let good = format!("{base}/api/v1/departments");
        measure(&client, &good).await; // warm up
        let baseline = measure(&client, &good).await;
        println!("| load | p50 | p99 | p99 vs baseline | hostile calls (503 isolated) |");
        println!("|---|---:|---:|---:|---:|");
        println!("| none (baseline) | {:?} | {:?} | — | — |", baseline.p50, baseline.p99);
        for action in HOSTILE {
            let stop = Arc::new(AtomicBool::new(false));
            let (calls, isolated) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let hostile = tokio::spawn({
                let (client, url) = (client.clone(), format!("{base}/api/v1/faults/{action}"));
                let (stop, calls, isolated) = (stop.clone(), calls.clone(), isolated.clone());
                async move {
                    let mut every = tokio::time::interval(HOSTILE_PERIOD);
                    while !stop.load(Ordering::Relaxed) {
                        every.tick().await;
                        let res = client.post(&url).json(&json!({})).send().await.unwrap();
                        calls.fetch_add(1, Ordering::Relaxed);
                        if res.status() == 503 {
                            isolated.fetch_add(1, Ordering::Relaxed);
                        }
                        res.bytes().await.ok();
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            let loaded = measure(&client, &good).await;
            stop.store(true, Ordering::Relaxed);
            hostile.await.unwrap();
            let ratio = loaded.p99.as_secs_f64() / baseline.p99.as_secs_f64();
            println!(
                "| `{action}` | {:?} | {:?} | {:+.0}% | {} ({}) |",
                loaded.p50,
                loaded.p99,
                (ratio - 1.0) * 100.0,
                calls.load(Ordering::Relaxed),
                isolated.load(Ordering::Relaxed)
            );
            // Let the isolation cool down before the next hostile action.
            tokio::time::sleep(Duration::from_secs(11)).await;
        }
        server.stop().await.unwrap();
    });
}
