//! The public terminology functions: ValueSet expansion and CodeSystem hierarchies, against the R4 core
//! definitions and a small CodeSystem whose hierarchy is given by `subsumedBy` properties.

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use cdr_validation::{
    HierarchyDirection, ProfileSet, TerminologyError, expand_value_set, hierarchy_codes,
};

const STATUS: &str = "http://hl7.org/fhir/diagnostic-report-status";

/// A CodeSystem whose hierarchy is given by properties, not nesting: `b` and `c` are below `a`, `d` below `c`.
const BY_PROPERTY: &str = r#"{"resourceType":"CodeSystem","url":"http://example.org/cs","status":"active","content":"complete",
  "concept":[{"code":"a"},
             {"code":"b","property":[{"code":"subsumedBy","valueCode":"a"}]},
             {"code":"c","property":[{"code":"parent","valueCode":"a"}]},
             {"code":"d","property":[{"code":"subsumedBy","valueCode":"c"}]}]}"#;

fn profiles() -> ProfileSet {
    let mut set = ProfileSet::r4_core().unwrap();
    set.add_json("by-property", BY_PROPERTY).unwrap();
    set.add_json(
        "fragment",
        r#"{"resourceType":"CodeSystem","url":"http://example.org/fragment","status":"active","content":"fragment","concept":[{"code":"x"}]}"#,
    )
    .unwrap();
    set
}

fn check_hierarchy(system: &str, code: &str, direction: HierarchyDirection, expected: &[&str]) {
    let codes = hierarchy_codes(&profiles(), system, code, direction).unwrap();
    assert_eq!(codes, expected, "{system}|{code} {direction:?}");
}

#[test]
fn value_set_expansion_lists_every_code() {
    let codes =
        expand_value_set(&profiles(), "http://hl7.org/fhir/ValueSet/diagnostic-report-status")
            .unwrap();
    let expected = [
        "amended",
        "appended",
        "cancelled",
        "corrected",
        "entered-in-error",
        "final",
        "partial",
        "preliminary",
        "registered",
        "unknown",
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|code| (STATUS.to_owned(), (*code).to_owned())).collect();
    assert_eq!(codes, expected);
}

#[test]
fn value_set_errors_are_reported() {
    let set = profiles();
    assert_eq!(
        expand_value_set(&set, "http://example.org/no-such-vs"),
        Err(TerminologyError::UnknownValueSet("http://example.org/no-such-vs".to_owned()))
    );
    // Includes all of SNOMED CT, which is not loaded.
    let body_site = "http://hl7.org/fhir/ValueSet/body-site";
    assert_eq!(
        expand_value_set(&set, body_site),
        Err(TerminologyError::NotExpandable(body_site.to_owned()))
    );
}

#[test]
fn hierarchy_from_nesting() {
    use HierarchyDirection::{Ancestors, Descendants};
    check_hierarchy(STATUS, "amended", Descendants, &["amended", "appended", "corrected"]);
    check_hierarchy(STATUS, "corrected", Ancestors, &["corrected", "amended"]);
    check_hierarchy(STATUS, "final", Descendants, &["final"]);
    check_hierarchy(STATUS, "final", Ancestors, &["final"]);
}

#[test]
fn hierarchy_from_properties() {
    use HierarchyDirection::{Ancestors, Descendants};
    check_hierarchy("http://example.org/cs", "a", Descendants, &["a", "b", "c", "d"]);
    check_hierarchy("http://example.org/cs", "d", Ancestors, &["d", "a", "c"]);
    check_hierarchy("http://example.org/cs", "b", Descendants, &["b"]);
}

#[test]
fn hierarchy_errors_are_reported() {
    let set = profiles();
    let below = HierarchyDirection::Descendants;
    assert_eq!(
        hierarchy_codes(&set, "http://example.org/none", "a", below),
        Err(TerminologyError::UnknownCodeSystem("http://example.org/none".to_owned()))
    );
    assert_eq!(
        hierarchy_codes(&set, "http://example.org/fragment", "x", below),
        Err(TerminologyError::IncompleteCodeSystem {
            system: "http://example.org/fragment".to_owned(),
            content: "fragment".to_owned()
        })
    );
    assert_eq!(
        hierarchy_codes(&set, STATUS, "nope", below),
        Err(TerminologyError::UnknownCode { system: STATUS.to_owned(), code: "nope".to_owned() })
    );
}
