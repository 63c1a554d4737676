//! Load and fan-out over real sockets, against the built `tidings` binary in a process of its
//! own (fresh data directory, or a fresh PostgreSQL database), as a user would run it:
//!
//! - `writes`: C workers loop on `POST /api/v1/departments` (keep-alive, one request at a
//!   time each) for S seconds while K sockets listen: creates/s, create latency, and the
//!   notification latency (request sent → a socket reads it), checking every socket got
//!   every successful create once.
//! - `fanout`: N sockets connect (at most 200 handshakes in flight: handshake latency, TCP
//!   connect → the namespace's `40{sid}` read), then M creates I ms apart: delivery latency
//!   over every (socket, create) pair, the creates' statuses, and the server's RSS per socket.
//!
//! ```text
//! cargo build --release -p host --bin tidings
//! cargo bench -p integration-tests --bench load -- writes --concurrency 32 --seconds 10 --sockets 10
//! cargo bench -p integration-tests --bench load -- fanout --sockets 10000 --creates 20 --interval-ms 100
//! ```
//!
//! `--postgres URL` (an admin URL such as `postgres://postgres@127.0.0.1:5432/test`) runs the
//! server on a fresh database there instead of SQLite; `TIDINGS_BIN` picks another binary.
//! The Socket.IO client here is the protocol's minimum: Engine.IO v4 over WebSocket only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench-password-1";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(mode) = args.first().cloned() else {
        eprintln!("usage: load (writes|fanout) [--concurrency C] [--seconds S] [--sockets N] ...");
        return;
    };
    let flag = |name: &str, default: u64| -> u64 {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
    };
    let postgres = args.iter().position(|a| a == "--postgres").and_then(|i| args.get(i + 1)).cloned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = Server::start(postgres.as_deref());
    runtime.block_on(async {
        let cookie = login(&server.base).await;
        match mode.as_str() {
            "writes" => {
                writes(&server, &cookie, flag("--concurrency", 32), flag("--seconds", 10), flag("--sockets", 10)).await
            }
            "fanout" => {
                fanout(&server, &cookie, flag("--sockets", 10_000), flag("--creates", 20), flag("--interval-ms", 100))
                    .await
            }
            other => eprintln!("unknown mode {other}"),
        }
    });
    drop(server);
}

/// The server under test, in its own process; killed on drop.
struct Server {
    child: Child,
    base: String,
    data_dir: std::path::PathBuf,
}

impl Server {
    fn start(postgres: Option<&str>) -> Server {
        let bin = std::env::var("TIDINGS_BIN")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tidings").to_owned());
        let data_dir = std::env::temp_dir().join(format!("tidings-load-{}", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(&bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("TIDINGS_ADMIN_EMAIL", EMAIL)
            .env("TIDINGS_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn,host=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(admin_url) = postgres {
            let name = format!("tidings_load_{}", uuid::Uuid::new_v4().simple());
            let status = Command::new("psql").args([admin_url, "-qc", &format!("CREATE DATABASE {name}")]).status();
            assert!(status.is_ok_and(|s| s.success()), "creating a PostgreSQL database with psql");
            let (prefix, _) = admin_url.rsplit_once('/').expect("a database URL");
            command.args(["--database-url", &format!("{prefix}/{name}")]);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {bin} (build it with --release): {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("the server printed its address").unwrap();
            if let Some((_, addr)) = line.split_once("listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        eprintln!("server {} at {base} (pid {})", if postgres.is_some() { "PostgreSQL" } else { "SQLite" }, child.id());
        Server { child, base, data_dir }
    }

    /// Resident memory (KiB) and CPU seconds used so far.
    fn usage(&self) -> (u64, f64) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        (rss, ticks / 100.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

async fn login(base: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "login: {}", res.status());
    let cookie = res.headers().get("set-cookie").expect("a session cookie").to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// What one socket read: the name of each department notified, when, and its offset.
type Received = Vec<(String, Instant, i64)>;

/// Open a socket and read notifications until `stop`; returns the handshake time.
async fn socket(
    base: &str,
    cookie: &str,
    stop: Arc<AtomicBool>,
    connected: tokio::sync::oneshot::Sender<Result<Duration, String>>,
) -> Received {
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    let started = Instant::now();
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ws) => ws,
        Err(err) => {
            let _ = connected.send(Err(err.to_string()));
            return Vec::new();
        }
    };
    let mut connected = Some(connected);
    let mut received = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stop.load(Ordering::Relaxed) { break } else { continue }
            }
        };
        let Some(Ok(Message::Text(text))) = frame else { break };
        let text = text.as_str();
        let at = Instant::now();
        if text.starts_with('0') {
            ws.send(Message::text("40")).await.unwrap();
        } else if text.starts_with("40") {
            if let Some(tx) = connected.take() {
                let _ = tx.send(Ok(started.elapsed()));
            }
        } else if text.starts_with("44") {
            if let Some(tx) = connected.take() {
                let _ = tx.send(Err(text.to_owned()));
            }
            break;
        } else if text == "2" {
            ws.send(Message::text("3")).await.unwrap();
        } else if let Some(event) = text.strip_prefix("42") {
            let value: serde_json::Value = serde_json::from_str(event).unwrap();
            if value[0] == "NEW_RECORD" {
                let payload = &value[1];
                let name = payload["record"]["name"].as_str().unwrap_or_default().to_owned();
                received.push((name, at, payload["offset"].as_i64().unwrap_or(-1)));
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    received
}

struct Sockets {
    tasks: Vec<tokio::task::JoinHandle<Received>>,
    handshakes: Vec<Duration>,
    failed: usize,
    stop: Arc<AtomicBool>,
}

async fn open_sockets(base: &str, cookie: &str, count: u64) -> Sockets {
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(Semaphore::new(200));
    let mut tasks = Vec::new();
    let mut waits = Vec::new();
    for _ in 0..count {
        let permit = Arc::clone(&in_flight).acquire_owned().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (base, cookie, stop) = (base.to_owned(), cookie.to_owned(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move { socket(&base, &cookie, stop, tx).await }));
        waits.push(tokio::spawn(async move {
            let outcome = rx.await.unwrap_or_else(|_| Err("closed".into()));
            drop(permit);
            outcome
        }));
    }
    let mut handshakes = Vec::new();
    let mut failed = 0;
    for wait in waits {
        match wait.await.unwrap() {
            Ok(took) => handshakes.push(took),
            Err(err) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("a socket failed: {err}");
                }
            }
        }
    }
    Sockets { tasks, handshakes, failed, stop }
}

impl Sockets {
    async fn close(self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.push(task.await.unwrap());
        }
        all
    }
}

fn percentiles(mut samples: Vec<f64>) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!("p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms", at(0.5), at(0.9), at(0.99), at(1.0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn create(http: &reqwest::Client, base: &str, cookie: &str, name: &str) -> u16 {
    http.post(format!("{base}/api/v1/departments"))
        .header("cookie", cookie)
        .json(&serde_json::json!({ "name": name, "description": "load" }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Check deliveries against the sent creates; print the latency figures.
fn deliveries(sent: &HashMap<String, Instant>, received: &[Received], what: &str) {
    let mut latencies = Vec::new();
    let (mut missing, mut duplicates) = (0, 0);
    for socket in received {
        let mut seen = HashMap::new();
        for (name, at, offset) in socket {
            if let Some(sent_at) = sent.get(name) {
                latencies.push(ms(at.duration_since(*sent_at)));
                if seen.insert(name.clone(), *offset).is_some() {
                    duplicates += 1;
                }
            }
        }
        missing += sent.keys().filter(|name| !seen.contains_key(*name)).count();
    }
    println!("{what}: {} deliveries, {missing} missing, {duplicates} duplicated", latencies.len());
    println!("{what} latency (request sent → socket read): {}", percentiles(latencies));
}

async fn writes(server: &Server, cookie: &str, concurrency: u64, seconds: u64, sockets: u64) {
    let listeners = open_sockets(&server.base, cookie, sockets).await;
    let (_, cpu_before) = server.usage();
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (base, cookie) = (server.base.clone(), cookie.to_owned());
        let (sent, latencies, failures) = (Arc::clone(&sent), Arc::clone(&latencies), Arc::clone(&failures));
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let name = format!("w{w}-{i}");
                let at = Instant::now();
                let status = create(&http, &base, &cookie, &name).await;
                let took = at.elapsed();
                if status == 201 {
                    sent.lock().await.insert(name, at);
                    latencies.lock().await.push(ms(took));
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (rss, cpu_after) = server.usage();
    tokio::time::sleep(Duration::from_secs(2)).await; // stragglers
    let received = listeners.close().await;
    let sent = sent.lock().await;
    let latencies = latencies.lock().await.clone();
    println!(
        "writes: C = {concurrency}, {sockets} sockets, {seconds} s: {:.0} creates/s (201), {} other answers; server CPU {:.1} s, RSS {} MiB",
        sent.len() as f64 / elapsed,
        failures.load(Ordering::Relaxed),
        cpu_after - cpu_before,
        rss / 1024
    );
    println!("create latency: {}", percentiles(latencies));
    deliveries(&sent, &received, "notification");
}

async fn fanout(server: &Server, cookie: &str, count: u64, creates: u64, interval_ms: u64) {
    let (rss_idle, _) = server.usage();
    let started = Instant::now();
    let sockets = open_sockets(&server.base, cookie, count).await;
    let connect_wall = started.elapsed();
    println!(
        "fanout: {} sockets connected ({} failed) in {:.1} s; handshake {}",
        sockets.handshakes.len(),
        sockets.failed,
        connect_wall.as_secs_f64(),
        percentiles(sockets.handshakes.iter().copied().map(ms).collect())
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_connected, cpu_before) = server.usage();
    println!(
        "server RSS: {} MiB idle, {} MiB with the sockets: {:.1} KiB per socket",
        rss_idle / 1024,
        rss_connected / 1024,
        (rss_connected.saturating_sub(rss_idle)) as f64 / sockets.handshakes.len().max(1) as f64
    );
    let http = reqwest::Client::new();
    let mut pending = Vec::new();
    let mut sent = HashMap::new();
    for k in 0..creates {
        let name = format!("fanout-{k}");
        sent.insert(name.clone(), Instant::now());
        let (http, base, cookie) = (http.clone(), server.base.clone(), cookie.to_owned());
        pending.push(tokio::spawn(async move { create(&http, &base, &cookie, &name).await }));
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
    let mut statuses = HashMap::new();
    for p in pending {
        *statuses.entry(p.await.unwrap()).or_insert(0) += 1;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, cpu_after) = server.usage();
    let received = sockets.close().await;
    println!("creates answered: {statuses:?}; server CPU during the creates {:.1} s", cpu_after - cpu_before);
    deliveries(&sent, &received, "delivery");
}
