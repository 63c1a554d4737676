//! Criterion benchmarks of the operator paths: the time from an uploaded component to the
//! new version serving (with and without its precompiled artifact cached), and the cold start
//! of a server with the bundled plugins, with and without the precompiled cache.
//!
//! Run with `cargo bench -p integration-tests --bench lifecycle`; see BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use host::Server;
use host::config::Config;
use integration_tests::TempDir;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building tokio");
    let one = std::fs::read(integration_tests::SWAP_ONE).expect("swap-one is built");
    let two = std::fs::read(integration_tests::SWAP_TWO).expect("swap-two is built");

    let mut group = c.benchmark_group("lifecycle");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));

    // Upload → serving, as `PUT /api/v1/admin/plugins/swap` runs it (without HTTP): phase 1
    // (compile or load the cached artifact, link, describe twice, validate) and phase 2
    // (store the version, swap). Alternating two versions keeps every install a real swap.
    let dir = TempDir::new("install");
    let server = rt.block_on(Server::start(Config::for_tests(dir.path().to_path_buf()))).expect("starting the server");
    let manager = server.state.manager.clone();
    rt.block_on(async {
        manager.install(one.clone(), "bench", false, None).await.expect("installing swap-one");
        manager.install(two.clone(), "bench", false, None).await.expect("installing swap-two");
    });
    // Which version to install next; alternating keeps every install a real swap (installing
    // the serving version again is a no-op).
    let next_is_one = AtomicBool::new(true);
    let next = || if next_is_one.fetch_xor(true, Ordering::Relaxed) { one.clone() } else { two.clone() };
    group.bench_function("install_to_serving_cached", |b| {
        b.to_async(&rt).iter(|| {
            let (manager, bytes) = (manager.clone(), next());
            async move { manager.install(bytes, "bench", false, None).await.expect("install") }
        })
    });
    let cache = dir.path().join("cache");
    group.bench_function("install_to_serving_uncached", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (manager, cache, next) = (manager.clone(), cache.clone(), &next);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Forget the precompiled artifacts, so phase 1 compiles.
                    let _ = std::fs::remove_dir_all(&cache);
                    let bytes = next();
                    let start = Instant::now();
                    manager.install(bytes, "bench", false, None).await.expect("install");
                    total += start.elapsed();
                }
                total
            }
        })
    });
    rt.block_on(server.stop()).expect("stopping the server");

    // Cold start with the bundled plugins: open (or create) the database, run migrations,
    // load every plugin, bind. "cached" reuses a data directory whose cache is filled.
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let warm = TempDir::new("start-warm");
    rt.block_on(async {
        Server::start(Config::for_tests(warm.path().to_path_buf())).await.unwrap().stop().await.unwrap()
    });
    for (name, keep_cache) in [("cold_start_with_cache", true), ("cold_start_without_cache", false)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| time_starts(warm.path().to_path_buf(), keep_cache, iters))
        });
    }
    group.finish();
}

/// `iters` server starts on `dir`, timed until the server accepts connections; the cache of
/// precompiled plugins is deleted before each start unless `keep_cache`.
async fn time_starts(dir: PathBuf, keep_cache: bool, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        if !keep_cache {
            let _ = std::fs::remove_dir_all(dir.join("cache"));
        }
        let start = Instant::now();
        let server = Server::start(Config::for_tests(dir.clone())).await.expect("start");
        total += start.elapsed();
        server.stop().await.expect("stop");
    }
    total
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
