//! Racing writers, each request from a task of its own: no duplicate from identical conditional creates,
//! no lost update.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::{TestApp, build_request};

backend_tests!(
    identical_conditional_creates_make_one_resource,
    racing_updates_with_the_same_if_match
);

const RACERS: usize = 12;

async fn identical_conditional_creates_make_one_resource(app: &TestApp) {
    let body = r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/p"},"identifier":[{"system":"http://hospital.example/acsn","value":"ACC-77"}]}"#;
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://hospital.example/acsn|ACC-77"),
    ];
    let racers = (0..RACERS)
        .map(|_| build_request(Method::POST, "/fhir/ServiceRequest", &headers, body))
        .collect();
    let responses = app.race(racers).await;
    let created =
        responses.iter().filter(|response| response.status == StatusCode::CREATED).count();
    let existing = responses.iter().filter(|response| response.status == StatusCode::OK).count();
    assert_eq!(
        (created, existing),
        (1, RACERS - 1),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<String> = responses
        .iter()
        .map(|response| response.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let history = app.get("/fhir/ServiceRequest/_history").await.json();
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
}

async fn racing_updates_with_the_same_if_match(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    let bodies: Vec<String> =
        (0..RACERS).map(|index| format!(r#"{{"resourceType":"Patient","id":"{id}","gender":"other","birthDate":"19{index:02}"}}"#)).collect();
    let racers = bodies
        .iter()
        .map(|body| {
            build_request(
                Method::PUT,
                &uri,
                &[("content-type", "application/fhir+json"), ("if-match", "W/\"1\"")],
                body,
            )
        })
        .collect();
    let responses = app.race(racers).await;
    let winners = responses.iter().filter(|response| response.status == StatusCode::OK).count();
    let refused = responses
        .iter()
        .filter(|response| {
            matches!(response.status, StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT)
        })
        .count();
    assert_eq!((winners, refused), (1, RACERS - 1));
    let current = app.get(&uri).await;
    assert_eq!(current.header("etag"), Some("W/\"2\""));
}
