//! Conditional-interaction criteria: a query string parsed by `cdr-search` and matched by the store's
//! search compiler, so conditional create, update and delete accept every search parameter.
//!
//! Unknown parameters are always an error here (a criterion silently dropped could match the wrong
//! resource). Result parameters (`_count`, `_sort`, …) do not affect matching. A value longer than the
//! index holds ([`MAX_INDEXED_BYTES`]) is refused: the index keeps only the first bytes of a stored value, so
//! the criteria could not find the resource they name, and a conditional create would duplicate it.

use cdr_model::{Issue, IssueType, OperationOutcome, ResourceType};
use cdr_search::{
    Criterion, QueryLimits, SearchError, SearchParamRegistry, SearchQuery, SearchValue,
    TokenSystem, parse_query_with_limits,
};
use cdr_store::MAX_INDEXED_BYTES;

use crate::InteractionError;

/// Parameters the parser takes that shape a response rather than select resources.
const RESULT_PARAMETERS: [&str; 11] = [
    "_format",
    "_pretty",
    "_summary",
    "_count",
    "_sort",
    "_total",
    "_elements",
    "_include",
    "_revinclude",
    "_contained",
    "_containedType",
];

/// Parsed criteria and the key that serialises concurrent writes with the same criteria.
#[derive(Debug)]
pub(crate) struct Criteria {
    pub(crate) query: SearchQuery,
    /// The type and criteria in a canonical order: two requests with equal criteria share it.
    pub(crate) lock_key: String,
}

/// Parses a conditional query string such as `identifier=http://hospital.example/mrn|123`; a leading
/// `?` or `Type?` is tolerated. The criteria are held to the same query budget as searches.
pub(crate) fn parse_criteria(
    registry: &SearchParamRegistry,
    limits: &QueryLimits,
    resource_type: ResourceType,
    query: &str,
) -> Result<Criteria, InteractionError> {
    let query = match query.split_once('?') {
        Some((prefix, rest)) if prefix.is_empty() || prefix == resource_type.as_str() => rest,
        _ => query,
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| {
            let base = name.split(':').next().unwrap_or_default();
            !RESULT_PARAMETERS.contains(&base)
        })
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if pairs.iter().any(|(name, value)| name.contains('\0') || value.contains('\0')) {
        return Err(InteractionError::invalid(
            "conditional criteria must not contain NUL characters",
        ));
    }
    let parsed = parse_query_with_limits(Some(resource_type), &pairs, registry, limits);
    if !parsed.errors.is_empty() {
        let issues = parsed
            .errors
            .iter()
            .map(|error| {
                let code = match error {
                    SearchError::Unknown { .. } => IssueType::NotSupported,
                    SearchError::Invalid { .. } | SearchError::Inapplicable { .. } => {
                        IssueType::Invalid
                    }
                    SearchError::LimitExceeded { .. } => IssueType::TooCostly,
                };
                Issue::error(code, format!("conditional criteria: {error}"))
            })
            .collect();
        return Err(InteractionError::Invalid(OperationOutcome::new(issues)));
    }
    if parsed.query.clauses.is_empty() {
        return Err(InteractionError::invalid(
            "conditional criteria are empty: give at least one search parameter",
        ));
    }
    if let Some(longest) = parsed
        .query
        .clauses
        .iter()
        .filter_map(|clause| longest_text(&clause.criterion))
        .max()
        .filter(|longest| *longest > MAX_INDEXED_BYTES)
    {
        return Err(InteractionError::Invalid(OperationOutcome::single(Issue::error(
            IssueType::TooLong,
            format!(
                "conditional criteria: a value of {longest} bytes is longer than the {MAX_INDEXED_BYTES} bytes the search index compares"
            ),
        ))));
    }
    let mut parts: Vec<String> = parsed
        .query
        .clauses
        .iter()
        .zip(&pairs)
        .map(|(clause, (_, value))| format!("{}={value}", clause.canonical_name))
        .collect();
    parts.sort();
    parts.dedup();
    Ok(Criteria { query: parsed.query, lock_key: format!("{resource_type}?{}", parts.join("&")) })
}

/// The length in bytes of the longest text a criterion compares, if it compares any.
fn longest_text(criterion: &Criterion) -> Option<usize> {
    match criterion {
        Criterion::Param(filter) => filter.values.iter().filter_map(value_text_length).max(),
        Criterion::Chain { inner, .. } | Criterion::Has { inner, .. } => longest_text(inner),
    }
}

fn value_text_length(value: &SearchValue) -> Option<usize> {
    let texts: Vec<&str> = match value {
        SearchValue::Missing(_)
        | SearchValue::Number { .. }
        | SearchValue::Date { .. }
        | SearchValue::Near(_) => Vec::new(),
        SearchValue::String { exact, normalized } => vec![exact, normalized],
        SearchValue::Token(token) => {
            let system = match &token.system {
                TokenSystem::Is(system) => Some(system.as_str()),
                TokenSystem::Any | TokenSystem::NoSystem => None,
            };
            system.into_iter().chain(token.code.as_deref()).collect()
        }
        SearchValue::OfType { type_system, type_code, value } => {
            vec![type_system, type_code, value]
        }
        SearchValue::Reference(reference) => [&reference.id, &reference.version, &reference.url]
            .into_iter()
            .filter_map(Option::as_deref)
            .collect(),
        SearchValue::Quantity { system, code, .. } => {
            [system, code].into_iter().filter_map(Option::as_deref).collect()
        }
        SearchValue::Uri(text) | SearchValue::Special(text) => vec![text],
        SearchValue::Composite(components) => {
            return components.iter().filter_map(value_text_length).max();
        }
    };
    texts.into_iter().map(str::len).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> ResourceType {
        ResourceType::parse("Patient").unwrap()
    }

    #[test]
    fn lock_key_ignores_order_and_encoding() {
        let registry = SearchParamRegistry::r4().unwrap();
        let first =
            parse_criteria(&registry, &QueryLimits::default(), patient(), "identifier=s|1&_id=x")
                .unwrap();
        let second = parse_criteria(
            &registry,
            &QueryLimits::default(),
            patient(),
            "Patient?_id=x&identifier=s%7C1&_count=3",
        )
        .unwrap();
        assert_eq!(first.lock_key, second.lock_key);
        assert_eq!(first.lock_key, "Patient?_id=x&identifier=s|1");
    }

    #[test]
    fn refuses_what_it_cannot_match() {
        let registry = SearchParamRegistry::r4().unwrap();
        let too_long = format!("identifier=s|{}", "x".repeat(MAX_INDEXED_BYTES + 1));
        let chained_too_long = format!("general-practitioner.name={}", "é".repeat(301));
        for query in ["", "_format=json", "nonsense=smith", "identifier=a|b|c", "birthdate=soon"]
            .into_iter()
            .chain([too_long.as_str(), chained_too_long.as_str()])
        {
            assert!(
                parse_criteria(&registry, &QueryLimits::default(), patient(), query).is_err(),
                "{query}"
            );
        }
        let longest = format!(
            "identifier={}|{}",
            "s".repeat(MAX_INDEXED_BYTES),
            "x".repeat(MAX_INDEXED_BYTES)
        );
        parse_criteria(&registry, &QueryLimits::default(), patient(), &longest).unwrap();
    }
}
