//! `tidings plugin new` and `tidings plugin build`: a standalone plugin project, outside any
//! checkout, from what ships in this binary (the SDK's sources and the WIT), and its build.
//!
//! The project is an owner-scoped collection on the SDK's [`Owned`] helper: `POST /`, `GET /`
//! (the caller's records; every record for an ADMIN), `GET /:id`, `PUT /:id`, `DELETE /:id`
//! (owner or ADMIN, otherwise 404), each change notified to the owner and the admins, with a
//! required `title` text and any other JSON fields kept as sent.
//!
//! [`Owned`]: ../../plugins/plugin-sdk/src/owned.rs

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The SDK's sources and the plugin interface, as the project gets them.
const SDK_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../plugins/plugin-sdk/src/lib.rs")),
    ("src/owned.rs", include_str!("../../plugins/plugin-sdk/src/owned.rs")),
    ("src/page.rs", include_str!("../../plugins/plugin-sdk/src/page.rs")),
    ("src/record.rs", include_str!("../../plugins/plugin-sdk/src/record.rs")),
    ("src/request.rs", include_str!("../../plugins/plugin-sdk/src/request.rs")),
    ("src/response.rs", include_str!("../../plugins/plugin-sdk/src/response.rs")),
    ("src/routes.rs", include_str!("../../plugins/plugin-sdk/src/routes.rs")),
    ("src/testing.rs", include_str!("../../plugins/plugin-sdk/src/testing.rs")),
    ("wit/handler.wit", include_str!("../../wit/handler.wit")),
    ("wit/log.wit", include_str!("../../wit/log.wit")),
    ("wit/store.wit", include_str!("../../wit/store.wit")),
    ("wit/types.wit", include_str!("../../wit/types.wit")),
    ("wit/world.wit", include_str!("../../wit/world.wit")),
];

/// Where the SDK reads the WIT from in this repository, and in a project.
const WIT_PATH_IN_REPOSITORY: &str = r#"path: "../../wit""#;
const WIT_PATH_IN_PROJECT: &str = r#"path: "wit""#;

/// The languages `tidings plugin new` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
}

/// The names a project derives from `NAME`: `bookmark` → `BOOKMARK` at `/api/v1/bookmarks`.
struct Names {
    name: String,
    record_type: String,
    collection: String,
    /// The Rust type of the plugin: `Bookmark`.
    type_name: String,
    /// The Rust constant of the collection: `BOOKMARKS`.
    constant: String,
}

impl Names {
    fn of(name: &str) -> anyhow::Result<Names> {
        let valid = name.len() <= 60
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            bail!("{name:?}: a plugin name is lowercase letters, digits, '-' or '_', starting with a letter");
        }
        let collection = format!("{name}s");
        if crate::RESERVED_COLLECTIONS.contains(&collection.as_str()) {
            bail!("the collection {collection:?} is reserved by the host; choose another name");
        }
        let words: Vec<&str> = name.split(['-', '_']).filter(|w| !w.is_empty()).collect();
        let type_name = words.iter().map(|w| w[..1].to_uppercase() + &w[1..]).collect();
        let record_type = words.join("_").to_uppercase();
        Ok(Names { name: name.to_owned(), constant: format!("{record_type}S"), record_type, collection, type_name })
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{record_type}}", &self.record_type)
            .replace("{{collection}}", &self.collection)
            .replace("{{type_name}}", &self.type_name)
            .replace("{{constant}}", &self.constant)
            .replace("{{name_underscored}}", &self.name.replace('-', "_"))
            .replace("{{tidings_version}}", env!("CARGO_PKG_VERSION"))
    }
}

/// The project's own files, with `{{…}}` filled from [`Names`].
const PROJECT_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../templates/rust/lib.rs.in")),
    ("sdk/Cargo.toml", include_str!("../templates/rust/sdk.Cargo.toml.in")),
    ("README.md", include_str!("../templates/rust/README.md.in")),
    (".gitignore", "/target\n"),
];

/// The fixtures every project starts with, whatever its language: `tidings plugin test` runs
/// them (see [`crate::fixtures`]), and they pass as generated.
const FIXTURE_FILES: &[(&str, &str)] = &[
    ("tests/admin-lists-all.json", include_str!("../templates/fixtures/admin-lists-all.json.in")),
    ("tests/anonymous.json", include_str!("../templates/fixtures/anonymous.json.in")),
    ("tests/create-needs-a-title.json", include_str!("../templates/fixtures/create-needs-a-title.json.in")),
    ("tests/create.json", include_str!("../templates/fixtures/create.json.in")),
    ("tests/delete.json", include_str!("../templates/fixtures/delete.json.in")),
    ("tests/list-own.json", include_str!("../templates/fixtures/list-own.json.in")),
    ("tests/others-get-404.json", include_str!("../templates/fixtures/others-get-404.json.in")),
    ("tests/update-keeps-other-fields.json", include_str!("../templates/fixtures/update-keeps-other-fields.json.in")),
];

/// Write a new project for plugin `name` into `dir` (which must not exist or be empty).
/// Returns the files written, relative to `dir`.
pub fn new_project(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Lang::Rust = lang;
    let names = Names::of(name)?;
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let sdk = SDK_FILES.iter().map(|(path, text)| {
        let text = if *path == "src/lib.rs" {
            text.replace(WIT_PATH_IN_REPOSITORY, WIT_PATH_IN_PROJECT)
        } else {
            (*text).to_owned()
        };
        (format!("sdk/{path}"), text)
    });
    let own = PROJECT_FILES.iter().chain(FIXTURE_FILES).map(|(path, text)| ((*path).to_owned(), names.fill(text)));
    let mut written = Vec::new();
    for (path, text) in own.chain(sdk) {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        written.push(PathBuf::from(path));
    }
    Ok(written)
}

/// Build the project in `dir` into a component; returns the `.wasm`'s path. Cargo's output
/// goes to standard error.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!("{} has no Cargo.toml: `tidings plugin build` builds Rust plugin projects", dir.display());
    }
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let crate_name = package_name(&text).with_context(|| format!("{} names no [package]", manifest.display()))?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(&manifest)
        .stdout(std::process::Stdio::inherit())
        .status()
        .context("running cargo (is Rust installed?)")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if it says the wasm32-wasip2 target is missing, run \
             `rustup target add wasm32-wasip2`"
        );
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| dir.join("target"));
    let wasm = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", crate_name.replace('-', "_")));
    if !wasm.exists() {
        bail!("cargo succeeded but {} is missing", wasm.display());
    }
    Ok(wasm)
}

/// The `name` of the `[package]` table of a Cargo.toml.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            return value.strip_prefix('=')?.trim().trim_matches('"').to_owned().into();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_plugin_name() {
        let n = Names::of("reading-list").unwrap();
        assert_eq!(
            (n.record_type.as_str(), n.collection.as_str(), n.type_name.as_str(), n.constant.as_str()),
            ("READING_LIST", "reading-lists", "ReadingList", "READING_LISTS")
        );
        for bad in ["", "Bookmark", "9lives", "a b", &"x".repeat(61)] {
            assert!(Names::of(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_sdk_is_pointed_at_its_own_wit() {
        assert!(include_str!("../../plugins/plugin-sdk/src/lib.rs").contains(WIT_PATH_IN_REPOSITORY));
    }

    #[test]
    fn package_names_are_read_from_the_package_table() {
        let manifest = "[workspace]\nname = \"no\"\n[package]\nname = \"bookmark\"\nversion = \"0.1.0\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("bookmark"));
    }
}
