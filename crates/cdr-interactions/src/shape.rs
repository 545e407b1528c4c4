//! What a searchset page carries besides the matches: the opaque paging cursor, and the subsetting of
//! returned resources by `_summary` and `_elements`.
//!
//! The cursor is the hex form of a small JSON array: the direction (`a` after, `b` before), the type and id of
//! the row the page starts next to, its sort values (`{"i":…}`, `{"f":…}` or `{"t":…}`), and the id of the
//! patient whose compartment the search was confined to (`null` when unconfined), and for a walk in
//! `_lastUpdated` the feed horizon of its first page. It names no database
//! position, so it stays valid while data changes and can be replayed on any server of a cluster; a cursor
//! is refused under another confinement than the one it was made under (it would be useless anyway: the
//! store confines every page again, so a forged cursor reaches nothing more than the first page does).

use cdr_model::{Instant, LogicalId, ResourceType};
use cdr_search::{Compartment, SearchQuery, SummaryMode};
use cdr_store::{PageDirection, PageKey, SortValue};
use serde_json::{Map, Value, json};

use crate::InteractionError;
use crate::summary_elements::SUMMARY_ELEMENTS;

/// The tag a subsetted resource carries (R4 §3.1.1.5.8).
const SUBSETTED: (&str, &str) =
    ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED");

/// A paging position: the side of a key the page lies on, and, for a walk in `_lastUpdated` (ordered or
/// filtered), the feed horizon of its first page, which every page of the walk keeps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub(crate) direction: PageDirection,
    pub(crate) key: PageKey,
    pub(crate) horizon: Option<Instant>,
}

/// The opaque text of a paging position.
pub(crate) fn encode_cursor(cursor: &Cursor, compartment: Option<&Compartment>) -> String {
    let Cursor { direction, key, horizon } = cursor;
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
    let patient = compartment.map(Compartment::patient_id);
    let mut parts = vec![
        json!(direction),
        json!(key.res_type.as_str()),
        json!(key.res_id.as_str()),
        Value::Array(values),
        json!(patient),
    ];
    if let Some(horizon) = horizon {
        parts.push(json!(horizon.millis()));
    }
    let text = Value::Array(parts).to_string();
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads a cursor made by [`encode_cursor`] under the same confinement.
pub(crate) fn decode_cursor(
    text: &str,
    compartment: Option<&Compartment>,
) -> Result<Cursor, InteractionError> {
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
    let (direction, res_type, res_id, values, patient, horizon) =
        match value.as_array().map(Vec::as_slice) {
            Some([direction, res_type, res_id, Value::Array(values), patient]) => {
                (direction, res_type, res_id, values, patient, None)
            }
            Some([direction, res_type, res_id, Value::Array(values), patient, horizon]) => {
                let horizon = horizon.as_i64().ok_or_else(invalid)?;
                (direction, res_type, res_id, values, patient, Some(Instant::from_millis(horizon)))
            }
            _ => return Err(invalid()),
        };
    if patient.as_str() != compartment.map(Compartment::patient_id) {
        return Err(InteractionError::invalid(
            "this paging cursor was made for another caller's search: page from the first page of your own",
        ));
    }
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
    let res_type = res_type.as_str().and_then(|name| ResourceType::parse(name).ok());
    let res_id = res_id.as_str().and_then(|id| LogicalId::parse(id).ok());
    let (Some(res_type), Some(res_id)) = (res_type, res_id) else {
        return Err(invalid());
    };
    // No stored text holds a NUL character (PostgreSQL text cannot), so a cursor with one is forged.
    if values.iter().any(|value| matches!(value, SortValue::Text(text) if text.contains('\0'))) {
        return Err(invalid());
    }
    Ok(Cursor { direction, key: PageKey { values, res_type, res_id }, horizon })
}

/// How `_summary=true` keeps a summary element's value (the generated table in `summary_elements.rs` names one
/// per element path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// A primitive or a data type: kept whole (data types' own members are all summary in R4).
    Whole,
    /// An `Attachment`: kept without `data`, the one data type member R4 leaves out of summaries.
    Attachment,
    /// A backbone element, each object trimmed to the summary members listed under this path (its own path, or
    /// the element its `contentReference` names).
    Backbone(&'static str),
}

/// The paths `_summary=true` keeps in one resource type, sorted, each with how its value is kept.
pub(crate) type KeptPaths = &'static [(&'static str, Content)];

/// Applies `_summary` (`true`, `text`, `data`) and `_elements` to a matched resource, and tags any subset
/// `SUBSETTED`. `id`, `meta` and `implicitRules` always stay.
///
/// - `true` keeps the elements R4 marks summary (or modifier) at every depth: inside a backbone element (such as
///   `ImagingStudy.series`) only its summary members stay (`series.uid` does, `series.instance` does not), while a
///   data type value (`HumanName`, `Reference`, …) stays whole except `Attachment.data`.
/// - `text` keeps `text` and the top-level mandatory elements; `data` drops `text`.
/// - `_elements` keeps the named top-level elements plus the mandatory ones (R4: servers SHOULD return those).
///
/// A primitive's extension member (`_status`) follows its element.
pub(crate) fn shape_resource(body: Value, query: &SearchQuery) -> Value {
    let Value::Object(resource) = body else { return body };
    let (summary, mandatory) = summary_lists(&resource);
    let mut subset = match query.summary {
        Some(SummaryMode::Text) => {
            keep(resource, |name| name == "text" || is_listed(mandatory, name))
        }
        Some(SummaryMode::Data) => {
            let mut data = resource;
            data.remove("text");
            data
        }
        Some(SummaryMode::True) => summarize(resource, summary, ""),
        _ if !query.elements.is_empty() => keep(resource, |name| {
            is_listed(mandatory, name)
                || query.elements.iter().any(|element| element_matches(element, name))
        }),
        _ => return Value::Object(resource),
    };
    mark_subsetted(&mut subset);
    Value::Object(subset)
}

/// Whether a top-level member stays in every subset.
fn always_kept(name: &str) -> bool {
    matches!(name, "resourceType" | "id" | "meta" | "implicitRules")
}

/// `resourceType`, `id`, `meta` and `implicitRules`, plus the top-level elements `wanted` accepts, in their
/// original order.
fn keep(resource: Map<String, Value>, wanted: impl Fn(&str) -> bool) -> Map<String, Value> {
    resource
        .into_iter()
        .filter(|(name, _)| {
            let base = name.strip_prefix('_').unwrap_or(name);
            always_kept(base) || wanted(base)
        })
        .collect()
}

/// The members of `object` (the resource when `prefix` is empty, else an object of the backbone element at
/// `prefix`) whose paths `paths` lists, each trimmed as its [`Content`] says.
fn summarize(object: Map<String, Value>, paths: KeptPaths, prefix: &str) -> Map<String, Value> {
    object
        .into_iter()
        .filter_map(|(name, value)| {
            let base = name.strip_prefix('_').unwrap_or(&name);
            if prefix.is_empty() && always_kept(base) {
                return Some((name, value));
            }
            let path = if prefix.is_empty() { base.to_owned() } else { format!("{prefix}.{base}") };
            let index = paths.binary_search_by(|(listed, _)| (*listed).cmp(path.as_str())).ok()?;
            let value = match paths.get(index)?.1 {
                Content::Whole => value,
                Content::Attachment => each_object(value, |mut attachment| {
                    attachment.remove("data");
                    attachment.remove("_data");
                    attachment
                }),
                Content::Backbone(members) => {
                    each_object(value, |backbone| summarize(backbone, paths, members))
                }
            };
            Some((name, value))
        })
        .collect()
}

/// Applies `change` to an object, or to each object of an array; other values pass unchanged.
fn each_object(value: Value, change: impl Fn(Map<String, Value>) -> Map<String, Value>) -> Value {
    match value {
        Value::Object(object) => Value::Object(change(object)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(object) => Value::Object(change(object)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
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

/// The paths `_summary=true` keeps and the mandatory top-level elements of the resource's type (both empty for an
/// unknown type).
fn summary_lists(resource: &Map<String, Value>) -> (KeptPaths, &'static [&'static str]) {
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
    let Value::Array(tags) = tags else { return };
    let tagged = tags.iter().any(|tag| tag["system"] == SUBSETTED.0 && tag["code"] == SUBSETTED.1);
    if !tagged {
        tags.push(json!({ "system": SUBSETTED.0, "code": SUBSETTED.1 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An official R4 example, from the served types' examples vendored in cdr-validation's test data.
    fn example(file_name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cdr-validation/test_data/r4-examples/examples.tgz");
        let file = std::fs::File::open(path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entry = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|entry| entry.path().unwrap().to_str() == Some(file_name))
            .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn query(summary: Option<SummaryMode>, elements: &[&str]) -> SearchQuery {
        SearchQuery {
            resource_type: None,
            types: Vec::new(),
            clauses: Vec::new(),
            includes: Vec::new(),
            revincludes: Vec::new(),
            sort: Vec::new(),
            count: None,
            total: None,
            summary,
            elements: elements.iter().map(|element| (*element).to_owned()).collect(),
            contained: None,
            contained_type: None,
            compartment: None,
        }
    }

    fn summary_true(resource: Value) -> Value {
        shape_resource(resource, &query(Some(SummaryMode::True), &[]))
    }

    fn subsetted_tags(resource: &Value) -> usize {
        resource["meta"]["tag"]
            .as_array()
            .map_or(0, |tags| tags.iter().filter(|tag| tag["code"] == "SUBSETTED").count())
    }

    /// R4 ImagingStudy: every top-level element the example uses is summary except `text`; in `series` every
    /// member is summary except `instance`; `series.performer` keeps `function` and `actor`.
    #[test]
    fn summary_trims_imaging_series_to_summary_members() {
        let original = example("ImagingStudy-example-xr.json");
        let summary = summary_true(original.clone());
        let mut expected = original;
        let expected_object = expected.as_object_mut().unwrap();
        expected_object.remove("text");
        for series in expected_object["series"].as_array_mut().unwrap() {
            series.as_object_mut().unwrap().remove("instance");
        }
        expected_object.insert(
            "meta".into(),
            json!({ "tag": [{ "system": SUBSETTED.0, "code": SUBSETTED.1 }] }),
        );
        assert_eq!(summary, expected);
        let series = &summary["series"][0];
        assert!(series["uid"].is_string() && series.get("instance").is_none(), "{series}");
        assert_eq!(series["performer"][0]["actor"]["reference"], "Practitioner/example");
        assert_eq!(
            summary["identifier"][1]["type"]["coding"][0]["code"], "ACSN",
            "data types stay whole"
        );
    }

    /// R4 DiagnosticReport: `effective[x]` and `media` are summary, `media.comment`, `conclusion` and `text`
    /// are not.
    #[test]
    fn summary_keeps_choice_elements_and_trims_media() {
        let summary = summary_true(example("DiagnosticReport-ultrasound.json"));
        assert!(summary["effectiveDateTime"].is_string(), "{summary}");
        assert!(summary["media"][0]["link"]["reference"].is_string());
        assert!(summary["media"][0].get("comment").is_none(), "{summary}");
        for gone in ["text", "conclusion"] {
            assert!(summary.get(gone).is_none(), "{gone}: {summary}");
        }
        assert_eq!(summary["id"], "ultrasound");
        assert_eq!(subsetted_tags(&summary), 1);
    }

    /// R4 DocumentReference: `context` keeps only `period` (its one summary member besides
    /// `modifierExtension`), `content.attachment` loses `data`, non-summary top-level elements go, and a
    /// primitive's extension member follows its element.
    #[test]
    fn summary_trims_document_context_and_attachment_data() {
        let mut original = example("DocumentReference-example.json");
        original["content"][0]["attachment"]["data"] = json!("PGRpdi8+");
        original["_status"] = json!({ "extension": [{ "url": "urn:x", "valueString": "s" }] });
        original["_language"] = json!({ "extension": [{ "url": "urn:x", "valueString": "l" }] });
        original["meta"] =
            json!({ "versionId": "3", "tag": [{ "system": SUBSETTED.0, "code": SUBSETTED.1 }] });
        let summary = summary_true(original.clone());
        assert_eq!(summary["context"], json!({ "period": original["context"]["period"] }));
        let attachment = &summary["content"][0]["attachment"];
        assert!(attachment.get("data").is_none(), "{attachment}");
        assert_eq!(attachment["url"], original["content"][0]["attachment"]["url"]);
        assert_eq!(summary["content"][0]["format"], original["content"][0]["format"]);
        assert_eq!(summary["relatesTo"], original["relatesTo"]);
        assert_eq!(summary["_status"], original["_status"]);
        for gone in ["_language", "text", "contained", "authenticator", "custodian"] {
            assert!(summary.get(gone).is_none(), "{gone}: {summary}");
        }
        assert_eq!(summary["meta"]["versionId"], "3");
        assert_eq!(subsetted_tags(&summary), 1, "an existing SUBSETTED tag is not repeated");
    }

    #[test]
    fn other_modes_stay_top_level() {
        let original = example("ImagingStudy-example-xr.json");
        let text = shape_resource(original.clone(), &query(Some(SummaryMode::Text), &[]));
        let mut names: Vec<&str> = text.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["id", "meta", "resourceType", "status", "subject", "text"]);
        let data = shape_resource(original.clone(), &query(Some(SummaryMode::Data), &[]));
        assert!(data.get("text").is_none() && data["series"][0]["instance"].is_array());
        let elements = shape_resource(original.clone(), &query(None, &["series", "started"]));
        let mut names: Vec<&str> =
            elements.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["id", "meta", "resourceType", "series", "started", "status", "subject"],
            "mandatory elements come with the requested ones"
        );
        assert_eq!(elements["series"], original["series"]);
        assert_eq!(subsetted_tags(&elements), 1);
        let plain = shape_resource(original.clone(), &query(Some(SummaryMode::False), &[]));
        assert_eq!(plain, original);
    }

    /// The generated table: sorted by type and by path (lookups are binary searches), and every backbone
    /// element's members are listed under the path it names.
    #[test]
    fn summary_table_is_well_formed() {
        assert!(SUMMARY_ELEMENTS.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for (type_name, paths, _) in SUMMARY_ELEMENTS {
            assert!(paths.windows(2).all(|pair| pair[0].0 < pair[1].0), "{type_name}");
            for (path, content) in *paths {
                if let Some((parent, _)) = path.rsplit_once('.') {
                    assert!(
                        paths.iter().any(|(listed, kind)| *listed == parent
                            && matches!(kind, Content::Backbone(_))),
                        "{type_name}.{path}"
                    );
                }
                if let Content::Backbone(members) = content {
                    let prefix = format!("{members}.");
                    assert!(paths.iter().any(|(listed, _)| listed.starts_with(&prefix)), "{path}");
                }
            }
        }
    }

    #[test]
    fn cursors_round_trip() {
        let key = PageKey {
            values: vec![
                SortValue::Int(-5),
                SortValue::Float(0.1),
                SortValue::Text("a\u{10FFFF}\"".into()),
            ],
            res_type: ResourceType::parse("Patient").unwrap(),
            res_id: LogicalId::parse("p-1").unwrap(),
        };
        let mine = Compartment::patient("p-1");
        let theirs = Compartment::patient("p-2");
        for direction in [PageDirection::After, PageDirection::Before] {
            for horizon in [None, Some(Instant::from_millis(1_764_800_000_123))] {
                let cursor = Cursor { direction, key: key.clone(), horizon };
                let text = encode_cursor(&cursor, None);
                assert!(text.bytes().all(|byte| byte.is_ascii_hexdigit()));
                assert_eq!(decode_cursor(&text, None).unwrap(), cursor);
                assert!(decode_cursor(&text, Some(&mine)).is_err());
                let confined = encode_cursor(&cursor, Some(&mine));
                assert_eq!(decode_cursor(&confined, Some(&mine)).unwrap(), cursor);
                assert!(decode_cursor(&confined, Some(&theirs)).is_err());
                assert!(decode_cursor(&confined, None).is_err());
            }
        }
        for bad in ["", "0", "zz", "5b5d", "7b7d"] {
            assert!(decode_cursor(bad, None).is_err(), "{bad}");
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
