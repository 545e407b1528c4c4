//! Every SearchParameter expression of R4 and every invariant expression of the R4 core StructureDefinitions
//! parses.

use std::io::Read as _;
use std::path::Path;

use cdr_fhirpath::Expression;
use serde_json::Value;

#[test]
fn every_r4_search_and_invariant_expression_parses() {
    let archive_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/hl7.fhir.r4.core-4.0.1-subset.tgz");
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive_path).unwrap()));
    let mut expressions = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        if path.ends_with("search-parameters.json") {
            for search_param in json["entry"].as_array().unwrap() {
                if let Some(expression) = search_param["resource"]["expression"].as_str() {
                    expressions.push((
                        format!("SearchParameter {}", search_param["resource"]["id"]),
                        expression.to_owned(),
                    ));
                }
            }
            continue;
        }
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
