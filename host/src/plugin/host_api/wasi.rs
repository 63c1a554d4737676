//! WASI as a pure controller sees it. A std guest imports `wasi:cli`, `wasi:io`,
//! `wasi:clocks` and more just to start, so WASI is linked, with nothing granted: no files,
//! no environment, no network, stdin empty, stdout and stderr discarded.
//!
//! What is left that could make a call wait in the host is the monotonic clock's timers
//! (`subscribe-duration`, `subscribe-instant`), the only pollables that are not ready at once
//! here: `std::thread::sleep` is a timer and a `block`. A controller has no use for waiting
//! (the request carries the host clock's `now`), and a guest waiting in the host is not
//! interrupted by the epoch deadline, so these two trap instead. Reading the clocks stays
//! allowed; the wall-clock bound on every call ([`crate::plugin::Runtime`]) backs this up.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;

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
