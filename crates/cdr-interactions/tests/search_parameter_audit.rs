//! An audit of the R4 search parameters of the served types against the official R4 examples of those types
//! (`cdr-validation/test_data/r4-examples/examples.tgz`, each resource and each resource of an example Bundle).
//!
//! * Every element a parameter's expression selects has a type that parameter type indexes (R4 search.html,
//!   "Search parameter types"), and so does every element a composite's component selects, for the component's
//!   own definition: an expression that points at the wrong element, or a component paired with the wrong
//!   expression, fails here.
//! * Every parameter yields an index value from some example, except those of [`NOT_POPULATED`], which no
//!   example populates (each with the reason). The list is exact: the test fails if a listed parameter yields a
//!   value, or an unlisted one yields none.
//! * No parameter fails to evaluate on any example.
//!
//! The defects found are corrected by `cdr-search/data/overlay.json`.

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use cdr_fhirpath::{Collection, EvaluationContext, Expression};
use cdr_interactions::SERVED_TYPES;
use cdr_model::ResourceType;
use cdr_search::{SearchParamDef, SearchParamRegistry, SearchParamType, extract};
use serde_json::Value;

/// Parameters of the served types that no official example populates, as `(type, code, reason)`; `*` stands for
/// every served type (a parameter defined on `Resource`).
const NOT_POPULATED: &[(&str, &str, &str)] = &[
    ("*", "_profile", "no example has meta.profile"),
    ("*", "_security", "no example has meta.security"),
    ("*", "_source", "no example has meta.source"),
    (
        "DiagnosticReport",
        "results-interpreter",
        "the one resultsInterpreter (DiagnosticReport-gingival-mass) is a display without a reference",
    ),
    ("Encounter", "reason-reference", "no example has Encounter.reasonReference"),
    (
        "Provenance",
        "patient",
        "no example's Provenance.target is a Patient (DocumentReference, Procedure, Consent, MolecularSequence)",
    ),
    (
        "Provenance",
        "when",
        "the examples give occurredPeriod, and R4's expression takes occurred as dateTime only",
    ),
    ("ServiceRequest", "instantiates-canonical", "no example has instantiatesCanonical"),
    ("ServiceRequest", "instantiates-uri", "no example has instantiatesUri"),
    (
        "ServiceRequest",
        "replaces",
        "both examples' replaces (myringotomy, subrequest) are a display without a reference",
    ),
];

/// The FHIR types each parameter type indexes (R4 search.html, "Search parameter types"; `markdown` is a
/// string, `Age`, `Count`, `Distance`, `Duration` and `SimpleQuantity` are quantities).
fn indexes(param_type: SearchParamType, fhir_type: &str) -> bool {
    let types: &[&str] = match param_type {
        SearchParamType::Number => &["integer", "decimal", "positiveInt", "unsignedInt"],
        SearchParamType::Date => &["date", "dateTime", "instant", "Period", "Timing"],
        SearchParamType::String => &["string", "markdown", "HumanName", "Address"],
        SearchParamType::Token => &[
            "boolean",
            "code",
            "Coding",
            "CodeableConcept",
            "ContactPoint",
            "Identifier",
            "string",
            "uri",
            "id",
        ],
        SearchParamType::Reference => &["Reference", "canonical", "uri"],
        SearchParamType::Quantity => {
            &["Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "Money"]
        }
        SearchParamType::Uri => &["uri", "url", "canonical", "oid", "uuid"],
        SearchParamType::Composite | SearchParamType::Special => &[],
    };
    types.contains(&fhir_type)
}

/// Every resource of the served types in the examples, by file name (`file#n` for a Bundle's n-th entry).
fn examples() -> Vec<(String, ResourceType, Value)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cdr-validation/test_data/r4-examples/examples.tgz");
    let bytes = std::fs::read(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut resources = Vec::new();
    for file in archive.entries().unwrap() {
        let mut file = file.unwrap();
        let name = file.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let entries = json["entry"].as_array().cloned().unwrap_or_default();
        for (index, entry) in entries.into_iter().enumerate() {
            resources.push((format!("{name}#{index}"), entry["resource"].clone()));
        }
        resources.push((name, json));
    }
    resources
        .into_iter()
        .filter_map(|(name, resource)| {
            let resource_type = ResourceType::parse(resource["resourceType"].as_str()?).ok()?;
            SERVED_TYPES.contains(&resource_type).then_some((name, resource_type, resource))
        })
        .collect()
}

/// The audited key of a parameter: `*` for one defined on `Resource`.
fn key(registry: &SearchParamRegistry, def: &SearchParamDef) -> (String, String) {
    let base = if registry.is_common(&def.code) { "*" } else { def.base.as_str() };
    (base.to_owned(), def.code.clone())
}

/// The elements of `items` whose type `param_type` does not index, as `type code: element type`.
fn mistyped(
    def: &SearchParamDef,
    param_type: SearchParamType,
    items: &Collection<'_>,
) -> Vec<String> {
    items
        .iter()
        .filter(|item| item.json().is_some() && !indexes(param_type, item.type_name()))
        .map(|item| {
            format!(
                "{} {}: {} selects {}",
                def.base.as_str(),
                def.code,
                param_type.as_str(),
                item.type_name()
            )
        })
        .collect()
}

/// The wrongly typed elements a composite's components select from `nodes`.
fn mistyped_components(
    registry: &SearchParamRegistry,
    def: &SearchParamDef,
    nodes: &Collection<'_>,
    context: &EvaluationContext<'_>,
) -> Vec<String> {
    let mut found = Vec::new();
    for component in &def.components {
        let component_def = registry.get_by_url(def.base, &component.definition).unwrap();
        let expression = Expression::parse(&component.expression).unwrap();
        for node in nodes.iter() {
            let focus = Collection::from_items(vec![node.clone()]);
            let items = expression.evaluate_items(focus, context).unwrap();
            found.extend(
                mistyped(def, component_def.param_type, &items)
                    .into_iter()
                    .map(|text| format!("{text} (component {})", component.expression)),
            );
        }
    }
    found
}

#[test]
fn r4_search_parameters_index_the_r4_examples() {
    let registry = SearchParamRegistry::r4().unwrap();
    let examples = examples();
    assert_eq!(examples.len(), 254);
    let context = EvaluationContext::new();
    let mut audited: BTreeSet<(String, String)> = BTreeSet::new();
    let mut yielding: BTreeSet<(String, String)> = BTreeSet::new();
    let mut wrong_types: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, resource_type, resource) in &examples {
        let extraction = extract(resource, &registry, *resource_type);
        failures.extend(extraction.failures.iter().map(|failure| format!("{name}: {failure}")));
        for def in registry.params_for(*resource_type) {
            let Some(text) = &def.expression else { continue };
            if def.param_type == SearchParamType::Special {
                continue;
            }
            audited.insert(key(&registry, def));
            if extraction.entries.iter().any(|entry| entry.code == def.code) {
                yielding.insert(key(&registry, def));
            }
            let items = Expression::parse(text).unwrap().evaluate(resource, &context).unwrap();
            if def.param_type == SearchParamType::Composite {
                wrong_types.extend(mistyped_components(&registry, def, &items, &context));
            } else {
                wrong_types.extend(mistyped(def, def.param_type, &items));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(wrong_types.is_empty(), "{wrong_types:#?}");
    let listed: BTreeMap<(String, String), &str> = NOT_POPULATED
        .iter()
        .map(|(base, code, reason)| (((*base).to_owned(), (*code).to_owned()), *reason))
        .collect();
    let empty: BTreeSet<(String, String)> = audited.difference(&yielding).cloned().collect();
    let unlisted: Vec<&(String, String)> =
        empty.iter().filter(|param| !listed.contains_key(*param)).collect();
    let stale: Vec<&(String, String)> =
        listed.keys().filter(|param| !empty.contains(*param)).collect();
    assert!(unlisted.is_empty(), "parameters no example yields a value for: {unlisted:?}");
    assert!(stale.is_empty(), "listed parameters that yield values (or do not exist): {stale:?}");
}
