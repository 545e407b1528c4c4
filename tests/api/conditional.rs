//! Conditional create, update and delete keyed on business identifiers.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    conditional_create,
    conditional_update,
    conditional_delete,
    conditional_criteria_errors,
    conditional_update_without_a_match_never_overwrites,
    criteria_longer_than_the_index_are_refused
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

/// R5 3.1.0.4.3: with no match and an id in the body, an existing resource of that id is 409 Conflict, a new
/// id is update-as-create (405 when it is off); no match and no id creates.
async fn conditional_update_without_a_match_never_overwrites(app: &TestApp) {
    let existing = app.create("Patient", &patient("E1", "")).await;
    let uri = format!("/fhir/Patient?identifier={MRN}%7CE2");
    let body = patient("E2", "").replacen('{', &format!(r#"{{"id":"{existing}","#), 1);
    app.put(&uri, &body).await.assert_outcome(StatusCode::CONFLICT, "conflict");
    let unchanged = app.get(&format!("/fhir/Patient/{existing}")).await;
    assert_eq!(unchanged.header("etag"), Some("W/\"1\""));
    assert_eq!(unchanged.json()["identifier"][0]["value"], "E1");

    // A deleted resource is still that resource: not overwritten either.
    app.delete(&format!("/fhir/Patient/{existing}")).await;
    app.put(&uri, &body).await.assert_outcome(StatusCode::CONFLICT, "conflict");
    assert_eq!(app.get(&format!("/fhir/Patient/{existing}")).await.status, StatusCode::GONE);

    let new_id = patient("E2", "").replacen('{', r#"{"id":"chosen-e2","#, 1);
    app.put(&uri, &new_id).await.assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
    assert_eq!(app.get("/fhir/Patient/chosen-e2").await.status, StatusCode::NOT_FOUND);

    let created = app.put(&uri, &patient("E2", "")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_ne!(created.json()["id"], existing.as_str());
}

/// The index compares the first 600 bytes of a value: longer criteria are refused rather than matching
/// nothing (which made every conditional create a duplicate); a value that fits still de-duplicates.
async fn criteria_longer_than_the_index_are_refused(app: &TestApp) {
    let create = |value: String| async move {
        let criteria = format!("identifier={MRN}|{value}");
        let headers = [("content-type", "application/fhir+json"), ("if-none-exist", &criteria)];
        app.request(Method::POST, "/fhir/Patient", &headers, &patient(&value, "")).await
    };
    let fits = "f".repeat(599);
    let first = create(fits.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let again = create(fits.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["id"], first.json()["id"]);

    let too_long = "t".repeat(601);
    for _ in 0..2 {
        let refused = create(too_long.clone()).await;
        refused.assert_outcome(StatusCode::BAD_REQUEST, "too-long");
        assert!(refused.text().contains("600"), "{}", refused.text());
    }
    let stored = app.search(&format!("Patient?identifier={MRN}|{}", &too_long[..600])).await;
    assert!(stored.get("entry").is_none(), "nothing was created: {stored}");

    let uri = format!("/fhir/Patient?identifier={MRN}%7C{too_long}");
    app.put(&uri, &patient(&too_long, ""))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "too-long");
    app.delete(&uri).await.assert_outcome(StatusCode::BAD_REQUEST, "too-long");
}

mod update_as_create_on {
    use axum::http::StatusCode;

    use super::{MRN, patient};
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { update_create: true, ..crate::helpers::engine_config() }; conditional_update_without_a_match_creates_at_a_new_id);

    /// With update-as-create on, no match and a new id in the body creates the resource at that id; an
    /// existing id is still refused.
    async fn conditional_update_without_a_match_creates_at_a_new_id(app: &TestApp) {
        let uri = format!("/fhir/Patient?identifier={MRN}%7CF1");
        let body = patient("F1", "").replacen('{', r#"{"id":"chosen-f1","#, 1);
        let created = app.put(&uri, &body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        assert_eq!(created.json()["id"], "chosen-f1");
        assert_eq!(app.get("/fhir/Patient/chosen-f1").await.status, StatusCode::OK);

        let existing = app.create("Patient", &patient("F2", "")).await;
        let other = format!("/fhir/Patient?identifier={MRN}%7CF3");
        let body = patient("F3", "").replacen('{', &format!(r#"{{"id":"{existing}","#), 1);
        app.put(&other, &body).await.assert_outcome(StatusCode::CONFLICT, "conflict");
    }
}
