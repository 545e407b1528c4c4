//! Data-driven fixtures: `test_data/<suite>/{valid,invalid}/*.json`, each with the expected report in
//! a `.expect` file next to it (one issue per line, compared with `expect_test::expect_file!`).
//! `UPDATE_EXPECT=1 cargo test` rewrites them.
//! Suite `base` validates against base R4 only; suite `ca-baseline` also loads the (differential-only)
//! Canadian Baseline profiles from `test_data/ca-baseline/profiles/`; suites `slicing` and
//! `value-limits` load their own test profiles (slicing; minValue/maxValue/maxLength), suite `extensions`
//! its extension definitions (contexts of type `extension` and `fhirpath`).

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::path::Path;

use cdr_validation::{ProfileSet, validate};
use expect_test::expect_file;

fn profile_set(suite: &Path) -> ProfileSet {
    let mut profiles = ProfileSet::r4_core().unwrap();
    let profile_dir = suite.join("profiles");
    if profile_dir.is_dir() {
        let mut paths: Vec<_> =
            std::fs::read_dir(&profile_dir).unwrap().map(|entry| entry.unwrap().path()).collect();
        paths.sort();
        for path in paths.iter().filter(|path| path.extension().is_some_and(|ext| ext == "json")) {
            let text = std::fs::read_to_string(path).unwrap();
            profiles.add_json(&path.display().to_string(), &text).unwrap();
        }
    }
    profiles
}

fn check_suite(suite: &str) {
    let suite_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(suite);
    let profiles = profile_set(&suite_dir);
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for kind in ["valid", "invalid"] {
        let dir = suite_dir.join(kind);
        let mut paths: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
        paths.sort();
        for path in paths.iter().filter(|path| path.extension().is_some_and(|ext| ext == "json")) {
            n_cases += 1;
            let text = std::fs::read_to_string(path).unwrap();
            let resource: serde_json::Value = serde_json::from_str(&text).unwrap();
            let report = validate(&resource, &profiles, &[]);
            let actual = report.to_string();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            match kind {
                "valid" if report.has_errors() => {
                    failures.push(format!("{name}: unexpected errors\n{actual}"));
                }
                "invalid" if !report.has_errors() => {
                    failures.push(format!("{name}: no error reported"));
                }
                _ => {}
            }
            expect_file![path.with_extension("expect")].assert_eq(&actual);
        }
    }
    assert!(n_cases > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn base_fixtures() {
    check_suite("base");
}

#[test]
fn ca_baseline_fixtures() {
    check_suite("ca-baseline");
}

#[test]
fn slicing_fixtures() {
    check_suite("slicing");
}

#[test]
fn extension_fixtures() {
    check_suite("extensions");
}

#[test]
fn value_limit_fixtures() {
    check_suite("value-limits");
}
