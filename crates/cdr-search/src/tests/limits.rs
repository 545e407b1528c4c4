//! The cost budget of [`QueryLimits`]: each bound admits a query at it and refuses one a step past it, with an
//! error naming the bound and its value; the oversized queries found by probing the server are refused; and an
//! un-typed chain resolves a number of links linear in its length.

use cdr_model::ResourceType;

use crate::tests::registry;
use crate::{Limit, ParsedQuery, QueryLimits, SearchError, parse_query, parse_query_with_limits};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

fn parse(type_name: Option<&str>, pairs: &[(String, String)], limits: &QueryLimits) -> ParsedQuery {
    let resource_type = type_name.map(|name| ResourceType::parse(name).unwrap());
    parse_query_with_limits(resource_type, pairs, registry(), limits)
}

/// The limit errors of a parse, as (limit, its value).
fn exceeded(parsed: &ParsedQuery) -> Vec<(Limit, usize)> {
    parsed
        .errors
        .iter()
        .filter_map(|error| match error {
            SearchError::LimitExceeded { limit, max, .. } => Some((*limit, *max)),
            _ => None,
        })
        .collect()
}

/// Limits far above every case, with `limit` set to `max`.
fn only(limit: Limit, max: usize) -> QueryLimits {
    let mut limits = QueryLimits {
        max_parameters: 10_000,
        max_name_bytes: 10_000,
        max_value_bytes: 10_000,
        max_clauses: 10_000,
        max_alternatives: 10_000,
        max_values: 10_000,
        max_sort_keys: 10_000,
        max_includes: 10_000,
        max_chain_depth: 10_000,
        max_chain_links: 10_000,
    };
    let field = match limit {
        Limit::Parameters => &mut limits.max_parameters,
        Limit::NameBytes => &mut limits.max_name_bytes,
        Limit::ValueBytes => &mut limits.max_value_bytes,
        Limit::Clauses => &mut limits.max_clauses,
        Limit::Alternatives => &mut limits.max_alternatives,
        Limit::Values => &mut limits.max_values,
        Limit::SortKeys => &mut limits.max_sort_keys,
        Limit::Includes => &mut limits.max_includes,
        Limit::ChainDepth => &mut limits.max_chain_depth,
        Limit::ChainLinks => &mut limits.max_chain_links,
    };
    *field = max;
    limits
}

#[test]
fn each_limit_admits_its_value_and_refuses_one_more() {
    type Pairs = &'static [(&'static str, &'static str)];
    // (limit, its value, searched type, a query at the limit, the same a step past it)
    let cases: &[(Limit, usize, Option<&str>, Pairs, Pairs)] = &[
        (
            Limit::Parameters,
            3,
            Some("Observation"),
            &[("code", "a"), ("_count", "5"), ("code", "c")],
            &[("code", "a"), ("_count", "5"), ("code", "c"), ("code", "d")],
        ),
        (Limit::NameBytes, 4, Some("Observation"), &[("code", "a")], &[("codes", "a")]),
        // Counted before unescaping: `a\,b` is four bytes.
        (Limit::ValueBytes, 4, Some("Observation"), &[("code", "a\\,b")], &[("code", "a\\,bc")]),
        (
            Limit::Clauses,
            2,
            Some("Observation"),
            &[("code", "a"), ("_sort", "date"), ("status", "final")],
            &[("code", "a"), ("_sort", "date"), ("status", "final"), ("code", "b")],
        ),
        (
            Limit::Alternatives,
            3,
            Some("Observation"),
            &[("code", "a,b\\,c,d")],
            &[("code", "a,b,c,d")],
        ),
        (
            Limit::Values,
            3,
            Some("Observation"),
            &[("code", "a,b"), ("status", "final")],
            &[("code", "a,b"), ("status", "final,amended")],
        ),
        // A chain counts its target type, a `_has` its source type.
        (
            Limit::Values,
            3,
            Some("Observation"),
            &[("subject:Patient.name", "x,y")],
            &[("subject:Patient.name", "x,y,z")],
        ),
        (
            Limit::Values,
            3,
            Some("Patient"),
            &[("_has:Observation:patient:code", "a,b")],
            &[("_has:Observation:patient:code", "a,b,c")],
        ),
        (
            Limit::Values,
            3,
            None,
            &[("_type", "Patient,Observation,Encounter")],
            &[("_type", "Patient,Observation,Encounter,Device")],
        ),
        (
            Limit::SortKeys,
            3,
            Some("Observation"),
            &[("_sort", "date,-code"), ("_sort", "status")],
            &[("_sort", "date,-code"), ("_sort", "status,-date")],
        ),
        (
            Limit::Includes,
            2,
            Some("Observation"),
            &[("_include", "Observation:subject"), ("_revinclude", "Provenance:target")],
            &[
                ("_include", "Observation:subject"),
                ("_revinclude", "Provenance:target"),
                ("_include:iterate", "Patient:organization"),
            ],
        ),
        (
            Limit::ChainDepth,
            1,
            Some("Observation"),
            &[("subject:Patient.name", "x")],
            &[("subject:Patient.organization.name", "x")],
        ),
        (
            Limit::ChainLinks,
            3,
            Some("Observation"),
            &[
                ("subject:Patient.name", "x"),
                ("subject:Patient.organization.name", "y"),
                ("code", "z"),
            ],
            &[
                ("subject:Patient.name", "x"),
                ("subject:Patient.organization.name", "y"),
                ("_has:Provenance:target:agent-role", "z"),
            ],
        ),
    ];
    for (limit, max, type_name, within, past) in cases {
        let limits = only(*limit, *max);
        let parsed = parse(*type_name, &pairs(within), &limits);
        assert_eq!(parsed.errors, [], "{limit:?} at {max}: {within:?}");
        let parsed = parse(*type_name, &pairs(past), &limits);
        assert_eq!(exceeded(&parsed), [(*limit, *max)], "{limit:?} past {max}: {past:?}");
        let message = parsed.errors[0].to_string();
        let field = format!("{:?}", QueryLimits::default());
        let described = limit.to_string();
        let field_name = described.trim_end_matches(')').rsplit('(').next().unwrap();
        assert!(field.contains(field_name), "{described} names a field of QueryLimits");
        assert!(
            message.contains(&format!("limit of {max} ")) && message.contains(field_name),
            "{message}"
        );
    }
}

#[test]
fn parsing_stops_at_a_query_limit_but_not_at_a_parameter_limit() {
    let query = pairs(&[("code", "a"), ("code", "b"), ("code", "c"), ("nonsense", "x")]);
    let parsed = parse(Some("Observation"), &query, &only(Limit::Clauses, 2));
    assert_eq!(parsed.query.clauses.len(), 2);
    assert_eq!(exceeded(&parsed), [(Limit::Clauses, 2)]);
    assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);

    let query = pairs(&[("code", "a,b,c,d"), ("status", "final"), ("nonsense", "x")]);
    let parsed = parse(Some("Observation"), &query, &only(Limit::Alternatives, 3));
    assert_eq!(parsed.query.clauses.len(), 1);
    assert_eq!(exceeded(&parsed), [(Limit::Alternatives, 3)]);
    assert_eq!(parsed.errors[1], SearchError::Unknown { name: "nonsense".to_owned() });
}

/// The queries that made the server fail before the limits (SQLite's expression depth and bind limits, and a
/// `_sort` that could not compile) are refused by the defaults, and each error names its limit.
#[test]
fn default_limits_refuse_the_probed_queries() {
    let observation = Some(ResourceType::parse("Observation").unwrap());
    let many_values = vec!["x"; 70_000].join(",");
    let hundred_values = vec!["x"; 100].join(",");
    let sort_keys = vec!["date"; 2_100].join(",");
    type Query = Vec<(String, String)>;
    let cases: Vec<(Query, Limit, usize)> = vec![
        (vec![("code".to_owned(), "x".to_owned()); 1_001], Limit::Parameters, 200),
        (vec![("code".to_owned(), "x".to_owned()); 101], Limit::Clauses, 100),
        (vec![("code".to_owned(), vec!["x"; 101].join(","))], Limit::Alternatives, 100),
        (vec![("code".to_owned(), many_values)], Limit::ValueBytes, 16_384),
        (vec![("code".to_owned(), "x".repeat(1 << 20))], Limit::ValueBytes, 16_384),
        (vec![("code".to_owned(), hundred_values); 11], Limit::Values, 1_000),
        (vec![("_sort".to_owned(), sort_keys)], Limit::SortKeys, 10),
        (vec![("_include".to_owned(), "Observation:subject".to_owned()); 21], Limit::Includes, 20),
        (vec![("subject:Patient.".repeat(300) + "name", "x".to_owned())], Limit::NameBytes, 1_000),
    ];
    for (query, limit, max) in cases {
        let parsed = parse_query(observation, &query, registry());
        assert_eq!(exceeded(&parsed), [(limit, max)], "{:?}", parsed.errors);
    }
    // The limits leave SQLite's expression depth (1,000) and bind limit (32,766 variables) far away, with a
    // handful of binds per value.
    let limits = QueryLimits::default();
    assert!(limits.max_clauses + limits.max_alternatives < 1_000 / 4);
    assert!(limits.max_values * 8 < 32_766);
}

#[test]
fn a_long_name_is_cut_in_its_error() {
    let name = "é".repeat(5_000);
    let parsed = parse(Some("Observation"), &[(name, "x".to_owned())], &QueryLimits::default());
    let [SearchError::LimitExceeded { name, limit: Limit::NameBytes, max: 1_000 }] =
        parsed.errors.as_slice()
    else {
        panic!("{:?}", parsed.errors);
    };
    assert_eq!(name.as_str(), "é".repeat(500) + "…");
}

/// `Provenance.target` may point to any of the other 145 types; a chain through it without `:Type` reads its tail
/// on each. Resolving each (type, tail) once per clause costs at most that many links per chain link, where
/// parsing every path anew would cost their product (about a million).
#[test]
fn untyped_chain_links_grow_linearly() {
    let provenance = ResourceType::parse("Provenance").unwrap();
    let n_targets = registry().get(provenance, "target").unwrap().targets.len();
    assert_eq!(n_targets, 145);
    let name = "target.derived-from.derived-from.derived-from.identifier";
    let query = [(name.to_owned(), "urn:x|1".to_owned())];
    let linear = only(Limit::ChainLinks, 4 * n_targets);
    let parsed = parse(Some("Provenance"), &query, &linear);
    assert_eq!(parsed.errors, []);
    assert_eq!(parsed.query.clauses[0].canonical_name, name);
    // The default budget holds it, and the same chain to an unknown parameter fails as unknown, not as a limit.
    let unknown = [("target.derived-from.derived-from.derived-from.x".to_owned(), "1".to_owned())];
    let parsed = parse_query(Some(provenance), &unknown, registry());
    assert_eq!(parsed.errors, [SearchError::Unknown { name: unknown[0].0.clone() }]);
    // Two such chains do not fit in the default budget.
    let twice = [query[0].clone(), query[0].clone()];
    let parsed = parse_query(Some(provenance), &twice, registry());
    assert_eq!(exceeded(&parsed), [(Limit::ChainLinks, 1_000)]);
}
