//! Submission Bundles ([`crate::submission`]) posted to a running server, `POST [base]`, with concurrent
//! keep-alive clients, each Bundle once; and their report: Bundles and resources per second, latency per
//! Bundle, errors.
//!
//! A Bundle counts as an error unless the answer is a 200 with a `transaction-response` holding one entry
//! per entry sent, each with status 200 or 201; the resources written are the entries of the Bundles that
//! succeeded.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::BenchError;
use crate::http::{HttpClient, normalize_base};
use crate::stats::{QueryStats, Sample};
use crate::submission::Submissions;
use crate::workers::{Budget, run_workers};

/// How a submission runs.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    pub concurrency: usize,
    /// Send the first this many Bundles (all when `None`, or when the data set gives fewer).
    pub bundles: Option<u64>,
}

/// The figures of one submission.
#[derive(Debug, Clone)]
pub struct IngestStats {
    pub shape: &'static str,
    /// One "request" per Bundle.
    pub bundles: QueryStats,
    /// Entries of the Bundles that succeeded.
    pub resources: u64,
}

/// One Bundle's result.
pub(crate) struct Submitted {
    pub(crate) sample: Sample,
    /// Entries written (0 when the Bundle failed).
    pub(crate) resources: u64,
}

impl IngestStats {
    /// Resources written per second of wall time.
    #[must_use]
    pub fn resources_per_second(&self) -> f64 {
        if self.bundles.elapsed.is_zero() {
            return 0.0;
        }
        self.resources as f64 / self.bundles.elapsed.as_secs_f64()
    }

    /// The JSON report; `header` holds the mode and the options.
    #[must_use]
    pub fn to_json(&self, mut header: Value) -> Value {
        let bundles = self.bundles.to_json();
        header["shape"] = json!(self.shape);
        header["bundles"] = bundles["requests"].clone();
        header["errors"] = bundles["errors"].clone();
        header["seconds"] = bundles["seconds"].clone();
        header["bundles_per_second"] = bundles["requests_per_second"].clone();
        header["resources"] = json!(self.resources);
        header["resources_per_second"] = json!(self.resources_per_second());
        header["latency_ms"] = bundles["latency_ms"].clone();
        header["note"] = bundles["note"].clone();
        header
    }

    /// The aligned table: one row, latencies per Bundle in milliseconds.
    ///
    /// # Errors
    /// When `out` fails.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<8} {:>8} {:>7} {:>10} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9}",
            "shape",
            "bundles",
            "errors",
            "bundles/s",
            "resources",
            "resources/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms"
        )?;
        let stats = &self.bundles;
        let cells = match stats.latency {
            Some(latency) => [latency.p50, latency.p95, latency.p99, latency.max]
                .map(|micros| format!("{:.2}", micros as f64 / 1000.0)),
            None => ["-", "-", "-", "-"].map(str::to_owned),
        };
        writeln!(
            out,
            "{:<8} {:>8} {:>7} {:>10.1} {:>10} {:>12.0} {:>9} {:>9} {:>9} {:>9}",
            self.shape,
            stats.requests,
            stats.errors,
            stats.throughput(),
            self.resources,
            self.resources_per_second(),
            cells[0],
            cells[1],
            cells[2],
            cells[3]
        )?;
        if let Some(note) = &stats.note {
            writeln!(out, "{note}")?;
        }
        Ok(())
    }
}

/// Posts the Bundles of `submissions` to the server at `base`.
///
/// # Errors
/// When `base` is not an `http://` URL; failed Bundles are counted, not returned.
pub async fn ingest(
    base: &str,
    submissions: Submissions,
    config: IngestConfig,
) -> Result<IngestStats, BenchError> {
    let base = normalize_base(base)?;
    let client = HttpClient::new(config.concurrency);
    let shape = submissions.shape().name();
    let submissions = Arc::new(submissions);
    let budget = bundle_budget(&submissions, config);
    let (results, elapsed) = run_workers(config.concurrency, budget, move |item| {
        let submissions = Arc::clone(&submissions);
        let client = client.clone();
        let base = base.clone();
        async move { submit(&client, &base, &submissions, item).await }
    })
    .await;
    Ok(summarise(shape, &results, elapsed))
}

/// The number of Bundles to send.
pub(crate) fn bundle_budget(submissions: &Submissions, config: IngestConfig) -> Budget {
    let available = submissions.len() as u64;
    Budget::Requests(config.bundles.map_or(available, |wanted| wanted.min(available)))
}

pub(crate) fn summarise(
    shape: &'static str,
    results: &[Submitted],
    elapsed: Duration,
) -> IngestStats {
    let samples: Vec<&Sample> = results.iter().map(|result| &result.sample).collect();
    IngestStats {
        shape,
        bundles: QueryStats::from_samples("bundle", &samples, elapsed),
        resources: results.iter().map(|result| result.resources).sum(),
    }
}

async fn submit(
    client: &HttpClient,
    base: &str,
    submissions: &Submissions,
    item: u64,
) -> Submitted {
    let failed = |error: String| Submitted {
        sample: Sample { label: "bundle", latency: Duration::ZERO, error: Some(error) },
        resources: 0,
    };
    let bundle = match usize::try_from(item).map_err(|error| error.to_string()) {
        Ok(index) => submissions.bundle(index),
        Err(error) => Err(error),
    };
    let bundle = match bundle {
        Ok(bundle) => bundle,
        Err(error) => return failed(error),
    };
    let n_entries = bundle["entry"].as_array().map_or(0, Vec::len);
    let body = bundle.to_string().into_bytes();
    drop(bundle);
    let started = Instant::now();
    let result = client.send(Method::POST, base, &[("Prefer", "return=minimal")], Some(body)).await;
    let latency = started.elapsed();
    let checked = result.and_then(|response| {
        if response.status != 200 {
            return Err(response.describe());
        }
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|error| format!("the body is not JSON: {error}"))?;
        check_response(&body, n_entries)
    });
    match checked {
        Ok(resources) => {
            Submitted { sample: Sample { label: "bundle", latency, error: None }, resources }
        }
        Err(error) => Submitted {
            sample: Sample { label: "bundle", latency, error: Some(error) },
            resources: 0,
        },
    }
}

/// The number of entries written, when `body` is a `transaction-response` with `n_entries` entries, each
/// 200 or 201.
fn check_response(body: &Value, n_entries: usize) -> Result<u64, String> {
    if body["resourceType"] != "Bundle" || body["type"] != "transaction-response" {
        return Err(format!("not a transaction-response: {}", snippet(body)));
    }
    let entries = body["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.len() != n_entries {
        return Err(format!("{} response entries for {n_entries} entries", entries.len()));
    }
    for (index, entry) in entries.iter().enumerate() {
        let status = entry["response"]["status"].as_str().unwrap_or_default();
        let code = status.split_whitespace().next().unwrap_or_default();
        if code != "200" && code != "201" {
            return Err(format!("entry {index}: status {status:?}"));
        }
    }
    Ok(entries.len() as u64)
}

fn snippet(body: &Value) -> String {
    let text = body.to_string();
    let mut snippet: String = text.chars().take(300).collect();
    if snippet.len() < text.len() {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_transaction_response_of_200_and_201_counts() {
        let response = |statuses: &[&str]| {
            let entries: Vec<Value> =
                statuses.iter().map(|status| json!({ "response": { "status": status } })).collect();
            json!({ "resourceType": "Bundle", "type": "transaction-response", "entry": entries })
        };
        assert_eq!(check_response(&response(&["201 Created", "200 OK"]), 2), Ok(2));
        assert_eq!(
            check_response(&response(&["201 Created", "204 No Content"]), 2),
            Err("entry 1: status \"204 No Content\"".to_owned())
        );
        assert_eq!(
            check_response(&response(&["201 Created"]), 2),
            Err("1 response entries for 2 entries".to_owned())
        );
        let batch = json!({ "resourceType": "Bundle", "type": "batch-response", "entry": [] });
        assert!(check_response(&batch, 0).is_err());
        let outcome = json!({ "resourceType": "OperationOutcome" });
        assert!(check_response(&outcome, 0).is_err());
    }
}
