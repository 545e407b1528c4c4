//! Index values: what the store writes into its `idx_*` tables for one resource.
//!
//! [`index_values`] turns one FHIR element (a JSON node and its FHIR type name, as a FHIRPath evaluation yields
//! them) into the values a parameter of a given type indexes:
//!
//! | Parameter type | FHIR types | Values |
//! |---|---|---|
//! | token | Coding, CodeableConcept (each coding, plus `text`), Identifier (`system`, `value`, type codings for `:of-type`), ContactPoint (`value`), boolean, code, string, id, uri, canonical | [`IndexValue::Token`] |
//! | string | string, markdown, code, HumanName (family, each given, prefix, suffix, text), Address (each line, city, district, state, postalCode, country, text) | [`IndexValue::String`] |
//! | date | date, dateTime, instant, Period (open ends become [`DateRange::MIN`]/[`DateRange::MAX`]), Timing (each `event`) | [`IndexValue::Date`] |
//! | reference | Reference (relative, absolute, `#contained`, `identifier`, `type`), canonical, uri | [`IndexValue::Reference`] |
//! | quantity | Quantity, Age, Duration, Distance, Count, SimpleQuantity, Money (code = currency, system = ISO 4217) | [`IndexValue::Quantity`] |
//! | uri | uri, url, canonical, oid, uuid | [`IndexValue::Uri`] |
//! | number | integer, decimal, positiveInt, unsignedInt | [`IndexValue::Number`] |
//! | special | an element with decimal `latitude` and `longitude` in range (`Location.position`) | [`IndexValue::Position`] |
//!
//! When the type name is empty or not one of those, the type is guessed from the JSON shape (an object with
//! `coding` is a CodeableConcept, one with `reference` a Reference, …).
//! Values that do not parse (a malformed date) produce nothing: validation refuses such resources before they
//! are stored.
//! `Quantity.comparator` is not taken into account: `<5` is indexed as 5.

use cdr_model::{LogicalId, ResourceType};
use serde_json::Value;

use crate::date::{DateRange, parse_date};
use crate::geo::GeoPoint;
use crate::normalize::normalize_string;
use crate::number::{DecimalValue, parse_decimal};
use crate::registry::SearchParamType;

/// The system of currency codes (Money).
const CURRENCY_SYSTEM: &str = "urn:iso:std:iso:4217";

/// One indexed value of one search parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexValue {
    /// `idx_token`.
    Token(TokenIndex),
    /// `idx_string`.
    String {
        /// [`normalize_string`] of `exact`.
        normalized: String,
        /// The text as stored in the resource.
        exact: String,
    },
    /// `idx_date`: the span of time, by precision.
    Date(DateRange),
    /// `idx_reference`.
    Reference(ReferenceIndex),
    /// `idx_quantity` (searched as its exact value, a point).
    Quantity(QuantityIndex),
    /// `idx_uri`.
    Uri(String),
    /// `idx_number` (searched as its exact value, a point).
    Number(DecimalValue),
    /// A composite row: one value per component, in the definition's order.
    Composite(Vec<IndexValue>),
    /// `idx_position`: a point on the sphere (`Location.position`, for `near`).
    Position(GeoPoint),
}

/// A token row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenIndex {
    pub system: Option<String>,
    /// The code, identifier value, contact value, or `true`/`false`.
    pub code: Option<String>,
    /// Normalized (see [`normalize_string`]) display or text, matched by `:text`.
    pub text: Option<String>,
    /// For an Identifier with a type coding: that coding, matched by `:of-type`. An Identifier with several type
    /// codings gives one row per coding.
    pub identifier_type: Option<TypeCoding>,
}

/// The `Identifier.type` coding of a token row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeCoding {
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A reference row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceIndex {
    /// From `Type/id`, the tail of an absolute URL, or `Reference.type`.
    pub target_type: Option<ResourceType>,
    pub target_id: Option<String>,
    /// From `Type/id/_history/version`, or a canonical `url|version`.
    pub version: Option<String>,
    /// The absolute URL (without `|version`), or `#id` of a contained resource.
    pub url: Option<String>,
    /// `Reference.identifier`, matched by `:identifier`.
    pub identifier: Option<TokenIndex>,
}

/// A quantity row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuantityIndex {
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
    /// The value with its precision range.
    pub number: DecimalValue,
}

/// The index values of one FHIR element for a parameter of type `param_type`.
#[must_use]
pub fn index_values(
    param_type: SearchParamType,
    fhir_type_name: &str,
    node: &Value,
) -> Vec<IndexValue> {
    let fhir_type =
        if KNOWN_TYPES.contains(&fhir_type_name) { fhir_type_name } else { guess_type(node) };
    match param_type {
        SearchParamType::Token => token_values(fhir_type, node)
            .into_iter()
            .filter(|token| token.system.is_some() || token.code.is_some() || token.text.is_some())
            .map(IndexValue::Token)
            .collect(),
        SearchParamType::String => string_values(fhir_type, node),
        SearchParamType::Date => {
            date_values(fhir_type, node).into_iter().map(IndexValue::Date).collect()
        }
        SearchParamType::Reference => {
            reference_value(fhir_type, node).map(IndexValue::Reference).into_iter().collect()
        }
        SearchParamType::Quantity => {
            quantity_value(fhir_type, node).map(IndexValue::Quantity).into_iter().collect()
        }
        SearchParamType::Uri => {
            node.as_str().map(|uri| IndexValue::Uri(uri.to_owned())).into_iter().collect()
        }
        SearchParamType::Number => number_value(node).map(IndexValue::Number).into_iter().collect(),
        SearchParamType::Special => {
            position_value(node).map(IndexValue::Position).into_iter().collect()
        }
        SearchParamType::Composite => Vec::new(),
    }
}

/// A position's point; `None` without decimal `latitude` and `longitude`, or when they are out of range (R4
/// sets no range, but such a position is no point of the Earth to search near).
fn position_value(node: &Value) -> Option<GeoPoint> {
    let degrees = |key: &str| match node.get(key)? {
        Value::Number(number) => number.to_string().parse::<f64>().ok(),
        _ => None,
    };
    GeoPoint::new(degrees("latitude")?, degrees("longitude")?)
}

const KNOWN_TYPES: [&str; 33] = [
    "string",
    "markdown",
    "code",
    "id",
    "uri",
    "url",
    "canonical",
    "oid",
    "uuid",
    "boolean",
    "date",
    "dateTime",
    "instant",
    "integer",
    "decimal",
    "positiveInt",
    "unsignedInt",
    "Period",
    "Timing",
    "Quantity",
    "Age",
    "Duration",
    "Distance",
    "Count",
    "SimpleQuantity",
    "Money",
    "Coding",
    "CodeableConcept",
    "Identifier",
    "ContactPoint",
    "HumanName",
    "Address",
    "Reference",
];

/// The FHIR type a JSON node most likely has, for nodes that come without one.
fn guess_type(node: &Value) -> &'static str {
    let Value::Object(object) = node else {
        return match node {
            Value::Bool(_) => "boolean",
            Value::Number(_) => "decimal",
            _ => "string",
        };
    };
    let has = |key: &str| object.contains_key(key);
    if has("coding") {
        "CodeableConcept"
    } else if has("reference")
        || (has("identifier") && !has("value"))
        || has("display") && !has("code")
    {
        "Reference"
    } else if has("value") && object.get("value").is_some_and(Value::is_number) {
        if has("currency") { "Money" } else { "Quantity" }
    } else if has("value")
        && (has("rank")
            || object.get("system").and_then(Value::as_str).is_some_and(is_contact_system))
    {
        "ContactPoint"
    } else if has("value") {
        "Identifier"
    } else if has("code") || has("system") {
        "Coding"
    } else if has("start") || has("end") {
        "Period"
    } else if has("family") || has("given") {
        "HumanName"
    } else if has("line") || has("city") || has("postalCode") || has("country") {
        "Address"
    } else if has("event") || has("repeat") {
        "Timing"
    } else if has("text") {
        "CodeableConcept"
    } else {
        "string"
    }
}

/// Whether `system` is a ContactPoint system code (an Identifier's system is a URI instead).
fn is_contact_system(system: &str) -> bool {
    matches!(system, "phone" | "fax" | "email" | "pager" | "url" | "sms" | "other")
}

fn text_of<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str)
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_owned)
}

fn array_of<'a>(node: &'a Value, key: &str) -> &'a [Value] {
    node.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn coding_token(coding: &Value) -> TokenIndex {
    TokenIndex {
        system: owned(text_of(coding, "system")),
        code: owned(text_of(coding, "code")),
        text: text_of(coding, "display").map(normalize_string),
        identifier_type: None,
    }
}

fn token_values(fhir_type: &str, node: &Value) -> Vec<TokenIndex> {
    let code_only =
        |code: Option<String>| TokenIndex { system: None, code, text: None, identifier_type: None };
    match fhir_type {
        "Coding" => vec![coding_token(node)],
        "CodeableConcept" => {
            let mut tokens: Vec<TokenIndex> =
                array_of(node, "coding").iter().map(coding_token).collect();
            if let Some(text) = text_of(node, "text") {
                tokens.push(TokenIndex { text: Some(normalize_string(text)), ..code_only(None) });
            }
            tokens
        }
        "Identifier" => {
            let plain = TokenIndex {
                system: owned(text_of(node, "system")),
                code: owned(text_of(node, "value")),
                text: node.get("type").and_then(|ty| text_of(ty, "text")).map(normalize_string),
                identifier_type: None,
            };
            let type_codings = node.get("type").map_or(&[][..], |ty| array_of(ty, "coding"));
            if type_codings.is_empty() {
                return vec![plain];
            }
            type_codings
                .iter()
                .map(|coding| TokenIndex {
                    identifier_type: Some(TypeCoding {
                        system: owned(text_of(coding, "system")),
                        code: owned(text_of(coding, "code")),
                    }),
                    ..plain.clone()
                })
                .collect()
        }
        "ContactPoint" => vec![code_only(owned(text_of(node, "value")))],
        "boolean" => {
            node.as_bool().map(|flag| code_only(Some(flag.to_string()))).into_iter().collect()
        }
        _ => node.as_str().map(|code| code_only(Some(code.to_owned()))).into_iter().collect(),
    }
}

fn string_values(fhir_type: &str, node: &Value) -> Vec<IndexValue> {
    let mut texts: Vec<&str> = Vec::new();
    match fhir_type {
        "HumanName" => {
            texts.extend(text_of(node, "family"));
            for key in ["given", "prefix", "suffix"] {
                texts.extend(array_of(node, key).iter().filter_map(Value::as_str));
            }
            texts.extend(text_of(node, "text"));
        }
        "Address" => {
            texts.extend(array_of(node, "line").iter().filter_map(Value::as_str));
            for key in ["city", "district", "state", "postalCode", "country", "text"] {
                texts.extend(text_of(node, key));
            }
        }
        _ => texts.extend(node.as_str()),
    }
    texts
        .into_iter()
        .map(|text| IndexValue::String {
            normalized: normalize_string(text),
            exact: text.to_owned(),
        })
        .collect()
}

fn date_values(fhir_type: &str, node: &Value) -> Vec<DateRange> {
    let range_of =
        |text: Option<&str>| text.and_then(|text| parse_date(text).ok()).map(|date| date.range);
    match fhir_type {
        "Period" => {
            let start = range_of(text_of(node, "start"));
            let end = range_of(text_of(node, "end"));
            if start.is_none() && end.is_none() {
                return Vec::new();
            }
            let low = start.map_or(DateRange::MIN, |range| range.low);
            let high = end.map_or(DateRange::MAX, |range| range.high);
            if low >= high {
                return Vec::new();
            }
            vec![DateRange { low, high }]
        }
        "Timing" => {
            array_of(node, "event").iter().filter_map(|event| range_of(event.as_str())).collect()
        }
        _ => range_of(node.as_str()).into_iter().collect(),
    }
}

fn reference_value(fhir_type: &str, node: &Value) -> Option<ReferenceIndex> {
    let mut index = ReferenceIndex {
        target_type: None,
        target_id: None,
        version: None,
        url: None,
        identifier: None,
    };
    let text = match fhir_type {
        "Reference" => {
            index.identifier = node
                .get("identifier")
                .and_then(|identifier| token_values("Identifier", identifier).into_iter().next());
            index.target_type =
                text_of(node, "type").and_then(|name| ResourceType::parse(name).ok());
            text_of(node, "reference")
        }
        _ => node.as_str(),
    };
    if let Some(text) = text {
        fill_reference(&mut index, text);
    }
    let empty = index.target_id.is_none() && index.url.is_none() && index.identifier.is_none();
    (!empty).then_some(index)
}

fn fill_reference(index: &mut ReferenceIndex, text: &str) {
    if text.starts_with('#') {
        index.url = Some(text.to_owned());
        return;
    }
    let absolute = text.contains("://") || text.starts_with("urn:");
    let (address, version) = match text.split_once('|') {
        Some((address, version)) if absolute => (address, Some(version)),
        _ => (text, None),
    };
    index.version = owned(version);
    let segments: Vec<&str> = address.split('/').collect();
    let tail = match segments.as_slice() {
        [.., kind, id, "_history", version] => Some((*kind, *id, Some(*version))),
        [.., kind, id] => Some((*kind, *id, None)),
        _ => None,
    };
    if let Some((kind, id, version)) = tail
        && let (Ok(resource_type), Ok(id)) = (ResourceType::parse(kind), LogicalId::parse(id))
    {
        index.target_type = Some(resource_type);
        index.target_id = Some(id.as_str().to_owned());
        if version.is_some() {
            index.version = owned(version);
        }
    }
    if absolute {
        index.url = Some(address.to_owned());
    }
}

fn quantity_value(fhir_type: &str, node: &Value) -> Option<QuantityIndex> {
    let number = number_value(node.get("value")?)?;
    if fhir_type == "Money" {
        return Some(QuantityIndex {
            system: Some(CURRENCY_SYSTEM.to_owned()),
            code: owned(text_of(node, "currency")),
            unit: None,
            number,
        });
    }
    Some(QuantityIndex {
        system: owned(text_of(node, "system")),
        code: owned(text_of(node, "code")),
        unit: owned(text_of(node, "unit")),
        number,
    })
}

fn number_value(node: &Value) -> Option<DecimalValue> {
    match node {
        Value::Number(number) => parse_decimal(&number.to_string()).ok(),
        _ => None,
    }
}
