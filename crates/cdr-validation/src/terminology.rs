//! ValueSet expansion from the CodeSystems of a `ProfileSet`, code membership, and the is-a hierarchy of a
//! CodeSystem.
//!
//! [`expand_value_set`] and [`hierarchy_codes`] are the public face of this module: the server rewrites the
//! token search modifiers `:in`, `:not-in`, `:above` and `:below` into lists of codes with them.
//!
//! Supported: `compose.include` with explicit concepts, whole code systems whose content is complete,
//! filters `concept is-a`, `descendent-of`, `=` and `in`, and nested value sets; `compose.exclude`
//! with explicit concepts. Anything else (unknown or partial code systems, other filters) makes the
//! affected system undecidable, so that a code from it is never reported as wrong.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::profile_set::{ConformanceKind, ProfileSet};
use crate::structure::str_field;

/// Why a ValueSet or a CodeSystem hierarchy cannot be enumerated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminologyError {
    /// No ValueSet with this canonical is loaded.
    #[error("unknown ValueSet '{0}'")]
    UnknownValueSet(String),
    /// The ValueSet includes codes that cannot be enumerated offline (a partial or unknown CodeSystem, an
    /// unsupported filter, or an unknown nested ValueSet).
    #[error("ValueSet '{0}' cannot be fully expanded from the loaded CodeSystems")]
    NotExpandable(String),
    /// No CodeSystem with this canonical is loaded.
    #[error("unknown CodeSystem '{0}'")]
    UnknownCodeSystem(String),
    /// The CodeSystem is loaded but not complete (`content` other than `complete`), so its hierarchy is unknown.
    #[error(
        "CodeSystem '{system}' is not complete (content '{content}'), so its hierarchy is not known"
    )]
    IncompleteCodeSystem { system: String, content: String },
    /// The CodeSystem does not define the code.
    #[error("code '{code}' is not defined in CodeSystem '{system}'")]
    UnknownCode { system: String, code: String },
}

/// Which way [`hierarchy_codes`] walks the is-a hierarchy from a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HierarchyDirection {
    /// The code's descendants (what the code subsumes).
    Descendants,
    /// The code's ancestors (what subsumes the code).
    Ancestors,
}

/// Every `(system, code)` pair of a ValueSet's expansion, sorted.
///
/// The expansion is the one validation uses for bindings (see the module documentation for what is supported),
/// computed once and cached in `set`.
///
/// # Errors
/// [`TerminologyError::UnknownValueSet`] when `canonical` names no loaded ValueSet;
/// [`TerminologyError::NotExpandable`] when part of it cannot be enumerated (never a silently short list).
pub fn expand_value_set(
    set: &ProfileSet,
    canonical: &str,
) -> Result<Vec<(String, String)>, TerminologyError> {
    if set.resource(ConformanceKind::ValueSet, canonical).is_none() {
        return Err(TerminologyError::UnknownValueSet(canonical.to_owned()));
    }
    let expansion = set.expansion(canonical);
    if expansion.undecidable || !expansion.undecidable_systems.is_empty() {
        return Err(TerminologyError::NotExpandable(canonical.to_owned()));
    }
    let sorted: BTreeSet<&(String, String)> = expansion.codes.iter().collect();
    Ok(sorted.into_iter().cloned().collect())
}

/// `code` followed by its descendants or its ancestors in CodeSystem `system`, each once, sorted after `code`.
///
/// The hierarchy is the nesting of `CodeSystem.concept` together with the concept properties `parent` and
/// `subsumedBy` (and their inverse `child`) where present; `hierarchyMeaning` is not consulted.
///
/// # Errors
/// When the CodeSystem is unknown or not complete, or does not define `code`.
pub fn hierarchy_codes(
    set: &ProfileSet,
    system: &str,
    code: &str,
    direction: HierarchyDirection,
) -> Result<Vec<String>, TerminologyError> {
    let Some(code_system) = set.resource(ConformanceKind::CodeSystem, system) else {
        return Err(TerminologyError::UnknownCodeSystem(system.to_owned()));
    };
    let content = code_system.get("content").and_then(Value::as_str).unwrap_or("complete");
    if content != "complete" {
        return Err(TerminologyError::IncompleteCodeSystem {
            system: system.to_owned(),
            content: content.to_owned(),
        });
    }
    let concepts =
        code_system.get("concept").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut edges: Vec<(&str, &str)> = Vec::new();
    let mut known: HashSet<&str> = HashSet::new();
    collect_edges(concepts, None, &mut edges, &mut known);
    if !known.contains(code) {
        return Err(TerminologyError::UnknownCode {
            system: system.to_owned(),
            code: code.to_owned(),
        });
    }
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for (parent, child) in edges {
        let (from, to) = match direction {
            HierarchyDirection::Descendants => (parent, child),
            HierarchyDirection::Ancestors => (child, parent),
        };
        next.entry(from).or_default().push(to);
    }
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut pending: Vec<&str> = next.get(code).cloned().unwrap_or_default();
    while let Some(current) = pending.pop() {
        if current != code && reached.insert(current) {
            pending.extend(next.get(current).into_iter().flatten());
        }
    }
    let mut codes = vec![code.to_owned()];
    codes.extend(reached.into_iter().map(str::to_owned));
    Ok(codes)
}

/// The (parent, child) pairs of a concept tree: nesting, and the `parent`/`subsumedBy`/`child` properties.
fn collect_edges<'a>(
    concepts: &'a [Value],
    parent: Option<&'a str>,
    edges: &mut Vec<(&'a str, &'a str)>,
    known: &mut HashSet<&'a str>,
) {
    for concept in concepts {
        let Some(code) = concept.get("code").and_then(Value::as_str) else { continue };
        known.insert(code);
        if let Some(parent) = parent {
            edges.push((parent, code));
        }
        for property in concept.get("property").and_then(Value::as_array).into_iter().flatten() {
            let Some(value) = property.get("valueCode").and_then(Value::as_str) else { continue };
            match property.get("code").and_then(Value::as_str) {
                Some("parent" | "subsumedBy") => edges.push((value, code)),
                Some("child") => edges.push((code, value)),
                _ => {}
            }
        }
        let children =
            concept.get("concept").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        collect_edges(children, Some(code), edges, known);
    }
}

/// The codes a ValueSet contains, as far as they can be known offline.
#[derive(Debug, Default)]
pub(crate) struct Expansion {
    codes: HashSet<(String, String)>,
    bare_codes: HashSet<String>,
    /// Systems of which the value set holds codes that cannot be enumerated here.
    undecidable_systems: HashSet<String>,
    /// The value set is unknown or includes something that cannot be expanded.
    undecidable: bool,
}

/// Whether a code is in a value set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    Member,
    NotMember,
    Unknown,
}

impl Expansion {
    pub(crate) fn unknown() -> Expansion {
        Expansion { undecidable: true, ..Expansion::default() }
    }

    /// Expands without using the cache; `visiting` guards against value sets including themselves.
    pub(crate) fn compute(
        set: &ProfileSet,
        canonical: &str,
        visiting: &mut Vec<String>,
    ) -> Expansion {
        if visiting.iter().any(|seen| seen == canonical) || visiting.len() > 16 {
            return Expansion::unknown();
        }
        let Some(value_set) = set.resource(ConformanceKind::ValueSet, canonical) else {
            return Expansion::unknown();
        };
        visiting.push(canonical.to_owned());
        let mut expansion = Expansion::default();
        match value_set.get("compose").and_then(Value::as_object) {
            Some(compose) => {
                for include in
                    compose.get("include").and_then(Value::as_array).into_iter().flatten()
                {
                    if let Some(include) = include.as_object() {
                        expansion.include(set, include, visiting);
                    }
                }
                for exclude in
                    compose.get("exclude").and_then(Value::as_array).into_iter().flatten()
                {
                    let Some(system) = exclude.get("system").and_then(Value::as_str) else {
                        continue;
                    };
                    for concept in
                        exclude.get("concept").and_then(Value::as_array).into_iter().flatten()
                    {
                        if let Some(code) = concept.get("code").and_then(Value::as_str) {
                            expansion.codes.remove(&(system.to_owned(), code.to_owned()));
                        }
                    }
                }
            }
            None => {
                let contains =
                    value_set.get("expansion").and_then(|expansion| expansion.get("contains"));
                match contains.and_then(Value::as_array) {
                    Some(contains) => {
                        for concept in contains {
                            let system = concept.get("system").and_then(Value::as_str);
                            let code = concept.get("code").and_then(Value::as_str);
                            if let (Some(system), Some(code)) = (system, code) {
                                expansion.add(system, code);
                            }
                        }
                    }
                    None => expansion.undecidable = true,
                }
            }
        }
        visiting.pop();
        expansion.bare_codes = expansion.codes.iter().map(|(_, code)| code.clone()).collect();
        expansion
    }

    fn add(&mut self, system: &str, code: &str) {
        self.codes.insert((system.to_owned(), code.to_owned()));
    }

    fn include(
        &mut self,
        set: &ProfileSet,
        include: &Map<String, Value>,
        visiting: &mut Vec<String>,
    ) {
        let nested: Vec<&str> = include
            .get("valueSet")
            .and_then(Value::as_array)
            .map(|nested| nested.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(system) = str_field(include, "system") else {
            for canonical in nested {
                let inner = Expansion::compute(set, canonical, visiting);
                self.codes.extend(inner.codes);
                self.undecidable_systems.extend(inner.undecidable_systems);
                self.undecidable |= inner.undecidable;
            }
            return;
        };
        if !nested.is_empty() {
            // An intersection of a system with value sets: not expanded here.
            self.undecidable_systems.insert(system.to_owned());
            return;
        }
        if let Some(concepts) = include.get("concept").and_then(Value::as_array) {
            for concept in concepts {
                if let Some(code) = concept.get("code").and_then(Value::as_str) {
                    self.add(system, code);
                }
            }
            return;
        }
        let Some(code_system) = complete_code_system(set, system) else {
            self.undecidable_systems.insert(system.to_owned());
            return;
        };
        let concepts = code_system
            .get("concept")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let filters =
            include.get("filter").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if filters.is_empty() {
            let mut all = Vec::new();
            collect_codes(concepts, &mut all);
            for code in all {
                self.add(system, code);
            }
            return;
        }
        let mut selected: Option<HashSet<&str>> = None;
        for filter in filters {
            let Some(codes) = apply_filter(concepts, filter) else {
                self.undecidable_systems.insert(system.to_owned());
                return;
            };
            selected = Some(match selected {
                Some(previous) => previous.intersection(&codes).copied().collect(),
                None => codes,
            });
        }
        for code in selected.unwrap_or_default() {
            self.add(system, code);
        }
    }

    /// Whether `code` (of `system`, if given) is in the value set.
    pub(crate) fn contains(&self, system: Option<&str>, code: &str) -> Membership {
        match system {
            Some(system) => {
                if self.codes.contains(&(system.to_owned(), code.to_owned())) {
                    Membership::Member
                } else if self.undecidable || self.undecidable_systems.contains(system) {
                    Membership::Unknown
                } else {
                    Membership::NotMember
                }
            }
            None => {
                if self.bare_codes.contains(code) {
                    Membership::Member
                } else if self.undecidable || !self.undecidable_systems.is_empty() {
                    Membership::Unknown
                } else {
                    Membership::NotMember
                }
            }
        }
    }
}

fn complete_code_system(set: &ProfileSet, system: &str) -> Option<std::sync::Arc<Value>> {
    let code_system = set.resource(ConformanceKind::CodeSystem, system)?;
    let content = code_system.get("content").and_then(Value::as_str).unwrap_or("complete");
    (content == "complete").then_some(code_system)
}

fn collect_codes<'a>(concepts: &'a [Value], out: &mut Vec<&'a str>) {
    for concept in concepts {
        if let Some(code) = concept.get("code").and_then(Value::as_str) {
            out.push(code);
        }
        if let Some(children) = concept.get("concept").and_then(Value::as_array) {
            collect_codes(children, out);
        }
    }
}

/// The codes selected by one filter, or `None` when the filter is not supported.
fn apply_filter<'a>(concepts: &'a [Value], filter: &Value) -> Option<HashSet<&'a str>> {
    let property = filter.get("property").and_then(Value::as_str)?;
    let op = filter.get("op").and_then(Value::as_str)?;
    let value = filter.get("value").and_then(Value::as_str)?;
    if property != "concept" && property != "code" {
        return None;
    }
    let mut by_code: HashMap<&str, &'a Value> = HashMap::new();
    index_concepts(concepts, &mut by_code);
    match op {
        "=" => Some(by_code.get_key_value(value).map(|(code, _)| *code).into_iter().collect()),
        "in" => Some(
            value
                .split(',')
                .filter_map(|code| by_code.get_key_value(code.trim()).map(|(k, _)| *k))
                .collect(),
        ),
        "is-a" | "descendent-of" => {
            let root = by_code.get(value)?;
            let mut codes = Vec::new();
            if op == "is-a" {
                codes.push(root.get("code").and_then(Value::as_str)?);
            }
            if let Some(children) = root.get("concept").and_then(Value::as_array) {
                collect_codes(children, &mut codes);
            }
            Some(codes.into_iter().collect())
        }
        _ => None,
    }
}

fn index_concepts<'a>(concepts: &'a [Value], out: &mut HashMap<&'a str, &'a Value>) {
    for concept in concepts {
        if let Some(code) = concept.get("code").and_then(Value::as_str) {
            out.insert(code, concept);
        }
        if let Some(children) = concept.get("concept").and_then(Value::as_array) {
            index_concepts(children, out);
        }
    }
}
