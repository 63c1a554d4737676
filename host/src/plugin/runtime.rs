//! The engine and the two lifecycle moments of a plugin: loading (compile once, link,
//! pre-instantiate, describe, validate) and calling (a fresh pooled instance per call, with
//! an epoch deadline and a memory cap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::Any;
use sqlx::pool::PoolConnection;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;

use crate::db::records::ElementFields;
use crate::db::{self, Dialect};
use crate::plugin::bindings::{Plugin, PluginPre, wit};
use crate::plugin::ctx::PluginCtx;
use crate::plugin::host_api::store::{Read, StoreState};
use crate::plugin::host_api::{self, log::LogState, wasi::Output};
use crate::plugin::journal::{Journal, Journals};
use crate::plugin::stats::Stats;
use crate::plugin::{Error, FaultKind, LoadError};

/// How often the engine's epoch advances; the granularity of deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// A call's wall-clock bound, as a multiple of its [`Limits::timeout`]: the bound that holds
/// whatever the guest does (host reads, a busy machine), where the timeout itself counts only
/// the time the guest runs.
pub const WALL_FACTOR: u32 = 10;

/// Core instances one plugin may make: a Rust component makes 3 (its module and two shims that
/// wit-component adds), a JavaScript one (componentize-qjs) 8, a Python one (componentize-py)
/// 14: its interpreter, libc and the other shared libraries it links at instantiation.
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// The limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Budget of one call: guest code may run this long (on a CPU; time spent waiting for a
    /// worker thread does not count), and no call lasts longer than [`WALL_FACTOR`] times
    /// this in wall-clock time, whatever it waits on.
    pub timeout: Duration,
    /// Linear memory per instance, in bytes.
    pub max_memory: usize,
    /// Bytes of records one call may read from the store.
    pub max_bytes_read: usize,
    /// Instances kept at once by the pooling allocator (bounds concurrent calls).
    pub max_instances: u32,
    /// Consecutive faults after which a plugin is isolated…
    pub isolate_after: u64,
    /// …for this long: its requests answer 503 at once, then it is tried again.
    pub cool_down: Duration,
    /// Limits for particular plugins, by plugin name, replacing these for their calls.
    pub per_plugin: BTreeMap<String, Limits>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(100),
            max_memory: 64 << 20,
            max_bytes_read: 16 << 20,
            max_instances: 256,
            isolate_after: 5,
            cool_down: Duration::from_secs(10),
            per_plugin: BTreeMap::new(),
        }
    }
}

/// The wasmtime engine and linker shared by every plugin. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginCtx>,
    limits: Limits,
    dialect: Dialect,
    /// The element-indexed fields, shared with the [`crate::db::Db`].
    elements: ElementFields,
    /// Where precompiled artifacts are cached; `None` compiles every time.
    cache_dir: Option<std::path::PathBuf>,
    /// Each plugin name's journal, shared by its versions.
    journals: Journals,
    /// Instances made ahead of their calls ([`Runtime::prepare`]) that may exist at once: a
    /// share of the pool, so that they never take the slots calls need.
    ahead: Arc<tokio::sync::Semaphore>,
}

/// A fresh instance made ahead of its call ([`Runtime::prepare`]).
pub struct Prepared {
    store: Store<PluginCtx>,
    instance: Plugin,
    /// How long making it took, counted in the call's latency.
    made_in: Duration,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// A request's call run ahead of its turn in the write pipeline ([`Runtime::run_ahead`]):
/// what it came to, with the reads it was answered, to be checked in the transaction it would
/// be applied in ([`Runtime::settle`]). Until then it has counted nowhere: not in the plugin's
/// statistics, not toward its isolation, not in its journal.
pub struct Ahead {
    result: wasmtime::Result<Result<wit::Response, wit::PluginError>>,
    reads: Vec<Read>,
    log: LogState,
    printed: Vec<u8>,
    took: Duration,
}

/// A compiled, linked, described and validated plugin, ready to serve.
pub struct LoadedPlugin {
    pub descriptor: wit::Descriptor,
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// When this version started serving (ISO 8601); set by whoever installs it.
    pub loaded_at: String,
    /// Who installed it: `bundled`, `directory`, `cli`, or the installing user's id.
    pub installed_by: String,
    pub stats: Stats,
    /// The plugin's log lines and fault reasons, shared with its other versions.
    pub journal: Arc<Journal>,
    pre: PluginPre<PluginCtx>,
    /// Actions by method: paths relative to the collection, and `/api/v1/user/...` views.
    routes: HashMap<Method, matchit::Router<usize>>,
    user_views: HashMap<Method, matchit::Router<usize>>,
    readable: Arc<BTreeSet<String>>,
    writable: BTreeSet<String>,
}

type Method = u8;

fn method_key(m: wit::Method) -> Method {
    m as u8
}

/// An action matched for a request path.
pub struct RouteMatch<'a> {
    pub action: &'a wit::Action,
    pub params: Vec<(String, String)>,
}

impl Runtime {
    /// Build the engine (pooling allocator, epoch interruption) and link the host API.
    pub fn new(
        limits: Limits,
        dialect: Dialect,
        elements: ElementFields,
        cache_dir: Option<std::path::PathBuf>,
    ) -> wasmtime::Result<Arc<Runtime>> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            // So that a Python or JavaScript plugin serves as many calls at once as a Rust one.
            // A count only: a core instance's slot costs no memory until it is used.
            .total_core_instances(limits.max_instances * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            // Slots fit the largest cap; each store enforces its plugin's own.
            .max_memory_size(limits.per_plugin.values().map(|l| l.max_memory).fold(limits.max_memory, usize::max))
            // Keep some slots warm: a reused slot skips most page-fault and mmap work.
            .max_unused_warm_slots(limits.max_instances.min(64))
            // Reset a slot's first pages in place instead of returning them to the kernel and
            // faulting them back in on the next call: measured 26 µs → 8 µs for a call that
            // reads nothing (BENCHMARKS.md). Costs up to 2 MiB resident per warm slot.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            // Where the kernel supports it, reset only the pages the call dirtied.
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        host_api::link(&mut linker)?;
        spawn_epoch_ticker(&engine);
        let ahead = Arc::new(tokio::sync::Semaphore::new((limits.max_instances / 4) as usize));
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            dialect,
            elements,
            cache_dir,
            journals: Journals::default(),
            ahead,
        }))
    }

    /// Count a call toward isolation: `faulted` after a trap or invalid output, otherwise
    /// the count of consecutive faults starts over.
    pub fn record_outcome(&self, plugin: &LoadedPlugin, faulted: bool) {
        let limits = self.limits_for(&plugin.descriptor.name);
        plugin.stats.record_outcome(faulted, limits.isolate_after, limits.cool_down);
    }

    /// The journal of the plugin `name`, if this server has loaded it.
    pub fn journal(&self, name: &str) -> Option<Arc<Journal>> {
        self.journals.get(name)
    }

    /// The limits that apply to calls of the plugin `name`.
    pub fn limits_for(&self, name: &str) -> &Limits {
        self.limits.per_plugin.get(name).unwrap_or(&self.limits)
    }

    /// Compile and check a component. CPU-heavy: runs on the blocking pool.
    pub async fn load(self: &Arc<Self>, bytes: Vec<u8>) -> Result<LoadedPlugin, LoadError> {
        let this = Arc::clone(self);
        let (pre, sha256) = tokio::task::spawn_blocking(move || {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let component = this.compile(&bytes, &sha256)?;
            let instance_pre =
                this.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
            let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
            Ok::<_, LoadError>((pre, sha256))
        })
        .await
        .map_err(|e| LoadError::Host(e.to_string()))??;

        // Describe twice, on two fresh instances: the answer must not change.
        let first = self.describe(&pre).await?;
        let second = self.describe(&pre).await?;
        if first != second {
            return Err(LoadError::Describe("describe() answered differently on two calls".into()));
        }
        let (routes, user_views) = validate(&first)?;
        let readable: BTreeSet<String> =
            first.grants.read.iter().chain(&first.grants.write).chain([&first.record_type]).cloned().collect();
        let writable = first.grants.write.iter().chain([&first.record_type]).cloned().collect();
        Ok(LoadedPlugin {
            journal: self.journals.of(&first.name),
            descriptor: first,
            sha256,
            loaded_at: String::new(),
            installed_by: String::new(),
            stats: Stats::default(),
            pre,
            routes,
            user_views,
            readable: Arc::new(readable),
            writable,
        })
    }

    /// Compile a component, or load its precompiled artifact from the cache directory. The
    /// cache key is the content hash plus the engine's compatibility hash, so an artifact
    /// from another wasmtime version or configuration is never loaded.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")));
        };
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", std::hash::Hasher::finish(&hasher)));
        if path.exists() {
            match load_precompiled(&self.engine, &path) {
                Ok(component) => return Ok(component),
                Err(err) => tracing::warn!(path = %path.display(), %err, "ignoring an unreadable precompiled artifact"),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        // Best effort: a cache that cannot be written only costs the next start a compile.
        let written = component.serialize().map_err(|e| e.to_string()).and_then(|artifact| {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, artifact).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| e.to_string())
        });
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), err, "could not cache a precompiled plugin");
        }
        Ok(component)
    }

    async fn describe(&self, pre: &PluginPre<PluginCtx>) -> Result<wit::Descriptor, LoadError> {
        let mut store = self.new_store(None, None);
        let result = bounded(self.limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.tidings_plugin_handler().call_describe(&mut store).await
        })
        .await;
        result.map_err(|e| LoadError::Describe(format!("{e:#}")))
    }

    /// Make a fresh instance of `plugin` for a call to come, so that making it is not on the
    /// path the call waits on: the write pipeline runs one job at a time, and each request
    /// makes its instance before it joins the queue. `None` when it is better made at the call:
    /// too many are waiting already (the pool's slots are for calls), or making it failed
    /// (the call will fail the same way, and count it as its fault).
    pub async fn prepare(&self, plugin: &LoadedPlugin) -> Option<Prepared> {
        let slot = Arc::clone(&self.ahead).try_acquire_owned().ok()?;
        let started = Instant::now();
        let mut store = self.new_store(Some(plugin), None);
        let timeout = self.limits_for(&plugin.descriptor.name).timeout;
        let instance = bounded(timeout, plugin.pre.instantiate_async(&mut store)).await.ok()?;
        Some(Prepared { store, instance, made_in: started.elapsed(), _slot: slot })
    }

    /// Run `handle` on a fresh instance (`prepared`, or one made now). The transaction goes in
    /// for the plugin's reads and comes back out for the caller to apply the writes and
    /// commit (or to drop).
    pub async fn handle(
        &self,
        plugin: &LoadedPlugin,
        prepared: Option<Prepared>,
        req: &wit::Request,
        tx: db::Tx,
    ) -> (Result<wit::Response, Error>, Option<db::Tx>) {
        self.call(plugin, prepared, tx, async |store, instance| {
            instance.tidings_plugin_handler().call_handle(store, req).await
        })
        .await
    }

    /// Run `handle` on a fresh instance ahead of the request's turn in the write pipeline,
    /// reading on `reader` (the last committed state), keeping every read and its answer.
    /// `None` if it could not be run so: no room in the pool for an instance made ahead, or
    /// the database failed; the call is then made in turn, as [`Runtime::handle`]. The reader
    /// comes back too when it is idle (the call returned, rather than being stopped, perhaps
    /// in the middle of a read), to be used again.
    pub async fn run_ahead(
        &self,
        plugin: &LoadedPlugin,
        req: &wit::Request,
        reader: PoolConnection<Any>,
    ) -> (Option<Ahead>, Option<PoolConnection<Any>>) {
        let Ok(_slot) = self.ahead.try_acquire() else { return (None, Some(reader)) };
        let started = Instant::now();
        let mut store = self.new_store(Some(plugin), None);
        let ctx = store.data_mut();
        ctx.store.reader = Some(reader);
        ctx.store.reads = Some(Vec::new());
        ctx.log.hold();
        let result = self
            .call_fresh(plugin, &mut store, async |store, instance| {
                instance.tidings_plugin_handler().call_handle(store, req).await
            })
            .await;
        let took = started.elapsed();
        let PluginCtx { store: StoreState { reads, host_error, reader, .. }, log, output, .. } = store.into_data();
        if host_error.is_some() {
            return (None, None);
        }
        // A call that returned (not one stopped by its deadline or a trap, perhaps in the middle
        // of a read) leaves its reader idle.
        let idle = reader.filter(|_| result.is_ok());
        (Some(Ahead { result, reads: reads.unwrap_or_default(), log, printed: output.take(), took }), idle)
    }

    /// The answer of a call run ahead ([`Runtime::run_ahead`]), if its reads answer the same in
    /// `tx`, the transaction it is to be applied in: then the call, a function of the request
    /// and its reads, would come to the same, and it counts as the call of the request.
    /// `None` if a read answers otherwise: the call must be made again, in `tx`.
    pub async fn settle(
        &self,
        plugin: &LoadedPlugin,
        ahead: Ahead,
        tx: db::Tx,
    ) -> (Option<Result<wit::Response, Error>>, db::Tx) {
        if let Err(isolated) = plugin.available() {
            return (Some(Err(isolated)), tx);
        }
        let mut store = self.store_state(Some(plugin), Some(tx));
        let same = store.replay(&ahead.reads).await;
        let tx = store.tx.take().expect("replaying reads keeps the transaction");
        match (same, store.host_error) {
            (_, Some(err)) => (Some(Err(Error::Host(err))), tx),
            (Ok(false), None) => (None, tx),
            (Err(trap), None) => (Some(Err(Error::Host(db::Error::Corrupt(trap.to_string())))), tx),
            (Ok(true), None) => {
                let Ahead { result, mut log, printed, took, .. } = ahead;
                plugin.stats.calls.fetch_add(1, Ordering::Relaxed);
                log.release();
                self.ended(plugin, took, &printed);
                (Some(self.outcome(plugin, result, None)), tx)
            }
        }
    }

    /// Run `run-task` on a fresh instance, like [`Runtime::handle`].
    pub async fn run_task(
        &self,
        plugin: &LoadedPlugin,
        req: &wit::TaskRequest,
        tx: db::Tx,
    ) -> (Result<wit::Response, Error>, Option<db::Tx>) {
        self.call(plugin, None, tx, async |store, instance| {
            instance.tidings_plugin_handler().call_run_task(store, req).await
        })
        .await
    }

    /// Run `on-socket-event` on a fresh instance, reading inside `tx`. The reply is judged
    /// by the caller, like a response (`dispatch::check_reply`).
    pub async fn socket_event(
        &self,
        plugin: &LoadedPlugin,
        req: &wit::SocketRequest,
        tx: db::Tx,
    ) -> Result<String, Error> {
        let (outcome, _) = self
            .call(plugin, None, tx, async |store, instance| {
                instance.tidings_plugin_handler().call_on_socket_event(store, req).await
            })
            .await;
        outcome
    }

    /// Call one export on a fresh instance (`prepared`, or one made now) with `tx` for its
    /// reads, counting the call and its latency; the transaction comes back unless the call
    /// lost it.
    async fn call<T>(
        &self,
        plugin: &LoadedPlugin,
        prepared: Option<Prepared>,
        tx: db::Tx,
        export: impl AsyncFnOnce(&mut Store<PluginCtx>, Plugin) -> wasmtime::Result<Result<T, wit::PluginError>>,
    ) -> (Result<T, Error>, Option<db::Tx>) {
        if let Err(isolated) = plugin.available() {
            return (Err(isolated), Some(tx));
        }
        plugin.stats.calls.fetch_add(1, Ordering::Relaxed);
        let timeout = self.limits_for(&plugin.descriptor.name).timeout;
        let started = Instant::now();
        // The call's latency: making its instance and running it, not the wait in between.
        let (made_in, mut store, result) = match prepared {
            Some(Prepared { mut store, instance, made_in, _slot }) => {
                store.data_mut().store.tx = Some(tx);
                // The first deadline may have passed while the instance waited: the run-time
                // budget counts from the call.
                store.set_epoch_deadline(1);
                let result = bounded(timeout, export(&mut store, instance)).await;
                (made_in, store, result)
            }
            None => {
                let mut store = self.new_store(Some(plugin), Some(tx));
                let result = self.call_fresh(plugin, &mut store, export).await;
                (Duration::ZERO, store, result)
            }
        };
        let ctx = store.data_mut();
        let (tx, host_error) = (ctx.store.tx.take(), ctx.store.host_error.take());
        self.ended(plugin, made_in + started.elapsed(), &ctx.output.take());
        (self.outcome(plugin, result, host_error), tx)
    }

    /// Make an instance of `plugin` in `store` and call `export` on it, within the plugin's
    /// deadline.
    async fn call_fresh<T>(
        &self,
        plugin: &LoadedPlugin,
        store: &mut Store<PluginCtx>,
        export: impl AsyncFnOnce(&mut Store<PluginCtx>, Plugin) -> wasmtime::Result<Result<T, wit::PluginError>>,
    ) -> wasmtime::Result<Result<T, wit::PluginError>> {
        let timeout = self.limits_for(&plugin.descriptor.name).timeout;
        bounded(timeout, async {
            let instance = plugin.pre.instantiate_async(&mut *store).await?;
            export(store, instance).await
        })
        .await
    }

    /// Count a call that counts (made in turn, or run ahead and settled): its latency, and
    /// what it printed into the plugin's journal.
    fn ended(&self, plugin: &LoadedPlugin, took: Duration, printed: &[u8]) {
        plugin.stats.record_latency(took);
        if !printed.is_empty() {
            plugin.journal.output(&plugin.descriptor.version, printed);
        }
    }

    fn outcome<T>(
        &self,
        plugin: &LoadedPlugin,
        result: wasmtime::Result<Result<T, wit::PluginError>>,
        host_error: Option<db::Error>,
    ) -> Result<T, Error> {
        // A trap counts toward isolation and a refusal clears the count; a returned value is
        // judged by the caller, who checks it (`dispatch`) and calls `record_outcome`.
        match (&result, &host_error) {
            (Err(_), None) => self.record_outcome(plugin, true),
            (Ok(Err(_)), _) => self.record_outcome(plugin, false),
            _ => {}
        }
        match (result, host_error) {
            (Ok(Ok(value)), _) => Ok(value),
            (Ok(Err(wit::PluginError::Internal(message))), _) => {
                plugin.stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                let error_id = plugin.journal.fault(&plugin.descriptor.version, &format!("internal error: {message}"));
                Err(Error::Internal { plugin: plugin.descriptor.name.clone(), message, error_id })
            }
            (Ok(Err(refusal)), _) => {
                plugin.stats.guest_errors.fetch_add(1, Ordering::Relaxed);
                Err(Error::Guest(refusal))
            }
            (Err(_), Some(host_error)) => Err(Error::Host(host_error)),
            (Err(trap), None) => {
                plugin.stats.faults.fetch_add(1, Ordering::Relaxed);
                let kind = classify(&trap);
                if kind == FaultKind::Timeout {
                    plugin.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                let message = format!("{trap:#}");
                let error_id = plugin.journal.fault(&plugin.descriptor.version, &format!("{kind}: {message}"));
                Err(Error::Fault { plugin: plugin.descriptor.name.clone(), kind, message, error_id })
            }
        }
    }

    /// The store capability's state for a call of `plugin` (`None` while loading one),
    /// reading in `tx`.
    fn store_state(&self, plugin: Option<&LoadedPlugin>, tx: Option<db::Tx>) -> StoreState {
        let (name, readable) = match plugin {
            Some(p) => (&*p.descriptor.name, Arc::clone(&p.readable)),
            None => ("loading", Arc::default()),
        };
        StoreState::new(tx, self.dialect, self.elements.clone(), readable, self.limits_for(name).max_bytes_read)
    }

    /// A store for one call of `plugin` (`None` while loading one), reading in `tx`.
    fn new_store(&self, plugin: Option<&LoadedPlugin>, tx: Option<db::Tx>) -> Store<PluginCtx> {
        let (name, version, journal) = match plugin {
            Some(p) => (&*p.descriptor.name, &*p.descriptor.version, Arc::clone(&p.journal)),
            None => ("loading", "", Arc::default()),
        };
        let limits = self.limits_for(name);
        let output = Output::default();
        let ctx = PluginCtx {
            wasi: WasiCtx::builder().stdout(output.clone()).stderr(output.clone()).build(),
            http: Default::default(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory)
                .instances(CORE_INSTANCES_PER_COMPONENT as usize)
                .tables(16)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            store: self.store_state(plugin, tx),
            log: LogState::new(name, version, journal),
            output,
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limits);
        // Yield to the async runtime every tick, so a busy plugin never holds a worker
        // thread for long, and interrupt the call once it has run its budget. The callback
        // fires once per tick the guest was running when the epoch advanced, so it counts
        // run time: a call that waits for a worker on a busy server is not charged for the
        // wait (a call that waits in the host is stopped by [`bounded`] instead).
        let budget = limits.timeout.as_micros().div_ceil(EPOCH_TICK.as_micros()).max(1);
        let mut ran = 0;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ran += 1;
            Ok(if ran >= budget { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        store
    }
}

impl LoadedPlugin {
    /// The action serving `method` at `path` (relative to the collection, starting with `/`).
    pub fn route(&self, method: wit::Method, path: &str) -> Option<RouteMatch<'_>> {
        Self::matched(&self.routes, &self.descriptor, method, path)
    }

    /// The action serving `method` at the absolute `path` under [`USER_VIEWS`], if this plugin
    /// declared one.
    pub fn user_view(&self, method: wit::Method, path: &str) -> Option<RouteMatch<'_>> {
        Self::matched(&self.user_views, &self.descriptor, method, path)
    }

    /// A user view that both plugins would serve (for the same method), if any.
    pub fn user_views_overlap(&self, other: &LoadedPlugin) -> Option<String> {
        let sample = |path: &str| {
            path.split('/').map(|seg| if seg.starts_with(':') { "_" } else { seg }).collect::<Vec<_>>().join("/")
        };
        let one_way = |a: &LoadedPlugin, b: &LoadedPlugin| {
            a.descriptor
                .actions
                .iter()
                .filter(|action| action.path.starts_with(USER_VIEWS))
                .find(|action| b.user_view(action.method, &sample(&action.path)).is_some())
                .map(|action| action.path.clone())
        };
        one_way(self, other).or_else(|| one_way(other, self))
    }

    fn matched<'a>(
        routes: &HashMap<Method, matchit::Router<usize>>,
        descriptor: &'a wit::Descriptor,
        method: wit::Method,
        path: &str,
    ) -> Option<RouteMatch<'a>> {
        let matched = routes.get(&method_key(method))?.at(path).ok()?;
        let params = matched.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Some(RouteMatch { action: &descriptor.actions[*matched.value], params })
    }

    /// `Err(Error::Isolated)` while the plugin is isolated after repeated faults. Checked
    /// before every call; callers that can also check it before opening a transaction do, so
    /// an isolated plugin's requests cost no database work.
    pub fn available(&self) -> Result<(), Error> {
        match self.stats.isolated_for() {
            Some(retry_after) => Err(Error::Isolated { plugin: self.descriptor.name.clone(), retry_after }),
            None => Ok(()),
        }
    }

    /// The fault of output that breaks the interface's rules, recorded in the journal.
    pub fn invalid_output(&self, message: String) -> Error {
        let error_id =
            self.journal.fault(&self.descriptor.version, &format!("{}: {message}", FaultKind::InvalidOutput));
        Error::Fault { plugin: self.descriptor.name.clone(), kind: FaultKind::InvalidOutput, message, error_id }
    }

    /// Whether the plugin's grants let it write and notify about `record_type`.
    pub fn may_write(&self, record_type: &str) -> bool {
        self.writable.contains(record_type)
    }
}

/// Run one entry into a guest with the wall-clock bound ([`WALL_FACTOR`] × `timeout`) that
/// holds whatever the guest does. When it fires the call's future is dropped, and with it
/// whatever the call was waiting on; the caller drops the store, which rolls back the
/// transaction and frees its connection. It counts as a timeout ([`Trap::Interrupt`]).
async fn bounded<T>(timeout: Duration, call: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    match tokio::time::timeout(timeout * WALL_FACTOR, call).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)
            .context(format!("the call did not end within its wall-clock bound of {:?}", timeout * WALL_FACTOR))),
    }
}

fn classify(err: &wasmtime::Error) -> FaultKind {
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FaultKind::Timeout,
        Some(Trap::StackOverflow) => FaultKind::Trap,
        Some(_) => FaultKind::Trap,
        None if format!("{err:#}").contains("grow") => FaultKind::Resources,
        None => FaultKind::Trap,
    }
}

/// The one place outside its collection where a plugin may serve actions: the signed-in
/// user's views of its records, e.g. events-api's `GET /api/v1/user/events`. An action whose
/// path starts with this prefix is served at that absolute path.
pub const USER_VIEWS: &str = "/api/v1/user/";

type Routes = HashMap<Method, matchit::Router<usize>>;

/// Why an action's route cannot be added, in the author's own syntax (`/:id`, not the
/// router's `/{id}`), naming the action it conflicts with.
fn route_error(d: &wit::Descriptor, action: &wit::Action, err: matchit::InsertError) -> String {
    let (method, path) = (action.method.as_str(), &action.path);
    match err {
        matchit::InsertError::Conflict { with } => {
            let theirs = with
                .split('/')
                .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(param) => format!(":{param}"),
                    None => seg.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let other = d.actions.iter().find(|a| a.method == action.method && a.path == theirs);
            match other {
                Some(other) if other.path == *path => {
                    format!("action {:?}: {method} {path} is also the route of action {:?}", action.name, other.name)
                }
                Some(other) => format!(
                    "action {:?}: {method} {path} conflicts with action {:?} ({method} {theirs}): \
                     a parameter and another parameter at the same place must have the same name",
                    action.name, other.name
                ),
                None => format!("action {:?}: {method} {path} conflicts with {method} {theirs}", action.name),
            }
        }
        other => format!("action {:?}: path {path:?}: {other}", action.name),
    }
}

/// Check a descriptor and build its routing tables: relative paths, and user views.
fn validate(d: &wit::Descriptor) -> Result<(Routes, Routes), LoadError> {
    let invalid = |m: String| Err(LoadError::InvalidDescriptor(m));
    let is_ident = |s: &str, upper: bool| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| {
                c == '_'
                    || c.is_ascii_digit()
                    || if upper { c.is_ascii_uppercase() } else { c.is_ascii_lowercase() || c == '-' }
            })
    };
    if !is_ident(&d.name, false) {
        return invalid(format!("name {:?} must be lowercase letters, digits, '-' or '_'", d.name));
    }
    if !is_ident(&d.record_type, true) {
        return invalid(format!("record type {:?} must be uppercase letters, digits or '_'", d.record_type));
    }
    if !is_ident(&d.collection, false) {
        return invalid(format!("collection {:?} must be lowercase letters, digits, '-' or '_'", d.collection));
    }
    if crate::RESERVED_COLLECTIONS.contains(&d.collection.as_str()) {
        return invalid(format!("collection {:?} is reserved by the host", d.collection));
    }
    for granted in d.grants.read.iter().chain(&d.grants.write) {
        if !is_ident(granted, true) {
            return invalid(format!("granted record type {granted:?} is not a record type name"));
        }
    }
    let (mut routes, mut user_views) = (Routes::new(), Routes::new());
    let mut names = BTreeSet::new();
    for (i, action) in d.actions.iter().enumerate() {
        if !names.insert(action.name.as_str()) {
            return invalid(format!("action name {:?} is declared twice", action.name));
        }
        if !action.path.starts_with('/') {
            return invalid(format!("action {:?}: path {:?} must start with '/'", action.name, action.path));
        }
        if action.path.contains(['{', '}', '*']) {
            return invalid(format!(
                "action {:?}: path {:?}: a segment is literal text or a parameter written :name",
                action.name, action.path
            ));
        }
        // `/:id/clone` → `/{id}/clone`, matchit's syntax.
        let pattern = action
            .path
            .split('/')
            .map(|seg| match seg.strip_prefix(':') {
                Some(param) => format!("{{{param}}}"),
                None => seg.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let table = match action.path.strip_prefix(USER_VIEWS) {
            Some("") => {
                return invalid(format!("action {:?}: a user view needs a name after {USER_VIEWS}", action.name));
            }
            Some(_) => &mut user_views,
            None => &mut routes,
        };
        table
            .entry(method_key(action.method))
            .or_default()
            .insert(pattern, i)
            .map_err(|e| LoadError::InvalidDescriptor(route_error(d, action, e)))?;
    }
    for event in &d.socket_events {
        if event.is_empty() || event.len() > 64 || !event.is_ascii() {
            return invalid(format!("socket event name {event:?} is not allowed"));
        }
    }
    for index in &d.indexes {
        for field in std::iter::once(&index.field).chain(&index.then_by) {
            if let Err(e) = crate::db::records::check_field(field) {
                return invalid(format!("index: {e}"));
            }
        }
        if index.kind == wit::IndexKind::Elements && !index.then_by.is_empty() {
            return invalid(format!("index on {}: an elements index has no further fields", index.field));
        }
    }
    Ok((routes, user_views))
}

/// Load a precompiled component artifact.
#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine, path: &std::path::Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be an artifact that this engine wrote.
    // Only `Runtime::compile` writes to the cache directory (inside the operator's data
    // directory, via a rename so no half-written file is seen), and the file name carries the
    // content hash and the engine's compatibility hash; wasmtime also checks the artifact's
    // header against the engine before using it.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Advance the engine's epoch forever (until the engine is dropped).
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tidings-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(actions: &[(&str, wit::Method, &str)]) -> wit::Descriptor {
        wit::Descriptor {
            name: "bookmark".into(),
            record_type: "BOOKMARK".into(),
            collection: "bookmarks".into(),
            version: "0.1.0".into(),
            actions: actions
                .iter()
                .map(|&(name, method, path)| wit::Action {
                    name: name.into(),
                    method,
                    path: path.into(),
                    access: wit::Access::SignedIn,
                })
                .collect(),
            socket_events: Vec::new(),
            grants: wit::Grants { read: Vec::new(), write: Vec::new() },
            indexes: Vec::new(),
        }
    }

    fn refusal(actions: &[(&str, wit::Method, &str)]) -> String {
        match validate(&descriptor(actions)) {
            Err(LoadError::InvalidDescriptor(message)) => message,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("{actions:?} was accepted"),
        }
    }

    #[test]
    fn route_conflicts_speak_the_authors_syntax() {
        use wit::Method::{Get, Put};
        assert_eq!(
            refusal(&[("find", Get, "/:id"), ("byName", Get, "/:name")]),
            "action \"byName\": GET /:name conflicts with action \"find\" (GET /:id): \
             a parameter and another parameter at the same place must have the same name"
        );
        assert_eq!(
            refusal(&[("find", Get, "/:id"), ("again", Get, "/:id")]),
            "action \"again\": GET /:id is also the route of action \"find\""
        );
        assert_eq!(
            refusal(&[("odd", Put, "/{id}")]),
            "action \"odd\": path \"/{id}\": a segment is literal text or a parameter written :name"
        );
        // The same path under two methods, and literal segments beside parameters, are fine.
        assert!(
            validate(&descriptor(&[("find", Get, "/:id"), ("update", Put, "/:id"), ("mine", Get, "/mine")])).is_ok()
        );
    }
}
