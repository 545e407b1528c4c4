//! Conditional create, update and delete keyed on business identifiers.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    conditional_create,
    conditional_update,
    conditional_delete,
    conditional_criteria_errors
);

const MRN: &str = "http://hospital.example/mrn";

fn patient(value: &str, extra: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","identifier":[{{"system":"{MRN}","value":"{value}"}}]{extra}}}"#
    )
}

async fn conditional_create(app: &TestApp) {
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://hospital.example/mrn|A1"),
    ];
    let first = app.request(Method::POST, "/fhir/Patient", &headers, &patient("A1", "")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let second = app
        .request(Method::POST, "/fhir/Patient", &headers, &patient("A1", r#","active":true"#))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json()["id"], id.as_str());
    assert!(second.json().get("active").is_none(), "the existing resource is returned unchanged");

    // The same value under another system is another patient.
    let other_system = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://other.example/mrn|A1"),
    ];
    assert_eq!(
        app.request(Method::POST, "/fhir/Patient", &other_system, &patient("A1", "")).await.status,
        StatusCode::CREATED
    );
    // `|value` means "no system"; `value` alone matches any system.
    let no_system =
        [("content-type", "application/fhir+json"), ("if-none-exist", "identifier=|A1")];
    assert_eq!(
        app.request(Method::POST, "/fhir/Patient", &no_system, r#"{"resourceType":"Patient"}"#)
            .await
            .status,
        StatusCode::CREATED
    );
    let any_system =
        [("content-type", "application/fhir+json"), ("if-none-exist", "identifier=A1")];
    app.request(Method::POST, "/fhir/Patient", &any_system, r#"{"resourceType":"Patient"}"#)
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
}

async fn conditional_update(app: &TestApp) {
    let uri = "/fhir/Patient?identifier=http%3A%2F%2Fhospital.example%2Fmrn%7CB2";
    let created = app.put(uri, &patient("B2", "")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let updated = app.put(uri, &patient("B2", r#","active":true"#)).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["id"], id.as_str());
    assert_eq!(updated.header("etag"), Some("W/\"2\""));

    let wrong_id = app.put(uri, &format!(r#"{{"resourceType":"Patient","id":"not-{id}"}}"#)).await;
    wrong_id.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let matching_id =
        app.put(uri, &patient("B2", "").replacen('{', &format!(r#"{{"id":"{id}","#), 1)).await;
    assert_eq!(matching_id.status, StatusCode::OK);

    let json = ("content-type", "application/fhir+json");
    let stale =
        app.request(Method::PUT, uri, &[json, ("if-match", "W/\"1\"")], &patient("B2", "")).await;
    stale.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");

    app.create("Patient", &patient("B3", "")).await;
    app.create("Patient", &patient("B3", "")).await;
    app.put("/fhir/Patient?identifier=B3", &patient("B3", ""))
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
}

async fn conditional_delete(app: &TestApp) {
    let id = app.create("Patient", &patient("C3", "")).await;
    let none = app.delete("/fhir/Patient?identifier=nobody").await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
    let deleted = app.delete(&format!("/fhir/Patient?identifier={MRN}|C3")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/fhir/Patient/{id}")).await.status, StatusCode::GONE);
    // A deleted resource no longer matches, so a conditional create makes a new one.
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://hospital.example/mrn|C3"),
    ];
    assert_eq!(
        app.request(Method::POST, "/fhir/Patient", &headers, &patient("C3", "")).await.status,
        StatusCode::CREATED
    );

    app.create("Patient", &patient("C4", "")).await;
    app.create("Patient", &patient("C4", "")).await;
    app.delete("/fhir/Patient?identifier=C4")
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
    let by_id = app.delete(&format!("/fhir/Patient?_id={id}")).await;
    assert_eq!(by_id.status, StatusCode::NO_CONTENT);
}

async fn conditional_criteria_errors(app: &TestApp) {
    app.put("/fhir/Patient", &patient("D1", ""))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.put("/fhir/Patient?nickname=smith", &patient("D1", ""))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "not-supported");
    let headers =
        [("content-type", "application/fhir+json"), ("if-none-exist", "identifier=a|b|c")];
    app.request(Method::POST, "/fhir/Patient", &headers, &patient("D1", ""))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}
