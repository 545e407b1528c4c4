//! Generates `src/code_systems.rs`, the code system implied for the `code` elements that token search parameters
//! land on, from the R4 core StructureDefinitions, ValueSets and CodeSystems of the repository's trimmed core
//! package (`definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz`), and fails when the committed file is stale. Run
//! with `UPDATE_EXPECT=1` to regenerate it.
//!
//! R4 (search.html#token): the system of a token on an element of type `code` is the one its binding implies, so
//! that `system|code` finds it as it finds a Coding. For each token parameter of every resource type (as the
//! registry splits it per type), each part of its expression (`|`) is followed through the snapshots (data types,
//! backbone elements, `contentReference`, `as`/`ofType` on choice elements, `where(...)` filters). A parameter
//! gets a system when every part that lands on a `code` element lands on one with a `required` binding whose
//! ValueSet draws on exactly one code system (one `compose.include` with a `system`, no filter, no imported
//! ValueSet) that the core package defines. That follows HAPI, whose Java enumerations (and so the systems of
//! their token rows) come from such bindings (`Patient.gender` → `http://hl7.org/fhir/administrative-gender`); a
//! binding to a system the package does not define (`Attachment.contentType`: `urn:ietf:bcp:13`) gives none, as
//! it gives HAPI a plain `CodeType`. A ValueSet on several systems (`Task.intent`) gives none here either, which
//! may differ from HAPI. Parts that are not a path (`Patient.deceased.exists() and …`) are computed values, never
//! `code` nodes.

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use cdr_model::{ALL_RESOURCE_TYPES, ResourceType};
use cdr_search::{SearchParamRegistry, SearchParamType};
use serde_json::Value;

/// The conformance resources the walk reads.
struct Package {
    /// Base StructureDefinitions by type name, each as its snapshot's elements by path.
    elements: HashMap<String, HashMap<String, Value>>,
    value_sets: HashMap<String, Value>,
    code_systems: HashSet<String>,
}

fn read_package(archive_path: &Path) -> Package {
    let file = std::fs::File::open(archive_path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut package = Package {
        elements: HashMap::new(),
        value_sets: HashMap::new(),
        code_systems: HashSet::new(),
    };
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !path.ends_with(".json") || path.ends_with(".index.json") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let resource: Value = serde_json::from_str(&text).unwrap();
        let url = resource["url"].as_str().unwrap_or_default().to_owned();
        match resource["resourceType"].as_str() {
            Some("StructureDefinition")
                if resource["derivation"] != "constraint" && resource["kind"] != "logical" =>
            {
                let elements = resource["snapshot"]["element"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|element| (element["path"].as_str().unwrap().to_owned(), element.clone()))
                    .collect();
                package.elements.insert(resource["type"].as_str().unwrap().to_owned(), elements);
            }
            Some("ValueSet") => {
                package.value_sets.insert(url, resource);
            }
            Some("CodeSystem") => {
                package.code_systems.insert(url);
            }
            _ => {}
        }
    }
    package
}

/// Where one part of an expression lands.
#[derive(Debug, PartialEq, Eq)]
enum Landing {
    /// On a `code` element (its path), with the system its binding implies.
    Code(String, Option<String>),
    /// On elements of other types, or on a computed value.
    Other,
}

/// One step of a path: an element name, or a type restriction of the step before.
enum Step {
    Element(String),
    Restrict(String),
}

/// Splits `text` on `separator` where it is not inside parentheses or quotes.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0_i32, false, 0);
    for (offset, character) in text.char_indices() {
        match character {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ if character == separator && depth == 0 && !quoted => {
                parts.push(text[start..offset].trim());
                start = offset + character.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

/// `(X)` → `X`, when the parentheses enclose the whole text.
fn unwrap_parentheses(text: &str) -> &str {
    let mut text = text.trim();
    while let Some(inner) = text.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')) {
        let mut depth = 0_i32;
        let balanced = inner.chars().all(|character| {
            depth += match character {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            depth >= 0
        });
        if !balanced {
            break;
        }
        text = inner.trim();
    }
    text
}

/// The steps of a path expression, or `None` when the part is not a path (an operator, a function other than
/// a filter or type restriction).
fn steps_of(part: &str) -> Option<Vec<Step>> {
    let part = unwrap_parentheses(part);
    let (path, restriction) = match split_top_level(part, ' ').as_slice() {
        [path] => (*path, None),
        [path, "as", type_name] => (*path, Some((*type_name).to_owned())),
        _ => return None,
    };
    let mut steps = Vec::new();
    for step in split_top_level(unwrap_parentheses(path), '.') {
        if step.chars().all(|character| character.is_ascii_alphanumeric()) {
            steps.push(Step::Element(step.to_owned()));
        } else if let Some(argument) = step
            .strip_prefix("as(")
            .or_else(|| step.strip_prefix("ofType("))
            .and_then(|rest| rest.strip_suffix(')'))
        {
            steps.push(Step::Restrict(argument.to_owned()));
        } else if !step.starts_with("where(") {
            return None;
        }
    }
    steps.extend(restriction.map(Step::Restrict));
    Some(steps)
}

fn type_codes(element: &Value) -> Vec<String> {
    element["type"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kind| kind["code"].as_str().unwrap().to_owned())
        .collect()
}

impl Package {
    /// Where the path `steps` (the first naming the resource type) lands.
    fn land(&self, steps: &[Step]) -> Landing {
        let Some(Step::Element(root)) = steps.first() else { return Landing::Other };
        let Some(mut elements) = self.elements.get(root) else { return Landing::Other };
        let mut path = root.clone();
        let mut current: Option<(String, Vec<String>)> = None;
        for step in &steps[1..] {
            match step {
                Step::Restrict(type_name) => {
                    let Some((_, codes)) = &mut current else { return Landing::Other };
                    codes.retain(|code| code == type_name);
                }
                Step::Element(name) => {
                    if let Some((element_path, codes)) = current.take() {
                        match codes.as_slice() {
                            [code] if code == "BackboneElement" || code == "Element" => {
                                path = element_path;
                            }
                            [code] => match self.elements.get(code) {
                                Some(type_elements) => {
                                    elements = type_elements;
                                    path.clone_from(code);
                                }
                                None => return Landing::Other,
                            },
                            _ => return Landing::Other,
                        }
                    }
                    let candidate = format!("{path}.{name}");
                    let Some(element) = elements
                        .get(&candidate)
                        .or_else(|| elements.get(&format!("{candidate}[x]")))
                    else {
                        return Landing::Other;
                    };
                    let element = match element["contentReference"].as_str() {
                        Some(reference) => &elements[reference.trim_start_matches('#')],
                        None => element,
                    };
                    let element_path =
                        element["path"].as_str().unwrap().trim_end_matches("[x]").to_owned();
                    current = Some((element_path, type_codes(element)));
                }
            }
        }
        match current {
            Some((element_path, codes)) if codes == ["code"] => {
                let element = elements.get(&element_path).unwrap();
                Landing::Code(element_path, self.implied_system(&element["binding"]))
            }
            _ => Landing::Other,
        }
    }

    /// The one code system a required binding's ValueSet draws on, when the package defines it.
    fn implied_system(&self, binding: &Value) -> Option<String> {
        if binding["strength"] != "required" {
            return None;
        }
        let url = binding["valueSet"].as_str()?.split('|').next()?;
        let value_set = self.value_sets.get(url)?;
        let [include] = value_set["compose"]["include"].as_array()?.as_slice() else { return None };
        if include.get("filter").is_some() || include.get("valueSet").is_some() {
            return None;
        }
        let system = include["system"].as_str()?;
        self.code_systems.contains(system).then(|| system.to_owned())
    }
}

#[test]
fn code_system_table_is_fresh() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let package =
        read_package(&manifest_dir.join("../../definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz"));
    let registry = SearchParamRegistry::r4().unwrap();
    // (type, url) → (element paths, system).
    let mut rows: BTreeMap<(String, String), (BTreeSet<String>, String)> = BTreeMap::new();
    for name in ALL_RESOURCE_TYPES {
        let resource_type = ResourceType::parse(name).unwrap();
        for def in registry.params_for(resource_type) {
            if def.param_type != SearchParamType::Token {
                continue;
            }
            let Some(expression) = &def.expression else { continue };
            let landings: Vec<Landing> = split_top_level(expression, '|')
                .into_iter()
                .map(|part| steps_of(part).map_or(Landing::Other, |steps| package.land(&steps)))
                .collect();
            let mut paths = BTreeSet::new();
            let mut systems = BTreeSet::new();
            for landing in landings {
                if let Landing::Code(path, system) = landing {
                    paths.insert(path);
                    systems.insert(system);
                }
            }
            if let [Some(system)] = Vec::from_iter(systems).as_slice() {
                rows.insert((name.to_owned(), def.url.clone()), (paths, system.clone()));
            }
        }
    }
    let mut out = String::from(
        "//! @generated by crates/cdr-search/tests/code_systems.rs from hl7.fhir.r4.core 4.0.1 (CC0); do not edit.
//! Regenerate: `UPDATE_EXPECT=1 cargo test -p cdr-search --test code_systems` (the test's module documentation
//! gives the rules).

/// `(resource type, SearchParameter URL, code system)`, sorted by type and URL: the system a token parameter's
/// `code` elements imply by their required binding. Each line ends with the elements it covers.
#[rustfmt::skip]
pub(crate) const CODE_SYSTEMS: &[(&str, &str, &str)] = &[
",
    );
    for ((name, url), (paths, system)) in &rows {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        writeln!(out, "    (\"{name}\", \"{url}\", \"{system}\"), // {}", paths.join(", "))
            .unwrap();
    }
    out.push_str("];\n");
    let target = manifest_dir.join("src/code_systems.rs");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&target, &out).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(committed == out, "src/code_systems.rs is stale: rerun with UPDATE_EXPECT=1");
}
