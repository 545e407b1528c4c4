//! Concurrent workers that share one stream of work items, numbered from zero, until a budget runs out.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much work a measurement does.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Keep starting work items for this long.
    Duration(Duration),
    /// Start exactly this many work items.
    Requests(u64),
}

/// Runs `work(0)`, `work(1)`, ... on `concurrency` tokio tasks until `budget` is spent, and returns every
/// result (in no particular order) with the wall time taken.
pub(crate) async fn run_workers<R, F, Fut>(
    concurrency: usize,
    budget: Budget,
    work: F,
) -> (Vec<R>, Duration)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let started = Instant::now();
    let next_item = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next_item = Arc::clone(&next_item);
        let work = Arc::clone(&work);
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let item = next_item.fetch_add(1, Ordering::Relaxed);
                let spent = match budget {
                    Budget::Duration(duration) => started.elapsed() >= duration,
                    Budget::Requests(n_requests) => item >= n_requests,
                };
                if spent {
                    return results;
                }
                results.push(work(item).await);
            }
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        match task.await {
            Ok(task_results) => results.extend(task_results),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Tasks are never cancelled: the runtime outlives this function.
            Err(_) => {}
        }
    }
    (results, started.elapsed())
}
