//! The HTTP/1.1 client of `import --base`: hyper-util's pooled client, plain `http://` only.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use cdr_api::error_chain;

const FHIR_JSON: &str = "application/fhir+json";

/// A keep-alive client of one FHIR base; clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The FHIR base, without a trailing slash.
    base: String,
}

impl HttpClient {
    /// A client of the FHIR server at `base` keeping up to `pool_size` idle connections, once the server
    /// has answered `GET [base]/metadata` with a CapabilityStatement.
    ///
    /// # Errors
    /// When the server cannot be reached or is not a FHIR server at that base.
    pub(crate) async fn connect(base: &str, pool_size: usize) -> anyhow::Result<HttpClient> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .build(connector);
        let client = HttpClient { client, base: base.to_owned() };
        let url = format!("{base}/metadata");
        let (status, body) = client
            .send(Method::GET, &url, None)
            .await
            .map_err(|error| anyhow::anyhow!("cannot reach the FHIR server at {base}: {error}"))?;
        let metadata: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let is_fhir =
            metadata.is_some_and(|metadata| metadata["resourceType"] == "CapabilityStatement");
        if status != 200 || !is_fhir {
            anyhow::bail!(
                "GET {url} answered {status} without a CapabilityStatement: is {base} a FHIR base?"
            );
        }
        Ok(client)
    }

    /// Posts a Bundle to the base; the status and the body of the answer.
    ///
    /// # Errors
    /// A description, when the server cannot be reached or the answer cannot be read.
    pub(crate) async fn post_bundle(&self, bundle: Bytes) -> Result<(u16, Bytes), String> {
        self.send(Method::POST, &self.base, Some(bundle)).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), String> {
        let label = format!("{method} {url}");
        let mut builder = Request::builder().method(method).uri(url).header(ACCEPT, FHIR_JSON);
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, FHIR_JSON);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|error| format!("cannot build the request {label}: {error}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| format!("{label} failed: {}", error_chain(&error)))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("cannot read the answer to {label}: {error}"))?
            .to_bytes();
        Ok((status, body))
    }
}
