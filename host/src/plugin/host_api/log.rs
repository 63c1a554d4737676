//! `tidings:plugin/log`: plugin log lines go to the host's log, tagged with the plugin name
//! and capped so that a chatty plugin cannot flood it.

use wasmtime::component::{HasSelf, Linker};

use crate::plugin::bindings::wit_log::{self, Level};
use crate::plugin::ctx::PluginCtx;

/// Most bytes of log text one call may write; the rest is dropped.
const MAX_LOG_BYTES_PER_CALL: usize = 64 * 1024;

pub struct LogState {
    pub plugin: String,
    written: usize,
}

impl LogState {
    pub fn new(plugin: &str) -> Self {
        LogState { plugin: plugin.to_owned(), written: 0 }
    }
}

impl wit_log::Host for LogState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.written >= MAX_LOG_BYTES_PER_CALL {
            return Ok(());
        }
        self.written += message.len();
        let plugin = &self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

pub fn add_to_linker(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wit_log::add_to_linker::<PluginCtx, HasSelf<LogState>>(linker, |ctx| &mut ctx.log)
}
