//! Test guest `swap-two`: generation 2 of the `swap` plugin (see ../../swap-shared.rs).

#[path = "../../swap-shared.rs"]
mod shared;

shared::swap_plugin!(2, "SWAP", &[]);
