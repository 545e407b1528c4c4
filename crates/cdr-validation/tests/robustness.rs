//! Hostile input never panics: deep nesting, huge arrays, wrong JSON types at every element of real
//! examples. Each case also asserts that the problem is reported.

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::sync::LazyLock;

use cdr_validation::{ProfileSet, validate};
use serde_json::{Value, json};

static PROFILES: LazyLock<ProfileSet> = LazyLock::new(|| ProfileSet::r4_core().unwrap());

/// The deepest JSON serde_json parses (128 levels) is walked or refused without overflowing the stack,
/// including by the invariants (Questionnaire items nest recursively).
#[test]
fn deep_nesting_is_reported_not_overflowed() {
    let depth = 62;
    let text = format!(
        r#"{{"resourceType":"Questionnaire","status":"draft","item":{}{{"linkId":"leaf","type":"display"}}{}}}"#,
        r#"[{"linkId":"x","type":"group","item":"#.repeat(depth),
        "}]".repeat(depth)
    );
    let questionnaire: Value = serde_json::from_str(&text).unwrap();
    let report = validate(&questionnaire, &PROFILES, &[]);
    assert!(report.has_errors(), "{report}");

    // Built in memory (no parser limit): refused below the walker's depth limit.
    let mut item = json!({"linkId": "leaf", "type": "display"});
    for depth in 0..100 {
        item = json!({"linkId": depth.to_string(), "type": "group", "item": [item]});
    }
    let questionnaire = json!({"resourceType": "Questionnaire", "status": "draft", "item": [item]});
    let report = validate(&questionnaire, &PROFILES, &[]);
    assert!(report.issues.iter().any(|issue| issue.message.contains("nested deeper")), "{report}");

    let text = format!(
        r#"{{"resourceType":"Patient","extension":{}{{"url":"http://example.org/x","valueString":"x"}}{}}}"#,
        r#"[{"url":"http://example.org/x","extension":"#.repeat(depth),
        "}]".repeat(depth)
    );
    let patient: Value = serde_json::from_str(&text).unwrap();
    assert!(validate(&patient, &PROFILES, &[]).has_errors());
}

#[test]
fn huge_arrays_are_walked() {
    let names: Vec<Value> = (0..20_000).map(|i| json!({"family": format!("F{i}")})).collect();
    let mut patient = json!({"resourceType": "Patient", "name": names});
    patient["name"][19_999] = json!({"family": 7});
    let report = validate(&patient, &PROFILES, &[]);
    assert_eq!(report.errors().count(), 1);
    assert_eq!(report.errors().next().unwrap().expression, "Patient.name[19999].family");
}

/// Each distinct declared profile is checked once: 50,000 repetitions of two profiles (one known, one
/// not) cost two checks, not 100,000 (the old walk took minutes here).
#[test]
fn repeated_profiles_are_checked_once() {
    let mut profiles = Vec::new();
    for _ in 0..50_000 {
        profiles.push(json!("http://hl7.org/fhir/StructureDefinition/Patient"));
        profiles.push(json!("http://example.org/StructureDefinition/unknown"));
    }
    let patient =
        json!({"resourceType": "Patient", "meta": {"profile": profiles}, "gender": "other"});
    let report = validate(&patient, &PROFILES, &[]);
    assert!(!report.has_errors(), "{report}");
    let not_checked: Vec<_> = report
        .issues
        .iter()
        .filter(|issue| issue.message.contains("profile not checked"))
        .collect();
    assert_eq!(not_checked.len(), 1, "{report}");
    // Requested as well as declared: the unknown profile is an error, reported once.
    let report = validate(&patient, &PROFILES, &["http://example.org/StructureDefinition/unknown"]);
    assert_eq!(report.errors().count(), 1, "{report}");
}

/// `dom-3` over 2,000 contained resources: all referenced passes, one unreferenced is reported (the
/// old evaluation was cubic and took minutes at this size).
#[test]
fn many_contained_resources_are_checked() {
    let patient = |referenced: usize| {
        let contained: Vec<Value> = (0..2_000)
            .map(|i| json!({"resourceType": "Organization", "id": format!("o{i}"), "name": "Clinic"}))
            .collect();
        let references: Vec<Value> =
            (0..referenced).map(|i| json!({"reference": format!("#o{i}")})).collect();
        json!({"resourceType": "Patient", "contained": contained, "generalPractitioner": references})
    };
    let report = validate(&patient(2_000), &PROFILES, &[]);
    assert!(!report.has_errors(), "{report}");
    let report = validate(&patient(1_999), &PROFILES, &[]);
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{report}");
    assert!(errors[0].message.starts_with("dom-3"), "{report}");
}

/// Replaces, one at a time, every value of a real example by values of every other JSON type.
#[test]
fn wrong_types_everywhere_never_panic() {
    let text = include_str!("../test_data/base/valid/diagnostic-report.json");
    let original: Value = serde_json::from_str(text).unwrap();
    let replacements = [
        json!(null),
        json!(true),
        json!(1.5),
        json!("text"),
        json!([]),
        json!({}),
        json!([null]),
        json!({"x": 1}),
    ];
    let mut n_cases = 0;
    let mut pointers = Vec::new();
    collect_pointers(&original, "", &mut pointers);
    for pointer in &pointers {
        for replacement in &replacements {
            let mut mutated = original.clone();
            *mutated.pointer_mut(pointer).unwrap() = replacement.clone();
            if mutated == original {
                continue;
            }
            let report = validate(&mutated, &PROFILES, &[]);
            n_cases += 1;
            if pointer != "/resourceType"
                && pointer != "/conclusion"
                && pointer != "/effectiveDateTime"
            {
                assert!(
                    report.has_errors() || replacement == &json!("text"),
                    "{pointer} = {replacement}"
                );
            }
        }
    }
    assert!(n_cases > 100);
}

fn collect_pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let pointer = format!("{prefix}/{key}");
                out.push(pointer.clone());
                collect_pointers(child, &pointer, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let pointer = format!("{prefix}/{index}");
                out.push(pointer.clone());
                collect_pointers(child, &pointer, out);
            }
        }
        _ => {}
    }
}

#[test]
fn non_resources_are_reported() {
    for value in
        [json!(null), json!(1), json!("Patient"), json!([]), json!({}), json!({"resourceType": 5})]
    {
        assert!(validate(&value, &PROFILES, &[]).has_errors(), "{value}");
    }
}
