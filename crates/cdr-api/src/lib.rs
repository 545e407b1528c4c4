//! The FHIR HTTP surface: an axum [`Router`] built by [`app`].
//!
//! Architecture Invariant: this is the only crate that knows HTTP status codes and headers. Handlers are
//! thin: extract, call `cdr-interactions`, convert. Every error becomes an OperationOutcome through the
//! one table in `error.rs`; internal causes are logged with the request id, never sent.

mod audit;
mod auth;
mod bounds;
mod bundle;
mod caller;
mod cors;
mod docs;
mod encoding;
mod error;
mod extract;
mod format;
mod health;
mod history;
mod jobs;
mod links;
mod metadata;
mod metrics;
mod middleware;
mod openapi;
mod patch;
mod resource;
mod respond;
mod routes;
mod search;
mod subscriptions;
mod validate;
mod viewer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Method, Uri};
use axum::response::{IntoResponse, Response};
use cdr_interactions::Engine;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::routes::Mount;

pub use crate::audit::AuditConfig;
pub use crate::auth::{
    AccessPolicy, ClientConfig, EligibleQualification, IssuerConfig, JwksSource, ServerKey,
    SmartConfig,
};
pub use crate::caller::{Caller, Refusal};
pub use crate::cors::{CorsOriginError, CorsOrigins};
pub use crate::error::{ApiError, error_chain, interaction_outcome};
pub use crate::jobs::{AsyncConfig, JobWorker};
pub use crate::links::{Host, IpCidr, LinkConfig, PublicBaseUrl};
pub use crate::respond::UNCHANGED;
pub use crate::subscriptions::{DeliveryConfig, SubscriptionDispatcher};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How the base URL of links is decided: a configured one, or the checked `Host` (see [`LinkConfig`]).
    pub links: LinkConfig,
    /// Most FHIR requests handled at once; more get 503 with `Retry-After`.
    pub max_in_flight_requests: usize,
    /// Longest a FHIR request may take, body included; longer ones get 503.
    pub request_timeout: Duration,
    /// Longest wait for the next part of a request body; longer ones get 408.
    pub body_read_timeout: Duration,
    /// Asynchronous Bundle submissions (`Prefer: respond-async`).
    pub async_jobs: AsyncConfig,
    /// `--auth smart`: bearer tokens, scopes and the token endpoint; `None` serves everyone (`--auth none`).
    pub auth: Option<SmartConfig>,
    /// The origins allowed by CORS; `None`: no CORS headers at all.
    pub cors_allowed_origins: Option<CorsOrigins>,
    /// Smallest response body compressed (gzip or br, by `Accept-Encoding`), in bytes.
    pub compression_min_bytes: u16,
    /// Whether `GET /metrics` serves the Prometheus metrics (the requests are counted either way).
    pub metrics: bool,
    /// How Subscription notifications are delivered.
    pub subscriptions: DeliveryConfig,
    /// `--audit on`: an AuditEvent for every FHIR and token request (`audit.rs`); `None`: no trail.
    pub audit: Option<AuditConfig>,
}

impl Default for ApiConfig {
    /// 16 MiB bodies, links from the `Host` header, 256 requests in flight, 60 s per request and 30 s
    /// between body parts, the [`AsyncConfig`] defaults, no authorization, no CORS, compression from 1 KiB,
    /// `/metrics` served, the [`DeliveryConfig`] defaults, and no audit trail (the server's `--audit` turns it
    /// on by default).
    fn default() -> ApiConfig {
        ApiConfig {
            max_body_bytes: 16 * 1024 * 1024,
            links: LinkConfig::default(),
            max_in_flight_requests: 256,
            request_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            async_jobs: AsyncConfig::default(),
            auth: None,
            cors_allowed_origins: None,
            compression_min_bytes: 1024,
            metrics: true,
            subscriptions: DeliveryConfig::default(),
            audit: None,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    engine: Engine,
    config: Arc<ApiConfig>,
    /// Wakes this application's [`JobWorker`]s when a job is queued.
    wake: Arc<jobs::Wake>,
    /// The resource server and token endpoint under `--auth smart`.
    auth: Option<Arc<auth::Auth>>,
    /// The request counts and times of `/metrics`.
    metrics: Arc<metrics::Metrics>,
}

impl AppState {
    #[must_use]
    pub fn new(engine: Engine, config: ApiConfig) -> AppState {
        let auth = config.auth.clone().map(|smart| Arc::new(auth::Auth::new(smart)));
        AppState {
            engine,
            config: Arc::new(config),
            wake: Arc::default(),
            auth,
            metrics: Arc::default(),
        }
    }
}

/// The whole application: FHIR routes under `/fhir` (`/fhir/` is `/fhir`), health checks at `/livez` and
/// `/readyz`, the Prometheus metrics at `/metrics`, the OpenAPI document at `/openapi.json` and its page at
/// `/docs`, the imaging record viewer at `/` (with `/viewer.js` and `/viewer.css`), and under `--auth smart` the token endpoint `/auth/token` and the server's keys at `/auth/jwks`;
/// every route is one of `routes::ROUTES` but the slashed base, which serves two of `/fhir`'s.
///
/// The layers, outside in: request id, trace span, CORS (when configured; preflights stop there),
/// response compression, the format of FHIR responses (XML when asked for), internal-error logging, the `Host` check, panic catching; on `/fhir` then the
/// request metrics, the in-flight cap and deadlines, the check of `Content-Encoding`, request
/// decompression (so the body limit counts decompressed bytes), content negotiation and, under `--auth
/// smart`, authorization.
pub fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static(middleware::REQUEST_ID);
    let bounds = bounds::Bounds {
        in_flight: Arc::new(tokio::sync::Semaphore::new(state.config.max_in_flight_requests)),
        request_timeout: state.config.request_timeout,
        body_read_timeout: state.config.body_read_timeout,
    };
    let fhir = routes::router(Mount::Fhir);
    // `[base]/` is `[base]` too, as HAPI has it: some clients (fhir-kit-client) post every transaction
    // and batch there. A nested router's `/` is its prefix alone, so the slashed base is a route of its own.
    let slashed_base = Router::new()
        .route("/fhir/", axum::routing::get(search::system_search).post(bundle::bundle));
    let metrics = if state.config.metrics { routes::router(Mount::Metrics) } else { Router::new() };
    let cors = state.config.cors_allowed_origins.as_ref().map(|origins| {
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(cors::preflight_no_content))
            .layer(cors::layer(origins))
    });
    Router::new()
        .nest("/fhir", fhir_layers(fhir, &state, bounds.clone()))
        .merge(
            fhir_layers(slashed_base, &state, bounds)
                .layer(axum::middleware::map_request(strip_slashed_base)),
        )
        .merge(routes::router(Mount::Root))
        .merge(
            routes::router(Mount::Auth)
                .layer(axum::middleware::from_fn_with_state(state.clone(), audit::record)),
        )
        .merge(metrics)
        .fallback(no_route)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(make_span))
                .layer(PropagateRequestIdLayer::new(request_id))
                .option_layer(cors)
                .map_response(IntoResponse::into_response)
                .layer(encoding::compression(state.config.compression_min_bytes))
                .layer(axum::middleware::from_fn(format::respond_in_format))
                .layer(axum::middleware::from_fn(middleware::log_internal_errors))
                .layer(axum::middleware::from_fn(links::check_host))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
}

/// The layers of every FHIR route, inside out: authorization, content negotiation, request decompression,
/// the check of `Content-Encoding`, the audit trail, the in-flight cap and deadlines, and the request metrics.
fn fhir_layers(
    routes: Router<AppState>,
    state: &AppState,
    bounds: bounds::Bounds,
) -> Router<AppState> {
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize))
        .layer(axum::middleware::from_fn(middleware::negotiate))
        .layer(encoding::decompression())
        .layer(axum::middleware::from_fn(encoding::refuse_unknown))
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::record))
        .layer(axum::middleware::from_fn_with_state(bounds, bounds::bound))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
}

/// `/fhir/?…` as nesting would hand it on, `/?…`: the layers read paths below the base.
async fn strip_slashed_base(mut request: axum::extract::Request) -> axum::extract::Request {
    let below = match request.uri().query() {
        Some(query) => format!("/?{query}"),
        None => "/".to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = below.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

fn make_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id =
        request.headers().get(middleware::REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or("");
    let query = request.uri().query().map(middleware::redacted_query).unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        query,
        request_id
    )
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} {}", uri.path()))
}

#[allow(clippy::needless_pass_by_value, reason = "CatchPanicLayer hands the payload over by value")]
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_default();
    ApiError::Panic(message).into_response()
}
