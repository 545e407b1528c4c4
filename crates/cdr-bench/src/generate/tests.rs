//! Generator tests: determinism, referential integrity, identifier uniqueness and proportions.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::*;

/// Keeps every emitted resource in memory.
#[derive(Default)]
struct MemorySink {
    resources: Vec<(DataFile, Value)>,
}

impl ResourceSink for MemorySink {
    fn emit(&mut self, file: DataFile, resource: &Value) -> Result<(), BenchError> {
        self.resources.push((file, resource.clone()));
        Ok(())
    }
}

fn generated(patients: u64, seed: u64) -> Vec<(DataFile, Value)> {
    let mut sink = MemorySink::default();
    generate(GenerateConfig { patients, seed }, &mut sink).unwrap();
    sink.resources
}

/// FNV-1a over the serialised output, file by file.
fn output_hash(resources: &[(DataFile, Value)]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for (file, resource) in resources {
        for byte in file.file_name().bytes().chain(resource.to_string().bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
        }
    }
    hash
}

fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("reference") {
                found.push(reference.clone());
            }
            map.values().for_each(|child| references(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| references(child, found)),
        _ => {}
    }
}

#[test]
fn same_seed_same_output_and_other_seed_other_output() {
    let first = output_hash(&generated(300, 42));
    assert_eq!(first, output_hash(&generated(300, 42)));
    assert_ne!(first, output_hash(&generated(300, 43)));
}

#[test]
fn every_reference_resolves_to_an_earlier_resource() {
    let mut known = HashSet::new();
    for (file, resource) in generated(400, 7) {
        let mut found = Vec::new();
        references(&resource, &mut found);
        for reference in found {
            assert!(known.contains(&reference), "{reference} in {resource}");
        }
        let key = format!("{}/{}", file.resource_type(), resource["id"].as_str().unwrap());
        if file == DataFile::DiagnosticReportAmendment {
            assert!(known.contains(&key), "amendment of an unknown report {key}");
        }
        known.insert(key);
    }
}

#[test]
fn identifiers_are_unique_within_a_type() {
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    for (file, resource) in generated(2_000, 11) {
        if file == DataFile::DiagnosticReportAmendment {
            continue;
        }
        for identifier in resource["identifier"].as_array().unwrap() {
            let key = (
                file.resource_type().to_owned(),
                identifier["system"].as_str().unwrap().to_owned(),
                identifier["value"].as_str().unwrap().to_owned(),
            );
            assert!(seen.insert(key.clone()), "duplicate identifier {key:?}");
        }
    }
}

#[test]
fn amendments_follow_their_report_in_version_order() {
    let mut last_version: HashMap<String, u64> = HashMap::new();
    let mut n_amended = 0;
    for (file, resource) in generated(1_000, 5) {
        if !matches!(file, DataFile::DiagnosticReport | DataFile::DiagnosticReportAmendment) {
            continue;
        }
        let id = resource["id"].as_str().unwrap().to_owned();
        let version: u64 = resource["meta"]["versionId"].as_str().unwrap().parse().unwrap();
        let previous = last_version.insert(id, version).unwrap_or(0);
        assert_eq!(version, previous + 1);
        if version == 3 {
            assert_eq!(resource["status"], "amended");
            n_amended += 1;
        }
    }
    assert!(n_amended > 0);
}

#[test]
fn about_two_orders_studies_and_reports_per_patient() {
    let mut counts: BTreeMap<DataFile, usize> = BTreeMap::new();
    for (file, _) in generated(1_000, 3) {
        *counts.entry(file).or_default() += 1;
    }
    assert_eq!(counts[&DataFile::Patient], 1_000);
    assert_eq!(counts[&DataFile::Organization], HOSPITALS.len());
    assert_eq!(counts[&DataFile::Practitioner], 25);
    let orders = counts[&DataFile::ServiceRequest];
    assert!((1_900..=2_100).contains(&orders), "{orders} orders");
    assert_eq!(counts[&DataFile::ImagingStudy], orders);
    assert_eq!(counts[&DataFile::DiagnosticReport], orders);
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, expected) in vectors {
        assert_eq!(base64(input.as_bytes()), expected);
    }
}

#[test]
fn luhn_check_digit_of_the_textbook_example() {
    assert_eq!(luhn_check_digit(7_992_739_871), 3);
}

#[test]
fn civil_dates_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    for days in [-25_000, -1, 0, 59, 60, 11_016, 20_000, 30_000] {
        let (year, month, day) = civil_from_days(days);
        assert_eq!(days_from_civil(year, month, day), days);
    }
    assert_eq!(
        format_date_time(days_from_civil(2024, 2, 29) * 1_440 + 61),
        "2024-02-29T01:01:00-05:00"
    );
}
