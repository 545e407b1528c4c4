//! Every official R4 example of the resource types this server serves validates against base R4
//! with no error-level issue, except those listed (with a reason) in `test_data/r4-examples/exceptions.txt`.
//! The examples are `test_data/r4-examples/examples.tgz` (made by `definitions/examples.py`) plus the example
//! Bundle `Bundle-searchParams.json`, the official search-parameters.json, which the repository holds once, in
//! cdr-search.

#![allow(clippy::unwrap_used, reason = "test code: a failure should stop the test")]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use cdr_validation::{ProfileSet, validate};

fn examples() -> Vec<(String, serde_json::Value)> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest_dir.join("test_data/r4-examples/examples.tgz");
    let bytes = std::fs::read(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut out = Vec::new();
    for file in archive.entries().unwrap() {
        let mut file = file.unwrap();
        let name = file.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        out.push((name, serde_json::from_str(&text).unwrap()));
    }
    let search_parameters =
        std::fs::read_to_string(manifest_dir.join("../cdr-search/data/search-parameters.json"))
            .unwrap();
    out.push((
        "Bundle-searchParams.json".to_owned(),
        serde_json::from_str(&search_parameters).unwrap(),
    ));
    out
}

fn exceptions() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/r4-examples/exceptions.txt");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, reason) = line.split_once(char::is_whitespace).unwrap();
            (name.to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn r4_examples_have_no_false_errors() {
    let profiles = ProfileSet::r4_core().unwrap();
    let exceptions = exceptions();
    let examples = examples();
    assert_eq!(examples.len(), 157);
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for (name, resource) in &examples {
        let report = validate(resource, &profiles, &[]);
        let errors: Vec<String> = report.errors().map(ToString::to_string).collect();
        match (errors.is_empty(), exceptions.contains_key(name)) {
            (false, false) => unexpected.push(format!("{name}:\n  {}", errors.join("\n  "))),
            (true, true) => stale.push(name.clone()),
            _ => {}
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} examples with errors:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(stale.is_empty(), "exceptions that now validate cleanly: {stale:?}");
}
