//! The official R4 examples of the served types (cdr-validation's `test_data/r4-examples/examples.tgz`, CC0, see
//! `definitions/README.md`) go JSON → XML → JSON unchanged, compact and indented.

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

fn examples() -> Vec<(String, Value)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cdr-validation/test_data/r4-examples/examples.tgz");
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut examples = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        examples.push((name, serde_json::from_str(&text).unwrap()));
    }
    examples
}

#[test]
fn every_served_example_round_trips_through_xml() {
    let examples = examples();
    assert!(examples.len() > 150, "{} examples", examples.len());
    let mut failures = Vec::new();
    for (name, json) in &examples {
        for pretty in [false, true] {
            let outcome = cdr_xml::to_xml(json, pretty)
                .and_then(|xml| cdr_xml::from_xml(xml.as_bytes()).map(|back| (xml, back)));
            match outcome {
                Ok((_, back)) if back == *json => {}
                Ok((xml, back)) => failures.push(format!(
                    "{name}: changed\n{}\n{}",
                    first_difference(json, &back, String::new()),
                    &xml[..xml.len().min(300)]
                )),
                Err(error) => failures.push(format!("{name}: {error} at {:?}", error.expression)),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Where two JSON values first differ, as a path.
fn first_difference(expected: &Value, actual: &Value, path: String) -> String {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                if a.get(key) != b.get(key) {
                    return match (a.get(key), b.get(key)) {
                        (Some(x), Some(y)) => first_difference(x, y, format!("{path}.{key}")),
                        (x, y) => format!("{path}.{key}: {x:?} vs {y:?}"),
                    };
                }
            }
            path
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return first_difference(x, y, format!("{path}[{index}]"));
                }
            }
            path
        }
        _ => format!("{path}: {expected} vs {actual}"),
    }
}
