//! Where HL7 ships the XML form of an example beside its JSON, our reading of their XML is their JSON, and our
//! XML of their JSON reads back as the same. The XML forms are the FHIRPath suite's inputs
//! (`crates/cdr-fhirpath/test_data/xml/`, FHIR/fhir-test-cases, Apache-2.0); the JSON forms are the official R4
//! Patient example (cdr-validation's examples.tgz) and `test_data/questionnaire-example.json`.

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn suite_xml(name: &str) -> Vec<u8> {
    std::fs::read(manifest().join("../cdr-fhirpath/test_data/xml").join(name)).unwrap()
}

fn served_example(name: &str) -> Value {
    let path = manifest().join("../cdr-validation/test_data/r4-examples/examples.tgz");
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == PathBuf::from(name) {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("{name} is not among the examples");
}

fn check_pair(xml: &[u8], json: &Value) {
    let theirs = cdr_xml::from_xml(xml).unwrap();
    assert_eq!(&theirs, json, "their XML reads as their JSON");
    let ours = cdr_xml::to_xml(json, false).unwrap();
    assert_eq!(cdr_xml::from_xml(ours.as_bytes()).unwrap(), theirs, "our XML reads as theirs does");
}

#[test]
fn the_patient_example_reads_as_its_json() {
    check_pair(&suite_xml("patient-example.xml"), &served_example("Patient-example.json"));
}

/// Nested `item`s (a content reference, `Questionnaire.item.item`), choice types and narrative whitespace.
#[test]
fn the_questionnaire_example_reads_as_its_json() {
    let json =
        std::fs::read_to_string(manifest().join("test_data/questionnaire-example.json")).unwrap();
    check_pair(&suite_xml("questionnaire-example.xml"), &serde_json::from_str(&json).unwrap());
}

/// The suite's other inputs have no JSON form from HL7 that matches them (the code system's JSON was made from
/// another revision), so they are read and must survive our XML unchanged.
#[test]
fn the_other_suite_inputs_read_and_survive_our_xml() {
    for name in [
        "codesystem-example.xml",
        "parameters-example-types.xml",
        "patient-example-period.xml",
        "valueset-example-expansion.xml",
    ] {
        let json = cdr_xml::from_xml(&suite_xml(name)).unwrap();
        let ours = cdr_xml::to_xml(&json, true).unwrap();
        assert_eq!(cdr_xml::from_xml(ours.as_bytes()).unwrap(), json, "{name}");
    }
}

/// The suite's copy of the Observation example puts an `extension` after `status` (to test FHIRPath over
/// out-of-order input), which R4's XML does not allow.
#[test]
fn the_out_of_order_observation_is_refused_where_it_goes_wrong() {
    let error = cdr_xml::from_xml(&suite_xml("observation-example.xml")).unwrap_err();
    assert!(error.message.contains("<extension> is out of order"), "{error}");
    assert!(error.message.contains("line 5, column 2"), "{error}");
    assert_eq!(error.expression.as_deref(), Some("Observation"));
}
