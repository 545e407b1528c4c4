//! What a searchset page carries besides the matches: the opaque paging cursor, and the subsetting of
//! returned resources by `_summary` and `_elements`.
//!
//! The cursor is the hex form of a small JSON array: the direction (`a` after, `b` before), the type and id of
//! the row the page starts next to, and its sort values (`{"i":…}`, `{"f":…}` or `{"t":…}`). It names no
//! database position, so it stays valid while data changes and can be replayed on any server of a cluster.

use cdr_search::{SearchQuery, SummaryMode};
use cdr_store::{PageDirection, PageKey, SortValue};
use serde_json::{Map, Value, json};

use crate::InteractionError;
use crate::summary_elements::SUMMARY_ELEMENTS;

/// The tag a subsetted resource carries (R4 §3.1.1.5.8).
const SUBSETTED: (&str, &str) =
    ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED");

/// The opaque text of a paging position.
pub(crate) fn encode_cursor(direction: PageDirection, key: &PageKey) -> String {
    let values: Vec<Value> = key
        .values
        .iter()
        .map(|value| match value {
            SortValue::Int(value) => json!({ "i": value }),
            SortValue::Float(value) => json!({ "f": value.to_string() }),
            SortValue::Text(value) => json!({ "t": value }),
        })
        .collect();
    let direction = match direction {
        PageDirection::After => "a",
        PageDirection::Before => "b",
    };
    let text = json!([direction, key.res_type, key.res_id, values]).to_string();
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor(text: &str) -> Result<(PageDirection, PageKey), InteractionError> {
    let invalid = || InteractionError::invalid(format!("invalid paging cursor '{text}'"));
    if !text.len().is_multiple_of(2) || text.len() > 16_384 {
        return Err(invalid());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let Some([direction, res_type, res_id, Value::Array(values)]) =
        value.as_array().map(Vec::as_slice)
    else {
        return Err(invalid());
    };
    let direction = match direction.as_str() {
        Some("a") => PageDirection::After,
        Some("b") => PageDirection::Before,
        _ => return Err(invalid()),
    };
    let values = values
        .iter()
        .map(|value| {
            if let Some(number) = value.get("i").and_then(Value::as_i64) {
                return Some(SortValue::Int(number));
            }
            if let Some(number) = value.get("f").and_then(Value::as_str) {
                return number.parse::<f64>().ok().map(SortValue::Float);
            }
            value.get("t").and_then(Value::as_str).map(|text| SortValue::Text(text.to_owned()))
        })
        .collect::<Option<Vec<SortValue>>>()
        .ok_or_else(invalid)?;
    let (Some(res_type), Some(res_id)) = (res_type.as_str(), res_id.as_str()) else {
        return Err(invalid());
    };
    Ok((direction, PageKey { values, res_type: res_type.to_owned(), res_id: res_id.to_owned() }))
}

/// Applies `_summary` (`true`, `text`, `data`) and `_elements` to a matched resource, at the top level only:
/// `_summary=true` keeps the elements R4 marks as summary (their nested non-summary children stay).
pub(crate) fn shape_resource(body: Value, query: &SearchQuery) -> Value {
    let Value::Object(resource) = body else { return body };
    let kept: Option<Map<String, Value>> = match query.summary {
        Some(SummaryMode::Text) => {
            let (_, mandatory) = summary_lists(&resource);
            Some(keep(&resource, |name| name == "text" || is_listed(mandatory, name)))
        }
        Some(SummaryMode::Data) => {
            let mut data = resource.clone();
            data.remove("text");
            Some(data)
        }
        Some(SummaryMode::True) => {
            let (summary, _) = summary_lists(&resource);
            Some(keep(&resource, |name| is_listed(summary, name)))
        }
        _ if !query.elements.is_empty() => Some(keep(&resource, |name| {
            query.elements.iter().any(|element| element_matches(element, name))
        })),
        _ => None,
    };
    match kept {
        Some(mut subset) => {
            mark_subsetted(&mut subset);
            Value::Object(subset)
        }
        None => Value::Object(resource),
    }
}

/// `resourceType`, `id` and `meta`, plus the top-level elements `wanted` accepts, in their original order.
fn keep(resource: &Map<String, Value>, wanted: impl Fn(&str) -> bool) -> Map<String, Value> {
    resource
        .iter()
        .filter(|(name, _)| {
            let base = name.strip_prefix('_').unwrap_or(name);
            matches!(base, "resourceType" | "id" | "meta" | "implicitRules") || wanted(base)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The data type suffixes of choice elements (`value[x]` is written `valueQuantity`, …).
const CHOICE_TYPES: [&str; 38] = [
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "Base64Binary",
    "Boolean",
    "Canonical",
    "Code",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Count",
    "Date",
    "DateTime",
    "Decimal",
    "Distance",
    "Duration",
    "HumanName",
    "Id",
    "Identifier",
    "Instant",
    "Integer",
    "Markdown",
    "Money",
    "Oid",
    "Period",
    "PositiveInt",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "SampledData",
    "String",
    "Time",
    "Timing",
    "UnsignedInt",
    "Uri",
    "Url",
];

/// Whether an `_elements` name selects a JSON member: the same name, or a choice element (`value` selects
/// `valueQuantity`).
fn element_matches(element: &str, name: &str) -> bool {
    name == element || name.strip_prefix(element).is_some_and(|rest| CHOICE_TYPES.contains(&rest))
}

/// The summary and mandatory top-level elements of the resource's type (empty for an unknown type).
fn summary_lists(
    resource: &Map<String, Value>,
) -> (&'static [&'static str], &'static [&'static str]) {
    let type_name = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    SUMMARY_ELEMENTS
        .iter()
        .find(|(name, _, _)| *name == type_name)
        .map_or((&[], &[]), |(_, summary, mandatory)| (*summary, *mandatory))
}

fn is_listed(elements: &[&str], name: &str) -> bool {
    elements.iter().any(|element| element_matches(element, name))
}

fn mark_subsetted(resource: &mut Map<String, Value>) {
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    let Value::Object(meta) = meta else { return };
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    if let Value::Array(tags) = tags {
        tags.push(json!({ "system": SUBSETTED.0, "code": SUBSETTED.1 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let key = PageKey {
            values: vec![
                SortValue::Int(-5),
                SortValue::Float(0.1),
                SortValue::Text("a\u{10FFFF}\"".into()),
            ],
            res_type: "Patient".into(),
            res_id: "p-1".into(),
        };
        for direction in [PageDirection::After, PageDirection::Before] {
            let text = encode_cursor(direction, &key);
            assert!(text.bytes().all(|byte| byte.is_ascii_hexdigit()));
            assert_eq!(decode_cursor(&text).unwrap(), (direction, key.clone()));
        }
        for bad in ["", "0", "zz", "5b5d", "7b7d"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn element_names() {
        assert!(element_matches("value", "valueQuantity"));
        assert!(element_matches("status", "status"));
        assert!(!element_matches("value", "values"));
        assert!(!element_matches("status", "statusReason"));
    }
}
