//! Subscription delivery under load: a receiver of its own on loopback, `subscriptions` topic Subscriptions
//! (the imaging report topic, `id-only`, one event per notification) pointing at it, then `reports` final
//! DiagnosticReports posted by `concurrency` clients. Every report is an event of every subscription; the
//! run waits until each has arrived and reports the throughput (notifications received per second, from the
//! first report posted to the last notification received) and the delivery latency of each notification,
//! from its report's commit (`meta.lastUpdated`, stamped in the writing transaction, milliseconds) to its
//! receipt. It also counts duplicates and events received out of order per subscription.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Clock};

use cdr_model::Instant;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::BenchError;
use crate::http::{HttpClient, normalize_base};
use crate::stats::percentile;

/// How the run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct NotifyConfig {
    pub subscriptions: usize,
    pub reports: usize,
    pub concurrency: usize,
    /// How long to wait for the last notifications after the last report was posted.
    pub drain_timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct NotifyStats {
    pub expected: usize,
    pub received: usize,
    pub duplicates: usize,
    pub out_of_order: usize,
    pub elapsed: Duration,
    /// Commit to receipt, milliseconds, sorted.
    pub latencies_ms: Vec<u64>,
}

impl NotifyStats {
    #[must_use]
    pub fn throughput(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "expected": self.expected,
            "received": self.received,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "notifications_per_s": self.throughput(),
            "latency_ms": {
                "p50": percentile(&self.latencies_ms, 50.0),
                "p95": percentile(&self.latencies_ms, 95.0),
                "p99": percentile(&self.latencies_ms, 99.0),
                "max": self.latencies_ms.last().copied().unwrap_or(0),
            },
        })
    }
}

/// One notification event as the receiver saw it.
#[derive(Debug, Clone)]
struct Receipt {
    subscription: String,
    event: u64,
    report: String,
    at_ms: i64,
}

type Receipts = Arc<Mutex<Vec<Receipt>>>;

/// Runs the measurement against the server at `base`.
///
/// # Errors
/// When the receiver cannot listen, a Subscription or report is refused, or not every notification arrives
/// within the drain timeout.
pub async fn notify(base: &str, config: NotifyConfig) -> Result<NotifyStats, BenchError> {
    let base = normalize_base(base)?;
    let receipts: Receipts = Arc::default();
    let address = start_receiver(Arc::clone(&receipts)).await?;
    let client = HttpClient::new(config.concurrency.max(1));
    for _ in 0..config.subscriptions {
        let subscription = subscription(&format!("http://{address}/notify"));
        let response = client
            .send(
                Method::POST,
                &format!("{base}/Subscription"),
                &[],
                Some(subscription.to_string().into_bytes()),
            )
            .await
            .map_err(BenchError::Request)?;
        if response.status != 201 {
            return Err(BenchError::Data(format!(
                "the Subscription was refused: {}",
                response.describe()
            )));
        }
    }
    let started = Clock::now();
    let committed: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let (client, base, committed, next) =
            (client.clone(), base.clone(), Arc::clone(&committed), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < config.reports {
                let report = json!({"resourceType": "DiagnosticReport", "status": "final",
                                    "code": {"text": "CT head"}, "subject": {"reference": "Patient/bench"}});
                let response = client
                    .send(Method::POST, &format!("{base}/DiagnosticReport"), &[], Some(report.to_string().into_bytes()))
                    .await?;
                if response.status != 201 {
                    return Err(format!("a report was refused: {}", response.describe()));
                }
                let body: Value = serde_json::from_slice(&response.body).map_err(|error| error.to_string())?;
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                let stamp = body["meta"]["lastUpdated"].as_str().unwrap_or_default();
                let at = Instant::parse_fhir(stamp).map_err(|error| error.to_string())?;
                committed.lock().map_err(|_| "poisoned".to_owned())?.insert(id, at.millis());
            }
            Ok(())
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|error| BenchError::Request(error.to_string()))?
            .map_err(BenchError::Request)?;
    }
    let expected = config.subscriptions * config.reports;
    let deadline = Clock::now() + config.drain_timeout;
    while receipts.lock().map(|receipts| receipts.len()).unwrap_or(0) < expected {
        if Clock::now() > deadline {
            let received = receipts.lock().map(|receipts| receipts.len()).unwrap_or(0);
            return Err(BenchError::Data(format!(
                "{received} of {expected} notifications arrived"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let receipts = receipts.lock().map(|receipts| receipts.clone()).unwrap_or_default();
    let committed = committed.lock().map(|committed| committed.clone()).unwrap_or_default();
    Ok(summarise(&receipts, &committed, expected, elapsed))
}

fn summarise(
    receipts: &[Receipt],
    committed: &HashMap<String, i64>,
    expected: usize,
    elapsed: Duration,
) -> NotifyStats {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut seen: HashMap<(&str, u64), usize> = HashMap::new();
    let (mut duplicates, mut out_of_order) = (0, 0);
    let mut latencies_ms = Vec::with_capacity(receipts.len());
    for receipt in receipts {
        let count = seen.entry((receipt.subscription.as_str(), receipt.event)).or_default();
        *count += 1;
        if *count > 1 {
            duplicates += 1;
            continue;
        }
        let previous = last.entry(receipt.subscription.as_str()).or_default();
        if receipt.event < *previous {
            out_of_order += 1;
        }
        *previous = receipt.event.max(*previous);
        if let Some(commit) = committed.get(&receipt.report) {
            latencies_ms.push(u64::try_from(receipt.at_ms - commit).unwrap_or(0));
        }
    }
    latencies_ms.sort_unstable();
    NotifyStats {
        expected,
        received: receipts.len(),
        duplicates,
        out_of_order,
        elapsed,
        latencies_ms,
    }
}

fn subscription(endpoint: &str) -> Value {
    let backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
    json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "cdr-bench notify",
        "criteria": "urn:imaging-cdr:subscription-topic:imaging-report",
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": format!("{backport}backport-payload-content"), "valueCode": "id-only"}]},
        },
    })
}

/// Listens on a loopback port and records every notification event it is sent.
async fn start_receiver(receipts: Receipts) -> Result<SocketAddr, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| BenchError::Request(format!("the receiver cannot listen: {error}")))?;
    let address = listener
        .local_addr()
        .map_err(|error| BenchError::Request(format!("the receiver has no address: {error}")))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let receipts = Arc::clone(&receipts);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    receive(request, Arc::clone(&receipts))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

async fn receive(
    request: Request<Incoming>,
    receipts: Receipts,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let at_ms = Instant::now().millis();
    if let Ok(bundle) = serde_json::from_slice::<Value>(&body) {
        let status = &bundle["entry"][0]["resource"]["parameter"];
        let parameters = status.as_array().map(Vec::as_slice).unwrap_or_default();
        let subscription = parameters
            .iter()
            .find(|parameter| parameter["name"] == "subscription")
            .and_then(|parameter| parameter["valueReference"]["reference"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut found = Vec::new();
        for event in parameters.iter().filter(|parameter| parameter["name"] == "notification-event")
        {
            let parts = event["part"].as_array().map(Vec::as_slice).unwrap_or_default();
            let part = |name: &str| parts.iter().find(|part| part["name"] == name);
            let number =
                part("event-number").and_then(|part| part["valueString"].as_str()?.parse().ok());
            // …/DiagnosticReport/{id}/_history/{version}
            let report = part("focus")
                .and_then(|part| part["valueReference"]["reference"].as_str())
                .and_then(|reference| reference.rsplit('/').nth(2))
                .map(str::to_owned);
            if let (Some(event), Some(report)) = (number, report) {
                found.push(Receipt { subscription: subscription.clone(), event, report, at_ms });
            }
        }
        if let Ok(mut receipts) = receipts.lock() {
            receipts.extend(found);
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}
