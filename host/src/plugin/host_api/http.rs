//! `wasi:http` as a pure controller sees it: linked, because JavaScript toolchains import it
//! (componentize-js builds `fetch` on `wasi:http/outgoing-handler`), and a component that
//! cannot be instantiated is no use to its author; but every outgoing request is refused with
//! `HTTP-request-denied` before anything leaves the host. A plugin gets its inputs in the
//! request and says what to write in its response: it has nobody to call.

use std::future::Future;

use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::plugin::ctx::PluginCtx;

/// Link `wasi:http/types` and `wasi:http/outgoing-handler` (the rest of WASI is linked by
/// [`super::wasi`]).
pub fn link(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The per-call state: wasi-http's context (its header size limit). Nothing is granted.
pub struct HttpState(WasiHttpCtx);

impl Default for HttpState {
    fn default() -> Self {
        HttpState(WasiHttpCtx::new())
    }
}

/// The hooks behind every request a guest sends: none is sent.
struct Refused;

impl WasiHttpHooks for Refused {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>,
            > + Send,
    > {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

impl WasiHttpView for PluginCtx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        // `Refused` has no state: leaking one allocates nothing.
        let hooks: &'static mut Refused = Box::leak(Box::new(Refused));
        WasiHttpCtxView { hooks, table: &mut self.table, ctx: &mut self.http.0 }
    }
}
