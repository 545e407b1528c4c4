//! The hashed collection operations (`union`, `distinct()`, `isDistinct()`, `intersect`, `exclude`,
//! `subsetOf`, `supersetOf`, `repeat`, membership in a constant collection): FHIRPath equality still
//! decides (decimals by value, date-times across time zones, dates of different precision kept apart,
//! quantities by their base unit), and inputs far too large for the old quadratic scans finish quickly.

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use cdr_fhirpath::{EvaluationContext, Expression, check_invariant};
use serde_json::{Value, json};

fn holds(text: &str, resource: &Value) -> bool {
    let expression = Expression::parse(text).unwrap();
    check_invariant(&expression, resource, &EvaluationContext::new()).unwrap()
}

#[test]
fn deduplication_follows_fhirpath_equality() {
    let empty = json!({});
    for text in [
        // Numbers are equal by value (FHIRPath 6.1.1: 1.0 = 1.00, and an Integer equals its Decimal).
        "(1 | 1.0 | 1.00).count() = 1",
        "(1.5 | 1.50 | 2).count() = 2",
        "(0.0 | -0.0 | 0).count() = 1",
        // Date-times in different time zones denoting one instant are equal.
        "(@2012-01-01T10:00:00+01:00 | @2012-01-01T09:00:00Z).count() = 1",
        // Seconds and milliseconds are one precision.
        "(@2012-01-01T10:00:00.000Z | @2012-01-01T10:00:00Z).count() = 1",
        // Different precisions are not equal (the result is empty), so both stay.
        "(@2012 | @2012-01).count() = 2",
        "(@T10:30 | @T10:30:00).count() = 2",
        "(@2012-01-01 | @2012-01-01T10:00).count() = 2",
        // Quantities compare in their base unit.
        "(1 'g' | 1000 'mg' | 1 'kg').count() = 2",
        "(7 days | 1 week).count() = 1",
        // Strings are case- and space-sensitive under '='.
        "('a' | 'A' | 'a ' | 'a').count() = 3",
        "(1 | '1' | true | 'true').count() = 4",
        "1.combine(1.0).combine(2).isDistinct().not()",
        "1.combine(2).combine(2.5).isDistinct()",
        "(1 | 2 | 3).combine(2.0).isDistinct().not()",
        "(1 | 2 | 3).isDistinct()",
        "(1 | 2 | 2.0 | 3).distinct().count() = 3",
        "(1 | 2 | 3).intersect(2.0 | 3.00 | 4) = (2 | 3)",
        "(1 | 2 | 3).exclude(2.0) = (1 | 3)",
        "(1.0 | 2).subsetOf(1 | 2 | 3)",
        "(1 | 2 | 3).supersetOf(3.0 | 1.00)",
        "(@2012 | @2012-01).subsetOf(@2012-01).not()",
    ] {
        assert!(holds(text, &empty), "{text}");
    }
}

#[test]
fn nodes_deduplicate_by_json_value() {
    let resource = json!({
        "resourceType": "Patient",
        "name": [
            {"family": "Doe", "given": ["Jane"]},
            {"given": ["Jane"], "family": "Doe"},
            {"family": "Doe", "given": ["John"]}
        ],
        "identifier": [{"value": "1.0"}, {"value": "1.00"}]
    });
    assert!(holds("name.distinct().count() = 2", &resource));
    assert!(holds("(name.given | 'Jane').count() = 2", &resource));
    // Identifier.value is a string: '1.0' and '1.00' differ.
    assert!(holds("identifier.value.isDistinct()", &resource));
    assert!(holds("'Jane' in name.given", &resource));
    assert!(holds("name.given contains 'John'", &resource));
}

#[test]
fn membership_in_a_constant_collection_uses_equality() {
    let resource = json!({"resourceType": "Patient", "id": "x", "contained": [
        {"resourceType": "Organization", "id": "a"},
        {"resourceType": "Organization", "id": "b"}
    ], "generalPractitioner": [{"reference": "#a"}]});
    assert!(holds(
        "contained.where(('#' + id) in %resource.descendants().reference).id = 'a'",
        &resource
    ));
    assert!(holds(
        "contained.where(%resource.descendants().reference contains ('#' + id)).count() = 1",
        &resource
    ));
    assert!(holds("contained.where(1.0 in (1 | 2)).count() = 2", &resource));
    assert!(holds("contained.where({} in (1 | 2)).empty()", &resource));
}

/// Far more items than a quadratic scan could deduplicate in a test run (50,000² comparisons, each
/// cloning two strings).
#[test]
fn distinct_and_union_are_near_linear() {
    let n = 50_000;
    let values: Vec<Value> = (0..n).map(|i| json!(format!("value-{}", i % (n / 2)))).collect();
    let resource = json!({"values": values});
    assert!(holds("values.distinct().count() = 25000", &resource));
    assert!(holds("values.isDistinct().not()", &resource));
    assert!(holds("(values | values).count() = 25000", &resource));
    assert!(holds("values.distinct().isDistinct()", &resource));
    assert!(holds("values.intersect(values).count() = 25000", &resource));
    assert!(holds("values.exclude(values).empty()", &resource));
    assert!(holds("values.subsetOf(values.distinct())", &resource));
}

/// `bdl-7` on a Bundle of 50,000 entries, and with one duplicate `fullUrl`.
#[test]
fn bundle_full_urls_are_checked_in_near_linear_time() {
    let bdl_7 = "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()";
    let mut entries: Vec<Value> = (0..50_000)
        .map(|i| json!({"fullUrl": format!("urn:uuid:{i}"), "resource": {"resourceType": "Basic", "meta": {"versionId": "1"}}}))
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries.clone()});
    assert!(holds(bdl_7, &bundle));
    entries.push(json!({"fullUrl": "urn:uuid:7", "resource": {"resourceType": "Basic", "meta": {"versionId": "1"}}}));
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    assert!(!holds(bdl_7, &bundle));
}

/// `dom-3` on a Patient with 2,000 contained resources: `%resource.descendants()` and the unions are
/// evaluated once, and each `'#' + id in ...` is a hash lookup (the old code needed minutes).
#[test]
fn contained_references_are_checked_in_near_linear_time() {
    let dom_3 = "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()";
    let n = 2_000;
    let patient = |referenced: usize| {
        json!({
            "resourceType": "Patient",
            "contained": (0..n).map(|i| json!({"resourceType": "Organization", "id": format!("o{i}")})).collect::<Vec<_>>(),
            "generalPractitioner": (0..referenced).map(|i| json!({"reference": format!("#o{i}")})).collect::<Vec<_>>()
        })
    };
    assert!(holds(dom_3, &patient(n)));
    assert!(!holds(dom_3, &patient(n - 1)));
}
