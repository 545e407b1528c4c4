//! Latency statistics per query and their two renderings: an aligned table and JSON.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

/// One request's result: which row it counts in, how long it took, and why it failed if it did.
#[derive(Debug, Clone)]
pub struct Sample {
    pub label: &'static str,
    pub latency: Duration,
    pub error: Option<String>,
}

/// The figures of one row of the report.
#[derive(Debug, Clone)]
pub struct QueryStats {
    pub name: String,
    /// Completed requests, failed ones included.
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency percentiles of the successful requests, in microseconds; `None` when none succeeded.
    pub latency: Option<Latency>,
    /// The first error, or why the row was not measured.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl QueryStats {
    /// Summarises the samples of one label taken over `elapsed` of wall time.
    #[must_use]
    pub fn from_samples(name: &str, samples: &[&Sample], elapsed: Duration) -> QueryStats {
        let mut micros: Vec<u64> = samples
            .iter()
            .filter(|sample| sample.error.is_none())
            .map(|sample| u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX))
            .collect();
        micros.sort_unstable();
        let errors = samples.iter().filter(|sample| sample.error.is_some()).count() as u64;
        let first_error = samples.iter().find_map(|sample| sample.error.clone());
        let note = match first_error {
            Some(error) if micros.is_empty() => Some(format!("every request failed: {error}")),
            Some(error) => Some(format!("first error: {error}")),
            None => None,
        };
        QueryStats {
            name: name.to_owned(),
            requests: samples.len() as u64,
            errors,
            elapsed,
            latency: latency(&micros),
            note,
        }
    }

    /// A row for a query that was not run, with the reason.
    #[must_use]
    pub fn not_measured(name: &str, reason: &str) -> QueryStats {
        QueryStats {
            name: name.to_owned(),
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: None,
            note: Some(format!("not measured: {reason}")),
        }
    }

    /// Completed requests per second of wall time.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    #[must_use]
    pub fn to_json(&self) -> Value {
        let millis = |micros: u64| micros as f64 / 1000.0;
        json!({
            "query": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.throughput(),
            "latency_ms": self.latency.map(|latency| json!({
                "p50": millis(latency.p50),
                "p95": millis(latency.p95),
                "p99": millis(latency.p99),
                "max": millis(latency.max),
            })),
            "note": self.note,
        })
    }
}

/// Nearest-rank percentile (`rank = ceil(p/100 × n)`) of ascending values; 0 for no values.
#[must_use]
pub fn percentile(sorted: &[u64], percent: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(sorted: &[u64]) -> Option<Latency> {
    let max = *sorted.last()?;
    Some(Latency {
        p50: percentile(sorted, 50.0),
        p95: percentile(sorted, 95.0),
        p99: percentile(sorted, 99.0),
        max,
    })
}

/// The aligned table: one row per query, latencies in milliseconds.
///
/// # Errors
/// When `out` fails.
pub fn write_table(out: &mut dyn Write, rows: &[QueryStats]) -> std::io::Result<()> {
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(5).max(5);
    writeln!(
        out,
        "{:<width$} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "query", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    )?;
    for row in rows {
        let cells = match row.latency {
            Some(latency) => [latency.p50, latency.p95, latency.p99, latency.max]
                .map(|micros| format!("{:.2}", micros as f64 / 1000.0)),
            None => ["-", "-", "-", "-"].map(str::to_owned),
        };
        writeln!(
            out,
            "{:<width$} {:>9} {:>7} {:>10.1} {:>9} {:>9} {:>9} {:>9}",
            row.name,
            row.requests,
            row.errors,
            row.throughput(),
            cells[0],
            cells[1],
            cells[2],
            cells[3]
        )?;
    }
    for row in rows {
        if let Some(note) = &row.note {
            writeln!(out, "{}: {note}", row.name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // The worked example of the nearest-rank method: 15, 20, 35, 40, 50.
        let values = [15, 20, 35, 40, 50];
        assert_eq!(percentile(&values, 5.0), 15);
        assert_eq!(percentile(&values, 30.0), 20);
        assert_eq!(percentile(&values, 40.0), 20);
        assert_eq!(percentile(&values, 50.0), 35);
        assert_eq!(percentile(&values, 100.0), 50);
        assert_eq!(percentile(&[], 50.0), 0);
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 95.0), 95);
        assert_eq!(percentile(&hundred, 99.0), 99);
        assert_eq!(percentile(&hundred, 0.0), 1);
    }

    #[test]
    fn failures_are_counted_and_excluded_from_latency() {
        let ok =
            |millis| Sample { label: "q", latency: Duration::from_millis(millis), error: None };
        let failed = Sample {
            label: "q",
            latency: Duration::from_millis(1),
            error: Some("HTTP 400".into()),
        };
        let samples = [ok(10), ok(30), failed.clone(), ok(20)];
        let refs: Vec<&Sample> = samples.iter().collect();
        let stats = QueryStats::from_samples("q", &refs, Duration::from_secs(2));
        assert_eq!((stats.requests, stats.errors), (4, 1));
        assert_eq!(stats.throughput(), 2.0);
        assert_eq!(
            stats.latency,
            Some(Latency { p50: 20_000, p95: 30_000, p99: 30_000, max: 30_000 })
        );
        assert_eq!(stats.note.as_deref(), Some("first error: HTTP 400"));

        let all_failed = QueryStats::from_samples("q", &[&failed], Duration::from_secs(1));
        assert_eq!(all_failed.latency, None);
        assert_eq!(all_failed.note.as_deref(), Some("every request failed: HTTP 400"));
    }
}
