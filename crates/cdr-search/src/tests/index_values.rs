//! Table tests of `index_values`: one FHIR element of each supported type and the rows it indexes.

use cdr_model::ResourceType;
use serde_json::json;

use crate::{IndexValue, SearchParamType, format_micros, index_values};

/// Parses JSON text, keeping the lexical form of numbers (`json!` would go through `f64`).
fn raw(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// Renders index values compactly so that tables of expectations stay readable.
fn render(values: &[IndexValue]) -> Vec<String> {
    values.iter().map(render_one).collect()
}

fn render_one(value: &IndexValue) -> String {
    let text = |option: &Option<String>| option.clone().unwrap_or_else(|| "-".to_owned());
    match value {
        IndexValue::Token(token) => {
            let of_type = token
                .identifier_type
                .as_ref()
                .map(|coding| format!(" type={}|{}", text(&coding.system), text(&coding.code)))
                .unwrap_or_default();
            format!(
                "token {}|{} text={}{of_type}",
                text(&token.system),
                text(&token.code),
                text(&token.text)
            )
        }
        IndexValue::String { normalized, exact } => {
            format!("string {exact:?} -> {normalized:?}")
        }
        IndexValue::Date(range) => {
            format!("date {}..{}", format_micros(range.low), format_micros(range.high))
        }
        IndexValue::Reference(reference) => format!(
            "reference type={} id={} version={} url={} identifier={}",
            reference.target_type.map_or("-", ResourceType::as_str),
            text(&reference.target_id),
            text(&reference.version),
            text(&reference.url),
            reference.identifier.as_ref().map_or("-".to_owned(), |token| format!(
                "{}|{}",
                text(&token.system),
                text(&token.code)
            ))
        ),
        IndexValue::Quantity(quantity) => format!(
            "quantity {} [{}, {}) system={} code={} unit={}",
            quantity.number.text,
            quantity.number.low,
            quantity.number.high,
            text(&quantity.system),
            text(&quantity.code),
            text(&quantity.unit)
        ),
        IndexValue::Uri(uri) => format!("uri {uri}"),
        IndexValue::Position(point) => {
            format!("position {} {}", point.latitude(), point.longitude())
        }
        IndexValue::Number(number) => {
            format!("number {} [{}, {})", number.text, number.low, number.high)
        }
        IndexValue::Composite(parts) => format!("composite {:?}", render(parts)),
    }
}

#[test]
#[allow(clippy::too_many_lines, reason = "one table of cases")]
fn index_values_by_type() {
    use SearchParamType as P;
    let cases: Vec<(P, &str, serde_json::Value, Vec<&str>)> = vec![
        (P::Token, "code", json!("final"), vec!["token -|final text=-"]),
        (P::Token, "boolean", json!(true), vec!["token -|true text=-"]),
        (P::Token, "id", json!("abc"), vec!["token -|abc text=-"]),
        (
            P::Token,
            "Coding",
            json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT", "display": "Computed Tomography"}),
            vec!["token http://dicom.nema.org/resources/ontology/DCM|CT text=computed tomography"],
        ),
        (
            P::Token,
            "CodeableConcept",
            json!({"coding": [{"system": "http://loinc.org", "code": "24627-2"}, {"code": "x"}], "text": "Chest  CT"}),
            vec![
                "token http://loinc.org|24627-2 text=-",
                "token -|x text=-",
                "token -|- text=chest ct",
            ],
        ),
        (
            P::Token,
            "Identifier",
            json!({"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}),
            vec!["token urn:dicom:uid|urn:oid:1.2.3 text=-"],
        ),
        (
            P::Token,
            "Identifier",
            json!({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}], "text": "Accession"}, "system": "http://example.org/acc", "value": "A1"}),
            vec![
                "token http://example.org/acc|A1 text=accession type=http://terminology.hl7.org/CodeSystem/v2-0203|ACSN",
            ],
        ),
        (
            P::Token,
            "ContactPoint",
            json!({"system": "phone", "value": "(03) 5555 6473", "use": "work"}),
            vec!["token -|(03) 5555 6473 text=-"],
        ),
        (
            P::String,
            "string",
            json!("Ünïcode  Text "),
            vec!["string \"Ünïcode  Text \" -> \"unicode text\""],
        ),
        (
            P::String,
            "HumanName",
            json!({"family": "Chalmers", "given": ["Peter", "James"], "prefix": ["Mr."], "suffix": ["Jr"], "text": "Peter Chalmers"}),
            vec![
                "string \"Chalmers\" -> \"chalmers\"",
                "string \"Peter\" -> \"peter\"",
                "string \"James\" -> \"james\"",
                "string \"Mr.\" -> \"mr.\"",
                "string \"Jr\" -> \"jr\"",
                "string \"Peter Chalmers\" -> \"peter chalmers\"",
            ],
        ),
        (
            P::String,
            "Address",
            json!({"line": ["534 Erewhon St"], "city": "PleasantVille", "district": "Rainbow", "state": "Vic", "postalCode": "3999", "country": "AU", "text": "t"}),
            vec![
                "string \"534 Erewhon St\" -> \"534 erewhon st\"",
                "string \"PleasantVille\" -> \"pleasantville\"",
                "string \"Rainbow\" -> \"rainbow\"",
                "string \"Vic\" -> \"vic\"",
                "string \"3999\" -> \"3999\"",
                "string \"AU\" -> \"au\"",
                "string \"t\" -> \"t\"",
            ],
        ),
        (
            P::Date,
            "date",
            json!("2024"),
            vec!["date 2024-01-01T00:00:00.000000Z..2025-01-01T00:00:00.000000Z"],
        ),
        (
            P::Date,
            "date",
            json!("1974-12-25"),
            vec!["date 1974-12-25T00:00:00.000000Z..1974-12-26T00:00:00.000000Z"],
        ),
        (
            P::Date,
            "dateTime",
            json!("2017-01-01T11:01:20+03:00"),
            vec!["date 2017-01-01T08:01:20.000000Z..2017-01-01T08:01:21.000000Z"],
        ),
        (
            P::Date,
            "instant",
            json!("2012-12-01T12:00:00.123Z"),
            vec!["date 2012-12-01T12:00:00.123000Z..2012-12-01T12:00:00.124000Z"],
        ),
        (
            P::Date,
            "Period",
            json!({"start": "2024-01", "end": "2024-02-10"}),
            vec!["date 2024-01-01T00:00:00.000000Z..2024-02-11T00:00:00.000000Z"],
        ),
        (
            P::Date,
            "Period",
            json!({"start": "2024-01-01"}),
            vec!["date 2024-01-01T00:00:00.000000Z..10000-01-01T00:00:00.000000Z"],
        ),
        (
            P::Date,
            "Period",
            json!({"end": "2024"}),
            vec!["date 0001-01-01T00:00:00.000000Z..2025-01-01T00:00:00.000000Z"],
        ),
        (
            P::Date,
            "Timing",
            json!({"event": ["2024-05-01", "2024-05-02T10:00:00Z"]}),
            vec![
                "date 2024-05-01T00:00:00.000000Z..2024-05-02T00:00:00.000000Z",
                "date 2024-05-02T10:00:00.000000Z..2024-05-02T10:00:01.000000Z",
            ],
        ),
        (P::Date, "dateTime", json!("2024-13-01"), vec![]),
        (
            P::Reference,
            "Reference",
            json!({"reference": "Patient/example", "display": "Peter"}),
            vec!["reference type=Patient id=example version=- url=- identifier=-"],
        ),
        (
            P::Reference,
            "Reference",
            json!({"reference": "Patient/example/_history/3"}),
            vec!["reference type=Patient id=example version=3 url=- identifier=-"],
        ),
        (
            P::Reference,
            "Reference",
            json!({"reference": "http://example.org/fhir/Patient/23"}),
            vec![
                "reference type=Patient id=23 version=- url=http://example.org/fhir/Patient/23 identifier=-",
            ],
        ),
        (
            P::Reference,
            "Reference",
            json!({"reference": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}),
            vec![
                "reference type=- id=- version=- url=urn:uuid:c757873d-ec9a-4326-a141-556f43239520 identifier=-",
            ],
        ),
        (
            P::Reference,
            "Reference",
            json!({"reference": "#p1"}),
            vec!["reference type=- id=- version=- url=#p1 identifier=-"],
        ),
        (
            P::Reference,
            "Reference",
            json!({"type": "Practitioner", "identifier": {"system": "https://example.org/license", "value": "998"}}),
            vec![
                "reference type=Practitioner id=- version=- url=- identifier=https://example.org/license|998",
            ],
        ),
        (
            P::Reference,
            "canonical",
            json!("http://example.org/fhir/PlanDefinition/ct-head|1.0.0"),
            vec![
                "reference type=PlanDefinition id=ct-head version=1.0.0 url=http://example.org/fhir/PlanDefinition/ct-head identifier=-",
            ],
        ),
        (P::Reference, "Reference", json!({"display": "only a name"}), vec![]),
        (
            P::Quantity,
            "Quantity",
            raw(
                r#"{"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"}"#,
            ),
            vec![
                "quantity 6.30 [6.295, 6.305) system=http://unitsofmeasure.org code=mmol/L unit=mmol/l",
            ],
        ),
        (
            P::Quantity,
            "Age",
            json!({"value": 65, "unit": "yr", "system": "http://unitsofmeasure.org", "code": "a"}),
            vec!["quantity 65 [64.5, 65.5) system=http://unitsofmeasure.org code=a unit=yr"],
        ),
        (
            P::Quantity,
            "Money",
            json!({"value": 100.5, "currency": "CAD"}),
            vec!["quantity 100.5 [100.45, 100.55) system=urn:iso:std:iso:4217 code=CAD unit=-"],
        ),
        (P::Uri, "uri", json!("http://example.org/a"), vec!["uri http://example.org/a"]),
        (P::Number, "integer", json!(42), vec!["number 42 [41.5, 42.5)"]),
        (P::Number, "decimal", raw("0.050"), vec!["number 0.050 [0.0495, 0.0505)"]),
        (P::Token, "", json!({"coding": [{"system": "s", "code": "c"}]}), vec!["token s|c text=-"]),
        (
            P::Reference,
            "",
            json!({"reference": "Organization/1"}),
            vec!["reference type=Organization id=1 version=- url=- identifier=-"],
        ),
        (P::String, "", json!({"family": "Doe"}), vec!["string \"Doe\" -> \"doe\""]),
        (
            P::Date,
            "",
            json!({"start": "2020", "end": "2020"}),
            vec!["date 2020-01-01T00:00:00.000000Z..2021-01-01T00:00:00.000000Z"],
        ),
        (P::Token, "", json!({"system": "email", "value": "a@b.c"}), vec!["token -|a@b.c text=-"]),
        (
            P::Special,
            "BackboneElement",
            json!({"latitude": 43.6532, "longitude": -79.3832, "altitude": 76}),
            vec!["position 43.6532 -79.3832"],
        ),
        (P::Special, "BackboneElement", json!({"latitude": 91, "longitude": 0}), vec![]),
        (P::Special, "BackboneElement", json!({"latitude": 45}), vec![]),
        (P::Special, "BackboneElement", json!({"latitude": "45", "longitude": "0"}), vec![]),
        (
            P::Token,
            "",
            json!({"system": "urn:oid:1", "value": "v"}),
            vec!["token urn:oid:1|v text=-"],
        ),
    ];
    let mut failures = Vec::new();
    for (param_type, fhir_type, node, expected) in cases {
        let actual = render(&index_values(param_type, fhir_type, &node));
        if actual != expected {
            failures.push(format!(
                "{} {fhir_type} {node}:\n  expected {expected:?}\n  actual   {actual:?}",
                param_type.as_str()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
