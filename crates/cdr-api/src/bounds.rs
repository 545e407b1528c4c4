//! Bounds on the work one request may cause: a cap on requests in flight (over it: 503 with
//! `Retry-After`), a deadline on the whole request (503), and a deadline between the frames of a request
//! body (408). Each refusal is an OperationOutcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::error::ApiError;

/// The `Retry-After` of a request refused because too many are in flight, in seconds.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 1;

/// The limits of [`bound`], shared by every request.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) request_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
}

/// Runs the request under the in-flight cap and both deadlines.
pub(crate) async fn bound(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    let Ok(_permit) = bounds.in_flight.try_acquire() else {
        return ApiError::Overloaded.into_response();
    };
    let body_timed_out = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&body_timed_out);
    let request = request.map(|body| {
        let body = TimeoutBody::new(bounds.body_read_timeout, body).map_err(move |error| {
            if error.is::<TimeoutError>() {
                flag.store(true, Ordering::Relaxed);
            }
            error
        });
        Body::new(body)
    });
    let Ok(response) = tokio::time::timeout(bounds.request_timeout, next.run(request)).await else {
        return ApiError::RequestTimeout(bounds.request_timeout).into_response();
    };
    if body_timed_out.load(Ordering::Relaxed) {
        return ApiError::BodyTimeout(bounds.body_read_timeout).into_response();
    }
    response
}
