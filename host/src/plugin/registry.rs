//! The registry: which loaded plugin serves which collection and which socket event.
//!
//! Readers take a snapshot (`Arc`) without locking; an install swaps the whole map
//! atomically, so a request that already holds a plugin finishes on that version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::plugin::{LoadError, LoadedPlugin};

#[derive(Default)]
struct Snapshot {
    by_collection: HashMap<String, Arc<LoadedPlugin>>,
    by_socket_event: HashMap<String, Arc<LoadedPlugin>>,
}

/// The plugins currently serving.
#[derive(Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
    install_lock: Mutex<()>,
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

    /// Every serving plugin, ordered by name.
    pub fn all(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut all: Vec<_> = self.current.load().by_collection.values().cloned().collect();
        all.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        all
    }

    /// Start serving `plugin`, replacing the version of the same name. A plugin of another
    /// name that claims the same collection, record type or socket event is refused.
    /// Returns the version it replaced.
    pub fn install(&self, plugin: LoadedPlugin) -> Result<Option<Arc<LoadedPlugin>>, LoadError> {
        // Installs are rare; one at a time keeps the check and the swap atomic.
        let _guard = self.install_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let plugin = Arc::new(plugin);
        let current = self.current.load();
        let mut next = Snapshot::default();
        let mut replaced = None;
        for other in current.by_collection.values() {
            if other.descriptor.name == plugin.descriptor.name {
                replaced = Some(Arc::clone(other));
                continue;
            }
            let clash = if other.descriptor.collection == plugin.descriptor.collection {
                Some(format!("collection {:?}", plugin.descriptor.collection))
            } else if other.descriptor.record_type == plugin.descriptor.record_type {
                Some(format!("record type {:?}", plugin.descriptor.record_type))
            } else {
                other
                    .descriptor
                    .socket_events
                    .iter()
                    .find(|e| plugin.descriptor.socket_events.contains(e))
                    .map(|e| format!("socket event {e:?}"))
            };
            if let Some(clash) = clash {
                return Err(LoadError::Conflict(format!("{clash} is served by plugin {:?}", other.descriptor.name)));
            }
            next.insert(other);
        }
        next.insert(&plugin);
        self.current.store(Arc::new(next));
        Ok(replaced)
    }
}

impl Snapshot {
    fn insert(&mut self, plugin: &Arc<LoadedPlugin>) {
        self.by_collection.insert(plugin.descriptor.collection.clone(), Arc::clone(plugin));
        for event in &plugin.descriptor.socket_events {
            self.by_socket_event.insert(event.clone(), Arc::clone(plugin));
        }
    }
}
