//! Extraction over the official R4 examples in `test_data/examples/`: each `X.json` has its rendered index rows in
//! `X.expect` (regenerated with `UPDATE_EXPECT=1`), and a few rows are asserted here by value.

use std::path::PathBuf;

use cdr_model::ResourceType;
use expect_test::expect_file;
use serde_json::Value;

use crate::tests::{registry, test_data};
use crate::{Extraction, IndexEntry, IndexValue, extract};

fn examples() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(test_data().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    paths.sort();
    paths
}

fn extract_file(file_name: &str) -> Extraction {
    let text = std::fs::read_to_string(test_data().join("examples").join(file_name)).unwrap();
    let resource: Value = serde_json::from_str(&text).unwrap();
    let resource_type = ResourceType::parse(resource["resourceType"].as_str().unwrap()).unwrap();
    extract(&resource, registry(), resource_type)
}

fn render_entry(entry: &IndexEntry) -> String {
    let text = |option: &Option<String>| option.clone().unwrap_or_else(|| "-".to_owned());
    let value = match &entry.value {
        IndexValue::Composite(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|part| {
                    render_entry(&IndexEntry {
                        code: String::new(),
                        param_type: entry.param_type,
                        value: part.clone(),
                    })
                })
                .collect();
            format!("composite [{}]", parts.join(" $ "))
        }
        IndexValue::Token(token) => {
            let of_type = token
                .identifier_type
                .as_ref()
                .map(|coding| format!(" of-type={}|{}", text(&coding.system), text(&coding.code)))
                .unwrap_or_default();
            format!(
                "token {}|{} text={}{of_type}",
                text(&token.system),
                text(&token.code),
                text(&token.text)
            )
        }
        IndexValue::String { normalized, exact } => {
            format!("string {exact:?} normalized={normalized:?}")
        }
        IndexValue::Date(range) => format!("date {range}"),
        IndexValue::Reference(reference) => format!(
            "reference type={} id={} version={} url={} identifier={}",
            reference.target_type.map_or("-", ResourceType::as_str),
            text(&reference.target_id),
            text(&reference.version),
            text(&reference.url),
            reference.identifier.as_ref().map_or("-".to_owned(), |token| format!(
                "{}|{}",
                text(&token.system),
                text(&token.code)
            ))
        ),
        IndexValue::Quantity(quantity) => format!(
            "quantity {} [{}, {}) system={} code={} unit={}",
            quantity.number.text,
            quantity.number.low,
            quantity.number.high,
            text(&quantity.system),
            text(&quantity.code),
            text(&quantity.unit)
        ),
        IndexValue::Uri(uri) => format!("uri {uri}"),
        IndexValue::Position(point) => {
            format!("position {} {}", point.latitude(), point.longitude())
        }
        IndexValue::Number(number) => {
            format!("number {} [{}, {})", number.text, number.low, number.high)
        }
    };
    if entry.code.is_empty() {
        return value;
    }
    format!("{} ({}) {value}", entry.code, entry.param_type.as_str())
}

#[test]
fn official_examples_match_their_expect_files() {
    let paths = examples();
    assert!(paths.len() >= 8, "expected the R4 examples in test_data/examples");
    for path in paths {
        let file_name = path.file_name().unwrap().to_str().unwrap();
        let extraction = extract_file(file_name);
        let mut rendered: String =
            extraction.entries.iter().map(|entry| render_entry(entry) + "\n").collect();
        for failure in &extraction.failures {
            rendered.push_str(&format!("FAILURE {failure}\n"));
        }
        expect_file![path.with_extension("expect")].assert_eq(&rendered);
    }
}

fn has(extraction: &Extraction, code: &str, expected: &str) -> bool {
    extraction
        .entries
        .iter()
        .filter(|entry| entry.code == code)
        .any(|entry| render_entry(entry).ends_with(expected))
}

#[test]
fn imaging_study_rows() {
    let study = extract_file("ImagingStudy-example.json");
    assert!(study.failures.is_empty(), "{:?}", study.failures);
    for (code, expected) in [
        (
            "identifier",
            "token urn:dicom:uid|urn:oid:2.16.124.113543.6003.1154777499.30246.19789.3503430045 text=-",
        ),
        ("patient", "reference type=Patient id=dicom version=- url=- identifier=-"),
        ("subject", "reference type=Patient id=dicom version=- url=- identifier=-"),
        ("started", "date 2011-01-01T08:01:20.000000Z..2011-01-01T08:01:21.000000Z"),
        ("modality", "token http://dicom.nema.org/resources/ontology/DCM|CT text=-"),
        ("series", "token -|2.16.124.113543.6003.2588828330.45298.17418.2723805630 text=-"),
        ("bodysite", "token http://snomed.info/sct|67734004 text=upper trunk structure"),
        ("_id", "token -|example text=-"),
    ] {
        assert!(has(&study, code, expected), "ImagingStudy-example has no {code} row {expected}");
    }
}

#[test]
fn diagnostic_report_service_request_and_patient_rows() {
    let report = extract_file("DiagnosticReport-ultrasound.json");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(has(
        &report,
        "code",
        "token http://snomed.info/sct|45036003 text=ultrasonography of abdomen"
    ));
    assert!(has(&report, "code", "token -|- text=abdominal ultrasound"));
    assert!(has(
        &report,
        "issued",
        "date 2012-12-01T11:00:00.000000Z..2012-12-01T11:00:01.000000Z"
    ));
    assert!(has(
        &report,
        "status",
        "token http://hl7.org/fhir/diagnostic-report-status|final text=-"
    ));
    assert!(has(
        &report,
        "patient",
        "reference type=Patient id=example version=- url=- identifier=-"
    ));
    let request = extract_file("ServiceRequest-di.json");
    assert!(request.failures.is_empty(), "{:?}", request.failures);
    assert!(has(&request, "code", "token http://loinc.org|24627-2 text=-"));
    assert!(has(
        &request,
        "patient",
        "reference type=Patient id=dicom version=- url=- identifier=-"
    ));
    let patient = extract_file("Patient-example.json");
    assert!(patient.failures.is_empty(), "{:?}", patient.failures);
    assert!(has(&patient, "family", "string \"Chalmers\" normalized=\"chalmers\""));
    assert!(has(&patient, "given", "string \"Jim\" normalized=\"jim\""));
    assert!(has(
        &patient,
        "birthdate",
        "date 1974-12-25T00:00:00.000000Z..1974-12-26T00:00:00.000000Z"
    ));
    assert!(has(
        &patient,
        "identifier",
        "token urn:oid:1.2.36.146.595.217.0.1|12345 text=- of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR"
    ));
    assert!(has(&patient, "phone", "token -|(03) 5555 6473 text=-"));
    assert!(has(&patient, "address-city", "string \"PleasantVille\" normalized=\"pleasantville\""));
    assert!(has(&patient, "deceased", "token -|false text=-"));
    assert!(has(&patient, "gender", "token http://hl7.org/fhir/administrative-gender|male text=-"));
    assert!(has(&patient, "address-use", "token http://hl7.org/fhir/address-use|home text=-"));
    assert!(!patient.entries.iter().any(|entry| render_entry(entry).ends_with("token -|- text=-")));
}

/// A `code` element's token row takes the system its required binding implies (R4 search.html#token), also under a
/// backbone element and as a composite component (R4's own `relationship` pairs its components with the wrong
/// expressions and yields nothing, so a corrected definition stands in); a `code` bound to a system outside the
/// core package (`Attachment.contentType`, `urn:ietf:bcp:13`) and a Coding keep their own.
#[test]
fn code_elements_take_the_system_of_their_binding() {
    let resource = serde_json::json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/old"}}],
        "content": [{"attachment": {"contentType": "application/pdf"},
                     "format": {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3", "code": "urn:ihe:pcc:xphr:2007"}}]
    });
    let relationship = r#"{"resourceType": "SearchParameter",
        "url": "http://example.org/SearchParameter/relationship", "code": "relationship",
        "base": ["DocumentReference"], "type": "composite", "expression": "DocumentReference.relatesTo",
        "component": [
            {"definition": "http://hl7.org/fhir/SearchParameter/DocumentReference-relation", "expression": "code"},
            {"definition": "http://hl7.org/fhir/SearchParameter/DocumentReference-relatesto", "expression": "target"}
        ]}"#;
    let registry = crate::SearchParamRegistry::with_extra(&[relationship]).unwrap();
    let document = ResourceType::parse("DocumentReference").unwrap();
    let extraction = extract(&resource, &registry, document);
    assert!(extraction.failures.is_empty(), "{:?}", extraction.failures);
    for (code, expected) in [
        ("status", "token http://hl7.org/fhir/document-reference-status|current text=-"),
        ("relation", "token http://hl7.org/fhir/document-relationship-type|replaces text=-"),
        ("contenttype", "token -|application/pdf text=-"),
        ("format", "token urn:oid:1.3.6.1.4.1.19376.1.2.3|urn:ihe:pcc:xphr:2007 text=-"),
        (
            "relationship",
            "composite [token http://hl7.org/fhir/document-relationship-type|replaces text=- $ \
             reference type=DocumentReference id=old version=- url=- identifier=-]",
        ),
    ] {
        assert!(
            has(&extraction, code, expected),
            "no {code} row {expected}: {:?}",
            extraction.entries
        );
    }
}

/// A definition that replaces an R4 parameter under another URL does not inherit the R4 one's system.
#[test]
fn a_replaced_parameter_has_no_implied_system() {
    let patient = ResourceType::parse("Patient").unwrap();
    assert_eq!(
        registry().get(patient, "gender").and_then(|def| def.code_system),
        Some("http://hl7.org/fhir/administrative-gender")
    );
    let custom = r#"{"resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/gender",
        "code": "gender", "base": ["Patient"], "type": "token", "expression": "Patient.gender"}"#;
    let registry = crate::SearchParamRegistry::with_extra(&[custom]).unwrap();
    assert_eq!(registry.get(patient, "gender").and_then(|def| def.code_system), None);
    let extraction = extract(
        &serde_json::json!({"resourceType": "Patient", "gender": "male"}),
        &registry,
        patient,
    );
    assert!(has(&extraction, "gender", "token -|male text=-"));
}
