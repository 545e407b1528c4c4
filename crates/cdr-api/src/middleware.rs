//! Request-level middleware: content negotiation, the logging of internal errors, and the redacted query
//! shape the request log carries instead of the query (whose values can identify patients).

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

use crate::error::{INTERNAL_DIAGNOSTICS, InternalErrorCause, UnavailableCause};
use crate::respond::fhir_json;

/// The header carrying the request id, set (or kept) by the request-id layer.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Refuses, with 406, a request whose `_format` or `Accept` admits no format this server produces.
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    if let Err(error) = crate::format::negotiate(request.uri().query(), request.headers()) {
        return error.into_response();
    }
    next.run(request).await
}

/// The shape of a query string for the log: parameter names, each value replaced by `…`
/// (`patient.identifier=…&_count=…`). A name that does not look like a search parameter name (a letter
/// or `_` first, then letters, digits, `_ - . : $`, up to 64 bytes) is replaced by `…` too, so no value
/// leaks in the name position.
pub(crate) fn redacted_query(query: &str) -> String {
    let mut shape = String::with_capacity(query.len().min(256));
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        let plain = name.len() <= 64
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:$".contains(&b));
        if !shape.is_empty() {
            shape.push('&');
        }
        shape.push_str(if plain { name } else { "…" });
        if value.is_some() {
            shape.push_str("=…");
        }
    }
    shape
}

/// Logs the cause of every internal error once, with the request id, and tells the client only the id;
/// logs every 503 with its cause at warn level.
pub(crate) async fn log_internal_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let mut response = next.run(request).await;
    if let Some(UnavailableCause(cause)) = response.extensions_mut().remove::<UnavailableCause>() {
        tracing::warn!(request_id, cause, "answered 503 service unavailable");
    }
    let Some(InternalErrorCause(cause)) = response.extensions_mut().remove::<InternalErrorCause>()
    else {
        return response;
    };
    tracing::error!(request_id, cause, "internal error");
    let outcome = OperationOutcome::single(Issue::new(
        IssueSeverity::Fatal,
        IssueType::Exception,
        format!("{INTERNAL_DIAGNOSTICS} (request id {request_id})"),
    ));
    let mut replaced = fhir_json(response.status(), outcome.to_json().to_string());
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_shapes_keep_names_only() {
        assert_eq!(
            redacted_query(
                "patient.identifier=https%3A%2F%2Fehealthontario.ca%7C9876543217&_count=10"
            ),
            "patient.identifier=…&_count=…"
        );
        assert_eq!(redacted_query("_summary&&name:exact=Smith"), "_summary&name:exact=…");
        assert_eq!(redacted_query("9876543217&family%20name=x"), "…&…=…");
        assert_eq!(redacted_query(&"a".repeat(65)), "…");
        assert_eq!(redacted_query(""), "");
    }
}
