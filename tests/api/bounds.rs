//! The bounds on a request: the cap on requests in flight (503 with `Retry-After`), the request
//! deadline (503) and the body-read deadline (408), each answered with an OperationOutcome; and page
//! sizes configured as 0, which page by one instead of panicking.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use cdr_api::ApiConfig;
use http_body::Frame;
use tokio::sync::Notify;

use crate::backend_tests;
use crate::helpers::{TestApp, api_config, send_to};

/// A request body whose client never sends a byte of it; `read` is told when the server first asks for it.
struct Stalled {
    read: Arc<Notify>,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.read.notify_one();
        Poll::Pending
    }
}

fn stalled_create() -> Request<Body> {
    stalled_create_telling(Arc::new(Notify::new()))
}

fn stalled_create_telling(read: Arc<Notify>) -> Request<Body> {
    Request::post("/fhir/Patient")
        .header("content-type", "application/fhir+json")
        .body(Body::new(Stalled { read }))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().method(Method::GET).uri(uri).body(Body::empty()).unwrap()
}

async fn requests_over_the_in_flight_cap_get_503(app: &TestApp) {
    let router: Router = app.router_with(ApiConfig { max_in_flight_requests: 1, ..api_config() });
    let read = Arc::new(Notify::new());
    let holder = {
        let (router, read) = (router.clone(), read.clone());
        tokio::spawn(async move { send_to(&router, stalled_create_telling(read)).await })
    };
    // The server reads a body only once the request holds its permit.
    read.notified().await;
    assert!(!holder.is_finished(), "the stalled request is still in flight");
    let refused = send_to(&router, get("/fhir/metadata")).await;
    refused.assert_outcome(StatusCode::SERVICE_UNAVAILABLE, "transient");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Health checks are not FHIR requests and are not capped.
    assert_eq!(send_to(&router, get("/livez")).await.status, StatusCode::OK);
    holder.abort();
    assert!(holder.await.unwrap_err().is_cancelled());
    assert_eq!(send_to(&router, get("/fhir/metadata")).await.status, StatusCode::OK);
}

async fn a_stalled_body_gets_408(app: &TestApp) {
    let router = app.router_with(ApiConfig {
        body_read_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_secs(60),
        ..api_config()
    });
    let started = std::time::Instant::now();
    let response = send_to(&router, stalled_create()).await;
    response.assert_outcome(StatusCode::REQUEST_TIMEOUT, "timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    let bundle = app.search("Patient").await;
    assert!(bundle["entry"].as_array().is_none_or(Vec::is_empty), "{bundle}");
}

async fn a_request_over_its_deadline_gets_503(app: &TestApp) {
    let router = app.router_with(ApiConfig {
        body_read_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_millis(200),
        ..api_config()
    });
    let started = std::time::Instant::now();
    let response = send_to(&router, stalled_create()).await;
    response.assert_outcome(StatusCode::SERVICE_UNAVAILABLE, "timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

backend_tests!(
    requests_over_the_in_flight_cap_get_503,
    a_stalled_body_gets_408,
    a_request_over_its_deadline_gets_503,
);

mod zero_page_sizes {
    use cdr_interactions::{EngineConfig, PageLimits};

    use crate::backend_tests;
    use crate::helpers::{TestApp, engine_config};

    fn zero_page_sizes() -> EngineConfig {
        let limits = PageLimits { default_page_size: 0, max_page_size: 0, ..PageLimits::default() };
        EngineConfig { limits, ..engine_config() }
    }

    async fn searches_page_by_one(app: &TestApp) {
        for family in ["Tremblay", "Roy"] {
            app.create(
                "Patient",
                &format!(r#"{{"resourceType":"Patient","name":[{{"family":"{family}"}}]}}"#),
            )
            .await;
        }
        for (query, expected) in [("Patient", 1), ("Patient?_count=10", 1), ("Patient?_count=0", 0)]
        {
            let bundle = app.search(query).await;
            let entries = bundle["entry"].as_array().map_or(0, Vec::len);
            assert_eq!(entries, expected, "{query}: {bundle}");
        }
    }

    backend_tests!(with super::zero_page_sizes(); searches_page_by_one);
}
