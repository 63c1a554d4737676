//! Test guest `swap-retyped`: generation 4 of the `swap` plugin (see ../../swap-shared.rs).

#[path = "../../swap-shared.rs"]
mod shared;

shared::swap_plugin!(4, "RETYPED", &[]);
