//! Request-level middleware: content negotiation, the logging of internal errors, and the redacted query
//! shape the request log carries instead of the query (whose values can identify patients).

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

use crate::error::{ApiError, INTERNAL_DIAGNOSTICS, InternalErrorCause, UnavailableCause};
use crate::respond::fhir_json;

/// The header carrying the request id, set (or kept) by the request-id layer.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Refuses, with 406, a request whose `_format` or `Accept` admits no format this server produces.
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    if let Err(error) = check_acceptable(request.uri().query(), request.headers()) {
        return error.into_response();
    }
    next.run(request).await
}

fn check_acceptable(query: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let format = query.and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "_format")
            .map(|(_, value)| value)
    });
    if let Some(format) = format {
        let format = format.replace(' ', "+");
        return match format.split(';').next().unwrap_or_default().trim() {
            "json"
            | "application/json"
            | "application/fhir+json"
            | "application/json+fhir"
            | "text/json" => Ok(()),
            other => Err(ApiError::NotAcceptable(format!(
                "_format '{other}' is not supported: this server speaks JSON"
            ))),
        };
    }
    let accepts: Vec<&str> =
        headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).collect();
    if accepts.is_empty() {
        return Ok(());
    }
    let acceptable = accepts.iter().flat_map(|value| value.split(',')).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|parameter| {
            parameter.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        !refused
            && matches!(
                media.as_str(),
                "*/*"
                    | "application/*"
                    | "application/fhir+json"
                    | "application/json"
                    | "application/json+fhir"
                    | "text/json"
            )
    });
    if acceptable {
        return Ok(());
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept '{}' admits no format this server produces: it serves application/fhir+json",
        accepts.join(", ")
    )))
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
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

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

    #[test]
    fn negotiation() {
        assert!(check_acceptable(None, &HeaderMap::new()).is_ok());
        assert!(check_acceptable(None, &accept("application/fhir+json;fhirVersion=4.0")).is_ok());
        assert!(check_acceptable(None, &accept("text/html, */*;q=0.8")).is_ok());
        assert!(check_acceptable(None, &accept("application/fhir+xml")).is_err());
        assert!(check_acceptable(None, &accept("application/json;q=0")).is_err());
        assert!(check_acceptable(Some("_format=json"), &accept("application/fhir+xml")).is_ok());
        assert!(
            check_acceptable(Some("_format=application/fhir%2Bjson"), &HeaderMap::new()).is_ok()
        );
        assert!(check_acceptable(Some("_format=application/fhir+json"), &HeaderMap::new()).is_ok());
        assert!(check_acceptable(Some("_format=xml"), &HeaderMap::new()).is_err());
    }
}
