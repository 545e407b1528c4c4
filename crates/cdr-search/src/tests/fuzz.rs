//! Property tests of [`parse_query`] on what a client may send: arbitrary text, and names and values put
//! together from the pieces of the grammar (codes, modifiers, chains, `_has`, prefixes, escapes) in hostile
//! orders. The parser never panics, stays within its budget, and every position it reports lies inside the part
//! it names, on a character boundary.
//!
//! Each property runs 256 cases; `PROPTEST_CASES` sets another number (a longer run before a release).

use cdr_model::ResourceType;
use proptest::prelude::*;

use crate::tests::registry;
use crate::{ErrorPart, ParsedQuery, QueryLimits, SearchError, parse_query};

const TYPES: &[&str] =
    &["Observation", "Patient", "ImagingStudy", "DiagnosticReport", "Provenance", "AuditEvent"];

const NAME_PIECES: &[&str] = &[
    "code",
    "subject",
    "patient",
    "identifier",
    "date",
    "value-quantity",
    "code-value-quantity",
    "target",
    "entity",
    "derived-from",
    "based-on",
    "basedOn",
    "name",
    "_id",
    "_lastUpdated",
    "_has",
    "_include",
    "_revinclude",
    "_sort",
    "_count",
    "_total",
    "_summary",
    "_elements",
    "_type",
    "_contained",
    "Patient",
    "Observation",
    "Group",
    "missing",
    "exact",
    "contains",
    "text",
    "not",
    "above",
    "below",
    "of-type",
    "in",
    "iterate",
    ":",
    ".",
    "",
    "é",
    "\u{0}",
];

const VALUE_PIECES: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "sa",
    "eb",
    "ap",
    "2024",
    "-01",
    "-31",
    "T10:00",
    ":00.123",
    "Z",
    "+05:00",
    "1",
    "0.5",
    "1e3",
    "-",
    "|",
    "$",
    ",",
    "\\",
    "\\,",
    "http://loinc.org",
    "Patient/",
    "/_history/",
    "1",
    "urn:x",
    "*",
    ":",
    "true",
    "false",
    "é",
    "\u{0}",
    " ",
    "%",
    "Patient:subject",
    "Observation:*",
];

fn pieces(from: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(from), 0..max)
        .prop_map(|parts| parts.concat())
}

fn searched_type() -> impl Strategy<Value = Option<ResourceType>> {
    proptest::option::weighted(
        0.9,
        proptest::sample::select(TYPES).prop_map(|name| ResourceType::parse(name).unwrap()),
    )
}

/// The properties every parse must have, whatever its input.
fn check(pairs: &[(String, String)], parsed: &ParsedQuery) -> Result<(), TestCaseError> {
    let limits = QueryLimits::default();
    prop_assert!(parsed.query.clauses.len() <= limits.max_clauses);
    prop_assert!(parsed.query.sort.len() <= limits.max_sort_keys);
    prop_assert!(
        parsed.query.includes.len() + parsed.query.revincludes.len() <= limits.max_includes
    );
    for error in &parsed.errors {
        let SearchError::Invalid { name, part, position, .. } = error else { continue };
        let texts: Vec<&str> = pairs
            .iter()
            .filter(|(pair_name, _)| pair_name == name)
            .map(|(pair_name, value)| match part {
                ErrorPart::Name => pair_name.as_str(),
                ErrorPart::Value => value.as_str(),
            })
            .collect();
        prop_assert!(!texts.is_empty(), "{error} names no parameter of {pairs:?}");
        let inside =
            texts.iter().any(|text| *position <= text.len() && text.is_char_boundary(*position));
        prop_assert!(inside, "{error}: position outside its {part} in {pairs:?}");
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_pairs(
        resource_type in searched_type(),
        pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..6),
    ) {
        let parsed = parse_query(resource_type, &pairs, registry());
        check(&pairs, &parsed)?;
    }

    #[test]
    fn pairs_from_grammar_pieces(
        resource_type in searched_type(),
        pairs in proptest::collection::vec((pieces(NAME_PIECES, 10), pieces(VALUE_PIECES, 10)), 0..6),
    ) {
        let parsed = parse_query(resource_type, &pairs, registry());
        check(&pairs, &parsed)?;
    }

    /// Names shaped like chains and `_has`, with the links drawn from reference parameters.
    #[test]
    fn chains_and_has(
        resource_type in searched_type(),
        links in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(&["subject", "patient", "target", "entity", "derived-from", "based-on", "has-member"][..])
                    .prop_map(|code| format!("{code}.")),
                proptest::sample::select(&["subject:Patient", "target:Observation", "entity:Patient", "based-on:ServiceRequest"][..])
                    .prop_map(|code| format!("{code}.")),
                proptest::sample::select(&["_has:Observation:subject:", "_has:Provenance:target:", "_has:AuditEvent:entity:", "_has::"][..])
                    .prop_map(str::to_owned),
            ],
            0..7,
        ),
        last in proptest::sample::select(&["identifier", "code", "name", "x", "", "_id", "date:missing", "code:text"][..]),
        value in pieces(VALUE_PIECES, 6),
        n_copies in 1usize..4,
    ) {
        let name = links.concat() + last;
        let pairs = vec![(name, value); n_copies];
        let parsed = parse_query(resource_type, &pairs, registry());
        check(&pairs, &parsed)?;
    }
}
