//! Invariants (`ElementDefinition.constraint.expression`) evaluated with cdr-fhirpath.
//!
//! Each resource definition's constraints are compiled once: a constraint on the root is evaluated
//! against the resource; a constraint on `Patient.contact` becomes `contact.all(iif((<expression>) = false, false, true))`, so a
//! failure is located at the element path (without an item index). Datatype invariants (`per-1`,
//! `ref-1`, ...) are not evaluated. An invariant that does not parse or fails to evaluate gives an
//! information issue, never an error. Invariants declared on a slice (or a child of one) are evaluated
//! on each item that matched the slice, located at that item (`Patient.identifier[0]`).

use std::collections::HashMap;

use cdr_fhirpath::{EvaluationContext, Expression};
use cdr_model::{IssueSeverity, IssueType};
use serde_json::Value;

use crate::structure::Elem;
use crate::validator::Walker;

/// Invariants not evaluated, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    // Every element: "hasValue() or (children().count() > id.count())"; the JSON rules (no empty
    // objects, arrays or strings) check the same thing, element by element, with precise locations.
    ("ele-1", "checked by the JSON rules"),
    // Every resource: narrative and contained rules whose JSON equivalents are checked structurally.
    ("dom-6", "best practice (narrative), advisory only"),
];

/// One compiled invariant of a resource definition.
#[derive(Debug)]
pub(crate) struct Invariant {
    pub(crate) key: String,
    pub(crate) error: bool,
    pub(crate) human: String,
    /// The element path it is located at (`Patient.contact`).
    pub(crate) path: String,
    pub(crate) expression: Result<Expression, String>,
}

/// Compiles the invariants of a resource definition's elements (not of its slices).
pub(crate) fn compile(elements: &[Elem]) -> Vec<Invariant> {
    let Some(root) = elements.first() else { return Vec::new() };
    let mut invariants = Vec::new();
    for elem in elements {
        if elem.slice_name.is_some() || elem.id.contains(':') {
            continue;
        }
        for constraint in &elem.constraints {
            if SKIPPED.iter().any(|(key, _)| *key == constraint.key) {
                continue;
            }
            let text = if elem.path == root.path {
                constraint.expression.clone()
            } else {
                let relative = elem.path[root.path.len() + 1..].replace("[x]", "");
                // An empty result holds (as for the root); `all()` alone would count it as a failure.
                format!("{relative}.all(iif(({}) = false, false, true))", constraint.expression)
            };
            invariants.push(Invariant {
                key: constraint.key.clone(),
                error: constraint.error,
                human: constraint.human.clone(),
                path: elem.path.replace("[x]", ""),
                expression: Expression::parse(&text).map_err(|error| error.to_string()),
            });
        }
    }
    invariants
}

/// Compiles the invariants declared on slices and their children (`Patient.identifier:MRN`,
/// `ImagingStudy.identifier:studyInstanceUid.value`), by element index. Each is evaluated with the item
/// that matched the slice as its root. Constraints the slice inherits from the unsliced element (same
/// key) are left to [`compile`].
pub(crate) fn compile_slices(elements: &[Elem]) -> HashMap<usize, Vec<Invariant>> {
    let mut by_element = HashMap::new();
    for (idx, elem) in elements.iter().enumerate() {
        if elem.slice_name.is_none() && !elem.id.contains(':') {
            continue;
        }
        let unsliced =
            elements.iter().find(|other| other.path == elem.path && !other.id.contains(':'));
        let invariants: Vec<Invariant> = elem
            .constraints
            .iter()
            .filter(|constraint| !SKIPPED.iter().any(|(key, _)| *key == constraint.key))
            .filter(|constraint| {
                unsliced.is_none_or(|unsliced| {
                    unsliced.constraints.iter().all(|inherited| inherited.key != constraint.key)
                })
            })
            .map(|constraint| Invariant {
                key: constraint.key.clone(),
                error: constraint.error,
                human: constraint.human.clone(),
                path: String::new(),
                expression: Expression::parse(&constraint.expression)
                    .map_err(|error| error.to_string()),
            })
            .collect();
        if !invariants.is_empty() {
            by_element.insert(idx, invariants);
        }
    }
    by_element
}

impl Walker<'_> {
    /// Evaluates invariants against a resource; `prefix` is the FHIRPath of the resource itself.
    pub(crate) fn invariants(
        &mut self,
        invariants: &[Invariant],
        resource: &Value,
        prefix: &str,
        root: &str,
    ) {
        let context = EvaluationContext::new();
        for invariant in invariants {
            let location = match invariant.path.strip_prefix(root) {
                Some(rest) => format!("{prefix}{rest}"),
                None => prefix.to_owned(),
            };
            let outcome = match &invariant.expression {
                Ok(expression) => {
                    match cdr_fhirpath::check_invariant(expression, resource, &context) {
                        Ok(holds) => Ok(holds),
                        Err(error) => Err(error.to_string()),
                    }
                }
                Err(error) => Err(error.clone()),
            };
            let (severity, code, message) = match outcome {
                Ok(true) => continue,
                Ok(false) if invariant.error => (
                    IssueSeverity::Error,
                    IssueType::Invariant,
                    format!("{}: {}", invariant.key, invariant.human),
                ),
                Ok(false) => (
                    IssueSeverity::Warning,
                    IssueType::Invariant,
                    format!("{}: {}", invariant.key, invariant.human),
                ),
                Err(error) => (
                    IssueSeverity::Information,
                    IssueType::Informational,
                    format!("invariant {} not evaluated: {error}", invariant.key),
                ),
            };
            self.issues.push(crate::report::ValidationIssue {
                severity,
                code,
                expression: location,
                message,
            });
        }
    }
}
