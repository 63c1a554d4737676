//! What a plugin's author needs to see its failures: the plugin's own log lines (the `log`
//! import, and whatever it prints to stdout or stderr, such as a Rust panic message), and the
//! reason behind every `errorId` a client was answered with. Kept in memory, per plugin name
//! across its versions, the last [`CAPACITY`] entries; served to ADMINs by
//! `GET /api/v1/plugins/:name/logs` and `tidings plugin logs NAME`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Entries kept per plugin; older ones are dropped.
pub const CAPACITY: usize = 1_000;
/// Most bytes of one entry's message; the rest is cut, saying so.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// One line of a plugin's journal.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Increases by one per entry of this plugin: ask for those after it with `since`.
    pub seq: u64,
    /// ISO 8601, UTC, millisecond precision.
    pub at: String,
    /// `trace` … `error` from the `log` import; `output` for what the plugin printed;
    /// `fault` for a failure the host answered with an `errorId`.
    pub level: &'static str,
    /// The plugin version that wrote it.
    pub version: String,
    pub message: String,
    /// On a `fault`: the `errorId` the client was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

/// The journal of one plugin.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<(u64, VecDeque<Entry>)>,
}

impl Journal {
    /// Add a line; returns its `seq`.
    pub fn push(&self, level: &'static str, version: &str, message: &str, error_id: Option<String>) -> u64 {
        let message = if message.len() > MAX_MESSAGE_BYTES {
            let cut = message.floor_char_boundary(MAX_MESSAGE_BYTES);
            format!("{}… ({} bytes cut)", &message[..cut], message.len() - cut)
        } else {
            message.to_owned()
        };
        let at = crate::clock::iso(chrono::Utc::now());
        let mut guard = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, entries) = &mut *guard;
        *last += 1;
        if entries.len() == CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Entry { seq: *last, at, level, version: version.to_owned(), message, error_id });
        *last
    }

    /// Record a failure the client is answered with an `errorId` for; returns the id.
    pub fn fault(&self, version: &str, reason: &str) -> String {
        let error_id = uuid::Uuid::new_v4().to_string();
        self.push("fault", version, reason, Some(error_id.clone()));
        error_id
    }

    /// What the plugin printed during one call, a line per entry.
    pub fn output(&self, version: &str, printed: &[u8]) {
        for line in String::from_utf8_lossy(printed).lines().filter(|l| !l.trim().is_empty()) {
            self.push("output", version, line, None);
        }
    }

    /// The `seq` of the latest entry, if any.
    pub fn last_seq(&self) -> Option<u64> {
        let guard = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.1.back().map(|e| e.seq)
    }

    /// The entries after `since` (all kept ones without it), oldest first; with `error_id`,
    /// only the fault with that id.
    pub fn entries(&self, since: Option<u64>, error_id: Option<&str>) -> Vec<Entry> {
        let guard = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard
            .1
            .iter()
            .filter(|e| since.is_none_or(|since| e.seq > since))
            .filter(|e| error_id.is_none_or(|id| e.error_id.as_deref() == Some(id)))
            .cloned()
            .collect()
    }
}

/// The journals of every plugin name this server has loaded, so that a new version goes on
/// writing where the one before it left off.
#[derive(Debug, Default)]
pub struct Journals(Mutex<HashMap<String, Arc<Journal>>>);

impl Journals {
    pub fn of(&self, plugin: &str) -> Arc<Journal> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(map.entry(plugin.to_owned()).or_default())
    }

    pub fn get(&self, plugin: &str) -> Option<Arc<Journal>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(plugin).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_entries_and_finds_a_fault_by_its_id() {
        let journal = Journal::default();
        for i in 0..CAPACITY + 5 {
            journal.push("info", "0.1.0", &format!("line {i}"), None);
        }
        let id = journal.fault("0.1.0", "trap: wasm `unreachable` instruction executed");
        let all = journal.entries(None, None);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].message, "line 6");
        assert_eq!(all.last().unwrap().error_id.as_deref(), Some(id.as_str()));
        let found = journal.entries(None, Some(&id));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "trap: wasm `unreachable` instruction executed");
        let since = all[all.len() - 2].seq;
        assert_eq!(journal.entries(Some(since), None).len(), 1);
    }

    #[test]
    fn output_becomes_lines_and_long_messages_are_cut() {
        let journal = Journal::default();
        journal.output("1.0.0", b"thread 'main' panicked at src/lib.rs:3:5:\nboom\n\n");
        let messages: Vec<_> = journal.entries(None, None).into_iter().map(|e| e.message).collect();
        assert_eq!(messages, ["thread 'main' panicked at src/lib.rs:3:5:", "boom"]);
        journal.push("warn", "1.0.0", &"é".repeat(MAX_MESSAGE_BYTES), None);
        let long = journal.entries(None, None).pop().unwrap().message;
        assert!(long.len() < MAX_MESSAGE_BYTES + 40 && long.ends_with("bytes cut)"), "{}", long.len());
    }
}
