//! House rules checked as tests: every Rust source file opens with a `//!` paragraph saying
//! what lives in it, and every test guest has a README.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn files_have_module_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["host", "plugins", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.lines().take(5).any(|l| l.starts_with("//!"))
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! module doc: {missing:?}");
}

#[test]
fn every_test_guest_has_a_readme() {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
    for entry in std::fs::read_dir(guests).unwrap() {
        let path = entry.unwrap().path();
        if path.join("Cargo.toml").exists() {
            assert!(path.join("README.md").exists(), "{} has no README.md", path.display());
        }
    }
}

macro_rules! assert_guest_built {
    ($guest:ident) => {
        assert!(Path::new(integration_tests::$guest).exists(), "{} was not built", stringify!($guest));
    };
}

#[test]
fn every_test_guest_is_built() {
    integration_tests::foreach_guest!(assert_guest_built);
}
