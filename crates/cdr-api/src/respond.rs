//! Success responses: FHIR JSON bodies with `ETag`, `Last-Modified` and `Location`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr_interactions::VersionedResource;
use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

use crate::extract::PreferReturn;

/// The media type of every body this server sends.
pub(crate) const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// The informational message of an update that changed nothing (`WriteStatus::Unchanged`): the
/// diagnostics of the `outcome` that a `transaction-response` or `batch-response` entry of such an update
/// always carries, since its `200` alone does not tell it from an update.
pub const UNCHANGED: &str =
    "unchanged: the content equals the current version's, so no new version was written";

/// A FHIR JSON body with the given status.
pub(crate) fn fhir_json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// `ETag` and `Last-Modified` of a version, and `Location` when asked for.
pub(crate) fn version_headers(
    version: &VersionedResource,
    location_base: Option<&str>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(etag) = HeaderValue::from_str(&version.version.etag().to_string()) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&version.last_updated.to_http_date()) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    if let Some(base) = location_base {
        let location =
            format!("{base}/{}/{}/_history/{}", version.resource_type, version.id, version.version);
        if let Ok(location) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, location);
        }
    }
    headers
}

/// The response to a write, shaped by `Prefer: return=…`.
pub(crate) fn write_response(
    status: StatusCode,
    version: &VersionedResource,
    location_base: Option<&str>,
    prefer: PreferReturn,
    message: &str,
) -> Response {
    let headers = version_headers(version, location_base);
    let mut response = match (prefer, &version.body) {
        (PreferReturn::Representation, Some(body)) => fhir_json(status, body.clone()),
        (PreferReturn::OperationOutcome, _) => fhir_json(status, informational(message)),
        _ => status.into_response(),
    };
    response.headers_mut().extend(headers);
    response
}

/// An OperationOutcome with one informational issue, as JSON text.
pub(crate) fn informational(message: &str) -> String {
    informational_outcome(message).to_string()
}

/// An OperationOutcome with one informational issue.
pub(crate) fn informational_outcome(message: &str) -> serde_json::Value {
    OperationOutcome::single(Issue::new(
        IssueSeverity::Information,
        IssueType::Informational,
        message,
    ))
    .to_json()
}
