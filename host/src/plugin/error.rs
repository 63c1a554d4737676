//! Errors of the plugin runtime: a call's outcome when it is not a response, and why a
//! component was refused at load.

use crate::db;
use crate::plugin::bindings::wit;

/// Why a plugin call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin decided to refuse the request (its own typed error).
    #[error("plugin refused: {}", refusal_message(.0))]
    Guest(wit::PluginError),
    /// The plugin misbehaved: it trapped, ran out of time or memory, or returned output the
    /// host does not accept. Blame: plugin.
    /// `error_id` names the fault in the plugin's journal and in the client's answer.
    #[error("plugin {plugin} faulted ({kind}): {message}")]
    Fault { plugin: String, kind: FaultKind, message: String, error_id: String },
    /// The plugin answered with its own `internal` error (a 502 for the client). Not a fault:
    /// it does not count toward isolation.
    #[error("plugin {plugin} failed: {message}")]
    Internal { plugin: String, message: String, error_id: String },
    /// The plugin is isolated after repeated faults and is not called until the cool-down
    /// ends.
    #[error("plugin {plugin} is isolated after repeated faults; retry in {retry_after:?}")]
    Isolated { plugin: String, retry_after: std::time::Duration },
    /// The host failed while serving the plugin (e.g. the database). Blame: host.
    #[error("host failure during plugin call: {0}")]
    Host(#[from] db::Error),
}

/// The human-readable message of a plugin's refusal.
pub fn refusal_message(refusal: &wit::PluginError) -> &str {
    match refusal {
        wit::PluginError::InvalidInput(m)
        | wit::PluginError::Unauthorized(m)
        | wit::PluginError::Forbidden(m)
        | wit::PluginError::NotFound(m)
        | wit::PluginError::Conflict(m)
        | wit::PluginError::Internal(m) => m,
    }
}

/// The kinds of plugin fault, each mapped to a fixed status by the HTTP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A trap: panic, unreachable, out-of-bounds access, stack overflow.
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The instance asked for more memory than its cap (or failed to instantiate).
    Resources,
    /// The plugin returned output that breaks the interface's rules.
    InvalidOutput,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::Resources => "resource limit",
            FaultKind::InvalidOutput => "invalid output",
        })
    }
}

/// Why a component was refused. The running version, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("the component does not match the tidings:plugin interface: {0}")]
    Link(String),
    #[error("the component's describe() failed: {0}")]
    Describe(String),
    #[error("invalid descriptor: {0}")]
    InvalidDescriptor(String),
    #[error("conflicts with a loaded plugin: {0}")]
    Conflict(String),
    #[error("host failure while loading: {0}")]
    Host(String),
}
