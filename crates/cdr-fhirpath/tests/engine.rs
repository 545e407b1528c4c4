//! Unit tests of tricky cases: typing of choice elements and primitive extensions, resolve(), variables,
//! limits, and invariants from the R4 core.

use cdr_fhirpath::{EvaluationContext, Expression, SystemValue, check_invariant};
use serde_json::{Value, json};

fn eval_strings(text: &str, resource: &Value) -> Vec<String> {
    let expression = Expression::parse(text).unwrap();
    let result = expression.evaluate(resource, &EvaluationContext::new()).unwrap();
    result
        .iter()
        .map(|item| {
            format!(
                "{}:{}",
                item.type_name(),
                item.system_value().map_or_else(|| "-".to_owned(), |v| v.to_string())
            )
        })
        .collect()
}

fn check(text: &str, resource: &Value, expect: &[&str]) {
    assert_eq!(eval_strings(text, resource), expect, "{text}");
}

fn observation() -> Value {
    // Parsed from text so that the decimal keeps its lexical form.
    let text = r#"{
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": "Patient/123"},
        "valueQuantity": {"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        "effectiveDateTime": "2020-01-02T10:00:00Z",
        "_status": {"extension": [{"url": "http://example.org/x", "valueString": "note"}]}
    }"#;
    serde_json::from_str(text).unwrap()
}

#[test]
fn choice_elements_are_typed_by_suffix() {
    let obs = observation();
    check("Observation.value", &obs, &["Quantity:72.50 'kg'"]);
    check("(Observation.value as Quantity).value", &obs, &["decimal:72.50"]);
    check("Observation.value is Quantity", &obs, &["Boolean:true"]);
    check("Observation.value.ofType(FHIR.Quantity).unit", &obs, &["string:kg"]);
    check("Observation.effective is dateTime", &obs, &["Boolean:true"]);
    check("Observation.value is System.String", &obs, &["Boolean:false"]);
}

#[test]
fn primitive_extensions_and_resource_id() {
    let obs = observation();
    check("Observation.status.extension('http://example.org/x').value", &obs, &["string:note"]);
    check("Resource.id", &obs, &["string:o1"]);
    check("DomainResource.id", &obs, &["string:o1"]);
    check("Observation.status.hasValue()", &obs, &["Boolean:true"]);
}

#[test]
fn resolve_types_references() {
    let obs = observation();
    check(
        "Observation.subject.where(resolve() is Patient).reference",
        &obs,
        &["string:Patient/123"],
    );
    check("Observation.subject.where(resolve() is Group)", &obs, &[]);
    let with_contained = json!({
        "resourceType": "Observation",
        "contained": [{"resourceType": "Patient", "id": "p", "gender": "male"}],
        "subject": {"reference": "#p"}
    });
    check("Observation.subject.resolve().gender", &with_contained, &["code:male"]);
}

#[test]
fn bundle_entries_resolve_by_full_url() {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "1", "active": true}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:1"}}}
        ]
    });
    check(
        "Bundle.entry.resource.ofType(Observation).subject.resolve().active",
        &bundle,
        &["boolean:true"],
    );
}

#[test]
fn deceased_search_expression() {
    let alive = json!({"resourceType": "Patient", "deceasedBoolean": false});
    let dead = json!({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"});
    let text = "Patient.deceased.exists() and Patient.deceased != false";
    check(text, &alive, &["Boolean:false"]);
    check(text, &dead, &["Boolean:true"]);
}

#[test]
fn variables_and_date_arithmetic() {
    let obs = observation();
    check("%ucum", &obs, &["String:http://unitsofmeasure.org"]);
    check("%resource.id", &obs, &["string:o1"]);
    check("@2020-01-31 + 1 month", &obs, &["Date:2020-02-29"]);
    check("Observation.effective > @2019", &obs, &["Boolean:true"]);
    let expression = Expression::parse("%threshold + 1").unwrap();
    let ctx = EvaluationContext::new().with_variable(
        "threshold",
        cdr_fhirpath::Collection::from_items(vec![cdr_fhirpath::Item::Value(
            SystemValue::Integer(41),
        )]),
    );
    let result = expression.evaluate(&obs, &ctx).unwrap();
    assert_eq!(result[0].system_value(), Some(SystemValue::Integer(42)));
}

#[test]
fn core_invariants_hold_on_an_example() {
    let obs = observation();
    let ctx = EvaluationContext::new();
    for text in [
        "hasValue() or (children().count() > id.count())",
        "text.`div`.exists() implies text.`div`.htmlChecks()",
        "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()",
        "dataAbsentReason.empty() or value.empty()",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
    ] {
        let expression = Expression::parse(text).unwrap();
        assert!(check_invariant(&expression, &obs, &ctx).unwrap(), "{text}");
    }
}

#[test]
fn hostile_input_is_rejected_without_panicking() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Expression::parse(&deep).is_err());
    let minus = format!("{}1", "-".repeat(10_000));
    assert!(Expression::parse(&minus).is_err());
    let error = Expression::parse("Patient.name.where(").unwrap_err();
    assert_eq!(error.offset, 19);
    assert!(Expression::parse("Patient.name.frobnicate()").is_err());
}

#[test]
fn expression_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
}
