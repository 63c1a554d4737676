//! Test guest `swap-two`: generation 2 of the `swap` plugin (see ../../swap-shared.rs).

#[path = "../../swap-shared.rs"]
mod shared;

use plugin_sdk::prelude::*;
use shared::Variant;

const VARIANT: Variant = Variant { generation: 2, record_type: "SWAP", reads: &[] };

struct Swap;
plugin_sdk::export!(Swap);

impl Plugin for Swap {
    fn describe() -> Descriptor {
        shared::describe(&VARIANT)
    }

    fn handle(req: Request) -> Result<Response> {
        shared::handle(&VARIANT, req)
    }
}
