//! A request body must declare its media type: a write without `Content-Type` is refused with 415 and an
//! OperationOutcome, and writes nothing (an HTML form on another site can post a body with no JSON media type).
//! `application/x-www-form-urlencoded` is accepted only by `_search` (R4 http.html#search: the parameters of a
//! `POST [base]/[type]/_search` are sent as `application/x-www-form-urlencoded`).

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(bodies_without_content_type_are_refused, form_bodies_only_search);

const PATIENT: &str = r#"{"resourceType":"Patient","gender":"female"}"#;

async fn bodies_without_content_type_are_refused(app: &TestApp) {
    let id = app.create("Patient", PATIENT).await;
    let updated = format!(r#"{{"resourceType":"Patient","id":"{id}","gender":"male"}}"#);
    let cases = [
        (Method::POST, "/fhir/Patient".to_owned(), PATIENT.to_owned()),
        (Method::PUT, format!("/fhir/Patient/{id}"), updated.clone()),
        (Method::PUT, "/fhir/Patient?gender=female".to_owned(), updated),
        (Method::POST, "/fhir/Patient/$validate".to_owned(), PATIENT.to_owned()),
        (Method::POST, "/fhir/$validate".to_owned(), PATIENT.to_owned()),
        (Method::POST, format!("/fhir/Patient/{id}/$validate?mode=delete"), PATIENT.to_owned()),
    ];
    for (method, uri, body) in cases {
        let response = app.request(method.clone(), &uri, &[], &body).await;
        response.assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
        let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
        assert!(diagnostics.contains("no Content-Type"), "{method} {uri}: {diagnostics}");
    }
    // Nothing was written: one Patient, still at version 1 and still female.
    let bundle = app.search("Patient").await;
    assert_eq!(bundle["entry"].as_array().map_or(0, Vec::len), 1, "{bundle}");
    let current = app.get(&format!("/fhir/Patient/{id}")).await.json();
    assert_eq!(current["meta"]["versionId"], "1");
    assert_eq!(current["gender"], "female");
    // The same requests with the FHIR media type succeed.
    let created = app.post("/fhir/Patient", PATIENT).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
}

async fn form_bodies_only_search(app: &TestApp) {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    app.request(Method::POST, "/fhir/Patient", &form, "resourceType=Patient&gender=female")
        .await
        .assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    let id = app.create("Patient", PATIENT).await;
    app.request(Method::PUT, &format!("/fhir/Patient/{id}"), &form, "gender=male")
        .await
        .assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    let search = app.request(Method::POST, "/fhir/Patient/_search", &form, "gender=female").await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text());
    assert_eq!(search.json()["entry"].as_array().map_or(0, Vec::len), 1);
    // An empty body needs no Content-Type: a search by URL parameters alone.
    let bare = app.request(Method::POST, "/fhir/Patient/_search?gender=female", &[], "").await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.text());
    // A body without a Content-Type is refused, on type and system search alike.
    for path in ["/fhir/Patient/_search", "/fhir/_search"] {
        app.request(Method::POST, path, &[], "gender=female")
            .await
            .assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    }
}
