//! Bench binary: does a hostile plugin hurt a well-behaved one? Measures the latency of
//! `GET /api/v1/departments` (the bundled plugin), sequentially, in three kinds of rounds:
//!
//! - quiet: nothing else runs;
//! - benign: a second client sends 100 requests a second that the host answers at once
//!   (a 404 for an action the plugin does not have), the same traffic as the hostile client
//!   makes once its plugin is isolated, without any hostile code;
//! - hostile: the second client calls one hostile action of the `fault-misbehave` test guest
//!   100 times a second.
//!
//! The kinds alternate, round after round, so that a drift of the machine (another process,
//! the CPU's clock) falls on all alike. Each round lasts longer than the isolation cool-down,
//! so a hostile round holds one whole cycle of the default limits: the plugin is called and
//! faults until it is isolated, then answers 503 until the cool-down ends. Each action gets a
//! fresh server, so its first hostile round pays the whole threshold of faults (reported
//! apart too); the later ones find the plugin on probation. Besides the p99 over all rounds of
//! a kind, each hostile round is compared with the benign round just before it, and the
//! median of those ratios is printed: one round that met a hiccup of the machine moves it
//! less than the pooled p99.
//!
//! The server runs on a runtime of its own (as many workers as cores, as `tidings` does);
//! both clients share one thread, like a separate load generator would.
//!
//! Run with `cargo bench -p integration-tests --bench isolation`; name actions after `--` to
//! run only those, e.g. `-- flood`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use host::Server;
use host::config::Config;
use host::plugin::Limits;
use integration_tests::TempDir;
use serde_json::json;

const HOSTILE: [&str; 6] = ["loop", "sleep", "memory-bomb", "recurse", "huge-body", "flood"];
/// One call of the second client every this often (100/s): steady load, rather than a flood
/// of HTTP requests that would measure the load generator instead.
const SECOND_CLIENT_PERIOD: Duration = Duration::from_millis(10);
/// Rounds of each kind per action.
const ROUNDS: usize = 5;

/// Sorted request latencies.
struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut all: Vec<Duration>) -> Samples {
        all.sort();
        Samples(all)
    }

    fn quantile(&self, q: f64) -> Duration {
        let rank = ((self.0.len() as f64) * q).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

/// Sequential good requests for `how_long`.
async fn measure(client: &reqwest::Client, url: &str, how_long: Duration) -> Vec<Duration> {
    let mut samples = Vec::new();
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        let start = Instant::now();
        let res = client.get(url).send().await.expect("GET");
        assert!(res.status().is_success());
        res.bytes().await.expect("body");
        samples.push(start.elapsed());
    }
    samples
}

/// The second client's tally of one round.
#[derive(Default)]
struct Tally {
    /// Calls answered 503 at once, the plugin being isolated.
    isolated: u64,
    /// Time to answer each call that was not a 503.
    answered: Vec<Duration>,
}

/// `POST url` every [`SECOND_CLIENT_PERIOD`] until `stop`.
async fn second_client(client: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut every = tokio::time::interval(SECOND_CLIENT_PERIOD);
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let start = Instant::now();
        let res = client.post(&url).json(&json!({})).send().await.unwrap();
        if res.status() == 503 {
            tally.isolated += 1;
        } else {
            tally.answered.push(start.elapsed());
        }
        res.bytes().await.ok();
    }
    tally
}

/// Good requests for `how_long` while the second client calls `url`, if any.
async fn round(
    client: &reqwest::Client,
    good: &str,
    url: Option<String>,
    how_long: Duration,
) -> (Vec<Duration>, Tally) {
    let Some(url) = url else { return (measure(client, good, how_long).await, Tally::default()) };
    let stop = Arc::new(AtomicBool::new(false));
    let second = tokio::spawn(second_client(client.clone(), url, stop.clone()));
    let samples = measure(client, good, how_long).await;
    stop.store(true, Ordering::Relaxed);
    (samples, second.await.unwrap())
}

/// A server with the bundled plugins and `fault-misbehave`, five departments, and a client
/// signed in as an admin.
async fn start(dir: &TempDir, limits: Limits) -> (Server, reqwest::Client) {
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(integration_tests::FAULT_MISBEHAVE, plugins.join("fault_misbehave.wasm")).unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf());
    config.plugin_dir = Some(plugins);
    config.limits = limits;
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
    (server, client)
}

fn main() {
    let limits = Limits::default();
    // Longer than the cool-down, so each hostile round holds a whole isolation cycle, and the
    // rounds between let the cool-down end before the next hostile one.
    let length = limits.cool_down + Duration::from_secs(1);
    let server_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let clients_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");

    println!(
        "| hostile action | quiet p50 / p99 | benign p50 / p99 | hostile p50 / p99 | p99 hostile vs quiet | p99 hostile vs benign | median of paired rounds, hostile vs benign | first hostile round vs its quiet round | hostile calls run (503) | one hostile call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    for action in HOSTILE.into_iter().filter(|a| only.is_empty() || only.iter().any(|o| o == a)) {
        // A fresh server for each action, so each finds the plugin with no faults counted.
        let dir = TempDir::new("bench-isolation");
        let (server, client) = server_rt.block_on(start(&dir, limits.clone()));
        let base = server.url();
        clients_rt.block_on(async {
            let good = format!("{base}/api/v1/departments");
            measure(&client, &good, Duration::from_secs(2)).await; // warm up
            let (mut quiet, mut benign, mut hostile) = (Vec::new(), Vec::new(), Vec::new());
            let (mut tally, mut first_round, mut paired) = (Tally::default(), None, Vec::new());
            for i in 0..ROUNDS {
                let (quiet_round, _) = round(&client, &good, None, length).await;
                let not_an_action = Some(format!("{base}/api/v1/faults/no-such-action"));
                let (benign_round, _) = round(&client, &good, not_an_action, length).await;
                let hostile_url = Some(format!("{base}/api/v1/faults/{action}"));
                let (hostile_round, round_tally) = round(&client, &good, hostile_url, length).await;
                let p99 = |round: &Vec<Duration>| Samples::new(round.clone()).quantile(0.99).as_secs_f64();
                paired.push(p99(&hostile_round) / p99(&benign_round));
                if i == 0 {
                    first_round = Some(format!("{:+.0}%", (p99(&hostile_round) / p99(&quiet_round) - 1.0) * 100.0));
                }
                quiet.extend(quiet_round);
                benign.extend(benign_round);
                hostile.extend(hostile_round);
                tally.isolated += round_tally.isolated;
                tally.answered.extend(round_tally.answered);
            }
            let (quiet, benign, hostile) = (Samples::new(quiet), Samples::new(benign), Samples::new(hostile));
            let ran = tally.answered.len();
            let hostile_mean = tally.answered.iter().sum::<Duration>() / u32::try_from(ran.max(1)).unwrap();
            let p = |s: &Samples| format!("{:.0?} / {:.0?}", s.quantile(0.5), s.quantile(0.99));
            // Each hostile round against the benign round just before it; the median is
            // robust to one round that met a hiccup of the machine.
            paired.sort_by(f64::total_cmp);
            let paired_median = format!("{:+.0}%", (paired[paired.len() / 2] - 1.0) * 100.0);
            println!(
                "| `{action}` | {} | {} | {} | {} | {} | {paired_median} | {} | {ran} ({}) | {hostile_mean:.1?} |",
                p(&quiet),
                p(&benign),
                p(&hostile),
                change(quiet.quantile(0.99), hostile.quantile(0.99)),
                change(benign.quantile(0.99), hostile.quantile(0.99)),
                first_round.unwrap(),
                tally.isolated,
            );
        });
        server_rt.block_on(server.stop()).unwrap();
    }
}

fn change(before: Duration, after: Duration) -> String {
    format!("{:+.0}%", (after.as_secs_f64() / before.as_secs_f64() - 1.0) * 100.0)
}
