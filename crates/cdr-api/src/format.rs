//! The two FHIR formats (R4 http.html#mime-type): which one a request asks for (`_format`, else `Accept`; JSON
//! by default), the request bodies sent as XML, and the one layer that writes every FHIR response in the format
//! asked for.
//!
//! Handlers build JSON only. [`respond_in_format`], outside everything that can answer a FHIR request (the
//! handlers, the error table, the internal-error and panic catchers), rewrites a FHIR JSON response into XML
//! with `cdr-xml` when the request asked for XML, and indents either format under `_pretty=true`; request bodies
//! in XML are read into the same JSON by [`json_body`], so the interactions never see XML.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_interactions::InteractionError;
use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

use crate::error::ApiError;
use crate::respond::FHIR_JSON;

/// The media type of every XML body this server sends.
pub(crate) const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";

/// The format of a FHIR body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
}

/// The format a request's answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) format: Format,
    /// `_pretty=true`: indented.
    pub(crate) pretty: bool,
}

/// The format of a media type (parameters such as `fhirVersion` and `charset` aside), if it is one of FHIR's.
pub(crate) fn media_format(media_type: &str) -> Option<Format> {
    let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/fhir+json" | "application/json" | "application/json+fhir" | "text/json" => {
            Some(Format::Json)
        }
        "application/fhir+xml" | "application/xml" | "application/xml+fhir" | "text/xml" => {
            Some(Format::Xml)
        }
        _ => None,
    }
}

/// The format a request asks for: `_format` (`json`, `xml` or a media type) wins over `Accept`, whose most
/// preferred range this server produces decides (JSON for `*/*` and `application/*`, and on a tie); no
/// `Accept` is JSON. A request that admits neither is refused with 406.
pub(crate) fn negotiate(query: Option<&str>, headers: &HeaderMap) -> Result<Negotiated, ApiError> {
    let mut format_parameter = None;
    let mut pretty = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "_format" if format_parameter.is_none() => format_parameter = Some(value.into_owned()),
            "_pretty" => pretty = value == "true",
            _ => {}
        }
    }
    if let Some(format) = format_parameter {
        // A `+` not written as `%2B` arrives as a space.
        let format = format.replace(' ', "+");
        let chosen = match format.split(';').next().unwrap_or_default().trim() {
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            other => media_format(other),
        };
        return match chosen {
            Some(format) => Ok(Negotiated { format, pretty }),
            None => Err(ApiError::NotAcceptable(format!(
                "_format '{format}' is not supported: this server speaks json and xml"
            ))),
        };
    }
    let accepts: Vec<&str> =
        headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).collect();
    if accepts.is_empty() {
        return Ok(Negotiated { format: Format::Json, pretty });
    }
    let mut best: Option<(f32, Format)> = None;
    for range in accepts.iter().flat_map(|value| value.split(',')) {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .find_map(|parameter| parameter.strip_prefix("q="))
            .map_or(Some(1.0), |q| q.parse::<f32>().ok())
            .unwrap_or(0.0);
        let format = match media.as_str() {
            "*/*" | "application/*" => Some(Format::Json),
            other => media_format(other),
        };
        if let Some(format) = format
            && quality > 0.0
            && best.is_none_or(|(best_quality, _)| quality > best_quality)
        {
            best = Some((quality, format));
        }
    }
    match best {
        Some((_, format)) => Ok(Negotiated { format, pretty }),
        None => Err(ApiError::NotAcceptable(format!(
            "Accept '{}' admits no format this server produces: it serves application/fhir+json and application/fhir+xml",
            accepts.join(", ")
        ))),
    }
}

/// A FHIR body as JSON: JSON as it came, XML read into its JSON (refused with 400 and an OperationOutcome
/// saying where when it is not FHIR XML).
pub(crate) fn json_body(format: Format, body: Bytes) -> Result<Bytes, ApiError> {
    if format == Format::Json || body.is_empty() {
        return Ok(body);
    }
    let json = cdr_xml::from_xml(&body).map_err(|error| {
        let issue = Issue::error(IssueType::Structure, format!("the XML body: {}", error.message));
        let issue = match error.expression {
            Some(expression) => issue.at(expression),
            None => issue,
        };
        ApiError::Interaction(InteractionError::Invalid(OperationOutcome::single(issue)))
    })?;
    Ok(Bytes::from(json.to_string()))
}

/// Writes a FHIR JSON response in the format the request asked for (a request that asked for none this server
/// produces is answered 406 further in, in JSON).
pub(crate) async fn respond_in_format(request: Request, next: Next) -> Response {
    let negotiated = negotiate(request.uri().query(), request.headers())
        .unwrap_or(Negotiated { format: Format::Json, pretty: false });
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    let is_fhir_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|value| value == FHIR_JSON);
    if !is_fhir_json || negotiated == (Negotiated { format: Format::Json, pretty: false }) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::BadRequest("the response could not be read".into()).into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if negotiated.format == Format::Xml {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_XML));
    }
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::empty());
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let written = match negotiated.format {
        Format::Json => serde_json::to_string_pretty(&json).map_err(|error| error.to_string()),
        Format::Xml => {
            cdr_xml::to_xml(&json, negotiated.pretty).map_err(|error| match error.expression {
                Some(expression) => format!("{} (at {expression})", error.message),
                None => error.message,
            })
        }
    };
    match written {
        Ok(text) => Response::from_parts(parts, Body::from(text)),
        Err(reason) => unrepresentable(parts, writes, &reason),
    }
}

/// The answer when a response has no XML form (a resource stored under `--validation off` with what R4 does
/// not define): a read is 406; a write, which did happen, keeps its status and headers and says so instead of
/// sending the resource.
fn unrepresentable(mut parts: axum::http::response::Parts, writes: bool, reason: &str) -> Response {
    let succeeded = parts.status.is_success();
    let (severity, code) = if writes && succeeded {
        (IssueSeverity::Warning, IssueType::NotSupported)
    } else {
        parts.status = StatusCode::NOT_ACCEPTABLE;
        for name in
            [header::ETAG, header::LAST_MODIFIED, header::LOCATION, header::CONTENT_LOCATION]
        {
            parts.headers.remove(name);
        }
        (IssueSeverity::Error, IssueType::NotSupported)
    };
    let message = format!("the response has no FHIR XML form: {reason}; ask for JSON");
    let outcome = OperationOutcome::single(Issue::new(severity, code, message)).to_json();
    let body = cdr_xml::to_xml(&outcome, false).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn format_of(query: Option<&str>, headers: &HeaderMap) -> Option<Format> {
        negotiate(query, headers).ok().map(|negotiated| negotiated.format)
    }

    #[test]
    fn negotiation() {
        use Format::{Json, Xml};
        let none = HeaderMap::new();
        assert_eq!(format_of(None, &none), Some(Json));
        assert_eq!(format_of(None, &accept("application/fhir+json;fhirVersion=4.0")), Some(Json));
        assert_eq!(format_of(None, &accept("text/html, */*;q=0.8")), Some(Json));
        assert_eq!(format_of(None, &accept("application/fhir+xml")), Some(Xml));
        assert_eq!(
            format_of(None, &accept("application/xml;q=0.9, application/json;q=0.5")),
            Some(Xml)
        );
        assert_eq!(format_of(None, &accept("application/json;q=0.5, text/xml")), Some(Xml));
        assert_eq!(
            format_of(None, &accept("application/fhir+json, application/fhir+xml")),
            Some(Json)
        );
        assert_eq!(format_of(None, &accept("application/json;q=0")), None);
        assert_eq!(format_of(None, &accept("text/html")), None);
        assert_eq!(format_of(Some("_format=json"), &accept("application/fhir+xml")), Some(Json));
        assert_eq!(format_of(Some("_format=application/fhir%2Bjson"), &none), Some(Json));
        assert_eq!(format_of(Some("_format=application/fhir+json"), &none), Some(Json));
        assert_eq!(format_of(Some("_format=xml"), &none), Some(Xml));
        assert_eq!(format_of(Some("_format=text/xml"), &accept("application/json")), Some(Xml));
        assert_eq!(format_of(Some("_format=application/fhir+xml"), &none), Some(Xml));
        assert_eq!(format_of(Some("_format=turtle"), &none), None);
        assert!(negotiate(Some("_pretty=true"), &none).unwrap().pretty);
        assert!(!negotiate(Some("_pretty=false"), &none).unwrap().pretty);
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_format("application/fhir+json; fhirVersion=4.3; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(media_format("Application/JSON"), Some(Format::Json));
        assert_eq!(media_format("application/fhir+xml;charset=utf-8"), Some(Format::Xml));
        assert_eq!(media_format("text/xml"), Some(Format::Xml));
        assert_eq!(media_format("application/x-www-form-urlencoded"), None);
    }
}
