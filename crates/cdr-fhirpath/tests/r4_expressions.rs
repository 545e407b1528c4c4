//! Every SearchParameter expression of R4 (`crates/cdr-search/data/search-parameters.json`) and every invariant
//! expression of the R4 core StructureDefinitions (`definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz`) parses.

#![allow(clippy::unwrap_used, reason = "tests and benchmarks panic on broken fixtures")]

use std::io::Read as _;
use std::path::Path;

use cdr_fhirpath::Expression;
use serde_json::Value;

#[test]
fn every_r4_search_and_invariant_expression_parses() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expressions = Vec::new();
    let search_parameters =
        std::fs::read_to_string(manifest_dir.join("../cdr-search/data/search-parameters.json"))
            .unwrap();
    let bundle: Value = serde_json::from_str(&search_parameters).unwrap();
    for search_param in bundle["entry"].as_array().unwrap() {
        if let Some(expression) = search_param["resource"]["expression"].as_str() {
            expressions.push((
                format!("SearchParameter {}", search_param["resource"]["id"]),
                expression.to_owned(),
            ));
        }
    }
    let archive_path = manifest_dir.join("../../definitions/hl7.fhir.r4.core-4.0.1-trimmed.tgz");
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive_path).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !path.contains("StructureDefinition-") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        for element in json["snapshot"]["element"].as_array().into_iter().flatten() {
            for constraint in element["constraint"].as_array().into_iter().flatten() {
                if let Some(expression) = constraint["expression"].as_str() {
                    expressions
                        .push((format!("{path} {}", constraint["key"]), expression.to_owned()));
                }
            }
        }
    }
    assert!(expressions.len() > 2500, "found only {} expressions", expressions.len());
    let failures: Vec<String> = expressions
        .iter()
        .filter_map(|(origin, text)| {
            Expression::parse(text).err().map(|error| format!("{origin}: {text}: {error}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} do not parse:\n{}",
        failures.len(),
        expressions.len(),
        failures.join("\n")
    );
}
