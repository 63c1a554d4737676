//! Paths of the test-only guest components built by `build.rs`, as constants
//! (`NOTIFY_ROOMS`, `FAULT_MISBEHAVE`), and `foreach_guest!` over all of them.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
