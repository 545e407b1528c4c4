//! Validation against base R4: a typical DiagnosticReport, a 100-entry transaction Bundle, and the cost
//! of loading the compiled-in core definitions; and against the Ontario MI profiles of the repository's
//! `profiles/`: their valid DiagnosticReport and Patient examples.

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use cdr_validation::{ProfileSet, validate};

fn diagnostic_report(index: usize) -> Value {
    json!({
        "resourceType": "DiagnosticReport",
        "meta": {"lastUpdated": "2024-05-01T10:00:00Z"},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>CT head: normal.</p></div>"},
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
             "system": "urn:oid:2.16.840.1.113883.3.239.18.148", "value": format!("ACC{index}")},
            {"system": "urn:oid:2.16.840.1.113883.3.239.18.149", "value": format!("R{index}")}
        ],
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"}]},
        "subject": {"reference": "Patient/p1", "identifier": {"system": "urn:oid:2.16.840.1.113883.4.59", "value": "1234567890"}},
        "effectiveDateTime": "2024-05-01T09:30:00-04:00",
        "issued": "2024-05-01T10:00:00.000-04:00",
        "performer": [{"reference": "Organization/o1"}],
        "resultsInterpreter": [{"reference": "Practitioner/pr1", "display": "Dr A"}],
        "imagingStudy": [{"reference": "ImagingStudy/is1"}],
        "conclusion": "No acute intracranial abnormality.",
        "presentedForm": [{"contentType": "text/plain", "language": "en-CA", "data": "Tm8gYWN1dGUgZmluZGluZ3Mu", "title": "Report"}]
    })
}

fn bench(c: &mut Criterion) {
    c.bench_function("load r4 core (ProfileSet::r4_core)", |b| {
        b.iter(|| ProfileSet::r4_core().unwrap());
    });
    let profiles = ProfileSet::r4_core().unwrap();
    let report = diagnostic_report(0);
    assert!(!validate(&report, &profiles, &[]).has_errors());
    c.bench_function("validate DiagnosticReport", |b| b.iter(|| validate(&report, &profiles, &[])));
    let entries: Vec<Value> = (0..100)
        .map(|index| {
            json!({
                "fullUrl": format!("urn:uuid:00000000-0000-0000-0000-{index:012}"),
                "resource": diagnostic_report(index),
                "request": {"method": "PUT", "url": format!("DiagnosticReport?identifier=ACC{index}")}
            })
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    assert!(
        !validate(&bundle, &profiles, &[]).has_errors(),
        "{}",
        validate(&bundle, &profiles, &[])
    );
    c.bench_function("validate 100-entry Bundle", |b| b.iter(|| validate(&bundle, &profiles, &[])));

    let profiles_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
    let mut ontario = ProfileSet::r4_core().unwrap();
    for dir in [profiles_dir.join("ca-baseline"), profiles_dir.clone()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "json") {
                ontario.add_json("profile", &std::fs::read_to_string(&path).unwrap()).unwrap();
            }
        }
    }
    for example in ["diagnosticReport/valid-final.json", "patient/valid-mrn-and-hcn.json"] {
        let text = std::fs::read_to_string(profiles_dir.join("examples").join(example)).unwrap();
        let resource: Value = serde_json::from_str(&text).unwrap();
        assert!(!validate(&resource, &ontario, &[]).has_errors());
        c.bench_function(&format!("validate Ontario example {example}"), |b| {
            b.iter(|| validate(&resource, &ontario, &[]));
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
