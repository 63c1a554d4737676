//! The registry: which loaded plugin serves which collection and which socket event, and the
//! previous version of each, kept warm for an instant rollback.
//!
//! Readers take a snapshot (`Arc`) without locking; an install or rollback swaps the whole map
//! atomically, so a request that already holds a plugin finishes on that version and the next
//! request uses the new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::plugin::{LoadError, LoadedPlugin};

#[derive(Clone, Default)]
struct Snapshot {
    /// Serving versions by plugin name.
    active: HashMap<String, Arc<LoadedPlugin>>,
    /// The version each plugin replaced, by plugin name.
    previous: HashMap<String, Arc<LoadedPlugin>>,
    by_collection: HashMap<String, Arc<LoadedPlugin>>,
    by_socket_event: HashMap<String, Arc<LoadedPlugin>>,
}

/// The plugins currently serving.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    /// Changes are rare; one at a time keeps each check-and-swap atomic.
    change_lock: Mutex<()>,
}

impl Registry {
    /// The plugin serving `/api/v1/<collection>`.
    pub fn by_collection(&self, collection: &str) -> Option<Arc<LoadedPlugin>> {
        self.current.load().by_collection.get(collection).cloned()
    }

    /// The plugin answering the client→server socket event `event`.
    pub fn by_socket_event(&self, event: &str) -> Option<Arc<LoadedPlugin>> {
        self.current.load().by_socket_event.get(event).cloned()
    }

    /// The plugin serving `method` at `path` as a user view (see [`crate::plugin::USER_VIEWS`]).
    pub fn user_view(&self, method: crate::plugin::types::Method, path: &str) -> Option<Arc<LoadedPlugin>> {
        let current = self.current.load();
        current.active.values().find(|p| p.user_view(method, path).is_some()).cloned()
    }

    /// The serving version of the plugin `name`.
    pub fn active(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.current.load().active.get(name).cloned()
    }

    /// The version the plugin `name` replaced, if it is still warm.
    pub fn previous(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.current.load().previous.get(name).cloned()
    }

    /// Every serving plugin, ordered by name.
    pub fn all(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut all: Vec<_> = self.current.load().active.values().cloned().collect();
        all.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        all
    }

    /// Refuse `plugin` if a plugin of another name serves the same collection, record type or
    /// socket event.
    pub fn check(&self, plugin: &LoadedPlugin) -> Result<(), LoadError> {
        check_clashes(&self.current.load(), plugin)
    }

    /// Start serving `plugin`, replacing (and keeping warm) the version of the same name.
    /// Returns the version it replaced.
    pub fn install(&self, plugin: Arc<LoadedPlugin>) -> Result<Option<Arc<LoadedPlugin>>, LoadError> {
        let _guard = self.change_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.current.load_full();
        check_clashes(&current, &plugin)?;
        let mut next = (*current).clone();
        let replaced = next.active.insert(plugin.descriptor.name.clone(), Arc::clone(&plugin));
        if let Some(old) = &replaced {
            next.previous.insert(old.descriptor.name.clone(), Arc::clone(old));
        }
        self.current.store(Arc::new(next.reindexed()));
        Ok(replaced)
    }

    /// Serve the previous version of `name` again (it becomes active, the active one becomes
    /// previous). Returns the now-serving version, or `None` without a warm previous version.
    pub fn rollback(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        let _guard = self.change_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.current.load_full();
        let mut next = (*current).clone();
        let previous = next.previous.remove(name)?;
        if let Some(active) = next.active.insert(name.to_owned(), Arc::clone(&previous)) {
            next.previous.insert(name.to_owned(), active);
        }
        self.current.store(Arc::new(next.reindexed()));
        Some(previous)
    }
}

fn check_clashes(current: &Snapshot, plugin: &LoadedPlugin) -> Result<(), LoadError> {
    let d = &plugin.descriptor;
    for other in current.active.values().filter(|o| o.descriptor.name != d.name) {
        let o = &other.descriptor;
        let shared_view = plugin.user_views_overlap(other);
        let clash = if let Some(view) = shared_view {
            Some(format!("user view {view}"))
        } else if o.collection == d.collection {
            Some(format!("collection {:?}", d.collection))
        } else if o.record_type == d.record_type {
            Some(format!("record type {:?}", d.record_type))
        } else {
            o.socket_events.iter().find(|e| d.socket_events.contains(e)).map(|e| format!("socket event {e:?}"))
        };
        if let Some(clash) = clash {
            return Err(LoadError::Conflict(format!("{clash} is served by plugin {:?}", o.name)));
        }
    }
    Ok(())
}

impl Snapshot {
    /// Rebuild the lookup maps from `active`.
    fn reindexed(mut self) -> Self {
        self.by_collection.clear();
        self.by_socket_event.clear();
        for plugin in self.active.values() {
            self.by_collection.insert(plugin.descriptor.collection.clone(), Arc::clone(plugin));
            for event in &plugin.descriptor.socket_events {
                self.by_socket_event.insert(event.clone(), Arc::clone(plugin));
            }
        }
        self
    }
}
