//! `tidings:plugin/log`: plugin log lines go to the host's log, tagged with the plugin name,
//! and to the plugin's journal (what its author reads), capped so that a chatty plugin cannot
//! flood either.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::plugin::bindings::wit_log::{self, Level};
use crate::plugin::ctx::PluginCtx;
use crate::plugin::journal::Journal;

/// Most bytes of log text one call may write; the rest is dropped.
const MAX_LOG_BYTES_PER_CALL: usize = 64 * 1024;

pub struct LogState {
    pub plugin: String,
    version: String,
    journal: Arc<Journal>,
    written: usize,
    /// Lines held back until the call is known to count ([`LogState::hold`]).
    held: Option<Vec<(Level, String)>>,
}

impl LogState {
    pub fn new(plugin: &str, version: &str, journal: Arc<Journal>) -> Self {
        LogState { plugin: plugin.to_owned(), version: version.to_owned(), journal, written: 0, held: None }
    }

    /// Hold the call's lines back until [`LogState::release`]: a call run ahead of its turn
    /// may be run again, and its author should read each request's lines once.
    pub fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// Write the lines held back.
    pub fn release(&mut self) {
        for (level, message) in self.held.take().unwrap_or_default() {
            self.write(level, &message);
        }
    }

    fn write(&self, level: Level, message: &str) {
        let plugin = &self.plugin;
        let name = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        self.journal.push(name, &self.version, message, None);
    }
}

impl wit_log::Host for LogState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.written >= MAX_LOG_BYTES_PER_CALL {
            return Ok(());
        }
        self.written += message.len();
        match &mut self.held {
            Some(held) => held.push((level, message)),
            None => self.write(level, &message),
        }
        Ok(())
    }
}

pub fn add_to_linker(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wit_log::add_to_linker::<PluginCtx, HasSelf<LogState>>(linker, |ctx| &mut ctx.log)
}
