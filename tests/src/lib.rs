//! Shared pieces of the integration tests and benchmarks: the paths of the test-only guest
//! components built by `build.rs`, as constants (`NOTIFY_ROOMS`, `FAULT_MISBEHAVE`, …),
//! `foreach_guest!` over all of them, [`TempDir`], and the plugin-output oracle
//! ([`output_rules`]).

pub mod output_rules;

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory whose name starts with `tidings-<what>-`.
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tidings-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
