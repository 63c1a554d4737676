//! Test guest `swap-wider`: generation 3 of the `swap` plugin (see ../../swap-shared.rs).

#[path = "../../swap-shared.rs"]
mod shared;

shared::swap_plugin!(3, "SWAP", &["DEPARTMENT"]);
