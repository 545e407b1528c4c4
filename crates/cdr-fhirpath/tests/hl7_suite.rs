//! Runs the HL7 FHIRPath test suite (`test_data/tests-fhir-r4.json`) and checks that exactly the tests listed
//! in `test_data/known-failures.txt` fail, so a regression fails the build and a fix must shrink the list.

#![allow(clippy::unwrap_used, reason = "tests and benchmarks panic on broken fixtures")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use cdr_fhirpath::{Collection, EvaluationContext, Expression, Item, SystemValue};
use serde_json::Value;

#[test]
fn hl7_suite_passes_except_known_failures() {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let suite: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("tests-fhir-r4.json")).unwrap(),
    )
    .unwrap();
    let known_text = std::fs::read_to_string(data_dir.join("known-failures.txt")).unwrap();
    let known: BTreeMap<&str, &str> = known_text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once(" # ").map_or((line.trim(), ""), |(name, reason)| (name.trim(), reason))
        })
        .collect();
    let mut inputs: HashMap<String, Value> = HashMap::new();
    let mut failures = BTreeMap::new();
    let mut total = 0;
    for group in suite["groups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            total += 1;
            let name = test["name"].as_str().unwrap().to_owned();
            let input_file = test["inputfile"].as_str().map(|f| f.replace(".xml", ".json"));
            let input = match &input_file {
                Some(file) => inputs
                    .entry(file.clone())
                    .or_insert_with(|| {
                        serde_json::from_str(
                            &std::fs::read_to_string(data_dir.join("input").join(file)).unwrap(),
                        )
                        .unwrap()
                    })
                    .clone(),
                None => Value::Object(serde_json::Map::new()),
            };
            if let Err(problem) = run_case(test, &input) {
                failures.insert(name, problem);
            }
        }
    }
    let failing: BTreeSet<&str> = failures.keys().map(String::as_str).collect();
    let listed: BTreeSet<&str> = known.keys().copied().collect();
    let unexpected: Vec<String> =
        failing.difference(&listed).map(|name| format!("{name} # {}", failures[*name])).collect();
    let fixed: Vec<&&str> = listed.difference(&failing).collect();
    println!(
        "HL7 FHIRPath suite: {} of {total} pass, {} known failures",
        total - failures.len(),
        failures.len()
    );
    assert!(unexpected.is_empty(), "unexpected failures:\n{}", unexpected.join("\n"));
    assert!(fixed.is_empty(), "tests now passing, remove them from known-failures.txt: {fixed:?}");
}

fn run_case(test: &Value, input: &Value) -> Result<(), String> {
    let text = test["expression"].as_str().unwrap();
    let invalid = test.get("expression_invalid").is_some();
    let strict = test["mode"].as_str() == Some("strict");
    let expression = match Expression::parse(text) {
        Ok(expression) => expression,
        Err(_) if invalid => return Ok(()),
        Err(error) => return Err(format!("parse error: {error}")),
    };
    let ctx = EvaluationContext::new().strict(strict);
    let result = match expression.evaluate(input, &ctx) {
        // A predicate test compares the existence of the result.
        Ok(result) if test["predicate"].as_str() == Some("true") => {
            Collection::from_items(vec![Item::Value(SystemValue::Boolean(!result.is_empty()))])
        }
        Ok(result) => result,
        Err(_) if invalid => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    if invalid {
        return Err(format!("expected an error, got {}", show(&result)));
    }
    let expected = test["outputs"].as_array().unwrap();
    if expected.len() != result.len() {
        return Err(format!("expected {} items, got {}", expected.len(), show(&result)));
    }
    for (item, output) in result.iter().zip(expected) {
        if !output_matches(item, output) {
            return Err(format!("expected {output}, got {}", show(&result)));
        }
    }
    Ok(())
}

fn show(result: &Collection<'_>) -> String {
    let shown: Vec<String> = result
        .iter()
        .map(|item| {
            format!(
                "{}:{}",
                item.type_name(),
                item.system_value().map_or_else(|| "<node>".to_owned(), |v| v.to_string())
            )
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

fn output_matches(item: &Item<'_>, output: &Value) -> bool {
    let expected = output["value"].as_str().unwrap_or_default();
    let value = item.system_value();
    match (output["type"].as_str(), value) {
        (Some("boolean"), Some(SystemValue::Boolean(flag))) => expected == flag.to_string(),
        (Some("integer"), Some(SystemValue::Integer(integer))) => expected == integer.to_string(),
        (Some("decimal"), Some(SystemValue::Decimal(decimal))) => {
            expected.parse().ok() == Some(decimal)
        }
        (Some("date"), Some(SystemValue::Date(date))) => {
            expected.trim_start_matches('@') == date.to_string()
        }
        (Some("dateTime"), Some(SystemValue::DateTime(date))) => {
            expected.trim_start_matches('@') == date.to_string()
        }
        (Some("time"), Some(SystemValue::Time(time))) => {
            expected.trim_start_matches("@T") == time.to_string()
        }
        (Some("string" | "code" | "id" | "uri"), Some(SystemValue::String(text))) => {
            expected == text
        }
        (Some("Quantity"), Some(quantity @ SystemValue::Quantity(..))) => {
            expected == quantity.to_string()
        }
        (None, Some(value)) => match (&value, expected.parse::<rust_decimal::Decimal>()) {
            (SystemValue::Decimal(decimal), Ok(parsed)) => {
                *decimal == parsed && decimal.scale() == parsed.scale()
            }
            // A time literal is written `@T10:30`; its value prints without the prefix.
            (SystemValue::Time(_), _) => expected.trim_start_matches("@T") == value.to_string(),
            _ => expected.trim_start_matches('@') == value.to_string(),
        },
        _ => false,
    }
}
