//! Unit tests of tricky cases: typing of choice elements and primitive extensions, resolve(), variables,
//! limits, and invariants from the R4 core.

#![allow(clippy::unwrap_used, reason = "tests and benchmarks panic on broken fixtures")]

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

/// An R4 blood pressure Observation (after the core example `blood-pressure`): two components with
/// `valueQuantity`, plus one with a `valueCodeableConcept` so that `as` has something to filter out.
fn blood_pressure() -> Value {
    let text = r#"{
        "resourceType": "Observation",
        "id": "blood-pressure",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8478-0"}]},
             "valueCodeableConcept": {"text": "not measured"}}
        ]
    }"#;
    serde_json::from_str(text).unwrap()
}

#[test]
fn as_filters_collections_in_r4_search_expressions() {
    let bp = blood_pressure();
    // SearchParameter Observation-component-value-quantity.
    check(
        "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)",
        &bp,
        &["Quantity:107 'mm[Hg]'", "Quantity:60 'mm[Hg]'"],
    );
    check("(Observation.component.value as Quantity).value", &bp, &["decimal:107", "decimal:60"]);
    check("Observation.component.value.as(CodeableConcept).text", &bp, &["string:not measured"]);
    check("Observation.component.value as Period", &bp, &[]);
    // SearchParameter Medication-ingredient-code.
    let medication = json!({
        "resourceType": "Medication",
        "ingredient": [
            {"itemCodeableConcept": {"text": "amoxicillin"}},
            {"itemReference": {"reference": "Substance/clavulanate"}},
            {"itemCodeableConcept": {"text": "lactose"}}
        ]
    });
    check(
        "(Medication.ingredient.item as CodeableConcept).text",
        &medication,
        &["string:amoxicillin", "string:lactose"],
    );
    // SearchParameter Library-context-quantity.
    let library = json!({
        "resourceType": "Library",
        "status": "active",
        "type": {"text": "logic-library"},
        "useContext": [
            {"code": {"code": "age"}, "valueQuantity": {"value": 18, "unit": "a"}},
            {"code": {"code": "age"}, "valueRange": {"low": {"value": 65, "unit": "a"}}},
            {"code": {"code": "focus"}, "valueCodeableConcept": {"text": "x"}}
        ]
    });
    check(
        "(Library.useContext.value as Quantity) | (Library.useContext.value as Range)",
        &library,
        &["Quantity:18 'a'", "Range:-"],
    );
}

#[test]
fn strict_mode_keeps_the_as_singleton_rule() {
    let bp = blood_pressure();
    let strict = EvaluationContext::new().strict(true);
    let several = Expression::parse("Observation.component.value as Quantity").unwrap();
    assert!(several.evaluate(&bp, &strict).is_err());
    let single = Expression::parse("Observation.component[0].value as Quantity").unwrap();
    assert_eq!(single.evaluate(&bp, &strict).unwrap().len(), 1);
}

#[test]
fn casts_match_primitives_exactly_and_need_known_types() {
    let patient = json!({"resourceType": "Patient", "gender": "male"});
    check("Patient.gender.as(code)", &patient, &["code:male"]);
    check("Patient.gender.as(string)", &patient, &[]);
    check("Patient.gender.ofType(string)", &patient, &[]);
    check("Patient.gender is string", &patient, &["Boolean:true"]);
    // A profile of a complex type still casts to its base (Age is a Quantity).
    let condition = json!({"resourceType": "Condition", "onsetAge": {"value": 40, "unit": "a"}});
    check("(Condition.onset as Quantity).value", &condition, &["decimal:40"]);
    for text in
        ["Patient.gender.as(strin)", "Patient.gender.ofType(FHIR.String)", "x as System.code"]
    {
        assert!(Expression::parse(text).is_err(), "{text}");
    }
    assert!(Expression::parse("Patient.is(System.Patient)").is_ok());
}

#[test]
fn dom_3_holds_for_referenced_contained_resources() {
    // R4 dom-3 applies as(canonical) and as(uri) to all descendants of the resource.
    let dom_3 = "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()";
    let expression = Expression::parse(dom_3).unwrap();
    let ctx = EvaluationContext::new();
    let referenced = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "XR chest"},
        "contained": [{"resourceType": "Patient", "id": "p1"}],
        "subject": {"reference": "#p1"}
    });
    assert!(check_invariant(&expression, &referenced, &ctx).unwrap());
    let orphan = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "XR chest"},
        "contained": [{"resourceType": "Patient", "id": "p1"}],
        "subject": {"reference": "Patient/123"}
    });
    assert!(!check_invariant(&expression, &orphan, &ctx).unwrap());
}

#[test]
fn a_traced_constant_is_evaluated_once() {
    // R4 ref-1, tested for each of a resource's references: the traced list of contained ids is the same
    // for all of them, so it is evaluated (and traced) once per evaluation, not once per reference.
    let ref_1 = "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))";
    let expression = Expression::parse(&format!("generalPractitioner.all({ref_1})")).unwrap();
    let traced = std::sync::Mutex::new(Vec::new());
    let trace = |name: &str, _: &cdr_fhirpath::Collection<'_>| {
        traced.lock().unwrap().push(name.to_owned());
    };
    let ctx = EvaluationContext::new().with_trace(&trace);
    let patient = json!({
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o1"}, {"resourceType": "Organization", "id": "o2"}],
        "generalPractitioner": [{"reference": "#o1"}, {"reference": "#o2"}, {"reference": "#o1"}]
    });
    assert!(check_invariant(&expression, &patient, &ctx).unwrap());
    let traced = traced.into_inner().unwrap();
    assert_eq!(traced.iter().filter(|name| *name == "url").count(), 3, "{traced:?}");
    assert_eq!(traced.iter().filter(|name| *name == "ids").count(), 1, "{traced:?}");
}

#[test]
fn matches_full_anchors_the_whole_string() {
    let empty = json!({});
    check("'Library/FHIR-ModelInfo'.matchesFull('Library')", &empty, &["Boolean:false"]);
    check("'Library/FHIR-ModelInfo'.matchesFull('Library.*')", &empty, &["Boolean:true"]);
    check("'Library/FHIR-ModelInfo'.matches('Library')", &empty, &["Boolean:true"]);
    // An alternation is anchored as a whole, not only its first and last branches.
    check("'ab'.matchesFull('a|ab')", &empty, &["Boolean:true"]);
    check("'xab'.matchesFull('a|ab')", &empty, &["Boolean:false"]);
    check("'line1\nline2'.matchesFull('line1.line2')", &empty, &["Boolean:true"]);
    check("{}.matchesFull('a')", &empty, &[]);
}

#[test]
fn decimal_and_quantity_boundaries() {
    let empty = json!({});
    // The examples of the FHIRPath specification (highBoundary(0) of -1.587 printed there as 1 is -1).
    check("1.587.lowBoundary()", &empty, &["Decimal:1.58650000"]);
    check("1.587.lowBoundary(2)", &empty, &["Decimal:1.58"]);
    check("1.587.highBoundary(2)", &empty, &["Decimal:1.59"]);
    check("(-1.587).lowBoundary(2)", &empty, &["Decimal:-1.59"]);
    check("(-1.587).highBoundary(0)", &empty, &["Decimal:-1"]);
    check("(-1.587).lowBoundary(0)", &empty, &["Decimal:-2"]);
    // Integers stand for the decimals that round to them; a quantity's value is bounded, its unit kept.
    check("1.lowBoundary(5)", &empty, &["Decimal:0.50000"]);
    check("120.highBoundary(2)", &empty, &["Decimal:120.50"]);
    check("0.lowBoundary(1)", &empty, &["Decimal:-0.5"]);
    check("1.587 'cm'.lowBoundary(8)", &empty, &["Quantity:1.58650000 'cm'"]);
    // Fewer places than the boundary has: low truncates, high rounds half up, mirrored for negatives.
    check("0.0034.highBoundary(1)", &empty, &["Decimal:0.0"]);
    check("0.0036.highBoundary(3)", &empty, &["Decimal:0.004"]);
    check("(-0.0034).lowBoundary(1)", &empty, &["Decimal:-0.0"]);
    check("9.99.highBoundary(1)", &empty, &["Decimal:10.0"]);
    // Out of range precisions, and a scale at rust_decimal's limit, give empty rather than an error.
    check("1.5.lowBoundary(29)", &empty, &[]);
    check("1.5.lowBoundary(-1)", &empty, &[]);
    check("0.0000000000000000000000000001.lowBoundary()", &empty, &[]);
    check("'a'.lowBoundary()", &empty, &[]);
}

#[test]
fn date_and_time_boundaries() {
    let empty = json!({});
    check("@2014.lowBoundary(6)", &empty, &["Date:2014-01"]);
    check("@2014.highBoundary(6)", &empty, &["Date:2014-12"]);
    check("@2016-02.highBoundary()", &empty, &["Date:2016-02-29"]);
    check("@2016-02-10.lowBoundary(4)", &empty, &["Date:2016"]);
    check("@2016.highBoundary(10)", &empty, &[]);
    check("@T10:30.lowBoundary(9)", &empty, &["Time:10:30:00.000"]);
    check("@T10:30.highBoundary()", &empty, &["Time:10:30:59.999"]);
    check("@T10:30.highBoundary(2)", &empty, &["Time:10"]);
    check("@T10:30.highBoundary(8)", &empty, &[]);
    // Without a time zone, the earliest zone is the low boundary and the latest the high one.
    check("@2014-01-01T08.lowBoundary(17)", &empty, &["DateTime:2014-01-01T08:00:00.000+14:00"]);
    check("@2014-01-01T08.highBoundary(17)", &empty, &["DateTime:2014-01-01T08:59:59.999-12:00"]);
    check("@2014-12T.highBoundary(12)", &empty, &["DateTime:2014-12-31T23:59-12:00"]);
    check("@2014-12.highBoundary(12)", &empty, &[]);
    check(
        "@2014-01-01T08:05+08:00.lowBoundary()",
        &empty,
        &["DateTime:2014-01-01T08:05:00.000+08:00"],
    );
    check("@2014-01-01T08:05:07.123Z.lowBoundary(8)", &empty, &["DateTime:2014-01-01"]);
    check("@2014-01-01T08.lowBoundary(5)", &empty, &[]);
    // A period whose start is a date and whose end a date-time on the same day (R4 per-1).
    let period = json!({
        "resourceType": "Patient",
        "identifier": [{"period": {"start": "2001-05-06", "end": "2001-05-06T10:10:10Z"}}]
    });
    check(
        "Patient.identifier.period.all(start.lowBoundary() < end.highBoundary())",
        &period,
        &["Boolean:true"],
    );
    check("@2014-01-05T10:30:00.000.precision()", &empty, &["Integer:17"]);
    check("@T10:30.precision()", &empty, &["Integer:4"]);
}

#[test]
fn sort_orders_by_keys_with_descending_and_empty_keys() {
    let empty = json!({});
    check("(3 | 1 | 2.5).sort()", &empty, &["Integer:1", "Decimal:2.5", "Integer:3"]);
    check("('b' | 'c' | 'a').sort(-$this)", &empty, &["String:c", "String:b", "String:a"]);
    check("(@2015 | @2014).sort($this)", &empty, &["Date:2014", "Date:2015"]);
    let patient = json!({
        "resourceType": "Patient",
        "name": [
            {"use": "official", "family": "B", "given": ["Y"]},
            {"use": "usual", "given": ["Z"]},
            {"use": "maiden", "family": "B", "given": ["X"]},
            {"use": "old", "family": "A", "given": ["W"]}
        ]
    });
    // Later keys break ties; equal keys keep the input order; an empty key comes first either way.
    check(
        "Patient.name.sort(family, given.first()).use",
        &patient,
        &["code:usual", "code:old", "code:maiden", "code:official"],
    );
    check(
        "Patient.name.sort(-family, given.first()).use",
        &patient,
        &["code:usual", "code:maiden", "code:official", "code:old"],
    );
    check(
        "Patient.name.sort(family).use",
        &patient,
        &["code:usual", "code:old", "code:official", "code:maiden"],
    );
    let ctx = EvaluationContext::new();
    for invalid in [
        "(1 | 'a').sort()",
        "Patient.name.sort()",
        "Patient.name.sort(given | family)",
        "(@2014 | @2014-05).sort()",
    ] {
        let expression = Expression::parse(invalid).unwrap();
        assert!(expression.evaluate(&patient, &ctx).is_err(), "{invalid}");
    }
}

#[test]
fn type_reflects_namespace_name_and_base_type() {
    let empty = json!({});
    check("1.type().namespace", &empty, &["string:System"]);
    check(
        "(1.5 | 'a' | @2014 | 3 'mg').type().name",
        &empty,
        &["string:Decimal", "string:String", "string:Date", "string:Quantity"],
    );
    check("true.type().baseType", &empty, &["string:System.Any"]);
    let patient = json!({
        "resourceType": "Patient",
        "gender": "male",
        "contact": [{"gender": "female"}],
        "active": true
    });
    check("Patient.type().name", &patient, &["string:Patient"]);
    check("Patient.type().baseType", &patient, &["string:FHIR.DomainResource"]);
    check("Patient.active.type().namespace", &patient, &["string:FHIR"]);
    check("Patient.gender.type().baseType", &patient, &["string:FHIR.string"]);
    check("Patient.contact.type().name", &patient, &["string:BackboneElement"]);
    check("Patient.gender.toString().type().name", &patient, &["string:String"]);
    check("{}.type()", &patient, &[]);
}

#[test]
fn quantity_units_compare_by_dimension() {
    let empty = json!({});
    check("1 'cm'.comparable(1 '[in_i]')", &empty, &["Boolean:true"]);
    check("1 'cm'.comparable(1 's')", &empty, &["Boolean:false"]);
    check("1 'cm'.comparable(1 '[s]')", &empty, &["Boolean:false"]);
    check("1 '[s]'.comparable(2 '[s]')", &empty, &["Boolean:true"]);
    check("{}.comparable(1 'cm')", &empty, &[]);
    check("1 '[in_i]' = 2.54 'cm'", &empty, &["Boolean:true"]);
    check("1 '[lb_av]' > 453 'g'", &empty, &["Boolean:true"]);
    // `=` keeps calendar years and months apart from definite durations; `~` and smaller units do not.
    check("1 year = 1 'a'", &empty, &[]);
    check("1 'mo' = 1 month", &empty, &[]);
    check("1 year ~ 1 'a'", &empty, &["Boolean:true"]);
    check("1 year = 12 months", &empty, &["Boolean:true"]);
    check("1 week = 1 'wk'", &empty, &["Boolean:true"]);
    // `~` compares in the coarser unit to the lesser precision.
    check("4 'g' ~ 4040 'mg'", &empty, &["Boolean:true"]);
    check("4 'g' = 4040 'mg'", &empty, &["Boolean:false"]);
    check("4.0 'g' ~ 4040 'mg'", &empty, &["Boolean:true"]);
    check("4.00 'g' ~ 4040 'mg'", &empty, &["Boolean:false"]);
    check("4 'g' ~ 5 'g'", &empty, &["Boolean:false"]);
    check("4 'g' ~ 4 'm'", &empty, &["Boolean:false"]);
    let ctx = EvaluationContext::new();
    let error = Expression::parse("1.comparable(1 'cm')").unwrap().evaluate(&empty, &ctx);
    assert!(error.is_err());
}

#[test]
fn unit_terms_compare_after_multiplication_and_division() {
    let empty = json!({});
    check("2.0 'cm' * 2.0 'm' = 0.040 'm2'", &empty, &["Boolean:true"]);
    check("2.0 'cm' * 2.0 'm' = 400 'cm2'", &empty, &["Boolean:true"]);
    check("2.0 'cm' * 2.0 'm' = 0.040 'm3'", &empty, &["Boolean:false"]);
    check("200 'mg/dL' = 2 'g/L'", &empty, &["Boolean:true"]);
    check("1 'mL' < 2 'cm3'", &empty, &["Boolean:true"]);
    check("60 '/min' = 1 '/s'", &empty, &["Boolean:true"]);
    check("'1 \\'[in_i]\\''.toQuantity('cm')", &empty, &["Quantity:2.54 'cm'"]);
    check("'5 L'.toQuantity('dL')", &empty, &[]);
    check("'5 \\'L\\''.toQuantity('dL')", &empty, &["Quantity:50 'dL'"]);
    check("1 '10*3/uL' = 1 '10*3/uL'", &empty, &["Boolean:true"]);
}
