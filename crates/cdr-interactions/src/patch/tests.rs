//! `Patch::parse` and `apply_patch` on the HL7 FHIRPath Patch tests (`test_data/fhirpath-patch`), and on the
//! FHIR JSON details and failures those tests do not cover.

use serde_json::{Value, json};

use crate::patch::fhirpath::MAX_OPERATIONS;
use crate::patch::{Patch, PatchFormat, apply_patch};
use crate::{InteractionError, ResourceLimits};

const HL7_CASES: &str = include_str!("../../test_data/fhirpath-patch/fhir-patch-tests.json");

fn fhirpath_patch(parameters: &Value) -> Patch {
    Patch::parse(PatchFormat::FhirPath, parameters.to_string().as_bytes()).unwrap()
}

/// A Parameters resource of one operation with these parts.
fn operation(parts: &Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]})
}

fn apply(resource: &Value, patch: &Patch) -> Result<Value, InteractionError> {
    apply_patch(resource, patch, &ResourceLimits::default())
}

/// The diagnostics of a 422 refusal.
fn refusal(result: Result<Value, InteractionError>) -> String {
    match result {
        Err(InteractionError::Unprocessable(outcome)) => outcome.issues[0].diagnostics.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn hl7_fhirpath_patch_tests() {
    let cases: Vec<Value> = serde_json::from_str(HL7_CASES).unwrap();
    assert_eq!(cases.len(), 33);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let result = apply(&case["input"], &fhirpath_patch(&case["patch"]));
        match case.get("output") {
            Some(output) => assert_eq!(&result.unwrap(), output, "{name}"),
            None => {
                let diagnostics = refusal(result);
                assert!(diagnostics.contains("selects no element"), "{name}: {diagnostics}");
            }
        }
    }
}

#[test]
fn primitive_extensions_follow_their_values() {
    let patient = json!({
        "resourceType": "Patient",
        "name": [{"given": ["Peter", "James", null], "_given": [null, {"id": "j"}, {"id": "x"}]}],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://example.org/time", "valueTime": "14:35:45"}]}
    });
    let delete = |path: &str| {
        fhirpath_patch(&operation(&json!([
            {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": path}
        ])))
    };
    let deleted = apply(&patient, &delete("Patient.birthDate")).unwrap();
    assert_eq!(deleted.get("_birthDate"), None);
    let deleted = apply(&patient, &delete("Patient.name.given[1]")).unwrap();
    assert_eq!(
        deleted["name"][0],
        json!({"given": ["Peter", null], "_given": [null, {"id": "x"}]})
    );
    // The last extension of a primitive goes with its `_name` object; a list's entry becomes null.
    let deleted = apply(&patient, &delete("Patient.birthDate.extension")).unwrap();
    assert_eq!(deleted.get("_birthDate"), None);
    assert_eq!(deleted["birthDate"], "1974-12-25");
    let deleted = apply(&patient, &delete("Patient.name.given[1].id")).unwrap();
    assert_eq!(deleted["name"][0]["_given"], json!([null, null, {"id": "x"}]));

    let moved = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "move"}, {"name": "path", "valueString": "Patient.name.given"},
        {"name": "source", "valueInteger": 2}, {"name": "destination", "valueInteger": 0}
    ])));
    let moved = apply(&patient, &moved).unwrap();
    assert_eq!(
        moved["name"][0],
        json!({"given": [null, "Peter", "James"], "_given": [{"id": "x"}, null, {"id": "j"}]})
    );
    let inserted = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "insert"}, {"name": "path", "valueString": "Patient.name.given"},
        {"name": "index", "valueInteger": 1}, {"name": "value", "valueString": "Jim"}
    ])));
    let inserted = apply(&patient, &inserted).unwrap();
    assert_eq!(
        inserted["name"][0],
        json!({"given": ["Peter", "Jim", "James", null], "_given": [null, null, {"id": "j"}, {"id": "x"}]})
    );
    // An extension added to a primitive goes into its `_name` object.
    let extension = json!({"url": "http://example.org/absent", "valueCode": "unknown"});
    let added = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient.name.given[0]"},
        {"name": "name", "valueString": "extension"}, {"name": "value", "valueExtension": extension}
    ])));
    let added = apply(&patient, &added).unwrap();
    assert_eq!(added["name"][0]["_given"][0], json!({"extension": [extension]}));
}

#[test]
fn added_elements_take_their_json_shape_from_the_model() {
    let patient = json!({"resourceType": "Patient", "id": "p1"});
    let add = |name: &str, value: Value| {
        let mut parts = vec![
            json!({"name": "type", "valueCode": "add"}),
            json!({"name": "path", "valueString": "Patient"}),
            json!({"name": "name", "valueString": name}),
        ];
        parts.push(value);
        fhirpath_patch(&operation(&Value::Array(parts)))
    };
    // A choice element named without its type takes the value's type suffix.
    let deceased =
        apply(&patient, &add("deceased", json!({"name": "value", "valueBoolean": true})));
    assert_eq!(deceased.unwrap()["deceasedBoolean"], true);
    // Repeating members of an anonymous type are arrays, single ones are not.
    let contact = json!({"name": "value", "part": [
        {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "555"}},
        {"name": "gender", "valueCode": "female"}
    ]});
    let added = apply(&patient, &add("contact", contact)).unwrap();
    assert_eq!(
        added["contact"],
        json!([{"telecom": [{"system": "phone", "value": "555"}], "gender": "female"}])
    );
    let twice = apply(
        &json!({"resourceType": "Patient", "gender": "male"}),
        &add("gender", json!({"name": "value", "valueCode": "female"})),
    );
    assert!(refusal(twice).contains("gender already exists"));
}

#[test]
fn targets_must_be_single_elements_of_the_resource() {
    let patient =
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "A"}, {"family": "B"}]});
    let replace = |path: &str, value: Value| {
        fhirpath_patch(&operation(&json!([
            {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path},
            {"name": "value", "valueString": value}
        ])))
    };
    let several = refusal(apply(&patient, &replace("Patient.name.family", json!("C"))));
    assert!(several.contains("operation 0 (replace at 'Patient.name.family')"), "{several}");
    assert!(several.contains("selects 2 elements"), "{several}");
    assert!(
        refusal(apply(&patient, &replace("Patient.birthDate", json!("2000"))))
            .contains("no element")
    );
    let computed = refusal(apply(&patient, &replace("Patient.name.count()", json!("1"))));
    assert!(computed.contains("not an element of the resource"), "{computed}");
    assert!(refusal(apply(&patient, &replace("Patient.id", json!("p2")))).contains("changes id"));
    let delete_several = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.name"}
    ])));
    assert!(refusal(apply(&patient, &delete_several)).contains("selects 2 elements"));
    let delete_nothing = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.birthDate"}
    ])));
    assert_eq!(apply(&patient, &delete_nothing).unwrap(), patient);
    let insert_past_end = fhirpath_patch(&operation(&json!([
        {"name": "type", "valueCode": "insert"}, {"name": "path", "valueString": "Patient.name"},
        {"name": "index", "valueInteger": 3}, {"name": "value", "valueHumanName": {"family": "C"}}
    ])));
    assert!(refusal(apply(&patient, &insert_past_end)).contains("past the end of the list of 2"));
}

#[test]
fn malformed_fhirpath_patches_are_invalid() {
    let invalid = |parameters: Value| match Patch::parse(
        PatchFormat::FhirPath,
        parameters.to_string().as_bytes(),
    ) {
        Err(InteractionError::Invalid(outcome)) => outcome.issues[0].diagnostics.clone(),
        other => panic!("expected invalid, got {other:?}"),
    };
    assert!(invalid(json!({"resourceType": "Patient"})).contains("Parameters resource"));
    let unknown_type = operation(&json!([
        {"name": "type", "valueCode": "copy"}, {"name": "path", "valueString": "Patient"}
    ]));
    assert!(invalid(unknown_type).contains("'copy' is not a FHIRPath Patch operation"));
    let bad_path = operation(&json!([
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.("}
    ]));
    assert!(invalid(bad_path).contains("the path 'Patient.('"));
    let no_value = operation(&json!([
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.active"}
    ]));
    assert!(invalid(no_value).contains("a replace operation needs a value part"));
    let negative = operation(&json!([
        {"name": "type", "valueCode": "move"}, {"name": "path", "valueString": "Patient.name"},
        {"name": "source", "valueInteger": -1}, {"name": "destination", "valueInteger": 0}
    ]));
    assert!(invalid(negative).contains("valueInteger of 0 or more"));
    let delete = json!({"name": "operation", "part": [
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.active"}
    ]});
    let many = json!({"resourceType": "Parameters", "parameter": vec![delete; MAX_OPERATIONS + 1]});
    assert!(matches!(
        Patch::parse(PatchFormat::FhirPath, many.to_string().as_bytes()),
        Err(InteractionError::TooCostly(_))
    ));
    assert!(matches!(
        Patch::parse(PatchFormat::FhirPath, b"{not json"),
        Err(InteractionError::Invalid(_))
    ));
}

#[test]
fn json_patch() {
    let patient =
        json!({"resourceType": "Patient", "id": "p1", "active": true, "name": [{"family": "A"}]});
    let parse = |text: &str| Patch::parse(PatchFormat::JsonPatch, text.as_bytes());
    let patch = parse(
        r#"[{"op": "test", "path": "/active", "value": true},
            {"op": "replace", "path": "/name/0/family", "value": "B"},
            {"op": "add", "path": "/gender", "value": "female"},
            {"op": "remove", "path": "/active"}]"#,
    )
    .unwrap();
    assert_eq!(
        apply(&patient, &patch).unwrap(),
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "B"}], "gender": "female"})
    );
    let failed_test = parse(r#"[{"op": "test", "path": "/active", "value": false}]"#).unwrap();
    let diagnostics = refusal(apply(&patient, &failed_test));
    assert!(diagnostics.contains("operation 0 (test at '/active') failed"), "{diagnostics}");
    let missing = parse(r#"[{"op": "remove", "path": "/birthDate"}]"#).unwrap();
    assert!(refusal(apply(&patient, &missing)).contains("operation 0 (remove at '/birthDate')"));
    let retyped =
        parse(r#"[{"op": "replace", "path": "/resourceType", "value": "Group"}]"#).unwrap();
    assert!(refusal(apply(&patient, &retyped)).contains("changes resourceType"));
    assert!(matches!(parse(r#"{"op": "add"}"#), Err(InteractionError::Invalid(_))));
    assert!(matches!(
        parse(r#"[{"op": "frobnicate", "path": "/a"}]"#),
        Err(InteractionError::Invalid(_))
    ));
}

#[test]
fn json_patch_copies_are_bounded() {
    let limits = ResourceLimits { max_elements: 100, ..ResourceLimits::default() };
    let patient =
        json!({"resourceType": "Patient", "name": [{"given": ["a", "b", "c", "d", "e"]}]});
    let copies: Vec<Value> =
        (0..20).map(|n| json!({"op": "copy", "from": "/name", "path": format!("/x{n}")})).collect();
    let patch =
        Patch::parse(PatchFormat::JsonPatch, Value::Array(copies).to_string().as_bytes()).unwrap();
    match apply_patch(&patient, &patch, &limits) {
        Err(InteractionError::ResourceTooCostly(message)) => {
            assert!(message.contains("past 100 elements"), "{message}");
        }
        other => panic!("expected too costly, got {other:?}"),
    }
}
