//! Conditional-interaction criteria and the token index rows they match against.
//!
//! Until the search engine serves every parameter, conditional create, update and delete match on
//! `_id` and on `identifier` (`system|value`, `|value` or `value`), the business keys that miCDR
//! submissions use. Any other parameter is refused as not supported rather than silently ignored.

use cdr_store::{Condition, TokenRow};
use serde_json::{Map, Value};

use crate::InteractionError;

/// Parameters that shape a response rather than select resources; they never affect matching.
const RESULT_PARAMETERS: [&str; 3] = ["_format", "_pretty", "_summary"];

/// Parsed criteria and the key that serialises concurrent writes with the same criteria.
#[derive(Debug)]
pub(crate) struct Criteria {
    pub(crate) conditions: Vec<Condition>,
    /// The type and conditions in a canonical order: two requests with equal criteria share it.
    pub(crate) lock_key: String,
}

/// Parses a conditional query string such as `identifier=http://hospital.example/mrn|123`; a leading
/// `?` or `Type?` is tolerated.
pub(crate) fn parse_criteria(
    resource_type: &str,
    query: &str,
) -> Result<Criteria, InteractionError> {
    let query = match query.split_once('?') {
        Some((prefix, rest)) if prefix.is_empty() || prefix == resource_type => rest,
        _ => query,
    };
    let mut conditions = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if RESULT_PARAMETERS.contains(&name.as_ref()) {
            continue;
        }
        if split_unescaped(&value, ',').len() > 1 {
            return Err(InteractionError::NotSupported(format!(
                "conditional criteria: OR (comma-separated values) in '{name}' is not supported"
            )));
        }
        let condition = match name.as_ref() {
            "_id" => Condition::Id(value.into_owned()),
            "identifier" => token_condition("identifier", &value)?,
            other => {
                return Err(InteractionError::NotSupported(format!(
                    "conditional criteria: search parameter '{other}' is not supported; use identifier or _id"
                )));
            }
        };
        conditions.push(condition);
    }
    if conditions.is_empty() {
        return Err(InteractionError::invalid(
            "conditional criteria are empty: give at least one search parameter",
        ));
    }
    let mut parts: Vec<String> =
        conditions.iter().map(|condition| format!("{condition:?}")).collect();
    parts.sort();
    parts.dedup();
    Ok(Criteria { conditions, lock_key: format!("{resource_type}?{}", parts.join("&")) })
}

fn token_condition(param: &str, value: &str) -> Result<Condition, InteractionError> {
    let parts = split_unescaped(value, '|');
    let (system, code) = match parts.as_slice() {
        [code] => (None, unescape(code)),
        ["", code] => (Some(None), unescape(code)),
        [system, code] => (Some(Some(unescape(system))), unescape(code)),
        _ => {
            return Err(InteractionError::invalid(format!(
                "'{param}={value}': a token has at most one unescaped '|'"
            )));
        }
    };
    if code.is_empty() {
        return Err(InteractionError::NotSupported(format!(
            "conditional criteria: '{param}={value}' needs a code (system-only tokens are not supported)"
        )));
    }
    Ok(Condition::Token { param: param.to_owned(), system, code })
}

/// Splits on `separator` where it is not escaped by a backslash; escapes stay in the parts.
fn split_unescaped(value: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, character) in value.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if character == separator => {
                parts.push(&value[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// Removes the search escapes `\|`, `\,`, `\$` and `\\`.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut characters = value.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            if let Some(next) = characters.next() {
                out.push(next);
            }
            continue;
        }
        out.push(character);
    }
    out
}

/// The `identifier` token rows of a resource (its `identifier` element, single or repeating).
pub(crate) fn identifier_tokens(resource: &Map<String, Value>) -> Vec<TokenRow> {
    let identifiers = match resource.get("identifier") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    identifiers
        .into_iter()
        .filter_map(|identifier| {
            let code = identifier.get("value").and_then(Value::as_str)?;
            Some(TokenRow {
                param: "identifier".to_owned(),
                system: identifier.get("system").and_then(Value::as_str).map(str::to_owned),
                code: Some(code.to_owned()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(system: Option<Option<&str>>, code: &str) -> Condition {
        Condition::Token {
            param: "identifier".into(),
            system: system.map(|system| system.map(str::to_owned)),
            code: code.into(),
        }
    }

    #[test]
    fn parses_token_forms() {
        let criteria =
            parse_criteria("Patient", "identifier=http%3A%2F%2Fh.example%2Fmrn%7C123").unwrap();
        assert_eq!(criteria.conditions, vec![token(Some(Some("http://h.example/mrn")), "123")]);
        let criteria = parse_criteria("Patient", "Patient?identifier=|123&_id=p1").unwrap();
        assert_eq!(criteria.conditions, vec![token(Some(None), "123"), Condition::Id("p1".into())]);
        let criteria = parse_criteria("Patient", "?identifier=a\\|b").unwrap();
        assert_eq!(criteria.conditions, vec![token(None, "a|b")]);
    }

    #[test]
    fn lock_key_ignores_order() {
        let first = parse_criteria("Patient", "identifier=s|1&_id=x").unwrap();
        let second = parse_criteria("Patient", "_id=x&identifier=s|1").unwrap();
        assert_eq!(first.lock_key, second.lock_key);
    }

    #[test]
    fn refuses_what_it_cannot_match() {
        for query in [
            "",
            "_format=json",
            "name=smith",
            "identifier=s|1,s|2",
            "identifier=s|",
            "identifier=a|b|c",
        ] {
            assert!(parse_criteria("Patient", query).is_err(), "{query}");
        }
    }

    #[test]
    fn extracts_identifiers() {
        let resource: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","identifier":[{"system":"s","value":"1"},{"value":"2"},{"system":"s"}]}"#,
        )
        .unwrap();
        let rows = identifier_tokens(resource.as_object().unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].system, None);
    }
}
