//! Measures parsing and evaluating typical search-parameter and invariant expressions.

#![allow(clippy::unwrap_used, reason = "tests and benchmarks panic on broken fixtures")]

use std::io::Read as _;
use std::path::Path;

use cdr_fhirpath::{EvaluationContext, Expression};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serde_json::Value;

/// An official R4 example, from the served types' examples vendored in cdr-validation's test data.
fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cdr-validation/test_data/r4-examples/examples.tgz");
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()));
    let mut entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|entry| entry.path().unwrap().to_str() == Some(name))
        .unwrap();
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bench_evaluate(c: &mut Criterion) {
    let study = load("ImagingStudy-example-xr.json");
    let report = load("DiagnosticReport-ultrasound.json");
    let cases = [
        ("modality", "ImagingStudy.series.modality", &study),
        ("resource_id", "Resource.id", &study),
        ("subject_resolve_is", "ImagingStudy.subject.where(resolve() is Patient)", &study),
        ("started", "ImagingStudy.started", &study),
        ("report_code_union", "DiagnosticReport.code | DiagnosticReport.category", &report),
        ("invariant_ele1", "hasValue() or (children().count() > id.count())", &report),
    ];
    let ctx = EvaluationContext::new();
    for (name, text, resource) in cases {
        let expression = Expression::parse(text).unwrap();
        c.bench_function(&format!("evaluate/{name}"), |b| {
            b.iter(|| black_box(expression.evaluate(black_box(resource), &ctx).unwrap().len()));
        });
    }
    c.bench_function("parse/subject_resolve_is", |b| {
        b.iter(|| {
            Expression::parse(black_box("ImagingStudy.subject.where(resolve() is Patient)"))
                .unwrap()
        });
    });
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
