//! The HTTP features around the FHIR API: CORS for browser clients, response compression negotiated by
//! `Accept-Encoding`, compressed request bodies, whose decompressed size the body limit bounds, and the
//! Prometheus metrics at `/metrics`.

use std::io::{Read, Write};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cdr_api::{ApiConfig, CorsOrigins};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse, api_config, build_request, send_to};

const VIEWER: &str = "https://viewer.example.org";

fn cors_router(app: &TestApp) -> Router {
    let origins: CorsOrigins = format!("{VIEWER}, http://localhost:3000").parse().unwrap();
    app.router_with(ApiConfig { cors_allowed_origins: Some(origins), ..api_config() })
}

fn preflight(origin: &str, method: &str, headers: &str) -> Request<Body> {
    build_request(
        Method::OPTIONS,
        "/fhir/Patient",
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", headers),
        ],
        "",
    )
}

fn header_list(response: &TestResponse, name: &str) -> Vec<String> {
    response
        .header(name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

async fn cors_allows_the_configured_origins_only(app: &TestApp) {
    let router = cors_router(app);
    let body = r#"{"resourceType":"Patient"}"#;
    let created = send_to(
        &router,
        build_request(
            Method::POST,
            "/fhir/Patient",
            &[("origin", VIEWER), ("content-type", "application/fhir+json")],
            body,
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("access-control-allow-origin"), Some(VIEWER));
    let exposed = header_list(&created, "access-control-expose-headers");
    for name in
        ["location", "etag", "content-location", "last-modified", "x-progress", "x-request-id"]
    {
        assert!(exposed.contains(&name.to_owned()), "{name} is exposed: {exposed:?}");
    }
    assert!(header_list(&created, "vary").contains(&"origin".to_owned()));
    // Errors carry the CORS headers too, so a script can read the OperationOutcome.
    let missing = send_to(
        &router,
        build_request(Method::GET, "/fhir/Patient/nope", &[("origin", VIEWER)], ""),
    )
    .await;
    missing.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(missing.header("access-control-allow-origin"), Some(VIEWER));

    let other = send_to(
        &router,
        build_request(Method::GET, "/fhir/metadata", &[("origin", "https://evil.example")], ""),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK, "the server answers; the browser withholds it");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

async fn cors_preflight_is_answered_204_before_the_fhir_routes(app: &TestApp) {
    let router = cors_router(app);
    let answer =
        send_to(&router, preflight(VIEWER, "PUT", "content-type, authorization, if-match, prefer"))
            .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("access-control-allow-origin"), Some(VIEWER));
    let methods = header_list(&answer, "access-control-allow-methods");
    for method in ["get", "head", "post", "put", "patch", "delete"] {
        assert!(methods.contains(&method.to_owned()), "{method}: {methods:?}");
    }
    let headers = header_list(&answer, "access-control-allow-headers");
    for name in [
        "content-type",
        "authorization",
        "if-match",
        "if-none-match",
        "if-none-exist",
        "if-modified-since",
        "prefer",
        "accept",
    ] {
        assert!(headers.contains(&name.to_owned()), "{name}: {headers:?}");
    }
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    let refused = send_to(&router, preflight("https://evil.example", "DELETE", "")).await;
    assert_eq!(refused.status, StatusCode::NO_CONTENT);
    assert_eq!(refused.header("access-control-allow-origin"), None);

    // Without configured origins there is no CORS at all: OPTIONS is not a FHIR interaction.
    let plain = app.send(preflight(VIEWER, "PUT", "content-type")).await;
    plain.assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
    assert_eq!(plain.header("access-control-allow-origin"), None);
    let read =
        app.send(build_request(Method::GET, "/fhir/metadata", &[("origin", VIEWER)], "")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("access-control-allow-origin"), None);
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut text).unwrap();
    text
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut text).unwrap();
    text
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut compressed, 4096, 9, 22);
        writer.write_all(bytes).unwrap();
    }
    compressed
}

fn compressed_post(uri: &str, coding: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/fhir+json")
        .header("content-encoding", coding)
        .body(Body::from(body))
        .unwrap()
}

async fn responses_are_compressed_as_accept_encoding_asks(app: &TestApp) {
    let plain = app.get("/fhir/metadata").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("content-encoding"), None);
    let expected = plain.json();

    let gzipped =
        app.request(Method::GET, "/fhir/metadata", &[("accept-encoding", "gzip")], "").await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert!(header_list(&gzipped, "vary").contains(&"accept-encoding".to_owned()));
    assert!(gzipped.body.len() < plain.body.len() / 2);
    let mut unzipped: serde_json::Value = serde_json::from_slice(&gunzip(&gzipped.body)).unwrap();
    unzipped["date"] = expected["date"].clone();
    assert_eq!(unzipped, expected);

    let br = app
        .request(Method::GET, "/fhir/metadata", &[("accept-encoding", "gzip;q=0.5, br")], "")
        .await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut decoded: serde_json::Value = serde_json::from_slice(&unbrotli(&br.body)).unwrap();
    decoded["date"] = expected["date"].clone();
    assert_eq!(decoded, expected);

    // Under the minimum size (1 KiB by default), a response is sent as it is.
    let id = app.create("Patient", r#"{"resourceType":"Patient","active":true}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    let small = app.request(Method::GET, &uri, &[("accept-encoding", "gzip, br")], "").await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.json()["id"], id.as_str());
    assert_eq!(small.header("etag"), Some("W/\"1\""));
    // A conditional read still answers 304, with no body to compress.
    let cached = app
        .request(
            Method::GET,
            &uri,
            &[("accept-encoding", "gzip"), ("if-none-match", "W/\"1\"")],
            "",
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("content-encoding"), None);
}

async fn compressed_request_bodies_are_decompressed(app: &TestApp) {
    let patient = br#"{"resourceType":"Patient","name":[{"family":"Gzipped"}]}"#;
    let created = app.send(compressed_post("/fhir/Patient", "gzip", gzip(patient))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["name"][0]["family"], "Gzipped");
    let created = app.send(compressed_post("/fhir/Patient", "BR", brotli(patient))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let bundle = app.search("Patient?family=Gzipped").await;
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(2), "{bundle}");

    // An asynchronous submission reads its compressed Bundle as a synchronous one does.
    let transaction = br#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","name":[{"family":"Queued"}]}}]}"#;
    let mut request = compressed_post("/fhir", "gzip", gzip(transaction));
    request.headers_mut().insert("prefer", "respond-async".parse().unwrap());
    let accepted = app.send(request).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    assert!(accepted.header("content-location").unwrap().contains("/fhir/_async/"));
}

async fn a_body_that_expands_past_the_limit_gets_413(app: &TestApp) {
    // 64 KiB is the test limit; a megabyte of spaces inside a Patient gzips to about a kilobyte.
    let mut bomb = br#"{"resourceType":"Patient","#.to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    bomb.extend(br#""active":true}"#);
    let small = gzip(&bomb);
    assert!(small.len() < 64 * 1024, "{} bytes compressed", small.len());
    let response = app.send(compressed_post("/fhir/Patient", "gzip", small)).await;
    response.assert_outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-long");
    let response = app.send(compressed_post("/fhir/Patient", "br", brotli(&bomb))).await;
    response.assert_outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-long");
    let bundle = app.search("Patient").await;
    assert!(bundle["entry"].as_array().is_none_or(Vec::is_empty), "{bundle}");
}

async fn unknown_or_corrupt_content_encodings_are_refused(app: &TestApp) {
    let patient = br#"{"resourceType":"Patient"}"#.to_vec();
    for coding in ["deflate", "compress", "gzip, br"] {
        let response = app.send(compressed_post("/fhir/Patient", coding, patient.clone())).await;
        response.assert_outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported");
        assert!(response.json()["issue"][0]["diagnostics"].as_str().unwrap().contains(coding));
    }
    let corrupt = app.send(compressed_post("/fhir/Patient", "gzip", patient)).await;
    corrupt.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

backend_tests!(
    cors_allows_the_configured_origins_only,
    cors_preflight_is_answered_204_before_the_fhir_routes,
    responses_are_compressed_as_accept_encoding_asks,
    compressed_request_bodies_are_decompressed,
    a_body_that_expands_past_the_limit_gets_413,
    unknown_or_corrupt_content_encodings_are_refused,
    metrics_count_requests_by_interaction_type_and_status,
);

/// The samples of a Prometheus text exposition, by `name{labels}` as written.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn requests(interaction: &str, resource_type: &str, status: &str) -> String {
    format!(
        "cdr_http_requests_total{{interaction=\"{interaction}\",type=\"{resource_type}\",status=\"{status}\"}}"
    )
}

async fn metrics_count_requests_by_interaction_type_and_status(app: &TestApp) {
    let router = cors_router(app);
    let post = |uri: &str, body: &str| {
        build_request(Method::POST, uri, &[("content-type", "application/fhir+json")], body)
    };
    let created = send_to(&router, post("/fhir/Patient", r#"{"resourceType":"Patient"}"#)).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    for uri in [
        format!("/fhir/Patient/{id}"),
        format!("/fhir/Patient/{id}"),
        format!("/fhir/Patient/{id}/_history/1"),
        format!("/fhir/Patient/{id}/_history"),
        "/fhir/Patient?_id=x".to_owned(),
        "/fhir/Patient/missing".to_owned(),
        "/fhir/Unserved/1".to_owned(),
        "/fhir/metadata".to_owned(),
    ] {
        send_to(&router, build_request(Method::GET, &uri, &[], "")).await;
    }
    let entry =
        r#"{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}"#;
    for kind in ["transaction", "batch"] {
        let bundle = format!(r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{entry}]}}"#);
        assert_eq!(send_to(&router, post("/fhir", &bundle)).await.status, StatusCode::OK);
    }
    let mut queued =
        post("/fhir", &format!(r#"{{"resourceType":"Bundle","type":"batch","entry":[{entry}]}}"#));
    queued.headers_mut().insert("prefer", "respond-async".parse().unwrap());
    assert_eq!(send_to(&router, queued).await.status, StatusCode::ACCEPTED);
    send_to(&router, post("/fhir/Patient/$validate", r#"{"resourceType":"Patient"}"#)).await;
    send_to(&router, preflight(VIEWER, "GET", "")).await;
    // One subscription switched off, one active with an event its receiver has not acknowledged.
    for status in ["off", "requested"] {
        let subscription = format!(
            r#"{{"resourceType":"Subscription","status":"{status}","reason":"x","criteria":"Organization?name=x","channel":{{"type":"rest-hook","endpoint":"http://127.0.0.1:9/hook"}}}}"#
        );
        assert_eq!(
            send_to(&router, post("/fhir/Subscription", &subscription)).await.status,
            StatusCode::CREATED
        );
    }
    let organization = r#"{"resourceType":"Organization","name":"x"}"#;
    assert_eq!(
        send_to(&router, post("/fhir/Organization", organization)).await.status,
        StatusCode::CREATED
    );

    let scraped = send_to(&router, build_request(Method::GET, "/metrics", &[], "")).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert_eq!(scraped.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = scraped.text();
    assert!(text.contains("# TYPE cdr_http_requests_total counter\n"), "{text}");
    assert!(text.contains("# TYPE cdr_http_request_duration_seconds histogram\n"), "{text}");
    let samples = samples(&text);
    let expected = [
        (requests("create", "Patient", "2xx"), 1.0),
        (requests("create", "Subscription", "2xx"), 2.0),
        (requests("create", "Organization", "2xx"), 1.0),
        (requests("read", "Patient", "2xx"), 2.0),
        (requests("read", "Patient", "4xx"), 1.0),
        (requests("read", "other", "4xx"), 1.0),
        (requests("vread", "Patient", "2xx"), 1.0),
        (requests("history", "Patient", "2xx"), 1.0),
        (requests("search-type", "Patient", "2xx"), 1.0),
        (requests("capabilities", "system", "2xx"), 1.0),
        (requests("transaction", "system", "2xx"), 1.0),
        (requests("batch", "system", "2xx"), 1.0),
        (requests("bundle", "system", "2xx"), 1.0),
        (requests("operation", "Patient", "2xx"), 1.0),
        ("cdr_async_jobs{state=\"queued\"}".to_owned(), 1.0),
        ("cdr_async_jobs{state=\"running\"}".to_owned(), 0.0),
        ("cdr_subscriptions{state=\"active\"}".to_owned(), 1.0),
        ("cdr_subscriptions{state=\"error\"}".to_owned(), 0.0),
        ("cdr_subscriptions{state=\"off\"}".to_owned(), 1.0),
        ("cdr_subscription_events_undelivered".to_owned(), 1.0),
        (
            "cdr_http_request_duration_seconds_count{interaction=\"read\",type=\"Patient\",status=\"2xx\"}"
                .to_owned(),
            2.0,
        ),
        (
            "cdr_http_request_duration_seconds_bucket{interaction=\"read\",type=\"Patient\",status=\"2xx\",le=\"+Inf\"}"
                .to_owned(),
            2.0,
        ),
    ];
    for (series, value) in &expected {
        assert_eq!(samples.get(series), Some(value), "{series} in\n{text}");
    }
    let request_series = samples.keys().filter(|key| key.starts_with("cdr_http_requests_total"));
    assert_eq!(request_series.count(), expected.len() - 8, "no other series (no OPTIONS): {text}");
    // The created Patients (one alone, one per Bundle; the queued one is not run), the $validate, and the two
    // Subscriptions and the Organization (validation times are the engine's, whatever the router).
    assert_eq!(samples.get("cdr_validation_duration_seconds_count"), Some(&7.0), "{text}");
    let backend = if app.sqlite_folder().is_some() { "sqlite" } else { "postgres" };
    let size = samples[&format!("cdr_db_pool_connections{{backend=\"{backend}\"}}")];
    let idle = samples[&format!("cdr_db_pool_idle_connections{{backend=\"{backend}\"}}")];
    let max = samples[&format!("cdr_db_pool_max_connections{{backend=\"{backend}\"}}")];
    assert!(size >= 1.0 && idle <= size && size <= max, "{text}");

    let off = app.router_with(ApiConfig { metrics: false, ..api_config() });
    let absent = send_to(&off, build_request(Method::GET, "/metrics", &[], "")).await;
    absent.assert_outcome(StatusCode::NOT_FOUND, "not-found");
}
