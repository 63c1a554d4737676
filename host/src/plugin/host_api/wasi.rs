//! WASI as a pure controller sees it. A std guest imports `wasi:cli`, `wasi:io`,
//! `wasi:clocks` and more just to start, so WASI is linked, with nothing granted: no files,
//! no environment, no network, stdin empty. What the plugin prints to stdout and stderr (a
//! Rust panic message, a `console.log`) is kept, up to [`MAX_OUTPUT_BYTES`] a call, for the
//! plugin's journal ([`Output`]).
//!
//! What is left that could make a call wait in the host is the monotonic clock's timers
//! (`subscribe-duration`, `subscribe-instant`), the only pollables that are not ready at once
//! here: `std::thread::sleep` is a timer and a `block`. A controller has no use for waiting
//! (the request carries the host clock's `now`), and a guest waiting in the host is not
//! interrupted by the epoch deadline, so these two trap instead. Reading the clocks stays
//! allowed; the wall-clock bound on every call ([`crate::plugin::Runtime`]) backs this up.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};

use crate::plugin::ctx::PluginCtx;

/// The `wasi:clocks` version wasmtime-wasi links (guests built against an older 0.2.x
/// import resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The message of the trap a guest gets when it tries to wait.
pub const WAIT_DENIED: &str = "a plugin may not wait: wasi:clocks timers are denied (use the request's `now`)";

/// Link WASI for a pure controller: everything wasmtime-wasi gives, granted nothing, with
/// timers denied.
pub fn link(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
        Err(wasmtime::format_err!(WAIT_DENIED))
    })?;
    clock.func_wrap("subscribe-instant", |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
        Err(wasmtime::format_err!(WAIT_DENIED))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Most bytes of stdout and stderr kept from one call; the rest is accepted and dropped, so a
/// chatty plugin is never failed for printing.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// A call's stdout and stderr, both into one buffer.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    /// What was printed during the call.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = MAX_OUTPUT_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for Output {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Output {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Output {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Output {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Output {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.keep(bytes);
        std::task::Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
