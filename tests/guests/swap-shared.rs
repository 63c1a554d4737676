//! Shared body of the `swap-*` test guests: versions of one plugin, `swap`, that differ only
//! in what each crate passes to `swap_plugin!`. Included with `#[path]` by each guest's lib.rs.

use plugin_sdk::prelude::*;

/// What distinguishes one build of the `swap` plugin from another.
pub struct Variant {
    pub generation: u32,
    pub record_type: &'static str,
    pub reads: &'static [&'static str],
}

pub fn describe(v: &Variant) -> Descriptor {
    let d = Descriptor::new("swap", v.record_type, "swaps", &format!("{}.0.0", v.generation))
        .action("which", Method::Get, "/", Access::Public)
        .action("create", Method::Post, "/", Access::SignedIn);
    v.reads.iter().fold(d, |d, t| d.reads(t))
}

/// `GET /api/v1/swaps` → `{generation}`; `POST /api/v1/swaps` → a record `{generation}`,
/// notified to `all`.
pub fn handle(v: &Variant, req: Request) -> Result<Response> {
    match req.action() {
        "which" => Ok(Response::ok(&json!({ "generation": v.generation }))),
        "create" => {
            let record = Record::new(v.record_type, req.now(), json!({ "generation": v.generation }));
            let json = record.to_json();
            Ok(Response::created(&json)
                .insert(&record)
                .notify(Notification::created(v.record_type, &record.id, &json).to(Target::All)))
        }
        other => Err(PluginError::NotFound(format!("no action {other}"))),
    }
}

/// Define and export the `swap` plugin for one variant.
macro_rules! swap_plugin {
    ($generation:literal, $record_type:literal, $reads:expr) => {
        const VARIANT: shared::Variant =
            shared::Variant { generation: $generation, record_type: $record_type, reads: $reads };

        struct Swap;
        plugin_sdk::export!(Swap);

        impl plugin_sdk::Plugin for Swap {
            fn describe() -> plugin_sdk::Descriptor {
                shared::describe(&VARIANT)
            }

            fn handle(req: plugin_sdk::Request) -> plugin_sdk::Result<plugin_sdk::Response> {
                shared::handle(&VARIANT, req)
            }
        }
    };
}
pub(crate) use swap_plugin;
