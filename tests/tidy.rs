//! Tidy: the house rules that are cheaper to check than to remember. Every Rust file opens with a `//!`
//! doc comment, no test is switched off, and the crate graph keeps its forbidden edges out.

#![allow(clippy::expect_used, reason = "test code: a panic is the test failing")]

use std::path::{Path, PathBuf};

/// Crates that must do no IO and know nothing of HTTP, SQL, async runtimes or configuration.
const PURE_CRATES: [&str; 5] =
    ["cdr-model", "cdr-fhirpath", "cdr-search", "cdr-validation", "cdr-xml"];
const FORBIDDEN_IN_PURE: [&str; 9] =
    ["tokio", "sqlx", "axum", "hyper", "tower", "tower-http", "reqwest", "clap", "anyhow"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn rust_files(folder: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "test_data" {
                rust_files(&path, files);
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The dependency names of a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            names.push(name.trim().split('.').next().unwrap_or_default().to_owned());
        }
    }
    names
}

fn crate_dependencies(name: &str) -> Vec<String> {
    let manifest = workspace_root().join("crates").join(name).join("Cargo.toml");
    dependencies(
        &std::fs::read_to_string(&manifest)
            .unwrap_or_else(|error| panic!("{}: {error}", manifest.display())),
    )
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    assert!(files.len() > 20, "the walk found the sources");
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty() && !line.starts_with("// @generated"))
                .unwrap_or_default();
            !first.starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "files without a //! doc comment: {offenders:#?}");
}

#[test]
fn no_test_is_switched_off() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let ignore = ["#[", "ignore]"].concat();
    let should_panic = ["#[", "should_panic"].concat();
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            text.contains(&ignore) || text.contains(&should_panic)
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "switched-off tests in {offenders:#?}");
}

#[test]
fn pure_crates_have_no_io_dependencies() {
    for name in PURE_CRATES {
        for dependency in crate_dependencies(name) {
            assert!(
                !FORBIDDEN_IN_PURE.contains(&dependency.as_str()),
                "{name} depends on {dependency}"
            );
        }
    }
}

#[test]
fn layering_holds() {
    let rules: [(&str, &str); 8] = [
        ("cdr-api", "cdr-store"),
        ("cdr-api", "sqlx"),
        ("cdr-interactions", "sqlx"),
        ("cdr-interactions", "axum"),
        ("cdr-store", "cdr-validation"),
        ("cdr-store", "axum"),
        // The bench speaks FHIR REST to the server; of the server it uses only the conformance loader.
        ("cdr-bench", "cdr-api"),
        ("cdr-server", "cdr-bench"),
    ];
    for (from, to) in rules {
        assert!(
            !crate_dependencies(from).iter().any(|dependency| dependency == to),
            "{from} must not depend on {to}"
        );
    }
}

/// The conformance kit is a black-box client: of the workspace it uses only the pure validator (the binary
/// hands it the loaded profiles), so it runs against any server and cannot reach into ours.
#[test]
fn the_conformance_kit_speaks_only_http() {
    let manifest = workspace_root().join("conformance").join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|error| panic!("{}: {error}", manifest.display()));
    let internal: Vec<String> =
        dependencies(&manifest).into_iter().filter(|name| name.starts_with("cdr-")).collect();
    assert_eq!(internal, ["cdr-validation"]);
}

#[test]
fn the_dependency_reader_reads() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\nfoo = \"1\"\n[dev-dependencies]\nbar = \"1\"\n";
    assert_eq!(dependencies(manifest), ["serde", "foo"]);
}
