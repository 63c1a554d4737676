//! Test guest `swap-one`: generation 1 of the `swap` plugin (see ../../swap-shared.rs).

#[path = "../../swap-shared.rs"]
mod shared;

shared::swap_plugin!(1, "SWAP", &[]);
