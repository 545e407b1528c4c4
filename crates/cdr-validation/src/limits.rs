//! `minValue[x]` / `maxValue[x]`: ordering a value against a limit of the same kind.
//!
//! Numbers (integer, decimal, positiveInt, unsignedInt) compare by value. Dates, dateTimes, instants
//! and times compare field by field when both carry the same time zone (or none): the lexical forms
//! of the R4 regexes order like the instants they denote. When one is more precise than the other and
//! they agree on the common part, or the time zones differ, the order is unknown and nothing is
//! reported. Quantities compare their `value` when both have the same `system` and `code` (or `unit`).

use std::cmp::Ordering;

use serde_json::Value;

/// The order of `value` relative to `limit`, when it is known.
pub(crate) fn compare(value: &Value, limit: &Value) -> Option<Ordering> {
    match (value, limit) {
        (Value::Number(value), Value::Number(limit)) => {
            value.as_f64()?.partial_cmp(&limit.as_f64()?)
        }
        (Value::String(value), Value::String(limit)) => compare_temporal(value, limit),
        (Value::Object(value), Value::Object(limit)) => {
            let same = |key: &str| value.get(key) == limit.get(key);
            let same_unit = if value.contains_key("code") || limit.contains_key("code") {
                same("system") && same("code")
            } else {
                same("unit")
            };
            if !same_unit {
                return None;
            }
            compare(value.get("value")?, limit.get("value")?)
        }
        _ => None,
    }
}

fn compare_temporal(value: &str, limit: &str) -> Option<Ordering> {
    let (value_local, value_zone) = split_zone(value);
    let (limit_local, limit_zone) = split_zone(limit);
    if value_zone != limit_zone {
        return None;
    }
    let common = value_local.len().min(limit_local.len());
    let ordering = value_local.get(..common)?.cmp(limit_local.get(..common)?);
    if ordering == Ordering::Equal && value_local.len() != limit_local.len() {
        return None;
    }
    Some(ordering)
}

/// Splits `2020-01-02T10:00:00+01:00` into the local part and the zone (`Z`, `+01:00` or empty).
fn split_zone(text: &str) -> (&str, &str) {
    let Some(time_start) = text.find('T').or_else(|| text.contains(':').then_some(0)) else {
        return (text, "");
    };
    match text[time_start..].find(['Z', '+', '-']) {
        Some(offset) => text.split_at(time_start + offset),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn orders_numbers_dates_and_quantities() {
        assert_eq!(compare(&json!(5), &json!(10)), Some(Ordering::Less));
        assert_eq!(compare(&json!(10.50), &json!(10.5)), Some(Ordering::Equal));
        assert_eq!(compare(&json!("2020-01-02"), &json!("2019-12-31")), Some(Ordering::Greater));
        assert_eq!(compare(&json!("2020-01"), &json!("2020-01-15")), None);
        assert_eq!(compare(&json!("2020-01"), &json!("2020-02-15")), Some(Ordering::Less));
        assert_eq!(
            compare(&json!("2020-01-01T10:00:00Z"), &json!("2020-01-01T09:00:00Z")),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&json!("2020-01-01T10:00:00Z"), &json!("2020-01-01T09:00:00+01:00")),
            None
        );
        assert_eq!(compare(&json!("10:30:00"), &json!("09:00:00")), Some(Ordering::Greater));
        let mg = |value: f64| json!({"value": value, "system": "http://unitsofmeasure.org", "code": "mg"});
        assert_eq!(compare(&mg(2.0), &mg(3.0)), Some(Ordering::Less));
        let g = json!({"value": 1, "system": "http://unitsofmeasure.org", "code": "g"});
        assert_eq!(compare(&mg(2.0), &g), None);
    }
}
