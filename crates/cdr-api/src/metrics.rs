//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4): FHIR requests counted and
//! timed by interaction, resource type and status class; the database pool; the asynchronous job queue;
//! and the time profile validation takes.
//!
//! Label values are bounded: the interaction is one of a fixed list, the type is a served resource type
//! (`system` for system-level requests, `other` for any other name in the path), the status is a class
//! (`2xx` ... `5xx`). Nothing from the query or the body becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_interactions::{HISTOGRAM_BUCKETS, Histogram, HistogramSnapshot};

use crate::AppState;

/// The media type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a handler tells the request metrics when the path alone does not say the interaction: a posted
/// Bundle's `transaction` or `batch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interaction(pub(crate) &'static str);

/// One series of request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    interaction: &'static str,
    resource_type: &'static str,
    status: &'static str,
}

/// The request metrics of one application.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<Labels, Arc<Histogram>>>,
}

impl Metrics {
    fn observe(&self, labels: Labels, elapsed: std::time::Duration) {
        let histogram = {
            let mut requests =
                self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(requests.entry(labels).or_default())
        };
        histogram.observe(elapsed);
    }

    fn snapshot(&self) -> Vec<(Labels, HistogramSnapshot)> {
        let requests = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        requests.iter().map(|(labels, histogram)| (*labels, histogram.snapshot())).collect()
    }
}

/// Counts and times every FHIR request (the routes under `/fhir`, refusals included).
pub(crate) async fn record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let (interaction, type_name) = classify(request.method(), request.uri().path());
    let resource_type = match type_name {
        None => "system",
        Some(name) => state.engine.served_type(name).map_or("other", |served| served.as_str()),
    };
    let response = next.run(request).await;
    let interaction = response.extensions().get::<Interaction>().map_or(interaction, |told| told.0);
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state.metrics.observe(Labels { interaction, resource_type, status }, started.elapsed());
    response
}

/// The interaction a request to this path (below the FHIR base) is, and the type name it names (`None`:
/// system level). A posted Bundle is `bundle` until its handler tells `transaction` or `batch`.
fn classify<'a>(method: &Method, path: &'a str) -> (&'static str, Option<&'a str>) {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let read = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    if let Some(position) = segments.iter().position(|segment| segment.starts_with('$')) {
        return ("operation", (position > 0).then(|| segments[0]));
    }
    let interaction = match segments.as_slice() {
        [] if read => "search-system",
        [] | ["Bundle"] if post => "bundle",
        ["metadata"] => "capabilities",
        ["_history"] => "history",
        ["_search"] => "search-system",
        ["_async", _] if read => "async-status",
        ["_async", _] if *method == Method::DELETE => "async-cancel",
        [first, ..] if first.starts_with('_') => "other",
        [_] | [_, "_search"] if read || post && segments.len() == 2 => "search-type",
        [_] if post => "create",
        [_] | [_, _] if *method == Method::PUT => "update",
        [_] | [_, _] if *method == Method::PATCH => "patch",
        [_] | [_, _] if *method == Method::DELETE => "delete",
        [_, "_history"] | [_, _, "_history"] if read => "history",
        [_, _, "_history", _] if read => "vread",
        [_, _] if read => "read",
        _ => "other",
    };
    let type_name = match segments.first() {
        Some(first) if !first.starts_with('_') && *first != "metadata" => Some(*first),
        _ => None,
    };
    (interaction, type_name)
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::with_capacity(16 * 1024);
    let requests = state.metrics.snapshot();
    family(&mut text, "cdr_http_requests_total", "counter", "FHIR requests answered.");
    for (labels, snapshot) in &requests {
        let _ = writeln!(
            text,
            "cdr_http_requests_total{{{}}} {}",
            request_labels(labels),
            snapshot.count
        );
    }
    family(
        &mut text,
        "cdr_http_request_duration_seconds",
        "histogram",
        "Time from a FHIR request's arrival to its response's head.",
    );
    for (labels, snapshot) in &requests {
        histogram(
            &mut text,
            "cdr_http_request_duration_seconds",
            &request_labels(labels),
            snapshot,
        );
    }
    let (backend, pool) = state.engine.pool_usage();
    let backend = format!("backend=\"{backend}\"");
    for (name, help, value) in [
        ("cdr_db_pool_connections", "Open database connections, busy or idle.", pool.size),
        ("cdr_db_pool_idle_connections", "Open database connections not in use.", pool.idle),
        ("cdr_db_pool_max_connections", "The most database connections the pool opens.", pool.max),
    ] {
        family(&mut text, name, "gauge", help);
        let _ = writeln!(text, "{name}{{{backend}}} {value}");
    }
    match state.engine.job_counts().await {
        Ok(jobs) => {
            family(
                &mut text,
                "cdr_async_jobs",
                "gauge",
                "Asynchronous Bundle submissions not finished (all processes).",
            );
            let _ = writeln!(text, "cdr_async_jobs{{state=\"queued\"}} {}", jobs.queued);
            let _ = writeln!(text, "cdr_async_jobs{{state=\"running\"}} {}", jobs.running);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count the asynchronous jobs"),
    }
    match state.engine.subscription_counts().await {
        Ok(counts) => {
            family(
                &mut text,
                "cdr_subscriptions",
                "gauge",
                "Subscriptions by state (all processes).",
            );
            for (label, value) in
                [("active", counts.active), ("error", counts.error), ("off", counts.off)]
            {
                let _ = writeln!(text, "cdr_subscriptions{{state=\"{label}\"}} {value}");
            }
            family(
                &mut text,
                "cdr_subscription_events_undelivered",
                "gauge",
                "Events recorded for active subscriptions and not yet acknowledged by their receivers.",
            );
            let _ = writeln!(text, "cdr_subscription_events_undelivered {}", counts.undelivered);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count the subscriptions"),
    }
    family(
        &mut text,
        "cdr_validation_duration_seconds",
        "histogram",
        "Time the profile validation of one submitted resource took.",
    );
    histogram(
        &mut text,
        "cdr_validation_duration_seconds",
        "",
        &state.engine.validation_times().snapshot(),
    );
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    response
}

fn request_labels(labels: &Labels) -> String {
    format!(
        "interaction=\"{}\",type=\"{}\",status=\"{}\"",
        labels.interaction, labels.resource_type, labels.status
    )
}

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The `_bucket`, `_sum` and `_count` lines of one histogram series.
fn histogram(text: &mut String, name: &str, labels: &str, snapshot: &HistogramSnapshot) {
    let separator = if labels.is_empty() { "" } else { "," };
    for (bound, count) in HISTOGRAM_BUCKETS.iter().zip(snapshot.cumulative) {
        let _ = writeln!(text, "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(text, "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}", snapshot.count);
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(text, "{name}_sum{braces} {}", snapshot.sum_seconds);
    let _ = writeln!(text, "{name}_count{braces} {}", snapshot.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactions() {
        let cases = [
            (Method::GET, "/Patient/1", "read", Some("Patient")),
            (Method::HEAD, "/Patient/1", "read", Some("Patient")),
            (Method::GET, "/Patient/1/_history/2", "vread", Some("Patient")),
            (Method::GET, "/Patient/1/_history", "history", Some("Patient")),
            (Method::GET, "/Patient/_history", "history", Some("Patient")),
            (Method::GET, "/_history", "history", None),
            (Method::GET, "/Patient", "search-type", Some("Patient")),
            (Method::POST, "/Patient/_search", "search-type", Some("Patient")),
            (Method::GET, "/", "search-system", None),
            (Method::POST, "/_search", "search-system", None),
            (Method::POST, "/Patient", "create", Some("Patient")),
            (Method::PUT, "/Patient/1", "update", Some("Patient")),
            (Method::PUT, "/Patient", "update", Some("Patient")),
            (Method::PATCH, "/Patient/1", "patch", Some("Patient")),
            (Method::DELETE, "/Patient/1", "delete", Some("Patient")),
            (Method::DELETE, "/Patient", "delete", Some("Patient")),
            (Method::POST, "/", "bundle", None),
            (Method::POST, "/Bundle", "bundle", Some("Bundle")),
            (Method::GET, "/Bundle", "search-type", Some("Bundle")),
            (Method::POST, "/Patient/1/$validate", "operation", Some("Patient")),
            (Method::POST, "/$validate", "operation", None),
            (Method::GET, "/metadata", "capabilities", None),
            (Method::GET, "/_async/abc", "async-status", None),
            (Method::DELETE, "/_async/abc", "async-cancel", None),
            (Method::OPTIONS, "/Patient", "other", Some("Patient")),
            (Method::GET, "/Patient/1/_history/2/more", "other", Some("Patient")),
            (Method::GET, "/_nothing", "other", None),
        ];
        for (method, path, interaction, type_name) in cases {
            assert_eq!(classify(&method, path), (interaction, type_name), "{method} {path}");
        }
    }

    #[test]
    fn histogram_lines() {
        let histogram = Histogram::default();
        histogram.observe(std::time::Duration::from_millis(20));
        let mut text = String::new();
        super::histogram(&mut text, "x", "a=\"b\"", &histogram.snapshot());
        assert!(
            text.contains("x_bucket{a=\"b\",le=\"0.01\"} 0\nx_bucket{a=\"b\",le=\"0.025\"} 1\n")
        );
        assert!(text.ends_with(
            "x_bucket{a=\"b\",le=\"+Inf\"} 1\nx_sum{a=\"b\"} 0.02\nx_count{a=\"b\"} 1\n"
        ));
        let mut bare = String::new();
        super::histogram(&mut bare, "y", "", &histogram.snapshot());
        assert!(
            bare.contains("y_bucket{le=\"30\"} 1\n") && bare.ends_with("y_count 1\n"),
            "{bare}"
        );
    }
}
