//! The runner's HTTP/1.1 client (hyper-util's pooled client, plain `http://`): every request a test makes is
//! recorded with its answer, for the reports.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;

use crate::model::Stop;

pub(crate) const FHIR_JSON: &str = "application/fhir+json";

/// How long one request may take before the test is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Exchange {
    pub(crate) verb: String,
    pub(crate) url: String,
    /// 0 when no answer came.
    pub(crate) status: u16,
    pub(crate) duration_ms: u64,
    /// The headers sent, but the `Authorization` (the bearer token is never recorded).
    #[serde(skip)]
    pub(crate) request_headers: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) request_body: Option<String>,
    /// Lowercase names.
    #[serde(skip)]
    pub(crate) headers: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) body: String,
}

impl Exchange {
    /// The first value of a response header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body as JSON, if it is.
    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The body as JSON, or a failure naming the request.
    pub(crate) fn json_or_fail(&self) -> Result<Value, Stop> {
        self.json().ok_or_else(|| {
            Stop::fail(format!(
                "{} {}: the body ({} bytes) is not JSON",
                self.verb,
                self.url,
                self.body.len()
            ))
        })
    }

    /// Whether the response's media type is `application/fhir+json` (R4 http.html#mime-type).
    pub(crate) fn is_fhir_json(&self) -> bool {
        self.header("content-type").is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(FHIR_JSON))
        })
    }

    /// `VERB URL → status` for messages.
    pub(crate) fn label(&self) -> String {
        format!("{} {} → {}", self.verb, self.url, self.status)
    }
}

/// A request to send: a path relative to the FHIR base (`Patient/1`), or an absolute URL.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<String>,
}

impl Call {
    pub(crate) fn get(target: impl Into<String>) -> Call {
        Call { method: Method::GET, target: target.into(), headers: Vec::new(), body: None }
    }

    /// A request with a FHIR JSON body.
    pub(crate) fn with_json(method: Method, target: impl Into<String>, body: &Value) -> Call {
        Call {
            method,
            target: target.into(),
            headers: vec![("content-type", FHIR_JSON.to_owned())],
            body: Some(body.to_string()),
        }
    }

    /// The call without credentials: no `Authorization`, whatever token the run has.
    pub(crate) fn without_credentials(self) -> Call {
        self.header("authorization", String::new())
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.retain(|(key, _)| *key != name);
        self.headers.push((name, value.into()));
        self
    }
}

/// A keep-alive client of one FHIR base.
#[derive(Debug)]
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Without a trailing slash.
    base: String,
    bearer: Option<String>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl Http {
    pub(crate) fn new(base: &str, bearer: Option<String>) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Http { client, base: base.trim_end_matches('/').to_owned(), bearer }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The absolute URL of a target.
    pub(crate) fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else if target.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, target.trim_start_matches('/'))
        }
    }

    /// Sends the call; the exchange, or why no answer came (with the exchange recorded as status 0).
    pub(crate) async fn send(&self, call: Call) -> (Exchange, Option<Unreachable>) {
        let url = self.url(&call.target);
        let mut exchange = Exchange {
            verb: call.method.to_string(),
            url: url.clone(),
            status: 0,
            duration_ms: 0,
            request_headers: Vec::new(),
            request_body: call.body.clone(),
            headers: Vec::new(),
            body: String::new(),
        };
        let mut builder = Request::builder().method(call.method).uri(&url);
        let mut headers: Vec<(String, String)> = Vec::new();
        if !call.headers.iter().any(|(name, _)| *name == "accept") {
            headers.push(("accept".to_owned(), FHIR_JSON.to_owned()));
        }
        headers
            .extend(call.headers.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
        // A call that names its own `Authorization` (empty: none at all) is sent without the run's token.
        let own_credentials = headers.iter().any(|(name, _)| name == "authorization");
        headers.retain(|(name, value)| name != "authorization" || !value.is_empty());
        if let Some(token) = self.bearer.as_ref().filter(|_| !own_credentials) {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        exchange.request_headers = headers;
        let request = match builder.body(Full::new(Bytes::from(call.body.unwrap_or_default()))) {
            Ok(request) => request,
            Err(error) => {
                return (
                    exchange,
                    Some(Unreachable(format!("cannot build the request to {url}: {error}"))),
                );
            }
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response =
                self.client.request(request).await.map_err(|error| error_chain(&error))?;
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body =
                response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes();
            Ok::<_, String>((status, headers, body))
        })
        .await;
        exchange.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let verb = exchange.verb.clone();
        match answer {
            Ok(Ok((status, headers, body))) => {
                exchange.status = status;
                exchange.headers = headers;
                exchange.body = String::from_utf8_lossy(&body).into_owned();
                (exchange, None)
            }
            Ok(Err(error)) => {
                (exchange, Some(Unreachable(format!("{verb} {url} failed: {error}"))))
            }
            Err(_) => (
                exchange,
                Some(Unreachable(format!("{verb} {url}: no answer within {REQUEST_TIMEOUT:?}"))),
            ),
        }
    }
}

/// An error with its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
