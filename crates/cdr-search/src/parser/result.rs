//! Result parameters: `_include`, `_revinclude`, `_sort`, `_count`, `_total`, `_summary`, `_elements`,
//! `_contained`, `_containedType` and `_type`.

use cdr_model::ResourceType;

use crate::ast::{
    ContainedMode, ContainedType, Include, ParamRef, SearchQuery, SortKey, SummaryMode, TotalMode,
};
use crate::parser::value::split_unescaped;
use crate::parser::{ErrorPart, Limit, Parser, Scope, SearchError};
use crate::registry::SearchParamType;

fn invalid(
    name: &str,
    part: ErrorPart,
    position: usize,
    message: impl Into<String>,
) -> SearchError {
    SearchError::Invalid { name: name.to_owned(), part, position, message: message.into() }
}

/// Parses `_type`, which only system-level search takes.
pub(super) fn parse_types(
    resource_type: Option<ResourceType>,
    name: &str,
    value: &str,
) -> Result<Vec<ResourceType>, SearchError> {
    if resource_type.is_some() {
        return Err(invalid(name, ErrorPart::Name, 0, "_type applies to system-level search only"));
    }
    split_unescaped(value, b',', 0)
        .into_iter()
        .map(|(offset, type_name)| {
            ResourceType::parse(type_name).map_err(|_| {
                invalid(
                    name,
                    ErrorPart::Value,
                    offset,
                    format!("unknown resource type '{type_name}'"),
                )
            })
        })
        .collect()
}

/// Parses one result parameter into `query`.
pub(super) fn parse_result_param(
    parser: &Parser<'_>,
    query: &mut SearchQuery,
    name: &str,
    value: &str,
) -> Result<(), SearchError> {
    let (base_name, modifier) = match name.split_once(':') {
        Some((base_name, modifier)) => (base_name, Some(modifier)),
        None => (name, None),
    };
    let is_include = matches!(base_name, "_include" | "_revinclude");
    if let Some(modifier) = modifier
        && !(is_include && matches!(modifier, "iterate" | "recurse"))
    {
        return Err(invalid(
            name,
            ErrorPart::Name,
            base_name.len() + 1,
            format!("unknown modifier ':{modifier}'"),
        ));
    }
    let single = |choices: &[&str]| -> Result<usize, SearchError> {
        choices.iter().position(|choice| *choice == value).ok_or_else(|| {
            invalid(name, ErrorPart::Value, 0, format!("expected one of {}", choices.join(", ")))
        })
    };
    let already_given = match base_name {
        "_count" => query.count.is_some(),
        "_total" => query.total.is_some(),
        "_summary" => query.summary.is_some(),
        "_contained" => query.contained.is_some(),
        "_containedType" => query.contained_type.is_some(),
        _ => false,
    };
    if already_given {
        return Err(invalid(
            name,
            ErrorPart::Name,
            0,
            format!("{base_name} may be given only once"),
        ));
    }
    if is_include && query.includes.len() + query.revincludes.len() >= parser.limits.max_includes {
        return Err(parser.limits.exceeded(name, Limit::Includes));
    }
    match base_name {
        "_include" => {
            query.includes.push(parse_include(parser, name, value, modifier.is_some(), false)?);
        }
        "_revinclude" => {
            query.revincludes.push(parse_include(parser, name, value, modifier.is_some(), true)?);
        }
        "_sort" => {
            let keys = parse_sort(parser, name, value, query.sort.len())?;
            query.sort.extend(keys);
        }
        "_count" => {
            let count = value.parse::<u32>().map_err(|_| {
                invalid(name, ErrorPart::Value, 0, "expected a non-negative integer")
            })?;
            query.count = Some(count);
        }
        "_total" => {
            let modes = [TotalMode::None, TotalMode::Estimate, TotalMode::Accurate];
            query.total = Some(modes[single(&["none", "estimate", "accurate"])?]);
        }
        "_summary" => {
            let modes = [
                SummaryMode::True,
                SummaryMode::False,
                SummaryMode::Text,
                SummaryMode::Data,
                SummaryMode::Count,
            ];
            query.summary = Some(modes[single(&["true", "false", "text", "data", "count"])?]);
        }
        "_contained" => {
            let modes = [ContainedMode::True, ContainedMode::False, ContainedMode::Both];
            query.contained = Some(modes[single(&["true", "false", "both"])?]);
        }
        "_containedType" => {
            let modes = [ContainedType::Container, ContainedType::Contained];
            query.contained_type = Some(modes[single(&["container", "contained"])?]);
        }
        _ => {
            for (offset, element) in split_unescaped(value, b',', 0) {
                let well_formed = !element.is_empty()
                    && element.bytes().all(|byte| {
                        byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
                    });
                if !well_formed {
                    return Err(invalid(
                        name,
                        ErrorPart::Value,
                        offset,
                        "expected a comma list of element names",
                    ));
                }
                query.elements.push(element.to_owned());
            }
        }
    }
    Ok(())
}

/// `*`, `Type:*`, `Type:code` or `Type:code:TargetType`.
fn parse_include(
    parser: &Parser<'_>,
    name: &str,
    value: &str,
    iterate: bool,
    reverse: bool,
) -> Result<Include, SearchError> {
    if value == "*" {
        return Ok(Include { source_type: None, param: None, target_type: None, iterate });
    }
    let pieces: Vec<&str> = value.split(':').collect();
    let (type_name, code, target_name) = match pieces.as_slice() {
        [type_name, code] => (*type_name, *code, None),
        [type_name, code, target] => (*type_name, *code, Some(*target)),
        _ => {
            return Err(invalid(
                name,
                ErrorPart::Value,
                0,
                "expected Type:parameter[:TargetType] or *",
            ));
        }
    };
    let source_type = parser.resolve_type(type_name).ok_or_else(|| {
        invalid(name, ErrorPart::Value, 0, format!("unknown resource type '{type_name}'"))
    })?;
    if !reverse
        && !iterate
        && matches!(parser.scope, Scope::One(searched) if searched != source_type)
    {
        return Err(SearchError::Inapplicable {
            name: name.to_owned(),
            value: value.to_owned(),
            message: format!(
                "without :iterate, _include must start with the searched type, not {type_name}"
            ),
        });
    }
    let code_offset = type_name.len() + 1;
    let target_offset = code_offset + code.len() + 1;
    let target_type = match target_name {
        None => None,
        Some(target_name) => Some(parser.resolve_type(target_name).ok_or_else(|| {
            invalid(
                name,
                ErrorPart::Value,
                target_offset,
                format!("unknown resource type '{target_name}'"),
            )
        })?),
    };
    if code == "*" {
        return Ok(Include { source_type: Some(source_type), param: None, target_type, iterate });
    }
    let Some(def) = parser.resolve(source_type, code) else {
        return Err(invalid(
            name,
            ErrorPart::Value,
            code_offset,
            format!("{source_type} has no parameter '{code}'"),
        ));
    };
    if def.param_type != SearchParamType::Reference {
        return Err(invalid(
            name,
            ErrorPart::Value,
            code_offset,
            format!("'{code}' is not a reference parameter"),
        ));
    }
    if let Some(target_type) = target_type
        && !def.targets.is_empty()
        && !def.targets.contains(&target_type)
    {
        return Err(invalid(
            name,
            ErrorPart::Value,
            target_offset,
            format!("'{code}' does not point to {target_type}"),
        ));
    }
    Ok(Include {
        source_type: Some(source_type),
        param: Some(def.code.clone()),
        target_type,
        iterate,
    })
}

/// A comma list of `[-]code`, to follow `n_given` keys of earlier `_sort` parameters.
fn parse_sort(
    parser: &Parser<'_>,
    name: &str,
    value: &str,
    n_given: usize,
) -> Result<Vec<SortKey>, SearchError> {
    let pieces = split_unescaped(value, b',', 0);
    if n_given + pieces.len() > parser.limits.max_sort_keys {
        return Err(parser.limits.exceeded(name, Limit::SortKeys));
    }
    let mut keys = Vec::new();
    for (offset, key) in pieces {
        let (descending, code, code_offset) = match key.strip_prefix('-') {
            Some(code) => (true, code, offset + 1),
            None => (false, key, offset),
        };
        let def = match &parser.scope {
            Scope::One(resource_type) => parser.resolve(*resource_type, code),
            Scope::Some(types) => types.first().and_then(|first| parser.resolve(*first, code)),
            Scope::AllTypes => match parser.registry.is_common(code) {
                true => {
                    ResourceType::parse("Patient").ok().and_then(|any| parser.resolve(any, code))
                }
                false => None,
            },
        };
        let Some(def) = def else {
            return Err(invalid(
                name,
                ErrorPart::Value,
                code_offset,
                format!("unknown sort parameter '{code}'"),
            ));
        };
        if matches!(def.param_type, SearchParamType::Composite | SearchParamType::Special) {
            return Err(invalid(
                name,
                ErrorPart::Value,
                code_offset,
                format!("cannot sort by '{code}'"),
            ));
        }
        keys.push(SortKey {
            param: ParamRef { code: def.code.clone(), param_type: def.param_type },
            descending,
        });
    }
    Ok(keys)
}
