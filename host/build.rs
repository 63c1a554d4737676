//! Builds the bundled plugins (`plugins/plugin-*`, except the SDK) for `wasm32-wasip2` and
//! generates `bundled_plugins.rs`, so the `tidings` binary carries them and a plain
//! `cargo build` needs no manual step.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../plugins");

    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let plugins_dir = manifest_dir.join("../plugins");
    let mut names: Vec<String> = std::fs::read_dir(&plugins_dir)
        .expect("reading plugins/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plugin-") && n != "plugin-sdk")
        .filter(|n| plugins_dir.join(n).join("Cargo.toml").exists())
        .collect();
    names.sort();

    // A separate target dir: the outer cargo holds the lock on the workspace's.
    let target_dir = out_dir.join("guests");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(manifest_dir.join(".."))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS");
    for name in &names {
        cargo.args(["-p", name]);
    }
    let status = cargo.status().expect("running cargo for the bundled plugins");
    assert!(
        status.success(),
        "building the bundled plugins failed; is the target installed? (`rustup target add wasm32-wasip2`)"
    );

    let mut generated = String::from(
        "/// `(name, component bytes)` of each bundled plugin.\npub const PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &names {
        let file = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.exists(), "missing {}", file.display());
        emit_rerun_from_dep_file(&file.with_extension("d"));
        let short = name.trim_start_matches("plugin-");
        generated.push_str(&format!("    ({short:?}, include_bytes!({:?})),\n", file.display().to_string()));
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("bundled_plugins.rs"), generated).unwrap();
}

/// Rebuild when any source file of a plugin changes, as listed in cargo's `.d` file.
fn emit_rerun_from_dep_file(dep_file: &Path) {
    let Ok(text) = std::fs::read_to_string(dep_file) else { return };
    if let Some((_, deps)) = text.split_once(": ") {
        for dep in deps.split_whitespace() {
            println!("cargo:rerun-if-changed={dep}");
        }
    }
}
