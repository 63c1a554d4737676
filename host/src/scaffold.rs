//! `tidings plugin new` and `tidings plugin build`: a standalone plugin project in Rust,
//! JavaScript or Python, outside any checkout, from what ships in this binary (the WIT, the
//! Rust SDK's sources, the JavaScript and Python helper modules), and its build.
//!
//! The project is an owner-scoped collection on the SDK's [`Owned`] helper (or its JavaScript
//! or Python twin, `templates/js/tidings.js` and `templates/python/tidings.py`): `POST /`,
//! `GET /` (the caller's records; every record for an ADMIN), `GET /:id`, `PUT /:id`,
//! `DELETE /:id` (owner or ADMIN, otherwise 404), each change notified to the owner and the
//! admins, with a required `title` text and any other JSON fields kept as sent.
//!
//! The build of a JavaScript or Python project installs its pinned toolchain into the project
//! the first time (`npm install`; a `.venv` with pip), from the registries.
//!
//! [`Owned`]: ../../plugins/plugin-sdk/src/owned.rs

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A file of a project: its path in the project and its text.
type File = (&'static str, &'static str);

/// The Rust SDK's sources, as a Rust project gets them under `sdk/`.
const SDK_FILES: &[File] = &[
    ("src/lib.rs", include_str!("../../plugins/plugin-sdk/src/lib.rs")),
    ("src/owned.rs", include_str!("../../plugins/plugin-sdk/src/owned.rs")),
    ("src/page.rs", include_str!("../../plugins/plugin-sdk/src/page.rs")),
    ("src/record.rs", include_str!("../../plugins/plugin-sdk/src/record.rs")),
    ("src/request.rs", include_str!("../../plugins/plugin-sdk/src/request.rs")),
    ("src/response.rs", include_str!("../../plugins/plugin-sdk/src/response.rs")),
    ("src/routes.rs", include_str!("../../plugins/plugin-sdk/src/routes.rs")),
    ("src/testing.rs", include_str!("../../plugins/plugin-sdk/src/testing.rs")),
];

/// The plugin interface, as every project gets it under its WIT folder.
const WIT_FILES: &[File] = &[
    ("handler.wit", include_str!("../../wit/handler.wit")),
    ("log.wit", include_str!("../../wit/log.wit")),
    ("store.wit", include_str!("../../wit/store.wit")),
    ("types.wit", include_str!("../../wit/types.wit")),
    ("world.wit", include_str!("../../wit/world.wit")),
];

/// Where the SDK reads the WIT from in this repository, and in a project.
const WIT_PATH_IN_REPOSITORY: &str = r#"path: "../../wit""#;
const WIT_PATH_IN_PROJECT: &str = r#"path: "wit""#;

/// The languages `tidings plugin new` writes and `tidings plugin build` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    /// JavaScript, built with componentize-qjs (QuickJS).
    #[value(alias = "javascript")]
    Js,
    /// Python, built with componentize-py.
    #[value(alias = "py")]
    Python,
}

impl Lang {
    /// The project's own files, before `{{…}}` is filled from [`Names`].
    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST_FILES,
            Lang::Js => JS_FILES,
            Lang::Python => PYTHON_FILES,
        }
    }

    /// Where the project keeps the plugin interface.
    fn wit_dir(self) -> &'static str {
        match self {
            Lang::Rust => "sdk/wit",
            Lang::Js | Lang::Python => "wit",
        }
    }

    /// The language of the project in `dir`, from its manifest.
    fn of_project(dir: &Path) -> anyhow::Result<Lang> {
        let has = |file: &str| dir.join(file).exists();
        if has("Cargo.toml") {
            Ok(Lang::Rust)
        } else if has("package.json") {
            Ok(Lang::Js)
        } else if has("pyproject.toml") {
            Ok(Lang::Python)
        } else {
            bail!(
                "{} is not a plugin project: it has no Cargo.toml (Rust), package.json (JavaScript) or \
                 pyproject.toml (Python); `tidings plugin new NAME` writes one",
                dir.display()
            )
        }
    }
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

/// A Rust project's own files, with `{{…}}` filled from [`Names`].
const RUST_FILES: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../templates/rust/lib.rs.in")),
    ("sdk/Cargo.toml", include_str!("../templates/rust/sdk.Cargo.toml.in")),
    ("README.md", include_str!("../templates/rust/README.md.in")),
    (".gitignore", "/target\n"),
];

/// The fixtures every project starts with, whatever its language: `tidings plugin test` runs
/// them (see [`crate::fixtures`]), and they pass as generated.
const FIXTURE_FILES: &[File] = &[
    ("tests/admin-lists-all.json", include_str!("../templates/fixtures/admin-lists-all.json.in")),
    ("tests/anonymous.json", include_str!("../templates/fixtures/anonymous.json.in")),
    ("tests/create-needs-a-title.json", include_str!("../templates/fixtures/create-needs-a-title.json.in")),
    ("tests/create.json", include_str!("../templates/fixtures/create.json.in")),
    ("tests/delete.json", include_str!("../templates/fixtures/delete.json.in")),
    ("tests/list-own.json", include_str!("../templates/fixtures/list-own.json.in")),
    ("tests/others-get-404.json", include_str!("../templates/fixtures/others-get-404.json.in")),
    ("tests/update-keeps-other-fields.json", include_str!("../templates/fixtures/update-keeps-other-fields.json.in")),
];

/// A JavaScript project's own files: the plugin in `src/plugin.js` on the helper module
/// `src/tidings.js`, and the pinned toolchain in `package.json`.
const JS_FILES: &[File] = &[
    ("package.json", include_str!("../templates/js/package.json.in")),
    ("src/plugin.js", include_str!("../templates/js/plugin.js.in")),
    ("src/tidings.js", include_str!("../templates/js/tidings.js")),
    ("wit/javascript.wit", include_str!("../templates/js/wit/javascript.wit")),
    ("wit/deps/wasi-random-0.2.12/random.wit", include_str!("../templates/js/wit/deps/wasi-random-0.2.12/random.wit")),
    ("README.md", include_str!("../templates/js/README.md.in")),
    (".gitignore", "/node_modules\n/target\n"),
];

/// A Python project's own files: the plugin in `src/app.py` on the helper module
/// `src/tidings.py`, and the pinned toolchain in `requirements.txt`.
const PYTHON_FILES: &[File] = &[
    ("pyproject.toml", include_str!("../templates/python/pyproject.toml.in")),
    ("requirements.txt", include_str!("../templates/python/requirements.txt")),
    ("src/app.py", include_str!("../templates/python/app.py.in")),
    ("src/tidings.py", include_str!("../templates/python/tidings.py")),
    ("README.md", include_str!("../templates/python/README.md.in")),
    (".gitignore", "/.venv\n/target\n__pycache__/\n"),
];

/// Write a new project for plugin `name` into `dir` (which must not exist or be empty).
/// Returns the files written, relative to `dir`.
pub fn new_project(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let names = Names::of(name)?;
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let mut written = Vec::new();
    for (path, text) in project_files(lang, &names) {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        written.push(PathBuf::from(path));
    }
    Ok(written)
}

/// Every file of a new project in `lang`, path and filled text: the language's own files, the
/// WIT, and for Rust the SDK.
fn project_files(lang: Lang, names: &Names) -> Vec<(String, String)> {
    let own = lang.files().iter().map(|(path, text)| ((*path).to_owned(), names.fill(text)));
    let wit = WIT_FILES.iter().map(|(path, text)| (format!("{}/{path}", lang.wit_dir()), (*text).to_owned()));
    let sdk = SDK_FILES.iter().filter(|_| lang == Lang::Rust).map(|(path, text)| {
        let text = if *path == "src/lib.rs" {
            text.replace(WIT_PATH_IN_REPOSITORY, WIT_PATH_IN_PROJECT)
        } else {
            (*text).to_owned()
        };
        (format!("sdk/{path}"), text)
    });
    let fixtures = FIXTURE_FILES.iter().map(|(path, text)| ((*path).to_owned(), names.fill(text)));
    own.chain(fixtures).chain(wit).chain(sdk).collect()
}

/// Build the project in `dir` into a component; returns the `.wasm`'s path. The toolchain's
/// output, and the progress of installing it, go to standard error.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    // Absolute, since the toolchains run in the project's directory.
    let dir = &dir.canonicalize().with_context(|| format!("reading {}", dir.display()))?;
    match Lang::of_project(dir)? {
        Lang::Rust => build_rust(dir),
        Lang::Js => build_js(dir),
        Lang::Python => build_python(dir),
    }
}

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let crate_name =
        package_name(&text, "package").with_context(|| format!("{} names no [package]", manifest.display()))?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(&manifest)
        .stdout(std::io::stderr())
        .status()
        .context("running cargo (is Rust installed?)")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if it says the wasm32-wasip2 target is missing, run \
             `rustup target add wasm32-wasip2`"
        );
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| dir.join("target"));
    built(target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", crate_name.replace('-', "_"))))
}

/// A JavaScript project: `npm install` once (componentize-qjs, pinned in package.json), then
/// `componentize-qjs` on `src/plugin.js` into `target/NAME.wasm`.
fn build_js(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", manifest.display()))?;
    let name = json["name"].as_str().with_context(|| format!("{} has no \"name\"", manifest.display()))?;
    let tool = dir.join("node_modules/.bin/componentize-qjs");
    if !tool.exists() {
        eprintln!("installing the JavaScript toolchain into {} (npm install)", dir.join("node_modules").display());
        let npm = std::env::var_os("NPM").unwrap_or_else(|| "npm".into());
        run(
            Command::new(npm).args(["install", "--no-audit", "--no-fund"]).current_dir(dir),
            "npm (is Node.js installed?)",
        )?;
    }
    let wasm = dir.join("target").join(format!("{name}.wasm"));
    eprintln!("building {} with componentize-qjs", wasm.display());
    std::fs::create_dir_all(dir.join("target")).context("creating target/")?;
    run(
        Command::new(&tool)
            .args(["--wit", "wit", "--world", "javascript-plugin", "--js", "src/plugin.js", "--sync", "--output"])
            .arg(&wasm)
            .current_dir(dir),
        "componentize-qjs",
    )?;
    built(wasm)
}

/// A Python project: a `.venv` with the toolchain of requirements.txt (componentize-py) once,
/// then `componentize-py` on `src/app.py` into `target/NAME.wasm`.
fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let name = package_name(&text, "project").with_context(|| format!("{} names no [project]", manifest.display()))?;
    let venv = dir.join(".venv");
    let tool = venv.join("bin/componentize-py");
    if !tool.exists() {
        eprintln!("installing the Python toolchain into {} (venv, pip install -r requirements.txt)", venv.display());
        let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        run(
            Command::new(python).args(["-m", "venv", ".venv"]).current_dir(dir),
            "python3 -m venv (it needs Python 3 with venv; on Debian: apt install python3-venv)",
        )?;
        let pip = venv.join("bin/pip");
        run(
            Command::new(pip)
                .args(["install", "--disable-pip-version-check", "-r", "requirements.txt"])
                .current_dir(dir),
            "pip",
        )?;
    }
    let wasm = dir.join("target").join(format!("{name}.wasm"));
    eprintln!("building {} with componentize-py", wasm.display());
    std::fs::create_dir_all(dir.join("target")).context("creating target/")?;
    run(
        Command::new(&tool)
            .args(["--wit-path", "wit", "--world", "plugin", "componentize", "--python-path", "src", "app", "--output"])
            .arg(&wasm)
            .current_dir(dir),
        "componentize-py",
    )?;
    built(wasm)
}

/// Run a toolchain command with its output on standard error (standard output ends with the
/// `.wasm`'s path alone).
fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.stdout(std::io::stderr()).status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn built(wasm: PathBuf) -> anyhow::Result<PathBuf> {
    if !wasm.exists() {
        bail!("the build succeeded but {} is missing", wasm.display());
    }
    Ok(wasm)
}

/// The `name` in the table `[table]` of a TOML manifest (Cargo.toml's `package`,
/// pyproject.toml's `project`).
fn package_name(manifest: &str, table: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) == Some(table);
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
        assert_eq!(package_name(manifest, "package").as_deref(), Some("bookmark"));
        let pyproject = Names::of("py-note").unwrap().fill(include_str!("../templates/python/pyproject.toml.in"));
        assert_eq!(package_name(&pyproject, "project").as_deref(), Some("py-note"));
    }

    #[test]
    fn every_language_gets_its_plugin_the_interface_and_no_placeholder() {
        let names = Names::of("reading-list").unwrap();
        for (lang, main, wit) in [
            (Lang::Rust, "src/lib.rs", "sdk/wit/world.wit"),
            (Lang::Js, "src/plugin.js", "wit/world.wit"),
            (Lang::Python, "src/app.py", "wit/world.wit"),
        ] {
            let files = project_files(lang, &names);
            let text = |path: &str| files.iter().find(|(p, _)| p == path).map(|(_, t)| t.as_str());
            assert!(text(main).is_some_and(|t| t.contains("\"READING_LIST\", \"reading-lists\"")), "{lang:?}: {main}");
            assert!(text(wit).is_some_and(|t| t.contains("world plugin")), "{lang:?}: {wit}");
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{lang:?}: {path} keeps a placeholder");
            }
        }
        let js = project_files(Lang::Js, &names);
        assert!(js.iter().any(|(p, t)| p == "wit/javascript.wit" && t.contains("import wasi:random/random@0.2.12")));
    }

    #[test]
    fn the_language_is_told_by_the_manifest() {
        let dir = std::env::temp_dir().join(format!("tidings-scaffold-{}", uuid::Uuid::new_v4()));
        for (manifest, lang) in
            [("Cargo.toml", Lang::Rust), ("package.json", Lang::Js), ("pyproject.toml", Lang::Python)]
        {
            let project = dir.join(manifest);
            std::fs::create_dir_all(&project).unwrap();
            std::fs::write(project.join(manifest), "").unwrap();
            assert_eq!(Lang::of_project(&project).unwrap(), lang);
        }
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(Lang::of_project(&empty).unwrap_err().to_string().contains("no Cargo.toml (Rust), package.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
