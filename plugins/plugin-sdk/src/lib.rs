//! The Tidings plugin SDK: the WIT bindings (the only `wit_bindgen::generate!` in the
//! project) plus small helpers so that a controller reads like plain Rust.
//!
//! A plugin implements [`Plugin`] and exports it with [`export!`]:
//!
//! ```ignore
//! use plugin_sdk::prelude::*;
//!
//! struct Notes;
//! plugin_sdk::export!(Notes);
//!
//! impl Plugin for Notes {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("note", "NOTE", "notes", env!("CARGO_PKG_VERSION"))
//!             .action("all", Method::Get, "/", Access::SignedIn)
//!     }
//!     fn handle(req: Request) -> Result<Response> {
//!         match req.action() {
//!             "all" => Ok(Response::ok(&Query::new("NOTE").fetch::<Value>()?)),
//!             other => Err(PluginError::NotFound(format!("no action {other}"))),
//!         }
//!     }
//! }
//! ```
//!
//! This crate holds no business rules; those live in the plugins.

pub mod bindings {
    //! Raw bindings generated from `wit/`. Plugins normally use the re-exports at the
    //! crate root instead.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "plugin_sdk::bindings",
        export_macro_name: "export_guest",
    });
}

pub mod owned;
mod page;
mod record;
mod request;
mod response;
pub mod routes;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// Reads of stored records: the host's store in a component, [`testing`]'s on the machine (so
/// that `cargo test` can run a plugin's handlers).
mod store {
    #[cfg(target_arch = "wasm32")]
    pub(crate) use crate::bindings::tidings::plugin::store::{find, get};
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) use crate::testing::{find, get};
}

pub use bindings::tidings::plugin::log::Level;
pub use bindings::tidings::plugin::types::{
    Access, Action, Actor, Change, Comparison, Condition, Descriptor, Grants, Index, IndexKind, Method, Notification,
    Order, PluginError, Role, SocketRequest, StoreError, StoredRecord, Target, Task, TaskRequest, Upload, User,
    Value as FieldValue, Write,
};
pub use owned::Owned;
pub use page::{PAGE_DATA_BYTES, Page};
pub use record::{Query, Record, get, new_id};
pub use request::{MAX_TEXT_CHARS, Request, field};
pub use response::Response;
pub use routes::Route;
pub use serde_json::{Value, json};

/// Everything a typical plugin uses: `use plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Access, Comparison, Descriptor, FieldValue, Method, Notification, Owned, Page, Plugin, PluginError, Query,
        Record, Request, Response, Result, Route, SocketRequest, Target, TaskRequest, Value, ensure, get, json,
    };
}

/// The result type of every plugin function.
pub type Result<T, E = PluginError> = core::result::Result<T, E>;

/// What a plugin implements. [`export!`] turns it into the component's exports.
pub trait Plugin {
    /// The plugin's self-description; must return the same value on every call.
    fn describe() -> Descriptor;

    /// Handle one HTTP request routed to one of the actions in the descriptor.
    fn handle(req: Request) -> Result<Response>;

    /// Answer a client→server socket event declared in the descriptor. The returned
    /// object is merged into the acknowledgement `{"state": "success", ...}`.
    fn on_socket_event(req: SocketRequest) -> Result<Value> {
        Err(PluginError::NotFound(format!("no socket event {}", req.event)))
    }

    /// Run a background task that a response asked for with [`Response::spawn`]. Its
    /// writes and notifications commit in a transaction of their own.
    fn run_task(req: TaskRequest) -> Result<Response> {
        Err(PluginError::NotFound(format!("no task {}", req.name)))
    }
}

/// Export a [`Plugin`] implementation as the component's `handler`.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __TidingsGuest;

        impl $crate::bindings::exports::tidings::plugin::handler::Guest for __TidingsGuest {
            fn describe() -> $crate::Descriptor {
                <$plugin as $crate::Plugin>::describe()
            }
            fn handle(
                req: $crate::bindings::tidings::plugin::types::Request,
            ) -> $crate::Result<$crate::bindings::tidings::plugin::types::Response> {
                <$plugin as $crate::Plugin>::handle($crate::Request::from(req)).map(Into::into)
            }
            fn on_socket_event(req: $crate::SocketRequest) -> $crate::Result<String> {
                <$plugin as $crate::Plugin>::on_socket_event(req).map(|v| v.to_string())
            }
            fn run_task(
                req: $crate::TaskRequest,
            ) -> $crate::Result<$crate::bindings::tidings::plugin::types::Response> {
                <$plugin as $crate::Plugin>::run_task(req).map(Into::into)
            }
        }

        $crate::bindings::export_guest!(__TidingsGuest);
    };
}

/// Return early with an error unless a condition holds:
/// `ensure!(start < end, PluginError::InvalidInput("start must be before end".into()))`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $err:expr $(,)?) => {
        if !$cond {
            return Err($err);
        }
    };
}

/// Write a line to the host's log, tagged with this plugin's name, and to the plugin's
/// journal (`tidings plugin logs`). On the machine (tests), to standard error.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::tidings::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?} {message}");
}

impl Descriptor {
    /// A descriptor with no actions, no extra grants and no indexes.
    pub fn new(name: &str, record_type: &str, collection: &str, version: &str) -> Self {
        Descriptor {
            name: name.into(),
            record_type: record_type.into(),
            collection: collection.into(),
            version: version.into(),
            actions: Vec::new(),
            socket_events: Vec::new(),
            grants: Grants { read: Vec::new(), write: Vec::new() },
            indexes: Vec::new(),
        }
    }

    /// Serve `method path` (relative to the collection) as the action `name`.
    pub fn action(mut self, name: &str, method: Method, path: &str, access: Access) -> Self {
        self.actions.push(Action { name: name.into(), method, path: path.into(), access });
        self
    }

    /// Answer the client→server socket event `event`.
    pub fn socket_event(mut self, event: &str) -> Self {
        self.socket_events.push(event.into());
        self
    }

    /// Ask to read another record type.
    pub fn reads(mut self, record_type: &str) -> Self {
        self.grants.read.push(record_type.into());
        self
    }

    /// Ask to write (and notify about) another record type.
    pub fn writes(mut self, record_type: &str) -> Self {
        self.grants.write.push(record_type.into());
        self
    }

    /// Ask the host to index a field of this plugin's records for comparisons, `in` and
    /// ordering.
    pub fn index(mut self, field: &str) -> Self {
        self.indexes.push(Index { field: field.into(), kind: IndexKind::Value, then_by: Vec::new() });
        self
    }

    /// Ask the host to index `field`, then `order` within each value of it: serves a list of
    /// the records with one value of `field`, ordered (and paged, see [`Page`]) by `order`,
    /// e.g. `.index_ordered("authorId", "start")` for "my events by start".
    pub fn index_ordered(mut self, field: &str, order: &str) -> Self {
        self.indexes.push(Index { field: field.into(), kind: IndexKind::Value, then_by: vec![order.into()] });
        self
    }

    /// Ask the host to index each element of an array field, for [`Query::contains`].
    pub fn index_elements(mut self, field: &str) -> Self {
        self.indexes.push(Index { field: field.into(), kind: IndexKind::Elements, then_by: Vec::new() });
        self
    }
}

impl Notification {
    /// `NEW_RECORD` with the record as the API returns it.
    pub fn created(record_type: &str, id: &str, record: &Value) -> Self {
        Self::with_change(Change::Created, record_type, id, Some(record))
    }

    /// `CHANGED_RECORD` with the record as the API returns it.
    pub fn changed(record_type: &str, id: &str, record: &Value) -> Self {
        Self::with_change(Change::Changed, record_type, id, Some(record))
    }

    /// `DELETED_RECORD` with the id.
    pub fn deleted(record_type: &str, id: &str) -> Self {
        Self::with_change(Change::Deleted, record_type, id, None)
    }

    fn with_change(change: Change, record_type: &str, id: &str, record: Option<&Value>) -> Self {
        Notification {
            change,
            record_type: record_type.into(),
            id: id.into(),
            record: record.map(Value::to_string),
            targets: Vec::new(),
            to_self: false,
        }
    }

    /// Add a target room.
    pub fn to(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Also deliver to the socket that made the request.
    pub fn to_self(mut self) -> Self {
        self.to_self = true;
        self
    }
}

impl From<StoreError> for PluginError {
    fn from(err: StoreError) -> Self {
        // A refused read is a bug in the plugin (it read outside its grants or built a bad
        // query), not the caller's fault: report it as internal.
        PluginError::Internal(match err {
            StoreError::AccessDenied(m) => format!("store access denied: {m}"),
            StoreError::InvalidQuery(m) => format!("invalid store query: {m}"),
            StoreError::QuotaExceeded(m) => format!("store quota exceeded: {m}"),
        })
    }
}
