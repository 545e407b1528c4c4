//! What the engine measures for the server's `/metrics`: a latency histogram type with fixed buckets,
//! the time profile validation takes, and the readings of the store (pool and job queue).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cdr_store::{Backend, JobCounts, PoolUsage, SubscriptionCounts};

use crate::{Engine, InteractionError};

/// The upper bounds of the histogram buckets, in seconds (the `+Inf` bucket is the count).
pub const HISTOGRAM_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Durations counted into [`HISTOGRAM_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, the observations above the previous bound and at most this one.
    buckets: [AtomicU64; HISTOGRAM_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A reading of a [`Histogram`], cumulative as Prometheus writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bound of [`HISTOGRAM_BUCKETS`], the observations at most that long.
    pub cumulative: [u64; HISTOGRAM_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(bucket) = HISTOGRAM_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; HISTOGRAM_BUCKETS.len()];
        let mut total = 0;
        for (bucket, count) in self.buckets.iter().zip(cumulative.iter_mut()) {
            total += bucket.load(Ordering::Relaxed);
            *count = total;
        }
        // Read after the buckets, so the count is never below the last bucket's.
        let count = self.count.load(Ordering::Relaxed).max(total);
        #[allow(clippy::cast_precision_loss, reason = "a sum of durations, shown as seconds")]
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot { cumulative, count, sum_seconds }
    }
}

impl Engine {
    /// How long the profile validation of submitted resources took (writes and `$validate`).
    #[must_use]
    pub fn validation_times(&self) -> &Histogram {
        &self.validation_times
    }

    /// The database backend (`postgres` or `sqlite`) and its pool's connections now.
    #[must_use]
    pub fn pool_usage(&self) -> (&'static str, PoolUsage) {
        let backend = match self.store.backend() {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        };
        (backend, self.store.pool_usage())
    }

    /// The asynchronous jobs queued and running, all processes together.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn job_counts(&self) -> Result<JobCounts, InteractionError> {
        Ok(self.store.job_counts().await?)
    }

    /// The subscriptions by state and the events active ones have yet to deliver, all processes together.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn subscription_counts(&self) -> Result<SubscriptionCounts, InteractionError> {
        Ok(self.store.subscription_counts().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let histogram = Histogram::default();
        for millis in [0, 3, 3, 40, 60_000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative, [1, 1, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
        assert_eq!(snapshot.count, 5);
        assert!((snapshot.sum_seconds - 60.046).abs() < 1e-9);
    }
}
