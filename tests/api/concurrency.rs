//! Racing writers: no duplicate from identical conditional creates, no lost update.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;

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
    let racers =
        (0..RACERS).map(|_| app.request(Method::POST, "/fhir/ServiceRequest", &headers, body));
    let responses = futures_join_all(racers).await;
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
    let racers = bodies.iter().map(|body| {
        app.request(
            Method::PUT,
            &uri,
            &[("content-type", "application/fhir+json"), ("if-match", "W/\"1\"")],
            body,
        )
    });
    let responses = futures_join_all(racers).await;
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

/// Runs the futures concurrently on the multi-threaded test runtime.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let mut set = Vec::new();
    for future in futures {
        set.push(future);
    }
    let mut outputs = Vec::with_capacity(set.len());
    let joined = std::pin::pin!(join_all(set));
    outputs.extend(joined.await);
    outputs
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, result) in pinned.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(output) => *result = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    results.into_iter().map(|result| result.expect("every future completed")).collect()
}
