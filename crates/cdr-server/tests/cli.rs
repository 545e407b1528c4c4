//! `imaging-cdr validate`, run as a process from the repository root (so `profiles/` is the default
//! profiles folder): its output and exit status.

#![allow(clippy::unwrap_used, reason = "test code: a panic is the test failing")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ONTARIO_PATIENT: &str =
    "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-patient";

fn repository_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .arg("validate")
        .args(args)
        .current_dir(repository_dir())
        .env_remove("PROFILES_DIR")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A file in a fresh temporary folder.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imaging-cdr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_valid_example_exits_zero_and_prints_no_error() {
    let output = run(&["profiles/examples/patient/valid-mrn-and-hcn.json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(!stdout(&output).contains(": error "), "{output:?}");
}

#[test]
fn errors_are_printed_like_a_compiler_and_exit_one() {
    let file = "profiles/examples/patient/invalid-no-gender.json";
    let output = run(&["profiles/examples/patient/valid-hcn-only.json", file]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    let errors: Vec<&str> = text.lines().filter(|line| line.contains(": error ")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].starts_with(&format!("{file}: error Patient.gender: ")), "{text}");
}

#[test]
fn json_format_prints_an_outcome_or_a_bundle_of_them() {
    let one = run(&["--format", "json", "profiles/examples/patient/invalid-no-gender.json"]);
    assert_eq!(one.status.code(), Some(1));
    let outcome: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["expression"][0], "Patient.gender");

    let two = run(&[
        "--format",
        "json",
        "profiles/examples/patient/valid-hcn-only.json",
        "profiles/examples/patient/invalid-no-gender.json",
    ]);
    let bundle: serde_json::Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[1]["fullUrl"].as_str().unwrap().ends_with("invalid-no-gender.json"));
    assert_eq!(entries[1]["resource"]["resourceType"], "OperationOutcome");
}

#[test]
fn profile_option_adds_a_profile() {
    let patient = temp_file(
        "patient.json",
        r#"{"resourceType":"Patient","name":[{"family":"Doe"}],"gender":"female"}"#,
    );
    let patient = patient.to_str().unwrap();
    assert_eq!(run(&[patient]).status.code(), Some(0));
    let output = run(&["--profile", ONTARIO_PATIENT, patient]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).contains("ca-on-mi-pat-1"), "{output:?}");
    // A profile that is not loaded is an error of the file.
    let output = run(&["--profile", "http://example.org/StructureDefinition/unknown", patient]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // A profiles folder given explicitly must exist.
    let missing_dir = std::env::temp_dir().join("imaging-cdr-no-such-folder");
    let output = run(&["--profiles-dir", missing_dir.to_str().unwrap(), patient]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn not_json_is_an_error_of_the_file() {
    let broken = temp_file("broken.json", "{\"resourceType\":");
    let output = run(&[broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout(&output).contains("not valid JSON"), "{output:?}");
}

#[test]
fn usage_and_io_errors_exit_two() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["no-such-file.json"]).status.code(), Some(2));
    assert_eq!(run(&["--format", "xml", "x.json"]).status.code(), Some(2));
    let not_a_package = temp_file("not-a-package.tgz", "plain text");
    let output = run(&[
        "--package",
        not_a_package.to_str().unwrap(),
        "profiles/examples/patient/valid-hcn-only.json",
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn packages_load_from_tgz() {
    let output = run(&[
        "--package",
        "definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz",
        "profiles/examples/patient/valid-hcn-only.json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}
