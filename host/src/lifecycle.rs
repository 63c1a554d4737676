//! The plugin lifecycle as operators see it: loading at start, two-phase installs, rollback,
//! and the watched plugin directory.
//!
//! Phase 1 of an install compiles (or loads from the precompiled cache), links,
//! pre-instantiates, describes and checks the component while the running version keeps
//! serving; phase 2 records it in the database and swaps it into the registry atomically.
//! Every change is logged and announced to the `admin` room as `PLUGIN_CHANGED`.
//!
//! Nodes sharing a PostgreSQL database serve the same versions: an install or rollback sends
//! `cluster::Command::ServePlugin` in the transaction that records it, and every other node
//! [`PluginManager::follow`]s, loading that version from the database (its own cache) and
//! announcing it to its own admins.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::clock::{Clock, iso};
use crate::cluster::Command;
use crate::db::{self, Db};
use crate::notifications::Notifier;
use crate::plugin::{LoadError, LoadedPlugin, Registry, Runtime};

/// How often the watched directory is scanned.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why an install or rollback was refused. The running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Refused(String),
    #[error("no plugin named {0:?} is installed")]
    UnknownPlugin(String),
    #[error("plugin {0:?} has no previous version to roll back to")]
    NoPrevious(String),
    #[error(transparent)]
    Db(#[from] db::Error),
}

/// The plugins compiled into the binary: `(plugin name, component bytes)`.
pub type Bundled = &'static [(&'static str, &'static [u8])];

/// Installs, rolls back and reloads plugins. Cheap to clone.
#[derive(Clone)]
pub struct PluginManager {
    db: Db,
    clock: Clock,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    notifier: Notifier,
    bundled: Bundled,
    /// One change at a time, from any install path.
    changing: Arc<Mutex<()>>,
}

impl PluginManager {
    pub fn new(
        db: Db,
        clock: Clock,
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        notifier: Notifier,
        bundled: Bundled,
    ) -> Self {
        PluginManager { db, clock, runtime, registry, notifier, bundled, changing: Arc::default() }
    }

    /// Serve, at start: every plugin's active version from the database, then the bundled
    /// plugins the operator has not replaced, then the plugin directory (installed like any
    /// other version, so they survive restarts and can be rolled back).
    pub async fn load_at_start(&self, plugin_dir: Option<&Path>) -> anyhow::Result<()> {
        let mut installed = BTreeSet::new();
        for state in db::plugins::states(&self.db.pool).await? {
            let plugin = self.load_stored(&state.active_id).await?;
            installed.insert(plugin.descriptor.name.clone());
            // Keep the previous version warm for a rollback, if it still loads: the stored
            // one, or the bundled one that the first installed version replaced.
            let previous = match &state.previous_id {
                Some(previous_id) => Some(self.load_stored(previous_id).await),
                None => self.load_bundled(&state.name, None).await.transpose(),
            };
            match previous {
                Some(Ok(previous)) => {
                    self.registry.install(Arc::new(previous))?;
                }
                Some(Err(err)) => tracing::warn!(plugin = state.name, %err, "the previous version does not load"),
                None => {}
            }
            self.serve(plugin, "restored").await?;
        }
        for (name, bytes) in self.bundled {
            if installed.contains(*name) {
                tracing::info!(plugin = name, "serving the installed version instead of the bundled one");
                continue;
            }
            let mut plugin = self.runtime.load(bytes.to_vec()).await?;
            plugin.installed_by = "bundled".into();
            self.serve(plugin, "bundled").await?;
        }
        if let Some(dir) = plugin_dir {
            for (path, bytes) in read_wasm_files(dir)? {
                self.install(bytes, "directory", true, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Install a new version (phase 1, then phase 2). `approve_grants` allows grants wider
    /// than the running version's; without it such a version is refused. With
    /// `expected_name`, a component describing another plugin is refused.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        installed_by: &str,
        approve_grants: bool,
        expected_name: Option<&str>,
    ) -> Result<Arc<LoadedPlugin>, InstallError> {
        let _one_at_a_time = self.changing.lock().await;
        // Phase 1: everything that can fail, while the running version serves.
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let mut plugin = self.runtime.load(bytes).await?;
        let name = plugin.descriptor.name.clone();
        if let Some(expected) = expected_name.filter(|expected| *expected != name) {
            return Err(InstallError::Refused(format!("the component describes plugin {name:?}, not {expected:?}")));
        }
        let running = self.registry.active(&name);
        if let Some(running) = &running {
            if running.sha256 == plugin.sha256 {
                return Ok(Arc::clone(running));
            }
            check_replacement(running, &plugin, approve_grants)?;
        }
        self.registry.check(&plugin)?;
        crate::prepare_storage(&self.db, &plugin).await.map_err(|e| InstallError::Refused(format!("{e:#}")))?;

        // Phase 2: record it, then switch.
        let now = iso(self.clock.now());
        let version = db::plugins::PluginVersion {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.clone(),
            version: plugin.descriptor.version.clone(),
            sha256: plugin.sha256.clone(),
            installed_by: installed_by.to_owned(),
            installed_at: now.clone(),
        };
        let mut tx = self.db.begin_write().await?;
        db::plugins::activate(&mut tx, &version, &encoded).await?;
        let change =
            Command::ServePlugin { name: name.clone(), sha256: plugin.sha256.clone(), change: "installed".into() };
        change.send(&self.db, &mut tx).await?;
        tx.commit().await.map_err(db::Error::from)?;
        plugin.installed_by = installed_by.to_owned();
        self.serve(plugin, "installed").await.map_err(InstallError::Load)
    }

    /// Serve the previous version of `name` again.
    pub async fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, InstallError> {
        let _one_at_a_time = self.changing.lock().await;
        if self.registry.active(name).is_none() {
            return Err(InstallError::UnknownPlugin(name.to_owned()));
        }
        let Some(previous) = self.registry.previous(name) else {
            return Err(InstallError::NoPrevious(name.to_owned()));
        };
        // Bundled versions are not in the database; a rollback to one is in memory only
        // (on every node, which each have the bundled version).
        let mut tx = self.db.begin_write().await?;
        db::plugins::swap_previous(&mut *tx, name).await?;
        let change = Command::ServePlugin {
            name: name.to_owned(),
            sha256: previous.sha256.clone(),
            change: "rolled-back".into(),
        };
        change.send(&self.db, &mut tx).await?;
        tx.commit().await.map_err(db::Error::from)?;
        let serving = self.registry.rollback(name).ok_or_else(|| InstallError::NoPrevious(name.to_owned()))?;
        tracing::info!(plugin = name, version = serving.descriptor.version, sha256 = serving.sha256, "rolled back");
        self.announce(&serving, "rolled-back").await;
        Ok(serving)
    }

    /// Serve the version `sha256` of `name` that another node started serving (`change`:
    /// `installed`, `rolled-back`): the warm previous version if it is that one, else loaded
    /// from the database (or the bundled plugins), and announce it to this node's admins.
    /// Nothing when it serves already.
    pub async fn follow(&self, name: &str, sha256: &str, change: &str) {
        let _one_at_a_time = self.changing.lock().await;
        if self.registry.active(name).is_some_and(|p| p.sha256 == sha256) {
            return;
        }
        if self.registry.previous(name).is_some_and(|p| p.sha256 == sha256)
            && let Some(serving) = self.registry.rollback(name)
        {
            tracing::info!(
                plugin = name,
                version = serving.descriptor.version,
                sha256,
                change,
                "serving, as another node does"
            );
            self.announce(&serving, change).await;
            return;
        }
        let loaded = match db::plugins::by_sha256(&self.db.pool, name, sha256).await {
            Ok(Some(id)) => self.load_stored(&id).await.map(Some),
            Ok(None) => self.load_bundled(name, Some(sha256)).await,
            Err(err) => Err(err.into()),
        };
        match loaded {
            Ok(Some(plugin)) => {
                if let Err(err) = self.serve(plugin, change).await {
                    tracing::error!(plugin = name, sha256, %err, "serving a version another node serves failed");
                }
            }
            Ok(None) => tracing::error!(plugin = name, sha256, "another node serves a version this node cannot find"),
            Err(err) => tracing::error!(
                plugin = name,
                sha256,
                err = format!("{err:#}"),
                "loading a version another node serves failed"
            ),
        }
    }

    /// Serve what the database says is active, for each stored plugin: after this node may
    /// have missed a [`Command::ServePlugin`] (its listening connection was lost).
    pub async fn resync(&self) {
        let states = match db::plugins::active_versions(&self.db.pool).await {
            Ok(states) => states,
            Err(err) => return tracing::error!(%err, "reading the active plugin versions failed"),
        };
        for (name, sha256) in states {
            self.follow(&name, &sha256, "restored").await;
        }
    }

    /// The bundled plugin `name` (with the content `sha256`, if given), loaded.
    async fn load_bundled(&self, name: &str, sha256: Option<&str>) -> anyhow::Result<Option<LoadedPlugin>> {
        use sha2::Digest as _;
        let Some((_, bytes)) = self
            .bundled
            .iter()
            .find(|(n, bytes)| *n == name && sha256.is_none_or(|sha| hex::encode(sha2::Sha256::digest(bytes)) == sha))
        else {
            return Ok(None);
        };
        let mut plugin = self.runtime.load(bytes.to_vec()).await?;
        plugin.installed_by = "bundled".into();
        Ok(Some(plugin))
    }

    async fn load_stored(&self, id: &str) -> anyhow::Result<LoadedPlugin> {
        let (version, encoded) = db::plugins::component(&self.db.pool, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("plugin version {id} is missing"))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
        let mut plugin = self.runtime.load(bytes).await?;
        plugin.installed_by = version.installed_by;
        Ok(plugin)
    }

    async fn serve(&self, mut plugin: LoadedPlugin, how: &str) -> Result<Arc<LoadedPlugin>, LoadError> {
        crate::prepare_storage(&self.db, &plugin).await.map_err(|e| LoadError::Host(format!("{e:#}")))?;
        plugin.loaded_at = iso(self.clock.now());
        let plugin = Arc::new(plugin);
        self.registry.install(Arc::clone(&plugin))?;
        let d = &plugin.descriptor;
        tracing::info!(
            plugin = d.name,
            version = d.version,
            collection = d.collection,
            sha256 = plugin.sha256,
            how,
            "plugin serving"
        );
        self.announce(&plugin, how).await;
        Ok(plugin)
    }

    async fn announce(&self, plugin: &LoadedPlugin, change: &str) {
        let mut payload = describe(plugin);
        payload["change"] = Value::from(change);
        self.notifier.announce_to_admins("PLUGIN_CHANGED", &payload).await;
    }

    /// Watch `dir`: a new or changed `*.wasm` file is installed (as `directory`); a refused
    /// one is logged and the running version keeps serving. Files present now count as
    /// loaded (`load_at_start` installed them). Abort the returned task to stop watching.
    pub fn watch(&self, dir: PathBuf) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        let mut seen = wasm_stamps(&dir);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                for (path, stamp) in wasm_stamps(&dir) {
                    if seen.insert(path.clone(), stamp) == Some(stamp) {
                        continue;
                    }
                    let installed = match tokio::fs::read(&path).await {
                        Ok(bytes) => manager.install(bytes, "directory", true, None).await.map_err(|e| e.to_string()),
                        Err(err) => Err(err.to_string()),
                    };
                    match installed {
                        Ok(p) => {
                            tracing::info!(file = %path.display(), plugin = p.descriptor.name, "installed from the plugin directory")
                        }
                        Err(err) => {
                            tracing::error!(file = %path.display(), err, "refused a plugin from the plugin directory")
                        }
                    }
                }
            }
        })
    }
}

/// Modification time and size of each `*.wasm` file in `dir`.
fn wasm_stamps(dir: &Path) -> HashMap<PathBuf, (SystemTime, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return HashMap::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let meta = entry.metadata().ok().filter(|m| m.is_file())?;
            path.extension()
                .is_some_and(|e| e == "wasm")
                .then(|| (path, (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len())))
        })
        .collect()
}

/// A new version must serve the same record type and collection, and may not widen its
/// grants unless the operator approves.
pub(crate) fn check_replacement(
    running: &LoadedPlugin,
    new: &LoadedPlugin,
    approve_grants: bool,
) -> Result<(), InstallError> {
    let (old, d) = (&running.descriptor, &new.descriptor);
    if (&old.record_type, &old.collection) != (&d.record_type, &d.collection) {
        return Err(InstallError::Refused(format!(
            "plugin {:?} serves {} at /{}; the new version declares {} at /{}",
            d.name, old.record_type, old.collection, d.record_type, d.collection
        )));
    }
    let wider =
        |old: &[String], new: &[String]| -> Vec<String> { new.iter().filter(|t| !old.contains(t)).cloned().collect() };
    let (reads, writes) = (wider(&old.grants.read, &d.grants.read), wider(&old.grants.write, &d.grants.write));
    let widens = !(reads.is_empty() && writes.is_empty());
    if widens && !approve_grants {
        return Err(InstallError::Refused(format!(
            "the new version asks for wider grants (read {reads:?}, write {writes:?}); to allow them, install with \
             `tidings plugin install --approve-grants FILE` (on the admin API: `?approveGrants=true`)"
        )));
    }
    Ok(())
}

/// A plugin as the admin API shows it.
pub fn describe(plugin: &LoadedPlugin) -> Value {
    let d = &plugin.descriptor;
    json!({
        "name": d.name,
        "recordType": d.record_type,
        "collection": d.collection,
        "version": d.version,
        "sha256": plugin.sha256,
        "loadedAt": plugin.loaded_at,
        "installedBy": plugin.installed_by,
        "grants": { "read": d.grants.read, "write": d.grants.write },
        "socketEvents": d.socket_events,
        "actions": d.actions.iter().map(|a| json!({
            "name": a.name,
            "method": a.method.as_str(),
            "path": a.path,
            "access": a.access.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn read_wasm_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("reading the plugin directory {}: {e}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = std::fs::read(&path)?;
            found.push((path, bytes));
        }
    }
    found.sort();
    Ok(found)
}
