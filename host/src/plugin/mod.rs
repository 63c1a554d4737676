//! The plugin runtime: compiling, checking and calling plugin components.
//!
//! - `bindings.rs`: the host side of `wit/` (the only `bindgen!`).
//! - `registry.rs`: which loaded plugin serves which collection and socket event.
//! - `runtime.rs`: the engine, loading (compile, link, describe, validate) and calls.
//! - `ctx.rs` and `host_api/`: what a running plugin can reach.
//! - `journal.rs`: a plugin's log lines and the reasons behind its `errorId`s, for its author.
//!
//! This module knows nothing of HTTP or Socket.IO: it takes plugin requests and returns
//! plugin responses. Architecture invariant: no axum or socketioxide imports here.

mod bindings;
mod ctx;
mod error;
mod host_api;
pub mod journal;
mod registry;
mod runtime;
mod stats;

pub use bindings::wit as types;
pub use error::{Error, FaultKind, LoadError, refusal_message};
pub use registry::Registry;
pub use runtime::{Ahead, Limits, LoadedPlugin, Prepared, RouteMatch, Runtime, USER_VIEWS};
pub use stats::{BUCKETS_US, Stats};
