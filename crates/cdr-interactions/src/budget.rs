//! The cost budget of a resource body, and the pool that runs CPU-heavy work off the async runtime.
//!
//! A body within the byte limit can still be costly to validate: its number of elements, of contained
//! resources (each one's references are checked against the whole resource by `dom-3`) and of distinct
//! profiles it claims (each one is validated in full) multiply the validator's work. [`ResourceLimits`]
//! bounds each, counted in one pass over the parsed JSON before any validation; a body over a limit is
//! refused with [`InteractionError::ResourceTooCostly`] naming the limit.
//!
//! Validation runs on tokio's blocking pool through [`CpuPool`], at most `permits` at a time, so that
//! however many heavy writes or `$validate` calls arrive, the async workers stay free to answer health
//! checks and reads; the waiting requests queue on the semaphore, bounded by the request timeout.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::InteractionError;

/// Bounds on what one resource body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// JSON values (objects, arrays and primitives) in the whole body, contained resources and Bundle
    /// entries included.
    pub max_elements: usize,
    /// Contained resources, counted at every level.
    pub max_contained: usize,
    /// Distinct `meta.profile` URLs, counted over the resource and everything it contains.
    pub max_profiles: usize,
    /// Entries of one transaction or batch Bundle.
    pub max_bundle_entries: usize,
}

impl Default for ResourceLimits {
    /// 250,000 elements (an ImagingStudy of 20,000 instances has about 150,000), 100 contained
    /// resources and 20 distinct profiles: beyond any imaging resource, far below what makes validation
    /// take seconds; 10,000 entries in a Bundle (an imaging submission has fewer than ten).
    fn default() -> ResourceLimits {
        ResourceLimits {
            max_elements: 250_000,
            max_contained: 100,
            max_profiles: 20,
            max_bundle_entries: 10_000,
        }
    }
}

impl ResourceLimits {
    /// Checks a resource against the limits in one pass, stopping at the first one exceeded.
    ///
    /// # Errors
    /// [`InteractionError::ResourceTooCostly`] naming the limit.
    pub(crate) fn check(&self, resource: &Map<String, Value>) -> Result<(), InteractionError> {
        let mut count = Count::default();
        let mut stack = Vec::new();
        count.object(self, resource, &mut stack)?;
        while let Some(value) = stack.pop() {
            match value {
                Value::Array(items) => {
                    count.element(self)?;
                    stack.extend(items);
                }
                Value::Object(members) => count.object(self, members, &mut stack)?,
                _ => count.element(self)?,
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Count<'a> {
    elements: usize,
    contained: usize,
    profiles: BTreeSet<&'a str>,
}

impl<'a> Count<'a> {
    fn element(&mut self, limits: &ResourceLimits) -> Result<(), InteractionError> {
        self.elements += 1;
        if self.elements > limits.max_elements {
            return Err(too_costly("elements", limits.max_elements));
        }
        Ok(())
    }

    /// Counts an object, its contained resources and its profiles, and queues its members.
    fn object(
        &mut self,
        limits: &ResourceLimits,
        members: &'a Map<String, Value>,
        stack: &mut Vec<&'a Value>,
    ) -> Result<(), InteractionError> {
        self.element(limits)?;
        if let Some(Value::Array(contained)) = members.get("contained") {
            self.contained += contained.len();
            if self.contained > limits.max_contained {
                return Err(too_costly("contained resources", limits.max_contained));
            }
        }
        if let Some(Value::Array(profiles)) =
            members.get("meta").and_then(|meta| meta.get("profile"))
        {
            self.profiles.extend(profiles.iter().filter_map(Value::as_str));
            if self.profiles.len() > limits.max_profiles {
                return Err(too_costly("distinct profiles", limits.max_profiles));
            }
        }
        stack.extend(members.values());
        Ok(())
    }
}

fn too_costly(what: &str, limit: usize) -> InteractionError {
    InteractionError::ResourceTooCostly(format!(
        "the resource holds more than {limit} {what}, the most this server accepts"
    ))
}

/// Runs CPU-heavy closures on the blocking pool, at most `permits` at once.
#[derive(Debug, Clone)]
pub(crate) struct CpuPool {
    permits: Arc<Semaphore>,
}

impl CpuPool {
    /// A pool of `permits` (at least 1) concurrent jobs.
    pub(crate) fn new(permits: usize) -> CpuPool {
        CpuPool { permits: Arc::new(Semaphore::new(permits.max(1))) }
    }

    /// Runs `work` on the blocking pool once a permit is free. A panic in `work` resumes on the caller,
    /// where the HTTP layer's panic handler answers it like any other.
    pub(crate) async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // The semaphore is never closed; were it closed, the work would run uncapped.
        let _permit = self.permits.acquire().await.ok();
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn limits() -> ResourceLimits {
        ResourceLimits {
            max_elements: 50,
            max_contained: 2,
            max_profiles: 2,
            max_bundle_entries: 2,
        }
    }

    fn check(body: &Value) -> Result<(), InteractionError> {
        limits().check(body.as_object().expect("an object"))
    }

    fn refusal(body: &Value) -> String {
        match check(body) {
            Err(InteractionError::ResourceTooCostly(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn within_limits() {
        let body = json!({
            "resourceType": "Patient",
            "meta": {"profile": ["a", "b", "a"]},
            "contained": [{"resourceType": "Organization"}, {"resourceType": "Practitioner"}]
        });
        assert!(check(&body).is_ok());
    }

    #[test]
    fn each_limit_is_named() {
        let many: Vec<Value> = (0..60).map(Value::from).collect();
        assert!(refusal(&json!({"resourceType": "Patient", "x": many})).contains("50 elements"));
        let contained = json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Organization"},
            {"resourceType": "Organization", "contained": [{"resourceType": "Organization"}]}
        ]});
        assert!(refusal(&contained).contains("2 contained resources"));
        let profiles = json!({"resourceType": "Patient", "meta": {"profile": ["a"]}, "contained": [
            {"resourceType": "Organization", "meta": {"profile": ["b", "c"]}}
        ]});
        assert!(refusal(&profiles).contains("2 distinct profiles"));
    }

    #[tokio::test]
    async fn a_panic_reaches_the_caller() {
        let pool = CpuPool::new(1);
        assert_eq!(pool.run(|| 2 + 2).await, 4);
        let panicked =
            tokio::spawn(async move { pool.run(|| -> u8 { panic!("boom") }).await }).await;
        assert!(panicked.is_err_and(|error| error.is_panic()));
    }
}
