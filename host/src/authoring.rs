//! What plugin authors run offline: `tidings plugin check FILE.wasm` makes every check an
//! install makes, without a server or a database, and describes the plugin as a server would
//! serve it.
//!
//! Checked: the component compiles and matches the plugin interface; `describe()` answers, and
//! the same twice; the descriptor is valid (names, paths, grants, indexes; route conflicts are
//! named in the author's own syntax); it clashes with none of the bundled plugins (collection,
//! record type, socket events, user views); and a version of a bundled plugin serves the same
//! record type and collection, within the same grants. What only a request can show (a write
//! of an undeclared type, a notification without targets) is checked by `tidings plugin test`
//! and, on a server, by the host on every call.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::db::Dialect;
use crate::lifecycle::{InstallError, check_replacement};
use crate::plugin::{LoadedPlugin, Registry, Runtime, USER_VIEWS};

/// A plugin that passed the checks, as `tidings plugin check` prints it.
pub struct Checked {
    pub plugin: LoadedPlugin,
    /// How many bundled plugins it was checked against.
    pub against: usize,
}

/// Make an install's checks on `bytes`, against `bundled` (file name, component) as a server
/// that serves them would.
pub async fn check(bytes: Vec<u8>, bundled: &[(&str, &[u8])]) -> Result<Checked, InstallError> {
    // The bundled plugins compile once per machine, as a server's cache does.
    let cache = std::env::temp_dir().join("tidings-plugin-check-cache");
    let runtime = Runtime::new(Default::default(), Dialect::Sqlite, Default::default(), Some(cache))
        .map_err(|e| InstallError::Refused(format!("starting the plugin runtime: {e:#}")))?;
    check_on(&runtime, bytes, bundled).await
}

/// [`check`] on a given runtime (`tidings plugin test` loads the plugin on its own).
pub async fn check_on(
    runtime: &Arc<Runtime>,
    bytes: Vec<u8>,
    bundled: &[(&str, &[u8])],
) -> Result<Checked, InstallError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(InstallError::Refused(
            "not a WebAssembly file (it does not start with \\0asm): give the .wasm that \
             `cargo build --release --target wasm32-wasip2` (or `tidings plugin build`) made"
                .into(),
        ));
    }
    let plugin = runtime.load(bytes).await?;
    let registry = Registry::default();
    for (file, component) in bundled {
        let loaded = runtime
            .load(component.to_vec())
            .await
            .map_err(|e| InstallError::Refused(format!("loading the bundled plugin {file}: {e}")))?;
        registry.install(Arc::new(loaded))?;
    }
    match registry.active(&plugin.descriptor.name) {
        Some(bundled) => check_replacement(&bundled, &plugin, false)?,
        None => registry.check(&plugin)?,
    }
    Ok(Checked { plugin, against: bundled.len() })
}

impl Checked {
    /// The plugin as a server would serve it: its routes (in the author's syntax, at their
    /// absolute paths), grants, socket events and indexes.
    pub fn report(&self) -> String {
        let d = &self.plugin.descriptor;
        let mut out = String::new();
        let _ = writeln!(out, "{} {}: {} records at /api/v1/{}", d.name, d.version, d.record_type, d.collection);
        let _ = writeln!(out, "sha256 {}", self.plugin.sha256);
        let _ = writeln!(out, "routes:");
        for action in &d.actions {
            let path = if action.path.starts_with(USER_VIEWS) {
                action.path.clone()
            } else {
                format!("/api/v1/{}{}", d.collection, action.path.trim_end_matches('/'))
            };
            let _ = writeln!(
                out,
                "  {:<6} {:<40} {:<9} {}",
                action.method.as_str(),
                path,
                action.access.as_str(),
                action.name
            );
        }
        let list = |items: &[String]| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
        let _ = writeln!(out, "grants: read {}; write {}", list(&d.grants.read), list(&d.grants.write));
        let _ = writeln!(out, "socket events: {}", list(&d.socket_events));
        let indexes: Vec<String> = d
            .indexes
            .iter()
            .map(|i| {
                std::iter::once(i.field.as_str())
                    .chain(i.then_by.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" then ")
            })
            .collect();
        let _ = writeln!(out, "indexes: {}", list(&indexes));
        let _ = write!(
            out,
            "ok: compiles, matches the plugin interface, describes itself consistently, valid routes and grants, \
             no clash with the {} bundled plugins",
            self.against
        );
        out
    }
}
