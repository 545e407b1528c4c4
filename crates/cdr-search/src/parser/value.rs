//! Parsing of parameter values by parameter type and modifier, with escapes (`\,` `\|` `\$` `\\`).
//!
//! Positions in [`ValueError`] are byte offsets in the value as the caller passed it (percent-decoded, escapes
//! still in place).

use cdr_model::{LogicalId, ResourceType};

use crate::ast::{Modifier, Prefix, ReferenceValue, SearchValue, TokenSystem, TokenValue};
use crate::date::parse_date;
use crate::geo::{DEFAULT_NEAR_KM, GeoPoint, NearValue, kilometres_per};
use crate::normalize::normalize_string;
use crate::number::{DecimalValue, parse_decimal};
use crate::registry::{NEAR_URL, SearchParamDef, SearchParamRegistry, SearchParamType};

/// A problem in a value, at a byte offset of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    pub(crate) position: usize,
    pub(crate) message: String,
}

impl ValueError {
    fn new(position: usize, message: impl Into<String>) -> ValueError {
        ValueError { position, message: message.into() }
    }
}

/// Parses the whole `value` of `def` under `modifier`, split by [`split_unescaped`] into its `alternatives`.
pub(crate) fn parse_values(
    def: &SearchParamDef,
    modifier: Option<Modifier>,
    value: &str,
    alternatives: Vec<(usize, &str)>,
    registry: &SearchParamRegistry,
) -> Result<Vec<SearchValue>, ValueError> {
    if modifier == Some(Modifier::Missing) {
        return match value {
            "true" => Ok(vec![SearchValue::Missing(true)]),
            "false" => Ok(vec![SearchValue::Missing(false)]),
            _ => Err(ValueError::new(0, ":missing takes 'true' or 'false'")),
        };
    }
    alternatives
        .into_iter()
        .map(|(offset, text)| parse_one(def, modifier, text, offset, registry))
        .collect()
}

fn parse_one(
    def: &SearchParamDef,
    modifier: Option<Modifier>,
    text: &str,
    offset: usize,
    registry: &SearchParamRegistry,
) -> Result<SearchValue, ValueError> {
    if text.is_empty() {
        return Err(ValueError::new(offset, "empty value"));
    }
    match def.param_type {
        SearchParamType::Number => {
            let (prefix, number) = parse_prefixed_number(def, text, offset)?;
            Ok(SearchValue::Number { prefix, number })
        }
        SearchParamType::Date => {
            let (prefix, rest_offset) = parse_prefix(def, text, offset)?;
            let date = parse_date(&text[rest_offset - offset..])
                .map_err(|error| ValueError::new(rest_offset + error.offset, error.message))?;
            Ok(SearchValue::Date { prefix, date })
        }
        SearchParamType::String => string_value(text, offset),
        SearchParamType::Token => match modifier {
            Some(Modifier::Text) => string_value(text, offset),
            Some(Modifier::In | Modifier::NotIn) => Ok(SearchValue::Uri(unescape(text, offset)?)),
            Some(Modifier::OfType) => parse_of_type(text, offset),
            _ => Ok(SearchValue::Token(parse_token(text, offset)?)),
        },
        SearchParamType::Reference => match modifier {
            Some(Modifier::Identifier) => Ok(SearchValue::Token(parse_token(text, offset)?)),
            Some(Modifier::Type(resource_type)) => {
                parse_reference(text, offset, Some(resource_type))
            }
            _ => {
                let single_target = match def.targets.as_slice() {
                    [only] => Some(*only),
                    _ => None,
                };
                parse_reference(text, offset, single_target)
            }
        },
        SearchParamType::Quantity => parse_quantity(def, text, offset),
        SearchParamType::Uri => Ok(SearchValue::Uri(unescape(text, offset)?)),
        SearchParamType::Composite => parse_composite(def, text, offset, registry),
        SearchParamType::Special if def.url == NEAR_URL => parse_near(text, offset),
        SearchParamType::Special => Ok(SearchValue::Special(unescape(text, offset)?)),
    }
}

/// `[latitude]|[longitude]|[distance]|[units]` (R4 Location `near`): decimal degrees in [-90, 90] and
/// [-180, 180], a distance of at least 0 ([`DEFAULT_NEAR_KM`] when omitted), in km unless a unit
/// ([`kilometres_per`]) is given. A unit is checked even when the distance is omitted (where R4 calls it
/// irrelevant): a misspelt unit is the client's error either way.
fn parse_near(text: &str, offset: usize) -> Result<SearchValue, ValueError> {
    let parts = split_unescaped(text, b'|', offset);
    if !(2..=4).contains(&parts.len()) {
        return Err(ValueError::new(offset, "near takes latitude|longitude[|distance[|units]]"));
    }
    let number = |(part_offset, part): (usize, &str), what: &str| -> Result<f64, ValueError> {
        let decimal = parse_decimal(part).map_err(|error| {
            ValueError::new(part_offset + error.offset, format!("{what}: {}", error.message))
        })?;
        decimal
            .value
            .to_string()
            .parse::<f64>()
            .map_err(|_| ValueError::new(part_offset, format!("{what} is not a number")))
    };
    let latitude = number(parts[0], "latitude")?;
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(ValueError::new(parts[0].0, "latitude must be between -90 and 90"));
    }
    let longitude = number(parts[1], "longitude")?;
    let Some(center) = GeoPoint::new(latitude, longitude) else {
        return Err(ValueError::new(parts[1].0, "longitude must be between -180 and 180"));
    };
    let kilometres = match parts.get(3) {
        None | Some((_, "")) => 1.0,
        Some((unit_offset, unit)) => kilometres_per(unit).ok_or_else(|| {
            ValueError::new(
                *unit_offset,
                format!("unknown distance unit '{unit}' (km, m, [mi_i], [mi_us] or mi)"),
            )
        })?,
    };
    let distance_km = match parts.get(2) {
        None | Some((_, "")) => DEFAULT_NEAR_KM,
        Some(&(distance_offset, distance)) => {
            let distance = number((distance_offset, distance), "distance")?;
            if distance < 0.0 {
                return Err(ValueError::new(distance_offset, "distance must not be negative"));
            }
            distance * kilometres
        }
    };
    Ok(SearchValue::Near(NearValue { center, distance_km }))
}

fn string_value(text: &str, offset: usize) -> Result<SearchValue, ValueError> {
    let exact = unescape(text, offset)?;
    let normalized = normalize_string(&exact);
    Ok(SearchValue::String { exact, normalized })
}

/// Reads an optional two-letter prefix; returns it (default `eq`) and the offset of what follows.
fn parse_prefix(
    def: &SearchParamDef,
    text: &str,
    offset: usize,
) -> Result<(Prefix, usize), ValueError> {
    let Some(prefix) =
        text.get(..2).filter(|head| head.bytes().all(|byte| byte.is_ascii_lowercase()))
    else {
        return Ok((Prefix::Eq, offset));
    };
    let Some(prefix) = Prefix::parse(prefix) else {
        return Err(ValueError::new(offset, format!("unknown prefix '{prefix}'")));
    };
    if !def.comparators.contains(&prefix) {
        return Err(ValueError::new(
            offset,
            format!("prefix '{}' is not allowed here", prefix.as_str()),
        ));
    }
    if text.len() == 2 {
        return Err(ValueError::new(offset + 2, "expected a value after the prefix"));
    }
    Ok((prefix, offset + 2))
}

fn parse_prefixed_number(
    def: &SearchParamDef,
    text: &str,
    offset: usize,
) -> Result<(Prefix, DecimalValue), ValueError> {
    let (prefix, rest_offset) = parse_prefix(def, text, offset)?;
    let number = parse_decimal(&text[rest_offset - offset..])
        .map_err(|error| ValueError::new(rest_offset + error.offset, error.message))?;
    Ok((prefix, number))
}

fn parse_token(text: &str, offset: usize) -> Result<TokenValue, ValueError> {
    let parts = split_unescaped(text, b'|', offset);
    match parts.as_slice() {
        [(code_offset, code)] => {
            Ok(TokenValue { system: TokenSystem::Any, code: Some(unescape(code, *code_offset)?) })
        }
        [(_, ""), (_, "")] => Err(ValueError::new(offset, "a token needs a system or a code")),
        [(_, ""), (code_offset, code)] => Ok(TokenValue {
            system: TokenSystem::NoSystem,
            code: Some(unescape(code, *code_offset)?),
        }),
        [(system_offset, system), (code_offset, code)] => {
            let system = TokenSystem::Is(unescape(system, *system_offset)?);
            let code = if code.is_empty() { None } else { Some(unescape(code, *code_offset)?) };
            Ok(TokenValue { system, code })
        }
        _ => Err(ValueError::new(parts[2].0 - 1, "a token has at most one unescaped '|'")),
    }
}

fn parse_of_type(text: &str, offset: usize) -> Result<SearchValue, ValueError> {
    let parts = split_unescaped(text, b'|', offset);
    let [(system_offset, system), (code_offset, code), (value_offset, value)] = parts.as_slice()
    else {
        return Err(ValueError::new(offset, ":of-type takes type-system|type-code|value"));
    };
    for (part_offset, part) in &parts {
        if part.is_empty() {
            return Err(ValueError::new(
                *part_offset,
                ":of-type needs all of type-system, type-code and value",
            ));
        }
    }
    Ok(SearchValue::OfType {
        type_system: unescape(system, *system_offset)?,
        type_code: unescape(code, *code_offset)?,
        value: unescape(value, *value_offset)?,
    })
}

fn parse_quantity(
    def: &SearchParamDef,
    text: &str,
    offset: usize,
) -> Result<SearchValue, ValueError> {
    let parts = split_unescaped(text, b'|', offset);
    let (number_text, system, code) = match parts.as_slice() {
        [(_, number)] => (*number, None, None),
        [(_, number), (system_offset, system), (code_offset, code)] => {
            let system =
                if system.is_empty() { None } else { Some(unescape(system, *system_offset)?) };
            let code = if code.is_empty() { None } else { Some(unescape(code, *code_offset)?) };
            (*number, system, code)
        }
        _ => return Err(ValueError::new(offset, "a quantity is number, or number|system|code")),
    };
    let (prefix, number) = parse_prefixed_number(def, number_text, offset)?;
    Ok(SearchValue::Quantity { prefix, number, system, code })
}

fn parse_composite(
    def: &SearchParamDef,
    text: &str,
    offset: usize,
    registry: &SearchParamRegistry,
) -> Result<SearchValue, ValueError> {
    let parts = split_unescaped(text, b'$', offset);
    if parts.len() != def.components.len() {
        return Err(ValueError::new(
            offset,
            format!(
                "expected {} components separated by '$', found {}",
                def.components.len(),
                parts.len()
            ),
        ));
    }
    let mut values = Vec::with_capacity(parts.len());
    for ((part_offset, part), component) in parts.into_iter().zip(&def.components) {
        let Some(component_def) = registry.get_by_url(def.base, &component.definition) else {
            return Err(ValueError::new(
                part_offset,
                format!(
                    "the composite's component '{}' is not a known parameter",
                    component.definition
                ),
            ));
        };
        if component_def.param_type == SearchParamType::Composite {
            return Err(ValueError::new(
                part_offset,
                "a composite component cannot itself be a composite",
            ));
        }
        if part.is_empty() {
            return Err(ValueError::new(part_offset, "empty composite component"));
        }
        values.push(parse_one(component_def, None, part, part_offset, registry)?);
    }
    Ok(SearchValue::Composite(values))
}

fn parse_reference(
    text: &str,
    offset: usize,
    type_hint: Option<ResourceType>,
) -> Result<SearchValue, ValueError> {
    let parts = split_unescaped(text, b'|', offset);
    let (reference_text, version_text) = match parts.as_slice() {
        [(_, reference)] => (unescape(reference, offset)?, None),
        [(_, reference), (version_offset, version)] => {
            (unescape(reference, offset)?, Some(unescape(version, *version_offset)?))
        }
        _ => {
            return Err(ValueError::new(
                offset,
                "a reference has at most one unescaped '|' (url|version)",
            ));
        }
    };
    if reference_text.contains("://") || reference_text.starts_with("urn:") {
        let mut reference =
            ReferenceValue { resource_type: None, id: None, version: version_text, url: None };
        let segments: Vec<&str> = reference_text.split('/').collect();
        let tail = match segments.as_slice() {
            [.., kind, id, "_history", version] => Some((*kind, *id, Some(*version))),
            [.., kind, id] => Some((*kind, *id, None)),
            _ => None,
        };
        if let Some((kind, id, version)) = tail
            && let (Ok(resource_type), Ok(id)) = (ResourceType::parse(kind), LogicalId::parse(id))
        {
            reference.resource_type = Some(resource_type);
            reference.id = Some(id.as_str().to_owned());
            reference.version = reference.version.or(version.map(str::to_owned));
        }
        reference.url = Some(reference_text);
        return Ok(SearchValue::Reference(reference));
    }
    if version_text.is_some() {
        return Err(ValueError::new(
            offset,
            "only absolute (canonical) references take '|version'",
        ));
    }
    let segments: Vec<&str> = reference_text.split('/').collect();
    let (kind, id, version) = match segments.as_slice() {
        [id] => (None, *id, None),
        [kind, id] => (Some(*kind), *id, None),
        [kind, id, "_history", version] => (Some(*kind), *id, Some(*version)),
        _ => {
            return Err(ValueError::new(
                offset,
                "expected id, Type/id, Type/id/_history/version or a URL",
            ));
        }
    };
    let resource_type = match kind {
        None => type_hint,
        Some(kind) => {
            let Ok(resource_type) = ResourceType::parse(kind) else {
                return Err(ValueError::new(offset, format!("unknown resource type '{kind}'")));
            };
            if type_hint.is_some_and(|hint| hint != resource_type) {
                return Err(ValueError::new(
                    offset,
                    format!("the reference type '{kind}' contradicts the modifier"),
                ));
            }
            Some(resource_type)
        }
    };
    if LogicalId::parse(id).is_err() {
        return Err(ValueError::new(offset, format!("invalid id '{id}'")));
    }
    if let Some(version) = version
        && LogicalId::parse(version).is_err()
    {
        return Err(ValueError::new(offset, format!("invalid version '{version}'")));
    }
    Ok(SearchValue::Reference(ReferenceValue {
        resource_type,
        id: Some(id.to_owned()),
        version: version.map(str::to_owned),
        url: None,
    }))
}

/// Splits `text`, which starts at byte `base` of the value, at every `separator` not preceded by an escaping
/// backslash; returns each piece with its byte offset in the value (escapes are left in the pieces).
pub(crate) fn split_unescaped(text: &str, separator: u8, base: usize) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            index += 2;
            continue;
        }
        if bytes[index] == separator {
            pieces.push((base + start, &text[start..index]));
            start = index + 1;
        }
        index += 1;
    }
    pieces.push((base + start, &text[start.min(text.len())..]));
    pieces
}

/// Removes the escapes `\,` `\|` `\$` `\\` from a piece that starts at `offset` of the value.
pub(crate) fn unescape(text: &str, offset: usize) -> Result<String, ValueError> {
    let mut unescaped = String::with_capacity(text.len());
    let mut characters = text.char_indices();
    while let Some((index, character)) = characters.next() {
        if character != '\\' {
            unescaped.push(character);
            continue;
        }
        match characters.next() {
            Some((_, escaped @ (',' | '|' | '$' | '\\'))) => unescaped.push(escaped),
            Some(_) => {
                return Err(ValueError::new(
                    offset + index,
                    "'\\' escapes only ',', '|', '$' and '\\'",
                ));
            }
            None => {
                return Err(ValueError::new(
                    offset + index,
                    "dangling '\\' at the end of the value",
                ));
            }
        }
    }
    Ok(unescaped)
}
