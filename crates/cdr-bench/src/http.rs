//! A keep-alive HTTP/1.1 client for FHIR JSON (hyper-util's pooled client; plain `http://` only).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, ETAG, LOCATION};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::BenchError;

const FHIR_JSON: &str = "application/fhir+json";

/// A pooled client; clones share the pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub body: Bytes,
}

impl HttpResponse {
    /// The status and the start of the body, for error reports.
    #[must_use]
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let mut snippet: String = body.chars().take(300).collect();
        if snippet.len() < body.len() {
            snippet.push('…');
        }
        format!("HTTP {}: {snippet}", self.status)
    }
}

impl HttpClient {
    /// A client that keeps up to `pool_size` idle connections to the server.
    #[must_use]
    pub fn new(pool_size: usize) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .build(connector);
        HttpClient { client }
    }

    /// Sends one request with `Accept: application/fhir+json` (and that content type when there is a
    /// body) plus `headers`.
    ///
    /// # Errors
    /// `Err` carries a description when the URL is invalid, the connection fails or the body cannot be
    /// read; HTTP error statuses are returned as responses.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, String> {
        let uri: Uri = url.parse().map_err(|error| format!("invalid URL {url}: {error}"))?;
        let mut builder = Request::builder().method(method).uri(uri).header(ACCEPT, FHIR_JSON);
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, FHIR_JSON);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let response = self.client.request(request).await.map_err(|error| format!("{error:?}"))?;
        let status = response.status().as_u16();
        let header_text = |name| {
            response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
        };
        let location = header_text(LOCATION);
        let etag = header_text(ETAG);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("cannot read the response body: {error}"))?
            .to_bytes();
        Ok(HttpResponse { status, location, etag, body })
    }
}

/// The base URL without a trailing slash, checked to be plain `http://`.
///
/// # Errors
/// When it is not an `http://` URL.
pub fn normalize_base(base: &str) -> Result<String, BenchError> {
    let base = base.trim_end_matches('/');
    if !base.starts_with("http://") || base.parse::<Uri>().is_err() {
        return Err(BenchError::Request(format!("the base must be an http:// URL, not {base:?}")));
    }
    Ok(base.to_owned())
}
