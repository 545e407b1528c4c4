//! Invariants (`ElementDefinition.constraint.expression`) evaluated with cdr-fhirpath, item by item.
//!
//! Every ElementDefinition's constraints are compiled once per StructureDefinition (resources,
//! datatypes, extension definitions and profiles of any of them). While walking, the validator notes
//! each item it checks against an element that has invariants (a resource root, a `Patient.contact`
//! item, a `Period` met at `Patient.contact[1].period`, an extension, a matched slice) together with
//! its location and its enclosing resources. Once the walk is done, the whole input is navigated
//! once with cdr-fhirpath (`children()` level by level) so that every node is an item typed by the
//! FHIR model, and each noted invariant is evaluated with that item as its focus, `%resource` set to
//! the nearest enclosing resource and `%rootResource` to the resource containing it (the container
//! of a contained resource, otherwise the resource itself). A failure is reported at the item's
//! location (`Patient.contact[1].period`).
//!
//! An invariant holds as the HL7 validator judges it (`InstanceValidator.checkInvariant` calls
//! `FHIRPathEngine.evaluateToBoolean`, whose `convertToBoolean` decides): a single boolean is the verdict, any
//! other non-empty result holds, and an **empty result fails**. FHIRPath's empty is "unknown": `per-1`'s
//! `start <= end` on a date and a dateTime of the same day (`2023-06-21`, `2023-06-21T06:20:00Z`) is empty,
//! since the order of values of different precision is undecided, so that Period fails `per-1`. A few
//! published R4 expressions would then fail on instances R4 allows, because they navigate an element that may
//! be absent (`ref-1` on a Reference with only an identifier); they are evaluated in the corrected form the
//! HL7 validator uses (`CORRECTED`).
//!
//! An invariant that does not parse or fails to evaluate gives an information issue, never an error.
//! Constraints of a slice (or of an element inside one) are those of the slice plus those of the
//! unsliced element it restricts, so an item that matched a slice is checked against both.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use cdr_fhirpath::{Collection, EvaluationCache, EvaluationContext, Expression, Item, SystemValue};
use cdr_model::{IssueSeverity, IssueType};
use serde_json::Value;

use crate::report::ValidationIssue;
use crate::structure::{CompiledSd, Elem};
use crate::validator::Walker;

/// Invariants not evaluated, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    // Every element: "hasValue() or (children().count() > id.count())". The JSON rules (no empty
    // objects, arrays or strings; `null` only where the matching `_` item has a value) reject every
    // instance ele-1 would, element by element and with precise locations, so evaluating it on each
    // item would only repeat those issues at a cost.
    ("ele-1", "checked by the JSON rules"),
    // Narrative.div: both are `htmlChecks()`. `xhtml.rs` implements them on the XML tokens with the
    // allowlists of R4's narrative rules (elements, attributes, URLs, some non-whitespace content);
    // cdr-fhirpath's `htmlChecks()` is a substring heuristic that takes words of attribute values
    // (a `title` containing " on ") for event attributes: false errors on 23 narratives of the
    // official `Bundle-types` example.
    ("txt-1", "checked by the XHTML rules"),
    ("txt-2", "checked by the XHTML rules"),
    // Every resource: narrative and contained rules whose JSON equivalents are checked structurally.
    ("dom-6", "best practice (narrative), advisory only"),
];

/// Published R4 expressions evaluated in the corrected form of the HL7 validator (its
/// `FHIRPathExpressionFixer`), matched on the exact published text so that a profile's own expression is never
/// rewritten. Each published form is empty, so fails, when the element it navigates is absent: `ref-1` on a
/// Reference without `reference` (the corrected form also accepts `#`, a reference to the container), `bdl-8` on
/// an entry without `fullUrl`, `ras-2` on a prediction without `probability`, and the `name` rule of the
/// canonical resources (`cpb-0`, `spd-0`, ..., warnings) on a resource without `name`. The HL7 validator
/// also rewrites expressions for other reasons (regular expressions, other FHIR versions); those are not
/// taken over.
const CORRECTED: &[(&str, &str)] = &[
    (
        "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))",
        "reference.exists() implies (reference = '#' or (reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))))",
    ),
    (
        "fullUrl.contains('/_history/').not()",
        "fullUrl.exists() implies fullUrl.contains('/_history/').not()",
    ),
    (
        "probability is decimal implies (probability as decimal) <= 100",
        "(probability.exists() and (probability is decimal)) implies ((probability as decimal) <= 100)",
    ),
    (
        "name.matches('[A-Z]([A-Za-z0-9_]){0,254}')",
        "name.exists() implies name.matches('[A-Z]([A-Za-z0-9_]){0,254}')",
    ),
];

/// The expression evaluated for a published one: its corrected form, if it has one.
fn evaluated_form(expression: &str) -> &str {
    CORRECTED
        .iter()
        .find(|(published, _)| *published == expression)
        .map_or(expression, |(_, corrected)| corrected)
}

/// Whether an invariant's result holds, as `FHIRPathEngine.convertToBoolean` of the HL7 validator judges it:
/// empty fails, a single boolean is itself, anything else non-empty holds.
fn holds(result: &Collection<'_>) -> bool {
    match &result[..] {
        [] => false,
        [item] => !matches!(item.system_value(), Some(SystemValue::Boolean(false))),
        _ => true,
    }
}

/// One compiled invariant.
#[derive(Debug)]
pub(crate) struct Invariant {
    pub(crate) key: String,
    pub(crate) error: bool,
    pub(crate) human: String,
    pub(crate) expression: Result<Expression, String>,
}

/// Compiles the invariants of every element, by element index. A slice, or an element inside one,
/// also gets the constraints of the unsliced element with the same path that it does not repeat.
pub(crate) fn compile(elements: &[Elem]) -> HashMap<usize, Vec<Invariant>> {
    let mut by_element = HashMap::new();
    for (idx, elem) in elements.iter().enumerate() {
        let mut constraints: Vec<&crate::structure::Constraint> = elem.constraints.iter().collect();
        if elem.slice_name.is_some() || elem.id.contains(':') {
            let unsliced =
                elements.iter().find(|other| other.path == elem.path && !other.id.contains(':'));
            if let Some(unsliced) = unsliced {
                for inherited in &unsliced.constraints {
                    if constraints.iter().all(|own| own.key != inherited.key) {
                        constraints.push(inherited);
                    }
                }
            }
        }
        let invariants: Vec<Invariant> = constraints
            .into_iter()
            .filter(|constraint| !SKIPPED.iter().any(|(key, _)| *key == constraint.key))
            .map(|constraint| Invariant {
                key: constraint.key.clone(),
                error: constraint.error,
                human: constraint.human.clone(),
                expression: Expression::parse(evaluated_form(&constraint.expression))
                    .map_err(|error| error.to_string()),
            })
            .collect();
        if !invariants.is_empty() {
            by_element.insert(idx, invariants);
        }
    }
    by_element
}

/// An item noted during the walk, whose element has invariants.
pub(crate) struct Pending {
    /// The address of the item's JSON value (identity within the validated input).
    pub(crate) node: usize,
    pub(crate) sd: Arc<CompiledSd>,
    pub(crate) idx: usize,
    pub(crate) location: String,
    /// Addresses of the nearest enclosing resource and of the resource containing it.
    pub(crate) resource: usize,
    pub(crate) root_resource: usize,
}

/// The address of a JSON value, used to find the typed item of a node met during the walk.
pub(crate) fn address(value: &Value) -> usize {
    std::ptr::from_ref(value) as usize
}

static THIS: LazyLock<Option<Expression>> = LazyLock::new(|| Expression::parse("$this").ok());
static CHILDREN: LazyLock<Option<Expression>> =
    LazyLock::new(|| Expression::parse("children()").ok());

/// Every node of `root` (itself included) as an item typed by the FHIR model, by address; only the
/// addresses in `wanted` are kept.
pub(crate) fn typed_items<'v>(
    root: &'v Value,
    wanted: &HashSet<usize>,
) -> HashMap<usize, Item<'v>> {
    let mut found = HashMap::with_capacity(wanted.len());
    let (Some(this), Some(children)) = (THIS.as_ref(), CHILDREN.as_ref()) else { return found };
    let context = EvaluationContext::new();
    let Ok(mut level) = this.evaluate(root, &context) else { return found };
    while !level.is_empty() && found.len() < wanted.len() {
        for item in level.iter() {
            if let Some(value) = item.json()
                && wanted.contains(&address(value))
            {
                found.insert(address(value), item.clone());
            }
        }
        level = match children.evaluate_items(level, &context) {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    found
}

impl Walker<'_> {
    /// Notes an item of element `idx` of `sd` whose invariants must be evaluated after the walk.
    pub(crate) fn note_invariants(&mut self, sd: &Arc<CompiledSd>, idx: usize, value: &Value) {
        let note = |idx: usize, walker: &mut Self| {
            if sd.invariants.contains_key(&idx) {
                let (resource, root_resource) = walker.resources.last().copied().unwrap_or((0, 0));
                walker.pending.push(Pending {
                    node: address(value),
                    sd: sd.clone(),
                    idx,
                    location: walker.location(),
                    resource,
                    root_resource,
                });
            }
        };
        note(idx, self);
        if let Some(target) = sd.elements.get(idx).and_then(|elem| elem.content_reference) {
            note(target, self);
        }
    }

    /// Evaluates the noted invariants against `root`, the validated input.
    pub(crate) fn evaluate_invariants(&mut self, root: &Value) {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        let mut wanted: HashSet<usize> = HashSet::new();
        for noted in &pending {
            wanted.extend([noted.node, noted.resource, noted.root_resource]);
        }
        let items = typed_items(root, &wanted);
        // Constant subexpressions (`%rootResource.contained.id` in `ref-1`) are evaluated once per resource.
        let cache = EvaluationCache::new();
        let mut done: HashSet<(usize, &str, &str)> = HashSet::new();
        for noted in &pending {
            let Some(invariants) = noted.sd.invariants.get(&noted.idx) else { continue };
            for invariant in invariants {
                let text = invariant.expression.as_ref().map_or("", Expression::text);
                if !done.insert((noted.node, invariant.key.as_str(), text)) {
                    continue;
                }
                let outcome = match (&invariant.expression, items.get(&noted.node)) {
                    (Err(error), _) => Err(error.clone()),
                    (Ok(_), None) => Err("the element could not be navigated".to_owned()),
                    (Ok(expression), Some(item)) => {
                        let mut context = EvaluationContext::new();
                        if let Some(resource) = items.get(&noted.resource).and_then(Item::json) {
                            context = context.with_resource(resource);
                        }
                        if let Some(root) = items.get(&noted.root_resource).and_then(Item::json) {
                            context = context.with_root_resource(root);
                        }
                        let focus = Collection::from_items(vec![item.clone()]);
                        expression
                            .evaluate_items_cached(focus, &context, &cache)
                            .map(|result| holds(&result))
                            .map_err(|error| error.to_string())
                    }
                };
                let (severity, code, message) = match outcome {
                    Ok(true) => continue,
                    Ok(false) => (
                        if invariant.error { IssueSeverity::Error } else { IssueSeverity::Warning },
                        IssueType::Invariant,
                        format!("{}: {}", invariant.key, invariant.human),
                    ),
                    Err(error) => (
                        IssueSeverity::Information,
                        IssueType::Informational,
                        format!("invariant {} not evaluated: {error}", invariant.key),
                    ),
                };
                self.issues.push(ValidationIssue {
                    severity,
                    code,
                    expression: noted.location.clone(),
                    message,
                });
            }
        }
    }
}
