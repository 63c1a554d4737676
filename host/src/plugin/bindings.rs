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

impl wit::Method {
    /// The HTTP method's name, as a client writes it: `GET`, `POST`, …
    pub fn as_str(self) -> &'static str {
        match self {
            wit::Method::Get => "GET",
            wit::Method::Post => "POST",
            wit::Method::Put => "PUT",
            wit::Method::Patch => "PATCH",
            wit::Method::Delete => "DELETE",
        }
    }
}

impl wit::Access {
    /// The access level as the WIT names it: `public`, `signed-in`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            wit::Access::Public => "public",
            wit::Access::SignedIn => "signed-in",
            wit::Access::Admin => "admin",
        }
    }
}
