//! The cost budget of resource bodies (elements, contained resources, distinct profiles: 422
//! too-costly naming the limit), and health checks and reads that keep answering while heavy
//! validations run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cdr_api::ApiConfig;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, api_config, send_to};

backend_tests!(
    contained_resources_are_bounded,
    distinct_profiles_are_bounded,
    elements_are_bounded,
    validate_operation_is_bounded,
    health_and_reads_answer_during_heavy_validation
);

/// The test router with the server's default body limit (16 MiB) instead of the suite's 64 KiB.
fn large_body_router(app: &TestApp) -> Router {
    app.router_with(ApiConfig { max_body_bytes: 16 * 1024 * 1024, ..api_config() })
}

fn post(uri: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/fhir+json")
        .body(Body::from(body))
        .unwrap()
}

/// A Patient with `n` contained Organizations, each referenced (as `dom-3` requires).
fn patient_with_contained(n: usize) -> Value {
    let contained: Vec<Value> = (0..n)
        .map(
            |index| json!({"resourceType": "Organization", "id": format!("o{index}"), "name": "x"}),
        )
        .collect();
    let practitioners: Vec<Value> =
        (0..n).map(|index| json!({"reference": format!("#o{index}")})).collect();
    json!({"resourceType": "Patient", "contained": contained, "generalPractitioner": practitioners})
}

async fn contained_resources_are_bounded(app: &TestApp) {
    let within = app.post("/fhir/Patient", &patient_with_contained(100).to_string()).await;
    assert_eq!(within.status, StatusCode::CREATED, "{}", within.text());
    let over = app.post("/fhir/Patient", &patient_with_contained(101).to_string()).await;
    over.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "too-costly");
    assert!(over.text().contains("more than 100 contained resources"), "{}", over.text());
}

async fn distinct_profiles_are_bounded(app: &TestApp) {
    // The same profile named 2,000 times is one profile, validated once.
    let repeated = vec!["http://hl7.org/fhir/StructureDefinition/Patient"; 2_000];
    let body = json!({"resourceType": "Patient", "meta": {"profile": repeated}});
    let created = send_to(&large_body_router(app), post("/fhir/Patient", body.to_string())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    let distinct: Vec<String> =
        (0..21).map(|index| format!("http://example.org/StructureDefinition/p{index}")).collect();
    let body = json!({"resourceType": "Patient", "meta": {"profile": distinct}});
    let refused = app.post("/fhir/Patient", &body.to_string()).await;
    refused.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "too-costly");
    assert!(refused.text().contains("more than 20 distinct profiles"), "{}", refused.text());
}

async fn elements_are_bounded(app: &TestApp) {
    let given = vec!["a"; 250_001];
    let body = json!({"resourceType": "Patient", "name": [{"given": given}]});
    let refused = send_to(&large_body_router(app), post("/fhir/Patient", body.to_string())).await;
    refused.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "too-costly");
    assert!(refused.text().contains("more than 250000 elements"), "{}", refused.text());
}

async fn validate_operation_is_bounded(app: &TestApp) {
    let body = patient_with_contained(101).to_string();
    let refused = app.post("/fhir/Patient/$validate", &body).await;
    refused.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "too-costly");
}

/// A Bundle of `n` Patient entries: validating it costs far more than answering a health check.
fn heavy_bundle(n: usize) -> String {
    let entries: Vec<Value> = (0..n)
        .map(|index| {
            json!({
                "fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{index:012}"),
                "resource": {"resourceType": "Patient", "name": [{"family": format!("F{index}")}]}
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

/// Eight `$validate` calls of large Bundles run at once, more than the test runtime has workers. While
/// none of them has finished, `/livez` and a read must keep answering: validation runs on the blocking
/// pool, so the request workers stay free. (With validation on the workers, every worker is busy until
/// a validation ends and no health check is answered in the meantime.)
async fn health_and_reads_answer_during_heavy_validation(app: &TestApp) {
    let created = app.post("/fhir/Patient", r#"{"resourceType":"Patient"}"#).await;
    let location = created.header("location").unwrap().to_owned();
    let read_uri = location[location.find("/fhir/").unwrap()..].to_owned();
    let read_uri = read_uri[..read_uri.find("/_history").unwrap()].to_owned();

    const HEAVY: usize = 8;
    let finished = Arc::new(AtomicUsize::new(0));
    let body = heavy_bundle(3_000);
    let mut heavy = Vec::new();
    for _ in 0..HEAVY {
        let router = large_body_router(app);
        let (finished, body) = (finished.clone(), body.clone());
        heavy.push(tokio::spawn(async move {
            let response = send_to(&router, post("/fhir/$validate", body)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            response.status
        }));
    }

    let mut answered_while_all_heavy_ran = 0;
    while finished.load(Ordering::SeqCst) < HEAVY {
        let live = app.get("/livez").await;
        assert_eq!(live.status, StatusCode::OK);
        let read = app.get(&read_uri).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        if finished.load(Ordering::SeqCst) == 0 {
            answered_while_all_heavy_ran += 1;
        }
    }
    for task in heavy {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert!(
        answered_while_all_heavy_ran >= 20,
        "only {answered_while_all_heavy_ran} health checks and reads were answered before the first \
         heavy validation ended"
    );
}
