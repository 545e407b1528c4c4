//! Growth of validation time with input size, for the inputs whose cost used to grow faster than linearly:
//! a Patient with n contained Organizations each referenced from `generalPractitioner` (invariant `dom-3`),
//! a collection Bundle of n entries (`bdl-7`), and a Patient declaring the same profile 2,000 times.
//!
//! Figures (median, shared 2-core machine) from
//! `cargo bench -p cdr-validation --bench growth -- --warm-up-time 1 --measurement-time 3`; "before" is
//! the code before hashed deduplication and memoised constant subexpressions (contained/800 not run: about
//! 80 s an iteration), "hashed" after them, "traced" after `trace()` of a constant became constant too
//! (measured the same day as the row before it: the machine ran about 1.5-2.5x slower than on the day of
//! "hashed", see meta_profile).
//!
//! | case              | before   | hashed   | hashed, same day | traced   |
//! |-------------------|----------|----------|------------------|----------|
//! | contained/100     | 187 ms   | 1.1 ms   | 2.26 ms          | 1.62 ms  |
//! | contained/200     | 1.83 s   | 3.6 ms   | 5.51 ms          | 3.83 ms  |
//! | contained/400     | 10.7 s   | 8.0 ms   | 14.4 ms          | 6.62 ms  |
//! | contained/800     | —        | 23.9 ms  | 42.9 ms          | 18.1 ms  |
//! | contained/1600    | —        | —        | —                | 29.2 ms  |
//! | bundle/2500       | 328 ms   | 18.4 ms  | —                | 48.3 ms  |
//! | bundle/5000       | 701 ms   | 36.0 ms  | —                | 108 ms   |
//! | bundle/10000      | 3.51 s   | 78.9 ms  | —                | 209 ms   |
//! | meta_profile/2000 | 1.28 s   | 0.81 ms  | —                | 1.70 ms  |
//!
//! Before, contained grew about 6-10x per doubling (cubic: `dom-3` recomputed `%resource.descendants()`
//! and its unions for each contained resource, `ref-1` scanned `%rootResource.contained.id` for each
//! reference) and the Bundle about 2-5x (`bdl-7`'s quadratic `isDistinct()`). Hashed, the Bundle doubles
//! with its size, but contained still grew 2.4x, 2.6x, 3.0x per doubling: R4's `ref-1` reads
//! `… in %rootResource.contained.id.trace('ids')`, and a `trace()` was never memoised, so each reference
//! cloned the list of ids and scanned it. Traced, contained grows 2.4x, 1.7x, 2.7x, 1.6x per doubling
//! (18x from 100 to 1,600: linear within the noise, under the n log n bound of 26x).

#![allow(clippy::unwrap_used, reason = "benchmarks panic on broken fixtures")]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use cdr_validation::{ProfileSet, validate};

/// A Patient with `n` contained Organizations, each referenced by `generalPractitioner`.
fn patient_with_contained(n: usize) -> Value {
    let contained: Vec<Value> = (0..n)
        .map(|i| json!({"resourceType": "Organization", "id": format!("org{i}"), "name": format!("Clinic {i}")}))
        .collect();
    let references: Vec<Value> = (0..n).map(|i| json!({"reference": format!("#org{i}")})).collect();
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "contained": contained,
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "generalPractitioner": references
    })
}

/// A collection Bundle of `n` Patients with distinct `fullUrl`s.
fn bundle(n: usize) -> Value {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "fullUrl": format!("urn:uuid:00000000-0000-0000-0000-{i:012}"),
                "resource": {"resourceType": "Patient", "id": format!("p{i}"), "active": true}
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

/// A Patient declaring the base Patient profile `n` times in `meta.profile`.
fn repeated_profiles(n: usize) -> Value {
    let profiles = vec![json!("http://hl7.org/fhir/StructureDefinition/Patient"); n];
    json!({"resourceType": "Patient", "meta": {"profile": profiles}, "active": true})
}

fn bench(c: &mut Criterion) {
    let profiles = ProfileSet::r4_core().unwrap();
    let mut group = c.benchmark_group("contained");
    group.sample_size(10);
    for n in [100, 200, 400, 800, 1_600] {
        let patient = patient_with_contained(n);
        assert!(!validate(&patient, &profiles, &[]).has_errors());
        group.bench_with_input(BenchmarkId::from_parameter(n), &patient, |b, patient| {
            b.iter(|| validate(patient, &profiles, &[]));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("bundle");
    group.sample_size(10);
    for n in [2_500, 5_000, 10_000] {
        let bundle = bundle(n);
        assert!(!validate(&bundle, &profiles, &[]).has_errors());
        group.bench_with_input(BenchmarkId::from_parameter(n), &bundle, |b, bundle| {
            b.iter(|| validate(bundle, &profiles, &[]));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("meta_profile");
    group.sample_size(10);
    let patient = repeated_profiles(2_000);
    assert!(!validate(&patient, &profiles, &[]).has_errors());
    group.bench_function("2000", |b| b.iter(|| validate(&patient, &profiles, &[])));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
