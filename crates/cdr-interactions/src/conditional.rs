//! Conditional-interaction criteria: a query string parsed by `cdr-search` and matched by the store's
//! search compiler, so conditional create, update and delete accept every search parameter.
//!
//! Unknown parameters are always an error here (a criterion silently dropped could match the wrong
//! resource). Result parameters (`_count`, `_sort`, …) do not affect matching.

use cdr_model::{Issue, IssueType, OperationOutcome, ResourceType};
use cdr_search::{SearchError, SearchParamRegistry, SearchQuery, parse_query};

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
/// `?` or `Type?` is tolerated.
pub(crate) fn parse_criteria(
    registry: &SearchParamRegistry,
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
    let parsed = parse_query(Some(resource_type), &pairs, registry);
    if !parsed.errors.is_empty() {
        let issues = parsed
            .errors
            .iter()
            .map(|error| {
                let code = match error {
                    SearchError::Unknown { .. } => IssueType::NotSupported,
                    SearchError::Invalid { .. } => IssueType::Invalid,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> ResourceType {
        ResourceType::parse("Patient").unwrap()
    }

    #[test]
    fn lock_key_ignores_order_and_encoding() {
        let registry = SearchParamRegistry::r4().unwrap();
        let first = parse_criteria(&registry, patient(), "identifier=s|1&_id=x").unwrap();
        let second =
            parse_criteria(&registry, patient(), "Patient?_id=x&identifier=s%7C1&_count=3")
                .unwrap();
        assert_eq!(first.lock_key, second.lock_key);
        assert_eq!(first.lock_key, "Patient?_id=x&identifier=s|1");
    }

    #[test]
    fn refuses_what_it_cannot_match() {
        let registry = SearchParamRegistry::r4().unwrap();
        for query in ["", "_format=json", "nonsense=smith", "identifier=a|b|c", "birthdate=soon"] {
            assert!(parse_criteria(&registry, patient(), query).is_err(), "{query}");
        }
    }
}
