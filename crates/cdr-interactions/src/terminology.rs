//! The token modifiers that need terminology, `:in`, `:not-in`, `:above` and `:below`, rewritten into plain
//! token lists before the store compiles a query, so the store knows no terminology.
//!
//! * `code:in=VS` becomes `code=s1|c1,s2|c2,…` over the ValueSet's expansion; `:not-in` becomes `:not` of the
//!   same list. Several value sets (`:in=VS1,VS2`) are joined: `:in` matches a code in any of them, and
//!   `:not-in` (like `:not` here) matches a resource with no code in any of them.
//! * `code:below=s|c` becomes `code=s|c` plus every descendant of `c` in CodeSystem `s`; `:above` the code and
//!   its ancestors.
//! * Each code also matches without a system (`|c`): a Coding that has a code but no system, and an element of
//!   type `code` (`DiagnosticReport.status`) of a database indexed before such elements got the system their
//!   binding implies (until it is reindexed; they are indexed with it now).
//!
//! An unknown ValueSet, CodeSystem or code, a ValueSet that cannot be fully expanded, an empty list, or more
//! than [`MAX_CODES`] codes is a 400 with an OperationOutcome saying which: never a silently empty result.
//! `:above` and `:below` on uri and reference parameters are left to the store.

use cdr_model::{Issue, IssueType, OperationOutcome};
use cdr_search::{
    Criterion, Modifier, ParamFilter, SearchParamType, SearchQuery, SearchValue, TokenSystem,
    TokenValue,
};
use cdr_validation::{
    HierarchyDirection, ProfileSet, TerminologyError, expand_value_set, hierarchy_codes,
};

use crate::InteractionError;

/// Most codes one rewritten parameter may stand for.
const MAX_CODES: usize = 1_000;

/// Rewrites every terminology modifier of `query` (including inside chains and `_has`) into token lists.
///
/// # Errors
/// [`InteractionError::Invalid`] for what cannot be rewritten faithfully (see the module documentation).
pub(crate) fn expand_terminology(
    query: &mut SearchQuery,
    profiles: &ProfileSet,
) -> Result<(), InteractionError> {
    for clause in &mut query.clauses {
        expand_criterion(&mut clause.criterion, &clause.name, profiles)?;
    }
    Ok(())
}

fn expand_criterion(
    criterion: &mut Criterion,
    name: &str,
    profiles: &ProfileSet,
) -> Result<(), InteractionError> {
    let filter = match criterion {
        Criterion::Param(filter) => filter,
        Criterion::Chain { inner, .. } | Criterion::Has { inner, .. } => {
            return expand_criterion(inner, name, profiles);
        }
    };
    if filter.param.param_type != SearchParamType::Token {
        return Ok(());
    }
    let (modifier, tokens) = match filter.modifier {
        Some(Modifier::In) => (None, value_set_tokens(filter, name, profiles)?),
        Some(Modifier::NotIn) => (Some(Modifier::Not), value_set_tokens(filter, name, profiles)?),
        Some(Modifier::Below) => {
            (None, hierarchy_tokens(filter, name, profiles, HierarchyDirection::Descendants)?)
        }
        Some(Modifier::Above) => {
            (None, hierarchy_tokens(filter, name, profiles, HierarchyDirection::Ancestors)?)
        }
        _ => return Ok(()),
    };
    if tokens.is_empty() {
        return Err(error(IssueType::NotSupported, format!("'{name}' stands for no code at all")));
    }
    if tokens.len() > MAX_CODES {
        return Err(error(
            IssueType::TooCostly,
            format!(
                "'{name}' stands for {} codes, more than the {MAX_CODES} this server expands",
                tokens.len()
            ),
        ));
    }
    // Each code also matches where it has no system: a Coding without one, and a `code` element indexed before
    // such elements got their binding's system (see the module documentation).
    let mut bare_codes: Vec<String> = tokens.iter().map(|(_, code)| code.clone()).collect();
    bare_codes.sort();
    bare_codes.dedup();
    let bare = bare_codes
        .into_iter()
        .map(|code| TokenValue { system: TokenSystem::NoSystem, code: Some(code) });
    let with_system = tokens
        .into_iter()
        .map(|(system, code)| TokenValue { system: TokenSystem::Is(system), code: Some(code) });
    filter.modifier = modifier;
    filter.values = with_system.chain(bare).map(SearchValue::Token).collect();
    Ok(())
}

/// The union of the expansions of the value sets a `:in`/`:not-in` filter names.
fn value_set_tokens(
    filter: &ParamFilter,
    name: &str,
    profiles: &ProfileSet,
) -> Result<Vec<(String, String)>, InteractionError> {
    let mut tokens = Vec::new();
    for value in &filter.values {
        let SearchValue::Uri(canonical) = value else {
            return Err(InteractionError::invalid(format!("'{name}' takes ValueSet URLs")));
        };
        let codes = expand_value_set(profiles, canonical)
            .map_err(|terminology| terminology_error(name, &terminology))?;
        tokens.extend(codes);
        if tokens.len() > MAX_CODES {
            break;
        }
    }
    tokens.sort();
    tokens.dedup();
    Ok(tokens)
}

/// Each `system|code` value of a `:above`/`:below` filter with its ancestors or descendants.
fn hierarchy_tokens(
    filter: &ParamFilter,
    name: &str,
    profiles: &ProfileSet,
    direction: HierarchyDirection,
) -> Result<Vec<(String, String)>, InteractionError> {
    let mut tokens = Vec::new();
    for value in &filter.values {
        let SearchValue::Token(TokenValue { system: TokenSystem::Is(system), code: Some(code) }) =
            value
        else {
            return Err(InteractionError::invalid(format!(
                "'{name}' takes system|code values: the hierarchy is that of the code system"
            )));
        };
        let codes = hierarchy_codes(profiles, system, code, direction)
            .map_err(|terminology| terminology_error(name, &terminology))?;
        tokens.extend(codes.into_iter().map(|code| (system.clone(), code)));
        if tokens.len() > MAX_CODES {
            break;
        }
    }
    tokens.sort();
    tokens.dedup();
    Ok(tokens)
}

fn terminology_error(name: &str, terminology: &TerminologyError) -> InteractionError {
    let code = match terminology {
        TerminologyError::UnknownValueSet(_) | TerminologyError::UnknownCodeSystem(_) => {
            IssueType::NotFound
        }
        TerminologyError::UnknownCode { .. } => IssueType::CodeInvalid,
        TerminologyError::NotExpandable(_) | TerminologyError::IncompleteCodeSystem { .. } => {
            IssueType::NotSupported
        }
    };
    error(code, format!("'{name}': {terminology}"))
}

fn error(code: IssueType, diagnostics: String) -> InteractionError {
    InteractionError::Invalid(OperationOutcome::single(Issue::error(code, diagnostics)))
}
