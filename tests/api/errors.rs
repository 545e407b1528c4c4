//! Bad input gets a precise OperationOutcome with the right status, never a 5xx.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;
use cdr_store::Backend;

backend_tests!(
    malformed_bodies,
    wrong_addresses,
    formats_and_media_types,
    database_failure_is_a_500_without_details,
    requests_past_database_limits_are_client_errors,
    an_exhausted_pool_is_a_503_with_retry_after
);

async fn malformed_bodies(app: &TestApp) {
    let cases: [(&str, &str, Option<&str>); 9] = [
        ("", "structure", None),
        ("   ", "structure", None),
        (r#"{"resourceType":"#, "structure", None),
        ("[]", "structure", None),
        (r#"{"id":"x"}"#, "invalid", Some("resourceType")),
        (r#"{"resourceType":"Observation"}"#, "invalid", Some("resourceType")),
        (r#"{"resourceType":"NotAType"}"#, "invalid", Some("resourceType")),
        (r#"{"resourceType":"Patient","id":"has space"}"#, "invalid", Some("id")),
        (r#"{"resourceType":"Patient","meta":"x"}"#, "invalid", Some("meta")),
    ];
    for (body, code, expression) in cases {
        let response = app.post("/fhir/Patient", body).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, code);
        if let Some(expression) = expression {
            assert_eq!(response.json()["issue"][0]["expression"][0], expression, "{body}");
        }
    }
    let invalid_utf8 = Request::builder()
        .method(Method::POST)
        .uri("/fhir/Patient")
        .header("content-type", "application/fhir+json")
        .body(Body::from(vec![b'{', 0xff, 0xfe, b'}']))
        .unwrap();
    app.send(invalid_utf8).await.assert_outcome(StatusCode::BAD_REQUEST, "structure");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    app.post("/fhir/Patient", &deep).await.assert_outcome(StatusCode::BAD_REQUEST, "structure");
    let oversized =
        format!(r#"{{"resourceType":"Patient","text":{{"div":"{}"}}}}"#, "x".repeat(70 * 1024));
    app.post("/fhir/Patient", &oversized)
        .await
        .assert_outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-long");
}

async fn wrong_addresses(app: &TestApp) {
    app.get("/fhir/NotAType/1").await.assert_outcome(StatusCode::NOT_FOUND, "not-supported");
    app.get("/fhir/Observation/1").await.assert_outcome(StatusCode::NOT_FOUND, "not-supported");
    app.post("/fhir/NotAType", r#"{"resourceType":"NotAType"}"#)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-supported");
    app.get("/fhir/Patient/bad%20id").await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get(&format!("/fhir/Patient/{}", "a".repeat(65)))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get("/fhir/Patient/%FF").await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get("/nowhere").await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.request(Method::POST, "/fhir/Patient/1", &[], "{}")
        .await
        .assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
    app.request(Method::DELETE, "/fhir/metadata", &[], "")
        .await
        .assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
}

async fn formats_and_media_types(app: &TestApp) {
    let body = r#"{"resourceType":"Patient"}"#;
    // JSON declared as XML is not FHIR XML.
    let xml = app
        .request(Method::POST, "/fhir/Patient", &[("content-type", "application/fhir+xml")], body)
        .await;
    xml.assert_outcome(StatusCode::BAD_REQUEST, "structure");
    let form = app
        .request(
            Method::POST,
            "/fhir/Patient",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    form.assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
    let r4b_client = app
        .request(
            Method::POST,
            "/fhir/Patient",
            &[("content-type", "application/fhir+json; fhirVersion=4.3")],
            body,
        )
        .await;
    assert_eq!(r4b_client.status, StatusCode::CREATED);
    let plain_json = app
        .request(Method::POST, "/fhir/Patient", &[("content-type", "application/json")], body)
        .await;
    assert_eq!(plain_json.status, StatusCode::CREATED);

    app.request(Method::GET, "/fhir/metadata", &[("accept", "image/png")], "")
        .await
        .assert_outcome(StatusCode::NOT_ACCEPTABLE, "not-supported");
    app.get("/fhir/metadata?_format=html")
        .await
        .assert_outcome(StatusCode::NOT_ACCEPTABLE, "not-supported");
    for accept in [
        "application/fhir+json",
        "application/json",
        "*/*",
        "application/fhir+json;fhirVersion=4.0",
    ] {
        let response = app.request(Method::GET, "/fhir/metadata", &[("accept", accept)], "").await;
        assert_eq!(response.status, StatusCode::OK, "{accept}");
        assert_eq!(response.header("content-type"), Some("application/fhir+json; charset=utf-8"));
    }
    for format in ["json", "application/fhir%2Bjson", "application/json"] {
        assert_eq!(
            app.get(&format!("/fhir/metadata?_format={format}")).await.status,
            StatusCode::OK,
            "{format}"
        );
    }
}

async fn database_failure_is_a_500_without_details(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    app.close_database().await;
    let response = app.get(&format!("/fhir/Patient/{id}")).await;
    response.assert_outcome(StatusCode::INTERNAL_SERVER_ERROR, "exception");
    let request_id = response.header("x-request-id").unwrap().to_owned();
    let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
    assert_eq!(diagnostics, format!("internal server error (request id {request_id})"));
    assert_eq!(app.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn requests_past_database_limits_are_client_errors(app: &TestApp) {
    app.create("Patient", r#"{"resourceType":"Patient","name":[{"family":"Chalmers"}]}"#).await;
    let many_clauses = vec!["name=chalmers"; 1_100].join("&");
    let many_sort_keys = vec!["birthdate"; 2_100].join(",");
    for query in [many_clauses.clone(), format!("name=chalmers&_sort={many_sort_keys}")] {
        // As a form, like a client whose query would make a URL too long.
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let response = app.request(Method::POST, "/fhir/Patient/_search", &form, &query).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, "too-costly");
        let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
        assert!(diagnostics.contains("limit"), "{diagnostics}");
    }
    // Conditional criteria compile the same way.
    let headers = [("content-type", "application/fhir+json"), ("if-none-exist", &many_clauses)];
    app.request(Method::POST, "/fhir/Patient", &headers, r#"{"resourceType":"Patient"}"#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "too-costly");
    // The server still answers afterwards.
    assert_eq!(app.search("Patient?name=chalmers").await["entry"].as_array().unwrap().len(), 1);
}

async fn an_exhausted_pool_is_a_503_with_retry_after(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    // Hold what a request needs: on PostgreSQL every pooled connection (the tests' pool has 8), on SQLite
    // the one writer's turn.
    let holders = match app.store().backend() {
        Backend::Postgres => 8,
        Backend::Sqlite => 1,
    };
    let mut held = Vec::new();
    for _ in 0..holders {
        held.push(app.store().begin().await.unwrap());
    }
    let started = std::time::Instant::now();
    let response = app
        .put(
            &format!("/fhir/Patient/{id}"),
            &format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
        )
        .await;
    response.assert_outcome(StatusCode::SERVICE_UNAVAILABLE, "transient");
    assert_eq!(response.header("retry-after"), Some("3"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    drop(held);
    assert_eq!(app.get(&format!("/fhir/Patient/{id}")).await.status, StatusCode::OK);
}
