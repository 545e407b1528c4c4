//! Lexical rules of the FHIR R4 primitive types (the regexes of the specification); `xhtml` values go to the
//! narrative rules of `xhtml.rs`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// The largest string FHIR allows (1 MB, R4 datatypes.html#string); `base64Binary` is a stream of bytes,
/// not a string, and has no such bound (a report's PDF is often larger).
const MAX_STRING_BYTES: usize = 1024 * 1024;

#[allow(
    clippy::expect_used,
    reason = "the patterns are constants of this file, exercised by the tests"
)]
fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("constant primitive pattern compiles")
}

const YEAR: &str = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
const TZ: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";

static ID: LazyLock<Regex> = LazyLock::new(|| anchored(r"[A-Za-z0-9\-\.]{1,64}"));
static DATE: LazyLock<Regex> =
    LazyLock::new(|| anchored(&format!("{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")));
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?{TZ})?)?)?"
    ))
});
static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?{TZ}"
    ))
});
static TIME: LazyLock<Regex> =
    LazyLock::new(|| anchored(r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"));
static DECIMAL: LazyLock<Regex> =
    LazyLock::new(|| anchored(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"));
static INTEGER: LazyLock<Regex> = LazyLock::new(|| anchored(r"-?(0|[1-9][0-9]*)"));
static CODE: LazyLock<Regex> = LazyLock::new(|| anchored(r"[^\s]+( [^\s]+)*"));
static OID: LazyLock<Regex> = LazyLock::new(|| anchored(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    anchored(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| anchored(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"));
static URI: LazyLock<Regex> = LazyLock::new(|| anchored(r"\S*"));

/// Whether this FHIR type name is a primitive type.
pub(crate) fn is_primitive(type_code: &str) -> bool {
    matches!(
        type_code,
        "boolean"
            | "integer"
            | "string"
            | "decimal"
            | "uri"
            | "url"
            | "canonical"
            | "base64Binary"
            | "instant"
            | "date"
            | "dateTime"
            | "time"
            | "code"
            | "oid"
            | "id"
            | "markdown"
            | "unsignedInt"
            | "positiveInt"
            | "uuid"
            | "xhtml"
    )
}

/// Checks the JSON value of a primitive; returns the problem, if any.
pub(crate) fn check(type_code: &str, value: &Value) -> Option<String> {
    match type_code {
        "boolean" => {
            (!value.is_boolean()).then(|| format!("expected a JSON boolean, found {}", kind(value)))
        }
        "decimal" | "integer" | "unsignedInt" | "positiveInt" => check_number(type_code, value),
        _ => match value.as_str() {
            Some(text) => check_text(type_code, text),
            None => Some(format!("expected a JSON string for {type_code}, found {}", kind(value))),
        },
    }
}

fn check_number(type_code: &str, value: &Value) -> Option<String> {
    let Value::Number(number) = value else {
        return Some(format!("expected a JSON number for {type_code}, found {}", kind(value)));
    };
    let text = number.as_str();
    if type_code == "decimal" {
        return (!DECIMAL.is_match(text)).then(|| format!("'{text}' is not a valid decimal"));
    }
    if !INTEGER.is_match(text) {
        return Some(format!("'{text}' is not a valid {type_code}"));
    }
    let parsed: Option<i64> = text.parse().ok();
    let (low, high) = match type_code {
        "unsignedInt" => (0, i64::from(i32::MAX)),
        "positiveInt" => (1, i64::from(i32::MAX)),
        _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
    };
    match parsed {
        Some(parsed) if (low..=high).contains(&parsed) => None,
        _ => Some(format!("{text} is out of range for {type_code} ({low}..{high})")),
    }
}

fn check_text(type_code: &str, text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("empty string (a value must be absent rather than empty)".to_owned());
    }
    if text.len() > MAX_STRING_BYTES && type_code != "base64Binary" {
        return Some(format!("string of {} bytes exceeds the 1 MB limit", text.len()));
    }
    let (valid, what) = match type_code {
        "id" => (ID.is_match(text), "an id ([A-Za-z0-9-.]{1,64})"),
        "date" => (DATE.is_match(text), "a date (YYYY, YYYY-MM or YYYY-MM-DD)"),
        "dateTime" => {
            (DATE_TIME.is_match(text), "a dateTime (a time needs seconds and a timezone)")
        }
        "instant" => (INSTANT.is_match(text), "an instant (full date, time and timezone)"),
        "time" => (TIME.is_match(text), "a time (hh:mm:ss)"),
        "code" => (CODE.is_match(text), "a code (no leading, trailing or repeated whitespace)"),
        "oid" => (OID.is_match(text), "an oid (urn:oid:...)"),
        "uuid" => (UUID.is_match(text), "a uuid (urn:uuid: and lowercase hex)"),
        "base64Binary" => (BASE64.is_match(text), "base64"),
        "uri" | "url" | "canonical" => (URI.is_match(text), "a uri (no whitespace)"),
        "xhtml" => return crate::xhtml::check(text),
        _ => (
            !text.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\r' | '\n')),
            "a string without control characters",
        ),
    };
    if !valid {
        return Some(format!("'{}' is not {what}", shorten(text)));
    }
    if matches!(type_code, "date" | "dateTime" | "instant") && !day_exists(text) {
        return Some(format!("'{}' names a day that does not exist", shorten(text)));
    }
    None
}

/// Whether the day of a value that matched a date pattern (`YYYY-MM-DD...`) exists in its month: the
/// R4 regexes accept day 31 in every month, but FHIR dates "SHALL be valid dates".
fn day_exists(text: &str) -> bool {
    let number = |range: std::ops::Range<usize>| text.get(range).and_then(|part| part.parse().ok());
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return true;
    };
    day <= cdr_model::calendar::days_in_month(year, month)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// A short name of a JSON value's kind, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::check;

    #[test]
    fn strings_are_bounded_but_binary_content_is_not() {
        let large = "QUJD".repeat(MAX_STRING_BYTES / 4 + 1);
        assert!(check("string", &Value::from(large.as_str())).is_some_and(|m| m.contains("1 MB")));
        assert_eq!(check("base64Binary", &Value::from(large.as_str())), None);
    }

    const MAX_STRING_BYTES: usize = super::MAX_STRING_BYTES;
}
