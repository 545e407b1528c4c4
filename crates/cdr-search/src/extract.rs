//! Index extraction: every search parameter of a resource's type, evaluated on the resource.
//!
//! Each parameter's FHIRPath expression (parsed once by the registry) is evaluated with `cdr-fhirpath`; each node
//! it selects is turned into index values by [`index_values`] using the node's FHIR type.
//! Composite parameters evaluate each component's expression relative to every node the composite's expression
//! selects and produce one [`IndexValue::Composite`] per combination of component values.
//! Values the expression computes rather than selects are indexed when they are Booleans or strings.
//! A token row of a `code` element gets the system its required binding implies
//! ([`SearchParamDef::code_system`]; in a composite, the component's definition's), so that `system|code`, `|code`
//! and `system|` treat it as they treat a Coding (R4 search.html#token).
//! Parameters without an expression (`_text`, `_content`, …) are not extracted; of the `special` ones only `near`
//! (`Location.position`) is, as a position.
//! Identical `(code, value)` pairs are written once.

use std::collections::HashSet;

use cdr_fhirpath::{Collection, EvaluationContext, Expression, Item, SystemValue};
use cdr_model::ResourceType;
use serde_json::Value;

use crate::index::{IndexValue, index_values};
use crate::registry::{CompiledParam, SearchParamDef, SearchParamRegistry, SearchParamType};

/// Most composite rows one node may produce (the product of its components' value counts).
const MAX_COMPOSITE_ROWS: usize = 1_000;

/// One index row: a parameter code and one of its values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// The parameter's code on the resource's type, such as `based-on`.
    pub code: String,
    pub param_type: SearchParamType,
    pub value: IndexValue,
}

/// The index rows of one resource, and the parameters that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extraction {
    /// Sorted by code; values in document order within a code.
    pub entries: Vec<IndexEntry>,
    /// Parameters left out because their expression does not parse or fails on this resource.
    pub failures: Vec<ExtractFailure>,
}

/// A parameter that could not be evaluated on a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("search parameter '{code}' could not be extracted: {message}")]
pub struct ExtractFailure {
    pub code: String,
    pub message: String,
}

/// Extracts the index rows of `resource`, a resource of type `resource_type`.
#[must_use]
pub fn extract(
    resource: &Value,
    registry: &SearchParamRegistry,
    resource_type: ResourceType,
) -> Extraction {
    extract_params(resource, registry, resource_type, |_| true)
}

/// The index rows of `resource` for the parameters whose code `wanted` accepts.
pub(crate) fn extract_params(
    resource: &Value,
    registry: &SearchParamRegistry,
    resource_type: ResourceType,
    wanted: impl Fn(&str) -> bool,
) -> Extraction {
    let mut params: Vec<(&SearchParamDef, &CompiledParam)> =
        registry.compiled_params_for(resource_type).filter(|(def, _)| wanted(&def.code)).collect();
    params.sort_by(|left, right| left.0.code.cmp(&right.0.code));
    let context = EvaluationContext::new();
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    for (def, compiled) in params {
        if !def.is_searchable() {
            continue;
        }
        let Some(expression) = &compiled.expression else { continue };
        let failure = |message: String| ExtractFailure { code: def.code.clone(), message };
        let expression = match expression {
            Ok(expression) => expression,
            Err(message) => {
                failures.push(failure(message.clone()));
                continue;
            }
        };
        let items = match expression.evaluate(resource, &context) {
            Ok(items) => items,
            Err(error) => {
                failures.push(failure(error.to_string()));
                continue;
            }
        };
        let values = match def.param_type {
            SearchParamType::Composite => {
                composite_values(def, compiled, registry, items, &context)
            }
            param_type => Ok(items
                .iter()
                .flat_map(|item| item_values(param_type, def.code_system, item))
                .collect()),
        };
        let values = match values {
            Ok(values) => values,
            Err(message) => {
                failures.push(failure(message));
                continue;
            }
        };
        let mut seen = HashSet::new();
        for value in values {
            if seen.insert(value.clone()) {
                entries.push(IndexEntry {
                    code: def.code.clone(),
                    param_type: def.param_type,
                    value,
                });
            }
        }
    }
    Extraction { entries, failures }
}

/// The index values of one evaluation result: a node of the resource, or a value the expression computed
/// (`Patient.deceased.exists() and Patient.deceased != false` yields a System Boolean). A `code` node's token
/// takes `code_system`, when the parameter has one.
fn item_values(
    param_type: SearchParamType,
    code_system: Option<&'static str>,
    item: &Item<'_>,
) -> Vec<IndexValue> {
    if let Some(node) = item.json() {
        let mut values = index_values(param_type, item.type_name(), node);
        if let Some(system) = code_system.filter(|_| item.type_name() == "code") {
            for value in &mut values {
                if let IndexValue::Token(token) = value {
                    token.system = Some(system.to_owned());
                }
            }
        }
        return values;
    }
    match item.system_value() {
        Some(SystemValue::Boolean(flag)) => index_values(param_type, "boolean", &Value::Bool(flag)),
        Some(SystemValue::String(text)) => index_values(param_type, "string", &Value::String(text)),
        _ => Vec::new(),
    }
}

/// One composite value per node of `items` and per combination of its components' values.
fn composite_values(
    def: &SearchParamDef,
    compiled: &CompiledParam,
    registry: &SearchParamRegistry,
    items: Collection<'_>,
    context: &EvaluationContext<'_>,
) -> Result<Vec<IndexValue>, String> {
    let mut component_parts: Vec<(SearchParamType, Option<&'static str>, &Expression)> = Vec::new();
    for (component, parsed) in def.components.iter().zip(&compiled.components) {
        let Some(component_def) = registry.get_by_url(def.base, &component.definition) else {
            return Err(format!("component '{}' is not a known parameter", component.definition));
        };
        let expression = parsed.as_ref().map_err(String::clone)?;
        component_parts.push((component_def.param_type, component_def.code_system, expression));
    }
    let mut rows = Vec::new();
    for item in items.into_items() {
        let mut combinations: Vec<Vec<IndexValue>> = vec![Vec::new()];
        for (param_type, code_system, expression) in &component_parts {
            let focus = Collection::from_items(vec![item.clone()]);
            let component_items =
                expression.evaluate_items(focus, context).map_err(|error| error.to_string())?;
            let values: Vec<IndexValue> = component_items
                .iter()
                .flat_map(|component| item_values(*param_type, *code_system, component))
                .collect();
            combinations = combinations
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |value| {
                        let mut combination = prefix.clone();
                        combination.push(value.clone());
                        combination
                    })
                })
                .collect();
            if combinations.len() > MAX_COMPOSITE_ROWS {
                return Err(format!(
                    "more than {MAX_COMPOSITE_ROWS} composite rows for one element"
                ));
            }
        }
        rows.extend(
            combinations
                .into_iter()
                .filter(|combination| !combination.is_empty())
                .map(IndexValue::Composite),
        );
    }
    Ok(rows)
}
