//! The store data of one plugin call: one plain struct, each capability with its own slice.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::plugin::host_api::{http::HttpState, log::LogState, store::StoreState, wasi::Output};

/// Everything a plugin instance can reach. Built fresh for every call.
pub struct PluginCtx {
    /// WASI with nothing granted: no files, no environment, no network, no clocks beyond
    /// what wasi:clocks always answers. A std guest needs it linked to start at all.
    pub wasi: WasiCtx,
    /// wasi:http, linked for the toolchains that import it; every outgoing request refused.
    pub http: HttpState,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub store: StoreState,
    pub log: LogState,
    /// What the plugin printed to stdout and stderr during the call.
    pub output: Output,
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
