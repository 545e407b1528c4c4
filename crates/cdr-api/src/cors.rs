//! Cross-origin resource sharing (the Fetch standard's CORS protocol), for browser applications served
//! from other origins: off unless origins are configured. Preflight requests (`OPTIONS` with
//! `Access-Control-Request-Method`) are answered here with 204 and never reach the FHIR routes, so they
//! are neither bounded nor counted as FHIR requests.

use std::str::FromStr;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::middleware::REQUEST_ID;

/// The origins whose browser scripts may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (credentials such as cookies are never allowed: the API takes bearer tokens).
    Any,
    /// These exact origins (`scheme://host[:port]`, compared as the browser sends `Origin`).
    List(Vec<HeaderValue>),
}

/// Why a `--cors-allowed-origins` entry is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid CORS origin {0:?}: expected `*` or scheme://host[:port], such as https://viewer.example.org"
)]
pub struct CorsOriginError(String);

impl FromStr for CorsOrigins {
    type Err = CorsOriginError;

    /// `*`, or a comma-separated list of origins.
    fn from_str(text: &str) -> Result<CorsOrigins, CorsOriginError> {
        if text.trim() == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in text.split(',').map(str::trim).filter(|origin| !origin.is_empty()) {
            let origin = origin.trim_end_matches('/');
            let well_formed = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#'])
            });
            match HeaderValue::from_str(origin) {
                Ok(value) if well_formed => origins.push(value),
                _ => return Err(CorsOriginError(origin.to_owned())),
            }
        }
        if origins.is_empty() {
            return Err(CorsOriginError(text.to_owned()));
        }
        Ok(CorsOrigins::List(origins))
    }
}

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer of these origins: the methods of the FHIR RESTful API, the request headers it reads,
/// and the response headers a client script needs to see.
pub(crate) fn layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("if-none-exist"),
            header::IF_MODIFIED_SINCE,
            HeaderName::from_static("prefer"),
            header::ACCEPT,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::CONTENT_LOCATION,
            header::LAST_MODIFIED,
            HeaderName::from_static("x-progress"),
            HeaderName::from_static(REQUEST_ID),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Answers preflights with 204 No Content instead of the CORS layer's 200: the answer has no content.
/// Runs outside the CORS layer, which answers every `OPTIONS` request itself.
pub(crate) async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!("*".parse::<CorsOrigins>().unwrap(), CorsOrigins::Any);
        assert_eq!(
            "https://a.example, http://b.example:8080/".parse::<CorsOrigins>().unwrap(),
            CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://b.example:8080")
            ])
        );
        for bad in ["", "a.example", "https://a.example/app", "ftp://a.example", "https://"] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
    }
}
