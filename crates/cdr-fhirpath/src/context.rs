//! The evaluation context: environment variables and callbacks supplied by the caller.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::ast::Expr;
use crate::datetime::Partial;
use crate::eval::Memo;
use crate::value::{Collection, Item};

/// Decides `memberOf`: whether a code, Coding or CodeableConcept is in the value set with that URL.
/// `None` means unknown (the result is empty).
pub type MemberOfFn<'a> = dyn Fn(&Item<'_>, &str) -> Option<bool> + Send + Sync + 'a;
/// Decides `conformsTo`: whether a resource conforms to the profile with that URL. `None` means unknown.
pub type ConformsToFn<'a> = dyn Fn(&Value, &str) -> Option<bool> + Send + Sync + 'a;
/// Receives `trace(name)` output.
pub type TraceFn<'a> = dyn Fn(&str, &Collection<'_>) + Send + Sync + 'a;

/// What an evaluation may consult besides its focus.
#[derive(Default)]
pub struct EvaluationContext<'a> {
    pub(crate) resource: Option<&'a Value>,
    pub(crate) root_resource: Option<&'a Value>,
    pub(crate) context: Option<Collection<'a>>,
    pub(crate) variables: HashMap<String, Collection<'a>>,
    pub(crate) member_of: Option<&'a MemberOfFn<'a>>,
    pub(crate) conforms_to: Option<&'a ConformsToFn<'a>>,
    pub(crate) trace: Option<&'a TraceFn<'a>>,
    pub(crate) now: Option<Partial>,
    pub(crate) strict: bool,
}

/// Results shared by several evaluations over one input. The constant subexpressions of an expression
/// (those depending neither on the focus nor on `$this`, `$index` or `$total`, such as
/// `%rootResource.contained.id` in R4's `ref-1`) are evaluated once per `%resource` and `%rootResource`
/// rather than once per evaluation, so checking an invariant on each of n elements costs O(n), not O(n²).
///
/// Share a cache only between contexts that differ at most in `%resource` and `%rootResource` (same
/// variables and callbacks), and only while the input is not modified.
#[derive(Default)]
pub struct EvaluationCache<'a> {
    memo: Mutex<HashMap<(usize, usize, usize), Arc<Memo<'a>>>>,
    /// The expressions evaluated with the cache, by address, kept alive so no other takes their address.
    expressions: Mutex<HashMap<usize, Arc<Expr>>>,
}

impl fmt::Debug for EvaluationCache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluationCache").finish_non_exhaustive()
    }
}

impl<'a> EvaluationCache<'a> {
    /// An empty cache.
    pub fn new() -> EvaluationCache<'a> {
        EvaluationCache::default()
    }

    pub(crate) fn pin(&self, expression: &Arc<Expr>) {
        let mut expressions = self.expressions.lock().unwrap_or_else(PoisonError::into_inner);
        expressions.entry(Arc::as_ptr(expression) as usize).or_insert_with(|| expression.clone());
    }

    pub(crate) fn get(&self, key: (usize, usize, usize)) -> Option<Arc<Memo<'a>>> {
        self.memo.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: (usize, usize, usize), memo: Arc<Memo<'a>>) {
        self.memo.lock().unwrap_or_else(PoisonError::into_inner).insert(key, memo);
    }
}

impl fmt::Debug for EvaluationContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluationContext")
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl<'a> EvaluationContext<'a> {
    /// A context with no variables and no callbacks.
    pub fn new() -> EvaluationContext<'a> {
        EvaluationContext::default()
    }

    /// Sets `%resource` (default: the evaluation root).
    #[must_use]
    pub fn with_resource(mut self, resource: &'a Value) -> EvaluationContext<'a> {
        self.resource = Some(resource);
        self
    }

    /// Sets `%rootResource` (default: `%resource`).
    #[must_use]
    pub fn with_root_resource(mut self, root_resource: &'a Value) -> EvaluationContext<'a> {
        self.root_resource = Some(root_resource);
        self
    }

    /// Sets `%context` (default: the evaluation focus).
    #[must_use]
    pub fn with_context(mut self, context: Collection<'a>) -> EvaluationContext<'a> {
        self.context = Some(context);
        self
    }

    /// Sets an environment variable `%name`.
    #[must_use]
    pub fn with_variable(mut self, name: &str, value: Collection<'a>) -> EvaluationContext<'a> {
        self.variables.insert(name.to_owned(), value);
        self
    }

    /// Sets the `memberOf` callback; without one, `memberOf` yields empty.
    #[must_use]
    pub fn with_member_of(mut self, member_of: &'a MemberOfFn<'a>) -> EvaluationContext<'a> {
        self.member_of = Some(member_of);
        self
    }

    /// Sets the `conformsTo` callback; without one, `conformsTo` yields empty.
    #[must_use]
    pub fn with_conforms_to(mut self, conforms_to: &'a ConformsToFn<'a>) -> EvaluationContext<'a> {
        self.conforms_to = Some(conforms_to);
        self
    }

    /// Sets the `trace` callback; without one, `trace` only passes its input on.
    #[must_use]
    pub fn with_trace(mut self, trace: &'a TraceFn<'a>) -> EvaluationContext<'a> {
        self.trace = Some(trace);
        self
    }

    /// Fixes the instant `now()`, `today()` and `timeOfDay()` report (default: the system clock, in UTC).
    #[must_use]
    pub fn with_now(mut self, now: Partial) -> EvaluationContext<'a> {
        self.now = Some(now);
        self
    }

    /// In strict mode, navigating to an element the FHIR model does not define is an error.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> EvaluationContext<'a> {
        self.strict = strict;
        self
    }
}
