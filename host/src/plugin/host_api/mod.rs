//! Everything a plugin can call, one capability per file. Adding a capability means adding a
//! file with its state, its `Host` impl and an `add_to_linker`, plus one line in [`link`].

pub mod http;
pub mod log;
pub mod store;
pub mod wasi;

use wasmtime::component::{HasSelf, Linker};

use crate::plugin::bindings::wit;
use crate::plugin::ctx::PluginCtx;

/// Link every host capability (and WASI, with nothing granted, no waiting and no outgoing
/// HTTP) into `linker`.
/// Done once.
pub fn link(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wasi::link(linker)?;
    http::link(linker)?;
    wit::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
    store::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    Ok(())
}

// The `types` interface has no functions; its host trait is empty.
impl wit::Host for PluginCtx {}
