//! The patch interaction (R4 http.html#patch): JSON Patch and FHIRPath Patch, plain and conditional, with its
//! preconditions and errors; a patched resource is validated, versioned and indexed like an update.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse};

backend_tests!(
    json_patch_changes_the_resource,
    json_patch_failures_write_nothing,
    fhirpath_patch_operations,
    fhirpath_patch_with_a_complex_value,
    patched_resources_are_validated,
    patched_references_only_a_bundle_resolves_are_refused,
    patch_preconditions_and_missing_resources,
    conditional_patch,
    patch_needs_a_patch_media_type,
    patched_versions_are_indexed,
    capability_statement_declares_patch
);

const JSON_PATCH: &str = "application/json-patch+json";
const FHIR_JSON: &str = "application/fhir+json";

/// The R4 example Patient (`patient-example.json`), in part.
const PATIENT: &str = r#"{"resourceType":"Patient",
  "identifier":[{"use":"usual","system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"}],
  "active":true,
  "name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},{"use":"usual","given":["Jim"]}],
  "telecom":[{"use":"home"},{"system":"phone","value":"(03) 5555 6473","use":"work","rank":1}],
  "gender":"male",
  "birthDate":"1974-12-25",
  "_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean":false}"#;

impl TestApp {
    async fn patch(&self, uri: &str, content_type: &str, body: &str) -> TestResponse {
        self.request(Method::PATCH, uri, &[("content-type", content_type)], body).await
    }
}

/// A FHIRPath Patch of these operations, each a list of parts.
fn fhirpath_patch(operations: &[Value]) -> String {
    let parameter: Vec<Value> =
        operations.iter().map(|parts| json!({"name": "operation", "part": parts})).collect();
    json!({"resourceType": "Parameters", "parameter": parameter}).to_string()
}

fn part(name: &str, key: &str, value: Value) -> Value {
    let mut part = serde_json::Map::new();
    part.insert("name".to_owned(), Value::from(name));
    part.insert(key.to_owned(), value);
    Value::Object(part)
}

async fn json_patch_changes_the_resource(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let body = r#"[{"op":"test","path":"/gender","value":"male"},
        {"op":"replace","path":"/name/0/family","value":"Chalmers-Smith"},
        {"op":"add","path":"/name/0/given/-","value":"Jr"},
        {"op":"remove","path":"/deceasedBoolean"}]"#;
    let response = app.patch(&uri, JSON_PATCH, body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("etag"), Some("W/\"2\""));
    assert!(response.header("last-modified").is_some());
    assert_eq!(
        response.header("location"),
        Some(format!("http://cdr.test/fhir/Patient/{id}/_history/2").as_str())
    );
    let patched = response.json();
    assert_eq!(patched["id"], id.as_str());
    assert_eq!(patched["meta"]["versionId"], "2");
    assert_eq!(patched["name"][0]["family"], "Chalmers-Smith");
    assert_eq!(patched["name"][0]["given"], json!(["Peter", "James", "Jr"]));
    assert!(patched.get("deceasedBoolean").is_none());
    assert_eq!(app.get(&uri).await.json(), patched);
    // The new version is in the history as an update.
    let history = app.get(&format!("{uri}/_history")).await.json();
    assert_eq!(history["entry"][0]["request"]["method"], "PUT");
    assert_eq!(history["entry"][1]["resource"]["name"][0]["family"], "Chalmers");
    // Prefer: return=minimal and return=OperationOutcome shape the answer as for an update.
    let minimal = app
        .request(
            Method::PATCH,
            &uri,
            &[("content-type", JSON_PATCH), ("prefer", "return=minimal")],
            r#"[{"op":"replace","path":"/active","value":false}]"#,
        )
        .await;
    assert_eq!(minimal.status, StatusCode::OK);
    assert!(minimal.body.is_empty());
    assert_eq!(minimal.header("etag"), Some("W/\"3\""));
    let outcome = app
        .request(
            Method::PATCH,
            &uri,
            &[("content-type", JSON_PATCH), ("prefer", "return=OperationOutcome")],
            r#"[{"op":"replace","path":"/active","value":true}]"#,
        )
        .await;
    assert_eq!(outcome.json()["resourceType"], "OperationOutcome");
    assert_eq!(outcome.header("etag"), Some("W/\"4\""));
}

async fn json_patch_failures_write_nothing(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let failed_test = app
        .patch(
            &uri,
            JSON_PATCH,
            r#"[{"op":"replace","path":"/active","value":false},
            {"op":"test","path":"/gender","value":"female"}]"#,
        )
        .await;
    failed_test.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "processing");
    let diagnostics = failed_test.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
    assert!(diagnostics.contains("operation 1 (test at '/gender') failed"), "{diagnostics}");
    let missing_path =
        app.patch(&uri, JSON_PATCH, r#"[{"op":"remove","path":"/contact/0"}]"#).await;
    missing_path.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "processing");
    let changes_id =
        app.patch(&uri, JSON_PATCH, r#"[{"op":"replace","path":"/id","value":"other"}]"#).await;
    changes_id.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "processing");
    for not_a_patch in
        [r#"{"op":"add","path":"/active","value":true}"#, "[{", "", r#"[{"op":"merge"}]"#]
    {
        app.patch(&uri, JSON_PATCH, not_a_patch)
            .await
            .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    }
    let current = app.get(&uri).await.json();
    assert_eq!(current["meta"]["versionId"], "1");
    assert_eq!(current["active"], true);
}

async fn fhirpath_patch_operations(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let body = fhirpath_patch(&[
        json!([
            part("type", "valueCode", json!("add")),
            part("path", "valueString", json!("Patient")),
            part("name", "valueString", json!("telecom")),
            part(
                "value",
                "valueContactPoint",
                json!({"system": "email", "value": "jim@example.org"})
            ),
        ]),
        json!([
            part("type", "valueCode", json!("insert")),
            part("path", "valueString", json!("Patient.name[0].given")),
            part("index", "valueInteger", json!(1)),
            part("value", "valueString", json!("Jim")),
        ]),
        json!([
            part("type", "valueCode", json!("delete")),
            part("path", "valueString", json!("Patient.birthDate")),
        ]),
        json!([
            part("type", "valueCode", json!("replace")),
            part("path", "valueString", json!("Patient.telecom.where(system = 'phone').value")),
            part("value", "valueString", json!("(03) 5555 0000")),
        ]),
        json!([
            part("type", "valueCode", json!("move")),
            part("path", "valueString", json!("Patient.name")),
            part("source", "valueInteger", json!(1)),
            part("destination", "valueInteger", json!(0)),
        ]),
    ]);
    let response = app.patch(&uri, FHIR_JSON, &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let patched = response.json();
    assert_eq!(patched["telecom"][2], json!({"system": "email", "value": "jim@example.org"}));
    assert_eq!(patched["telecom"][1]["value"], "(03) 5555 0000");
    assert_eq!(patched["name"][0], json!({"use": "usual", "given": ["Jim"]}));
    assert_eq!(patched["name"][1]["given"], json!(["Peter", "Jim", "James"]));
    // Deleting a primitive deletes its extensions.
    assert!(patched.get("birthDate").is_none() && patched.get("_birthDate").is_none(), "{patched}");
    assert_eq!(patched["meta"]["versionId"], "2");

    // A path that selects nothing, or several, where one element is needed.
    for (path, expected) in
        [("Patient.contact", "selects no element"), ("Patient.name.given", "selects 4 elements")]
    {
        let body = fhirpath_patch(&[json!([
            part("type", "valueCode", json!("replace")),
            part("path", "valueString", json!(path)),
            part("value", "valueString", json!("x")),
        ])]);
        let response = app.patch(&uri, FHIR_JSON, &body).await;
        response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "processing");
        let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
        assert!(diagnostics.contains("operation 0 (replace"), "{diagnostics}");
        assert!(diagnostics.contains(expected), "{diagnostics}");
    }
    // Deleting nothing is not an error, and writes a version as any patch does.
    let nothing = fhirpath_patch(&[json!([
        part("type", "valueCode", json!("delete")),
        part("path", "valueString", json!("Patient.contact")),
    ])]);
    assert_eq!(app.patch(&uri, FHIR_JSON, &nothing).await.status, StatusCode::OK);
    // Malformed operations are 400.
    let malformed = fhirpath_patch(&[json!([part("type", "valueCode", json!("upsert"))])]);
    app.patch(&uri, FHIR_JSON, &malformed).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.patch(&uri, FHIR_JSON, PATIENT).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn fhirpath_patch_with_a_complex_value(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    // An anonymous type (Patient.contact) given as nested parts; its telecom repeats, its name does not.
    let body = fhirpath_patch(&[json!([
        part("type", "valueCode", json!("add")),
        part("path", "valueString", json!("Patient")),
        part("name", "valueString", json!("contact")),
        json!({"name": "value", "part": [
            {"name": "relationship", "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}},
            {"name": "name", "valueHumanName": {"family": "du Marché", "given": ["Bénédicte"]}},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "+33 (237) 998327"}},
            {"name": "gender", "valueCode": "female"}
        ]}),
    ])]);
    let response = app.patch(&uri, FHIR_JSON, &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        response.json()["contact"],
        json!([{
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
            "name": {"family": "du Marché", "given": ["Bénédicte"]},
            "telecom": [{"system": "phone", "value": "+33 (237) 998327"}],
            "gender": "female"
        }])
    );
}

async fn patched_resources_are_validated(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    // gender has a required binding to AdministrativeGender.
    let body = fhirpath_patch(&[json!([
        part("type", "valueCode", json!("replace")),
        part("path", "valueString", json!("Patient.gender")),
        part("value", "valueCode", json!("robot")),
    ])]);
    let response = app.patch(&uri, FHIR_JSON, &body).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert!(response.text().contains("robot"), "{}", response.text());
    let unknown_element =
        app.patch(&uri, JSON_PATCH, r#"[{"op":"add","path":"/colour","value":"red"}]"#).await;
    assert_eq!(
        unknown_element.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_element.text()
    );
    let current = app.get(&uri).await.json();
    assert_eq!(current["meta"]["versionId"], "1");
    assert_eq!(current["gender"], "male");
}

/// A patch result is a single update: a `urn:uuid:` or conditional reference it adds has no Bundle to resolve
/// in (R4 http.html#trules), so it is a 422 at the reference, in either patch format, plain or conditional.
async fn patched_references_only_a_bundle_resolves_are_refused(app: &TestApp) {
    let organization =
        app.create("Organization", r#"{"resourceType":"Organization","name":"x"}"#).await;
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let add = |reference: &str| {
        json!([{"op": "add", "path": "/managingOrganization", "value": {"reference": reference}}])
            .to_string()
    };
    for reference in ["urn:uuid:0f5e2a7c-2a4e-4c1b-9d55-2b6f3c1e9a10", "Organization?name=x"] {
        let response = app.patch(&uri, JSON_PATCH, &add(reference)).await;
        response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "value");
        assert_eq!(
            response.json()["issue"][0]["expression"][0],
            "Patient.managingOrganization.reference",
            "{reference}"
        );
    }
    let body = fhirpath_patch(&[json!([
        part("type", "valueCode", json!("add")),
        part("path", "valueString", json!("Patient")),
        part("name", "valueString", json!("managingOrganization")),
        part("value", "valueReference", json!({"reference": "urn:oid:1.2.36.1"})),
    ])]);
    app.patch(&uri, FHIR_JSON, &body)
        .await
        .assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "value");
    let conditional = "/fhir/Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345";
    app.patch(conditional, JSON_PATCH, &add("Organization?name=x"))
        .await
        .assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "value");
    // Nothing was written; a Type/id reference is.
    assert_eq!(app.get(&uri).await.json()["meta"]["versionId"], "1");
    let response = app.patch(&uri, JSON_PATCH, &add(&format!("Organization/{organization}"))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

async fn patch_preconditions_and_missing_resources(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let body = r#"[{"op":"replace","path":"/active","value":false}]"#;
    let stale = app
        .request(
            Method::PATCH,
            &uri,
            &[("content-type", JSON_PATCH), ("if-match", "W/\"7\"")],
            body,
        )
        .await;
    stale.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");
    let current = app
        .request(
            Method::PATCH,
            &uri,
            &[("content-type", JSON_PATCH), ("if-match", "W/\"1\"")],
            body,
        )
        .await;
    assert_eq!(current.status, StatusCode::OK, "{}", current.text());
    assert_eq!(current.header("etag"), Some("W/\"2\""));

    app.patch("/fhir/Patient/does-not-exist", JSON_PATCH, body)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.patch("/fhir/Unicorn/1", JSON_PATCH, body)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-supported");
    assert_eq!(app.delete(&uri).await.status, StatusCode::NO_CONTENT);
    let gone = app.patch(&uri, JSON_PATCH, body).await;
    gone.assert_outcome(StatusCode::GONE, "deleted");
    assert_eq!(gone.header("etag"), Some("W/\"3\""));
}

async fn conditional_patch(app: &TestApp) {
    let mrn = |value: &str| {
        format!(
            r#"{{"resourceType":"Patient","identifier":[{{"system":"http://hospital.example/mrn","value":"{value}"}}],"gender":"male"}}"#
        )
    };
    let id = app.create("Patient", &mrn("A1")).await;
    app.create("Patient", &mrn("B2")).await;
    app.create("Patient", &mrn("B2")).await;
    let body = r#"[{"op":"replace","path":"/gender","value":"female"}]"#;
    let matched = app
        .patch("/fhir/Patient?identifier=http://hospital.example/mrn|A1", JSON_PATCH, body)
        .await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text());
    assert_eq!(matched.json()["id"], id.as_str());
    assert_eq!(matched.json()["gender"], "female");
    assert_eq!(matched.header("etag"), Some("W/\"2\""));
    app.patch("/fhir/Patient?identifier=http://hospital.example/mrn|C3", JSON_PATCH, body)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.patch("/fhir/Patient?identifier=http://hospital.example/mrn|B2", JSON_PATCH, body)
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
    let bundle = app.search("Patient?gender=female").await;
    assert_eq!(bundle["entry"].as_array().map_or(0, Vec::len), 1, "{bundle}");
}

async fn patch_needs_a_patch_media_type(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let uri = format!("/fhir/Patient/{id}");
    let body = r#"[{"op":"replace","path":"/active","value":false}]"#;
    for content_type in ["text/plain", "application/merge-patch+json"] {
        app.patch(&uri, content_type, body)
            .await
            .assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    }
    let bare = app.request(Method::PATCH, &uri, &[], body).await;
    bare.assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    // A JSON Patch sent as FHIR JSON is not a Parameters resource, nor is it FHIR XML.
    app.patch(&uri, FHIR_JSON, body).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.patch(&uri, "application/fhir+xml", body)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "structure");
    let with_parameters = app.patch(&uri, "application/json-patch+json; charset=utf-8", body).await;
    assert_eq!(with_parameters.status, StatusCode::OK, "{}", with_parameters.text());
}

async fn patched_versions_are_indexed(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let body = fhirpath_patch(&[json!([
        part("type", "valueCode", json!("replace")),
        part("path", "valueString", json!("Patient.name.where(use = 'official').family")),
        part("value", "valueString", json!("Windsor")),
    ])]);
    let response = app.patch(&format!("/fhir/Patient/{id}"), FHIR_JSON, &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let found = app.search("Patient?family=Windsor").await;
    assert_eq!(found["entry"][0]["resource"]["id"], id.as_str(), "{found}");
    let old = app.search("Patient?family=Chalmers").await;
    assert!(old.get("entry").is_none(), "{old}");
}

async fn capability_statement_declares_patch(app: &TestApp) {
    let statement = app.get("/fhir/metadata").await.json();
    assert_eq!(statement["patchFormat"], json!([JSON_PATCH, FHIR_JSON, "application/fhir+xml"]));
    // Every type but the append-only AuditEvent (`audit.rs`).
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    for resource in resources.iter().filter(|resource| resource["type"] != "AuditEvent") {
        let interactions = resource["interaction"].as_array().unwrap();
        assert!(
            interactions.iter().any(|interaction| interaction["code"] == "patch"),
            "{resource}"
        );
    }
}
