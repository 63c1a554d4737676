//! Builds the test-only guest components (`tests/guests/*`) once for `wasm32-wasip2` and
//! generates a constant with the path of each, plus `foreach_guest!`.
//!
//! The components go to `target/test-guests/`, a fixed place, so the Node client tests
//! (`tests/client`) find the same files.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let guests_dir = manifest_dir.join("guests");
    println!("cargo:rerun-if-changed={}", guests_dir.display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../plugins/plugin-sdk").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("../wit").display());

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { manifest_dir.join("..").join(dir) })
        .unwrap_or_else(|| manifest_dir.join("../target"))
        .join("test-guests");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(guests_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running cargo for the test guests");
    assert!(status.success(), "building the test guests failed; is wasm32-wasip2 installed?");

    let mut names: Vec<String> = std::fs::read_dir(&guests_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut generated = String::new();
    for name in &names {
        let suite = name.split('-').next().unwrap();
        assert!(
            ["notify", "fault", "swap", "work"].contains(&suite),
            "test guest {name} has an unknown suite prefix {suite:?}"
        );
        let path = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        assert!(path.exists(), "missing {}", path.display());
        let constant = name.to_uppercase().replace('-', "_");
        generated.push_str(&format!("pub const {constant}: &str = {:?};\n", path.display().to_string()));
    }
    let calls: String = names.iter().map(|n| format!(" $m!({});", n.to_uppercase().replace('-', "_"))).collect();
    generated.push_str(&format!(
        "/// Calls `$m!(CONSTANT)` for every test guest.\n#[macro_export]\nmacro_rules! foreach_guest {{ ($m:ident) => {{{calls} }}; }}\n"
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("guests.rs"), generated).unwrap();
}
