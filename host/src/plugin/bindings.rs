//! The host side of the WIT interface: the only `bindgen!` in the host.
//!
//! Store reads are async (they query the request's transaction) and every import is
//! trappable, so a host fault ends the call instead of handing the guest a made-up answer.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: {
            "tidings:plugin/store": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        // Descriptors are compared at load: describe() must answer the same twice.
        additional_derives: [PartialEq],
    });
}

pub use generated::tidings::plugin::log as wit_log;
pub use generated::tidings::plugin::store as wit_store;
pub use generated::tidings::plugin::types as wit;
pub use generated::{Plugin, PluginPre};
