//! The Ontario MI examples of the repository's `profiles/examples/<profile>/`, validated against the
//! profiles of `profiles/` (and the vendored CA Baseline): each `valid-*.json` has no error, each
//! `invalid-*.json` has errors at exactly the one location its `.expected.txt` names
//! (`<location>: <violation>`).
//!
//! Locations are compared as FHIRPath with slice names (`Patient.identifier:MRN.value`) or indexes
//! (`Patient.identifier[0].value`); the engine may report either form, so slice names and indexes are
//! both dropped before comparing (as `profiles/README.md` allows).

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::path::{Path, PathBuf};

use cdr_validation::{ProfileSet, ValidationReport, validate};

fn repository_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
}

fn ontario_profiles() -> ProfileSet {
    let profiles_dir = repository_dir().join("profiles");
    let mut profiles = ProfileSet::r4_core().unwrap();
    for dir in [profiles_dir.join("ca-baseline"), profiles_dir] {
        for path in json_files(&dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            profiles.add_json(&path.display().to_string(), &text).unwrap();
        }
    }
    profiles
}

/// A location without slice names, indexes and type selectors: `Patient.identifier:MRN.value` and
/// `Patient.identifier[0].value` both become `Patient.identifier.value`, and
/// `DiagnosticReport.extension[0].value.ofType(String)` and `….extension:addendumOf.value[x]` both
/// become `DiagnosticReport.extension.value`.
fn normalise_location(location: &str) -> String {
    location
        .split('.')
        .filter(|step| !step.starts_with("ofType("))
        .map(|step| {
            let step = step.split(':').next().unwrap_or(step);
            step.split('[').next().unwrap_or(step)
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn check_invalid(name: &str, path: &Path, report: &ValidationReport) -> Option<String> {
    let expected = std::fs::read_to_string(path.with_extension("expected.txt")).unwrap();
    let (location, violation) = expected.trim().split_once(": ").unwrap();
    let errors: Vec<_> = report.errors().collect();
    if errors.is_empty() {
        return Some(format!("{name}: no error, expected {location}: {violation}"));
    }
    let wanted = normalise_location(location);
    let stray: Vec<String> = errors
        .iter()
        .filter(|issue| normalise_location(&issue.expression) != wanted)
        .map(ToString::to_string)
        .collect();
    if !stray.is_empty() {
        return Some(format!(
            "{name}: expected only errors at {location} ({violation}), found\n{report}"
        ));
    }
    // A constraint violation must name the constraint.
    if let Some(key) = violation.strip_prefix("constraint ").and_then(|rest| rest.split(' ').next())
        && !errors.iter().any(|issue| issue.message.contains(key))
    {
        return Some(format!("{name}: expected constraint {key} to fail, found\n{report}"));
    }
    None
}

#[test]
fn ontario_examples_validate_as_described() {
    let profiles = ontario_profiles();
    let examples_dir = repository_dir().join("profiles/examples");
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&examples_dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    dirs.sort();
    let mut failures = Vec::new();
    let (mut n_valid, mut n_invalid) = (0, 0);
    for dir in &dirs {
        for path in json_files(dir) {
            let name = path.strip_prefix(&examples_dir).unwrap().display().to_string();
            let resource: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let report = validate(&resource, &profiles, &[]);
            let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
            if file_name.starts_with("valid") {
                n_valid += 1;
                if report.has_errors() {
                    failures.push(format!("{name}: unexpected errors\n{report}"));
                }
            } else {
                n_invalid += 1;
                failures.extend(check_invalid(&name, &path, &report));
            }
        }
    }
    assert_eq!((n_valid, n_invalid), (12, 31));
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The Ontario Patient profile re-slices the CA Baseline `identifier:JHN` slice by system
/// (`identifier:JHN/ONHCN`, at most one, with the 10-digit warning `ca-on-mi-pat-5` on its value):
/// variations of `valid-hcn-only.json` are checked against the reslice.
#[test]
fn ontario_health_card_reslice() {
    let profiles = ontario_profiles();
    let path = repository_dir().join("profiles/examples/patient/valid-hcn-only.json");
    let patient: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let hcn = patient["identifier"][0].clone();
    let report_of = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut changed = patient.clone();
        change(&mut changed);
        validate(&changed, &profiles, &[]).to_string()
    };
    assert_eq!(report_of(&|_| {}), "");
    assert_eq!(
        report_of(&|p| p["identifier"][0]["value"] = "12345".into()),
        "warning invariant @ Patient.identifier[0].value: ca-on-mi-pat-5: An Ontario health card \
         number is 10 digits.\n"
    );
    assert_eq!(
        report_of(&|p| p["identifier"] = serde_json::json!([hcn, hcn])),
        "error structure @ Patient.identifier: slice 'JHN/ONHCN' of Patient.identifier:JHN allows \
         at most 1 item(s), found 2\n"
    );
    // Another province's card is in the JHN slice but not the ONHCN reslice (the slicing is open),
    // so the only error is the profile's own rule that a patient needs an MRN or an Ontario card.
    let other_province = report_of(&|p| {
        p["identifier"][0]["system"] =
            "https://fhir.infoway-inforoute.ca/NamingSystem/ca-bc-patient-healthcare-id".into();
    });
    assert!(other_province.starts_with("error invariant @ Patient: ca-on-mi-pat-1:"));
    assert_eq!(other_province.lines().count(), 1);
}
