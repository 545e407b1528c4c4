//! A small search matcher: does a returned resource satisfy the parameter it was searched with? Black-box
//! tests re-check every match with it, by the rules of R4 search.html (date prefixes against the ranges of
//! both values, the token forms, string prefix matching, reference forms, numbers and quantities with their
//! prefixes, uris, and the modifiers `:missing`, `:not`, `:of-type`, `:exact`, `:contains`, `:above` and
//! `:below`). It knows the parameters the kits search with, by their R4 expressions (`PARAMS`), and says so
//! for any other.

use serde_json::Value;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Date,
    Token,
    String,
    Reference,
    /// The paths are the component parameters, in order (`code$category`).
    Composite,
    Uri,
    Number,
    Quantity,
}

/// (resource type, parameter, kind, element paths from the resource; `[x]` marks a choice element).
const PARAMS: &[(&str, &str, Kind, &[&str])] = &[
    ("*", "_id", Kind::Token, &["id"]),
    ("*", "_lastUpdated", Kind::Date, &["meta.lastUpdated"]),
    ("*", "_tag", Kind::Token, &["meta.tag"]),
    ("*", "_profile", Kind::Uri, &["meta.profile"]),
    ("ServiceRequest", "status", Kind::Token, &["status"]),
    ("ServiceRequest", "identifier", Kind::Token, &["identifier"]),
    ("ServiceRequest", "code", Kind::Token, &["code"]),
    ("ServiceRequest", "category", Kind::Token, &["category"]),
    ("ServiceRequest", "authored", Kind::Date, &["authoredOn"]),
    ("ServiceRequest", "occurrence", Kind::Date, &["occurrence[x]"]),
    ("ServiceRequest", "subject", Kind::Reference, &["subject"]),
    ("ServiceRequest", "patient", Kind::Reference, &["subject"]),
    ("ServiceRequest", "requester", Kind::Reference, &["requester"]),
    // profiles/: code and category of the same order, `code$category`.
    ("ServiceRequest", "code-category", Kind::Composite, &["code", "category"]),
    ("ImagingStudy", "status", Kind::Token, &["status"]),
    ("ImagingStudy", "identifier", Kind::Token, &["identifier"]),
    // R4: ImagingStudy.series.modality
    ("ImagingStudy", "modality", Kind::Token, &["series.modality"]),
    ("ImagingStudy", "started", Kind::Date, &["started"]),
    ("ImagingStudy", "subject", Kind::Reference, &["subject"]),
    ("ImagingStudy", "patient", Kind::Reference, &["subject"]),
    ("ImagingStudy", "basedon", Kind::Reference, &["basedOn"]),
    ("ImagingStudy", "referrer", Kind::Reference, &["referrer"]),
    // The guide's spellings, SearchParameters of profiles/.
    ("ImagingStudy", "basedOn", Kind::Reference, &["basedOn"]),
    ("DiagnosticReport", "basedOn", Kind::Reference, &["basedOn"]),
    ("Patient", "birthDate", Kind::Date, &["birthDate"]),
    ("DiagnosticReport", "status", Kind::Token, &["status"]),
    ("DiagnosticReport", "identifier", Kind::Token, &["identifier"]),
    ("DiagnosticReport", "code", Kind::Token, &["code"]),
    ("DiagnosticReport", "category", Kind::Token, &["category"]),
    ("DiagnosticReport", "issued", Kind::Date, &["issued"]),
    ("DiagnosticReport", "date", Kind::Date, &["effective[x]"]),
    ("DiagnosticReport", "subject", Kind::Reference, &["subject"]),
    ("DiagnosticReport", "patient", Kind::Reference, &["subject"]),
    ("DiagnosticReport", "based-on", Kind::Reference, &["basedOn"]),
    ("DocumentReference", "identifier", Kind::Token, &["masterIdentifier", "identifier"]),
    ("DocumentReference", "status", Kind::Token, &["status"]),
    ("DocumentReference", "category", Kind::Token, &["category"]),
    ("DocumentReference", "type", Kind::Token, &["type"]),
    ("DocumentReference", "event", Kind::Token, &["context.event"]),
    ("DocumentReference", "date", Kind::Date, &["date"]),
    ("DocumentReference", "subject", Kind::Reference, &["subject"]),
    ("DocumentReference", "patient", Kind::Reference, &["subject"]),
    ("DocumentReference", "related", Kind::Reference, &["context.related"]),
    ("DocumentReference", "period", Kind::Date, &["context.period"]),
    ("Patient", "identifier", Kind::Token, &["identifier"]),
    ("Patient", "gender", Kind::Token, &["gender"]),
    ("Patient", "birthdate", Kind::Date, &["birthDate"]),
    ("Patient", "family", Kind::String, &["name.family"]),
    ("Patient", "name", Kind::String, &["name"]),
    ("Practitioner", "identifier", Kind::Token, &["identifier"]),
    ("Practitioner", "family", Kind::String, &["name.family"]),
    ("Practitioner", "name", Kind::String, &["name"]),
    ("Organization", "identifier", Kind::Token, &["identifier"]),
    ("Organization", "name", Kind::String, &["name", "alias"]),
    // R4's number and quantity parameters of the types below are not among the guide's; these two are R4's
    // own, for the matcher's rules on numbers and quantities.
    ("RiskAssessment", "probability", Kind::Number, &["prediction.probability[x]"]),
    ("Observation", "value-quantity", Kind::Quantity, &["value[x]"]),
];

/// The kind and paths of a parameter of a type, if the matcher knows it.
pub(crate) fn param(resource_type: &str, name: &str) -> Option<(Kind, &'static [&'static str])> {
    PARAMS
        .iter()
        .find(|(ty, param, _, _)| (*ty == resource_type || *ty == "*") && *param == name)
        .map(|(_, _, kind, paths)| (*kind, *paths))
}

/// Whether `resource` matches `name=value`. `name` may carry a modifier: `:missing` on any parameter, `:not`
/// and `:of-type` on tokens, `:exact` and `:contains` on strings, `:above` and `:below` on uris. A comma
/// separates alternatives (any matches; with `:not`, none).
///
/// # Errors
/// A parameter, modifier or value the matcher cannot check.
pub(crate) fn matches(resource: &Value, name: &str, value: &str) -> Result<bool, String> {
    let resource_type = resource["resourceType"].as_str().unwrap_or_default();
    let (base, modifier) = match name.split_once(':') {
        Some((base, modifier)) => (base, Some(modifier)),
        None => (name, None),
    };
    let Some((kind, paths)) = param(resource_type, base) else {
        return Err(format!("the matcher does not know {resource_type}?{base}"));
    };
    if kind == Kind::Composite {
        return composite_matches(resource, paths, value);
    }
    let elements: Vec<&Value> = paths.iter().flat_map(|path| elements(resource, path)).collect();
    match modifier {
        // R4 search.html#modifiers: true, the element is absent; false, present.
        Some("missing") => {
            return match value {
                "true" => Ok(elements.is_empty()),
                "false" => Ok(!elements.is_empty()),
                other => Err(format!(":missing={other}: expected true or false")),
            };
        }
        // R4: the resources that do not have the code, those without the element among them.
        Some("not") if kind == Kind::Token => {
            for alternative in split_alternatives(value) {
                if alternative_matches(kind, None, &elements, &alternative)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        _ => {}
    }
    for alternative in split_alternatives(value) {
        if alternative_matches(kind, modifier, &elements, &alternative)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether one alternative of a search value matches some element.
fn alternative_matches(
    kind: Kind,
    modifier: Option<&str>,
    elements: &[&Value],
    alternative: &str,
) -> Result<bool, String> {
    Ok(match (kind, modifier) {
        (Kind::Date, None) => {
            let (prefix, search) = Prefix::split(alternative);
            let search = date_range(search).ok_or_else(|| format!("not a date: {search}"))?;
            if prefix == Prefix::Ap {
                return Err("ap on dates is not checked (R4 leaves its width to the server)".into());
            }
            elements
                .iter()
                .filter_map(|element| element_range(element))
                .any(|target| prefix.holds(search, target))
        }
        (Kind::Token, None) => {
            let token = Token::parse(alternative);
            elements.iter().any(|element| token.matches(element))
        }
        (Kind::Token, Some("of-type")) => {
            let parts: Vec<&str> = alternative.split('|').collect();
            let [system, code, value] = parts[..] else {
                return Err(format!("{alternative}: :of-type takes system|code|value"));
            };
            elements.iter().any(|identifier| {
                identifier["value"] == value
                    && identifier["type"]["coding"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|coding| coding["system"] == system && coding["code"] == code)
            })
        }
        (Kind::String, None | Some("exact" | "contains")) => elements
            .iter()
            .flat_map(|element| strings(element))
            .any(|text| string_matches(&text, alternative, modifier)),
        (Kind::Uri, None | Some("above" | "below")) => elements
            .iter()
            .filter_map(|element| element.as_str())
            .any(|target| uri_matches(target, alternative, modifier)),
        (Kind::Reference, None) => elements
            .iter()
            .filter_map(|element| reference_key(element))
            .any(|target| reference_matches(&target, alternative)),
        (Kind::Number, None) => {
            let (prefix, text) = Prefix::split(alternative);
            let search = Decimal::parse(text).ok_or_else(|| format!("not a number: {text}"))?;
            elements
                .iter()
                .filter_map(|element| number(element))
                .any(|target| prefix.holds_number(&search, target))
        }
        (Kind::Quantity, None) => {
            let quantity = QuantityValue::parse(alternative)
                .ok_or_else(|| format!("not a quantity: {alternative}"))?;
            elements.iter().any(|element| quantity.matches(element))
        }
        // Matched by `composite_matches`, before the elements are read.
        (Kind::Composite, _) => false,
        (_, Some(modifier)) => {
            return Err(format!("the matcher does not check :{modifier} on this parameter"));
        }
    })
}

/// R4 uri search: equal; `:below`, the target starts with the value; `:above`, the value starts with the
/// target.
fn uri_matches(target: &str, value: &str, modifier: Option<&str>) -> bool {
    match modifier {
        Some("below") => target.starts_with(value),
        Some("above") => value.starts_with(target),
        _ => target == value,
    }
}

/// A number search value and the range its precision implies (R4 search.html#number: `100` is
/// `[99.5, 100.5)`, `1e2` is `[50, 150)`).
#[derive(Debug)]
struct Decimal {
    value: f64,
    low: f64,
    high: f64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        if text.is_empty()
            || !text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        {
            return None;
        }
        let value: f64 = text.parse().ok()?;
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
            None => (text, 0),
        };
        let decimals = mantissa.split_once('.').map_or(0, |(_, fraction)| fraction.len());
        let half = 0.5 * 10_f64.powi(exponent - i32::try_from(decimals).ok()?);
        Some(Decimal { value, low: value - half, high: value + half })
    }
}

/// The number of a decimal or integer element, or of a Quantity's value.
fn number(element: &Value) -> Option<f64> {
    match element {
        Value::Number(number) => number.as_f64(),
        Value::Object(quantity) => quantity.get("value")?.as_f64(),
        _ => None,
    }
}

/// A quantity search value, `[prefix]number|system|code` (R4 search.html#quantity): with a system, the
/// target's system and code must be those; with a code alone, its code or unit. Units are not converted.
#[derive(Debug)]
struct QuantityValue {
    prefix: Prefix,
    number: Decimal,
    system: String,
    code: String,
}

impl QuantityValue {
    fn parse(text: &str) -> Option<QuantityValue> {
        let mut parts = text.splitn(3, '|');
        let (prefix, number) = Prefix::split(parts.next()?);
        let number = Decimal::parse(number)?;
        let system = parts.next().unwrap_or_default().to_owned();
        let code = parts.next().unwrap_or_default().to_owned();
        (system.is_empty() || !code.is_empty()).then_some(QuantityValue {
            prefix,
            number,
            system,
            code,
        })
    }

    fn matches(&self, element: &Value) -> bool {
        let Some(target) = number(element).filter(|_| element.is_object()) else { return false };
        let units = match (self.system.as_str(), self.code.as_str()) {
            (_, "") => true,
            ("", code) => element["code"] == code || element["unit"] == code,
            (system, code) => element["system"] == system && element["code"] == code,
        };
        units && self.prefix.holds_number(&self.number, target)
    }
}

/// A composite value (`a$b`) matches when each component matches its parameter. The components of
/// `code-category` are single elements of the resource, so any of their repetitions pair (R4 pairs components
/// within one repetition of a shared parent; these have none).
fn composite_matches(resource: &Value, components: &[&str], value: &str) -> Result<bool, String> {
    for alternative in split_alternatives(value) {
        let parts: Vec<&str> = alternative.split('$').collect();
        if parts.len() != components.len() {
            return Err(format!("{alternative}: expected {} components", components.len()));
        }
        let mut all = true;
        for (component, part) in components.iter().zip(parts) {
            all &= matches(resource, component, part)?;
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `Type/id` keys of a reference parameter's references (relative or absolute, version dropped).
pub(crate) fn references(resource: &Value, name: &str) -> Vec<String> {
    let resource_type = resource["resourceType"].as_str().unwrap_or_default();
    param(resource_type, name)
        .map(|(_, paths)| {
            paths
                .iter()
                .flat_map(|path| elements(resource, path))
                .filter_map(reference_key)
                .collect()
        })
        .unwrap_or_default()
}

/// Alternatives split at commas that are not escaped (`\,`), unescaped.
fn split_alternatives(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = parts.last_mut()
                {
                    last.push(next);
                }
            }
            ',' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

/// The elements at a dotted path, arrays flattened; `name[x]` is any `nameType` key.
pub(crate) fn elements<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            let Some(object) = value.as_object() else { continue };
            let found: Vec<&Value> = match segment.strip_suffix("[x]") {
                Some(prefix) => object
                    .iter()
                    .filter(|(key, _)| {
                        key.strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
                    })
                    .map(|(_, value)| value)
                    .collect(),
                None => object.get(segment).into_iter().collect(),
            };
            for value in found {
                match value {
                    Value::Array(items) => next.extend(items.iter()),
                    value => next.push(value),
                }
            }
        }
        current = next;
    }
    current
}

/// A prefix of R4 search.html#prefix (of dates, numbers and quantities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl Prefix {
    fn split(value: &str) -> (Prefix, &str) {
        let prefixes = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
            ("sa", Prefix::Sa),
            ("eb", Prefix::Eb),
            ("ap", Prefix::Ap),
        ];
        for (text, prefix) in prefixes {
            if let Some(rest) = value.strip_prefix(text) {
                return (prefix, rest);
            }
        }
        (Prefix::Eq, value)
    }

    /// R4 search.html#prefix, the search value's range `s` against the target's `t` (both half-open).
    fn holds(self, s: (i128, i128), t: (i128, i128)) -> bool {
        let contains = s.0 <= t.0 && t.1 <= s.1;
        match self {
            Prefix::Eq => contains,
            Prefix::Ne => !contains,
            // "the range above the search value intersects the range of the target value"
            Prefix::Gt => t.1 > s.1,
            Prefix::Lt => t.0 < s.0,
            // … "or the range of the search value fully contains the range of the target value"
            Prefix::Ge => t.1 > s.1 || contains,
            Prefix::Le => t.0 < s.0 || contains,
            Prefix::Sa => t.0 >= s.1,
            Prefix::Eb => t.1 <= s.0,
            // Refused before: R4 leaves the width of `ap` to the server.
            Prefix::Ap => false,
        }
    }

    /// R4 search.html#number: `eq` and `ne` use the search value's implicit range; the other prefixes
    /// compare with the value itself ("the implicit precision of the number is ignored"); `ap` is within
    /// 10% of it (R4's recommended approximation).
    fn holds_number(self, search: &Decimal, target: f64) -> bool {
        let within = search.low <= target && target < search.high;
        match self {
            Prefix::Eq => within,
            Prefix::Ne => !within,
            Prefix::Gt | Prefix::Sa => target > search.value,
            Prefix::Lt | Prefix::Eb => target < search.value,
            Prefix::Ge => target >= search.value,
            Prefix::Le => target <= search.value,
            Prefix::Ap => (target - search.value).abs() <= 0.1 * search.value.abs(),
        }
    }
}

/// The range of a date element: a date, dateTime or instant text, or a Period (an open end is unbounded).
fn element_range(element: &Value) -> Option<(i128, i128)> {
    match element {
        Value::String(text) => date_range(text),
        Value::Object(period) => {
            let low = match period.get("start").and_then(Value::as_str) {
                Some(start) => date_range(start)?.0,
                None => i128::MIN,
            };
            let high = match period.get("end").and_then(Value::as_str) {
                Some(end) => date_range(end)?.1,
                None => i128::MAX,
            };
            Some((low, high))
        }
        _ => None,
    }
}

/// The half-open range `[low, high)` in microseconds since the epoch that a FHIR date, dateTime or instant
/// covers at its precision (`2026` is the whole year). A value without a time zone is taken as UTC (R4
/// leaves it to the server; the kits always send one with their times).
pub(crate) fn date_range(text: &str) -> Option<(i128, i128)> {
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i32 = parts.next().filter(|year| year.len() == 4)?.parse().ok()?;
    let month: Option<u8> =
        parts.next().map(|month| month.parse().map_err(|_| ())).transpose().ok()?;
    let day: Option<u8> = parts.next().map(|day| day.parse().map_err(|_| ())).transpose().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let micros = |date: Date, time: Time, offset: UtcOffset| -> i128 {
        PrimitiveDateTime::new(date, time).assume_offset(offset).unix_timestamp_nanos() / 1000
    };
    let Some(time) = time else {
        let first = Date::from_calendar_date(
            year,
            Month::try_from(month.unwrap_or(1)).ok()?,
            day.unwrap_or(1),
        )
        .ok()?;
        let next = match (month, day) {
            (_, Some(_)) => first.next_day()?,
            (Some(12), None) => Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
            (Some(month), None) => {
                Date::from_calendar_date(year, Month::try_from(month + 1).ok()?, 1).ok()?
            }
            (None, _) => Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
        };
        return Some((
            micros(first, Time::MIDNIGHT, UtcOffset::UTC),
            micros(next, Time::MIDNIGHT, UtcOffset::UTC),
        ));
    };
    let date = Date::from_calendar_date(year, Month::try_from(month?).ok()?, day?).ok()?;
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(at) => (&time[..at], parse_offset(&time[at..])?),
        None => (time, UtcOffset::UTC),
    };
    let mut fields = clock.split(':');
    let hour: u8 = fields.next()?.parse().ok()?;
    let minute: u8 = fields.next()?.parse().ok()?;
    let (second, fraction, width) = match fields.next() {
        None => (0, 0, 60_000_000),
        Some(second) => match second.split_once('.') {
            None => (second.parse().ok()?, 0, 1_000_000),
            Some((whole, fraction)) => {
                let digits = fraction.len().min(6);
                let scale = 10_i128.pow(u32::try_from(6 - digits).ok()?);
                let value: i128 = fraction.get(..digits)?.parse().ok()?;
                (whole.parse().ok()?, value * scale, scale)
            }
        },
    };
    let low = micros(date, Time::from_hms(hour, minute, second).ok()?, offset) + fraction;
    Some((low, low + width))
}

fn parse_offset(text: &str) -> Option<UtcOffset> {
    if text == "Z" {
        return Some(UtcOffset::UTC);
    }
    let sign: i8 = if text.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

/// A token search value: `code`, `system|code`, `|code` (no system) or `system|` (any code of the system).
#[derive(Debug)]
struct Token {
    /// `None`: any system; `Some("")`: no system.
    system: Option<String>,
    /// `None`: any code.
    code: Option<String>,
}

impl Token {
    fn parse(value: &str) -> Token {
        match value.split_once('|') {
            None => Token { system: None, code: Some(value.to_owned()) },
            Some((system, "")) => Token { system: Some(system.to_owned()), code: None },
            Some((system, code)) => {
                Token { system: Some(system.to_owned()), code: Some(code.to_owned()) }
            }
        }
    }

    fn matches(&self, element: &Value) -> bool {
        match element {
            // A code, a string id or a boolean: it has no system.
            Value::String(code) => {
                self.system.as_deref().is_none_or(str::is_empty)
                    && self.code.as_deref() == Some(code)
            }
            Value::Bool(flag) => {
                self.system.is_none()
                    && self.code.as_deref() == Some(if *flag { "true" } else { "false" })
            }
            Value::Object(object) => {
                if let Some(Value::Array(codings)) = object.get("coding") {
                    return codings.iter().any(|coding| self.matches_pair(coding, "code"));
                }
                let code_key = if object.contains_key("value") { "value" } else { "code" };
                self.matches_pair(element, code_key)
            }
            _ => false,
        }
    }

    fn matches_pair(&self, element: &Value, code_key: &str) -> bool {
        let system = element["system"].as_str();
        let code = element[code_key].as_str();
        let system_ok = match self.system.as_deref() {
            None => true,
            Some("") => system.is_none(),
            Some(wanted) => system == Some(wanted),
        };
        // Codes compare exactly: R4 leaves case to the code system, and the kits search with exact codes.
        let code_ok = self.code.as_deref().is_none_or(|wanted| code == Some(wanted));
        system_ok && code_ok
    }
}

/// The strings a string parameter matches against in an element (a HumanName's or Address's parts).
fn strings(element: &Value) -> Vec<String> {
    match element {
        Value::String(text) => vec![text.clone()],
        Value::Object(object) => {
            let mut texts = Vec::new();
            for key in [
                "family",
                "given",
                "text",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                match object.get(key) {
                    Some(Value::String(text)) => texts.push(text.clone()),
                    Some(Value::Array(items)) => {
                        texts.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    _ => {}
                }
            }
            texts
        }
        _ => Vec::new(),
    }
}

/// R4 string search: the target starts with the value, ignoring case and accents (`:exact`: equal;
/// `:contains`: anywhere).
fn string_matches(target: &str, value: &str, modifier: Option<&str>) -> bool {
    match modifier {
        Some("exact") => target == value,
        Some("contains") => normalise(target).contains(&normalise(value)),
        _ => normalise(target).starts_with(&normalise(value)),
    }
}

/// Decomposed, combining marks dropped, lowercase, white space collapsed.
fn normalise(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = text
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `Type/id` a Reference points to, relative or absolute, without a version.
fn reference_key(element: &Value) -> Option<String> {
    tail_key(element["reference"].as_str()?)
}

/// The last `Type/id` of a reference text (`_history/n` dropped); `None` for `#id`, `urn:` and bare ids.
fn tail_key(reference: &str) -> Option<String> {
    let reference = reference.split('?').next()?;
    let reference = match reference.find("/_history/") {
        Some(at) => &reference[..at],
        None => reference,
    };
    let mut segments = reference.rsplit('/');
    let id = segments.next()?;
    let ty = segments.next()?;
    (ty.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty())
        .then(|| format!("{ty}/{id}"))
}

/// A reference search value (`Type/id`, `id`, or an absolute URL) against a target `Type/id`.
fn reference_matches(target: &str, value: &str) -> bool {
    match tail_key(value) {
        Some(key) => key == target,
        None => target.rsplit('/').next() == Some(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(resource: &Value, name: &str, value: &str) -> bool {
        matches(resource, name, value).unwrap()
    }

    #[test]
    fn dates_are_ranges_at_their_precision() {
        let day = date_range("2026-03-02").unwrap();
        assert_eq!(day.1 - day.0, 86_400_000_000);
        let month = date_range("2026-02").unwrap();
        assert_eq!(month.1 - month.0, 28 * 86_400_000_000);
        let december = date_range("2026-12").unwrap();
        assert_eq!(december.1, date_range("2027").unwrap().0);
        let minute = date_range("2026-03-02T09:12-05:00").unwrap();
        assert_eq!(minute.1 - minute.0, 60_000_000);
        let second = date_range("2026-03-02T09:12:00-05:00").unwrap();
        assert_eq!(second.0, date_range("2026-03-02T14:12:00Z").unwrap().0);
        let millis = date_range("2026-03-02T14:12:00.250Z").unwrap();
        assert_eq!((millis.0 - second.0, millis.1 - millis.0), (250_000, 1_000));
        for invalid in ["26-03-02", "2026-13", "2026-02-30", "2026-03-02T25:00Z", "soon"] {
            assert_eq!(date_range(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn date_prefixes_follow_r4() {
        // R4 search.html#prefix: a target at 09:12:00 (second precision).
        let study = json!({"resourceType": "ImagingStudy", "started": "2026-03-02T09:12:00-05:00"});
        assert!(at(&study, "started", "2026-03-02"));
        assert!(at(&study, "started", "eq2026-03"));
        assert!(!at(&study, "started", "2026-03-03"));
        assert!(at(&study, "started", "ge2026-03-02T09:12:00-05:00"));
        assert!(!at(&study, "started", "gt2026-03-02T09:12:00-05:00"));
        assert!(at(&study, "started", "le2026-03-02T09:12:00-05:00"));
        assert!(!at(&study, "started", "lt2026-03-02T09:12:00-05:00"));
        assert!(at(&study, "started", "gt2026-03-01"));
        assert!(!at(&study, "started", "gt2026-03-02"));
        assert!(at(&study, "started", "lt2026-03-03"));
        assert!(at(&study, "started", "ne2026-03-03"));
        assert!(at(&study, "started", "sa2026-03-01"));
        assert!(at(&study, "started", "eb2026-03-03"));
        assert!(!at(&study, "started", "eb2026-03-02"));
        // Alternatives: any matches.
        assert!(at(&study, "started", "2025,2026"));
        // A Period, open at one end, is a range too.
        let order =
            json!({"resourceType": "ServiceRequest", "occurrencePeriod": {"start": "2026-03-01"}});
        assert!(at(&order, "occurrence", "gt2030-01-01"));
        assert!(!at(&order, "occurrence", "lt2026-03-01"));
        assert!(matches(&study, "started", "yesterday").is_err());
    }

    #[test]
    fn token_forms_follow_r4() {
        let order = json!({"resourceType": "ServiceRequest", "status": "active",
            "identifier": [{"system": "urn:a", "value": "X1"}, {"value": "X2"}],
            "code": {"coding": [{"system": "urn:codes", "code": "CT"}]}});
        assert!(at(&order, "identifier", "X1"));
        assert!(at(&order, "identifier", "urn:a|X1"));
        assert!(!at(&order, "identifier", "urn:b|X1"));
        assert!(!at(&order, "identifier", "|X1"));
        assert!(at(&order, "identifier", "|X2"));
        assert!(at(&order, "identifier", "urn:a|"));
        assert!(!at(&order, "identifier", "urn:b|"));
        assert!(at(&order, "code", "urn:codes|CT"));
        assert!(!at(&order, "code", "urn:codes|ct"));
        assert!(at(&order, "status", "active"));
        assert!(at(&order, "status", "draft,active"));
        assert!(!at(&order, "status", "urn:x|active"));
        assert!(matches(&order, "status:text", "active").is_err());
    }

    #[test]
    fn not_reverses_a_token_and_matches_what_lacks_it() {
        let order = json!({"resourceType": "ServiceRequest", "status": "active"});
        assert!(!at(&order, "status:not", "active"));
        assert!(at(&order, "status:not", "completed"));
        assert!(!at(&order, "status:not", "completed,active"));
        assert!(
            at(&order, "code:not", "urn:codes|CT"),
            "an order without a code has not that code"
        );
    }

    #[test]
    fn missing_asks_for_absence_or_presence() {
        let study =
            json!({"resourceType": "ImagingStudy", "referrer": {"reference": "Practitioner/1"}});
        assert!(at(&study, "referrer:missing", "false"));
        assert!(!at(&study, "referrer:missing", "true"));
        assert!(at(&study, "started:missing", "true"));
        assert!(!at(&study, "started:missing", "false"));
        assert!(matches(&study, "started:missing", "yes").is_err());
    }

    #[test]
    fn of_type_matches_an_identifier_by_its_type_and_value() {
        let order = json!({"resourceType": "ServiceRequest", "identifier": [
            {"type": {"coding": [{"system": "urn:v2", "code": "PLAC"}]}, "system": "urn:placer", "value": "7"},
            {"type": {"coding": [{"system": "urn:v2", "code": "ACSN"}]}, "system": "urn:acc", "value": "8"}]});
        assert!(at(&order, "identifier:of-type", "urn:v2|PLAC|7"));
        assert!(!at(&order, "identifier:of-type", "urn:v2|PLAC|8"));
        assert!(!at(&order, "identifier:of-type", "urn:other|PLAC|7"));
        assert!(at(&order, "identifier:of-type", "urn:v2|FILL|9,urn:v2|ACSN|8"));
        assert!(matches(&order, "identifier:of-type", "urn:v2|PLAC").is_err());
    }

    #[test]
    fn uris_match_whole_or_above_and_below() {
        let study = json!({"resourceType": "ImagingStudy",
            "meta": {"profile": ["http://example.org/fhir/StructureDefinition/study"]}});
        assert!(at(&study, "_profile", "http://example.org/fhir/StructureDefinition/study"));
        assert!(!at(&study, "_profile", "http://example.org/fhir/StructureDefinition"));
        assert!(at(&study, "_profile:below", "http://example.org/fhir/"));
        assert!(!at(&study, "_profile:below", "http://example.org/other/"));
        assert!(at(
            &study,
            "_profile:above",
            "http://example.org/fhir/StructureDefinition/study/v2"
        ));
        assert!(!at(&study, "_profile:above", "http://example.org/fhir/"));
        assert!(matches(&study, "_profile:contains", "example").is_err());
    }

    #[test]
    fn last_updated_is_a_date_of_every_type() {
        let patient =
            json!({"resourceType": "Patient", "meta": {"lastUpdated": "2026-03-02T10:00:00.123Z"}});
        assert!(at(&patient, "_lastUpdated", "ge2026-03-02"));
        assert!(at(&patient, "_lastUpdated", "lt2026-03-03"));
        assert!(!at(&patient, "_lastUpdated", "gt2026-03-02T10:00:01Z"));
        assert!(matches(&patient, "_lastUpdated", "ap2026-03-02").is_err());
    }

    #[test]
    fn numbers_follow_r4_precision_and_prefixes() {
        let risk = |p: &str| {
            json!({"resourceType": "RiskAssessment",
            "prediction": [{"probabilityDecimal": serde_json::from_str::<Value>(p).unwrap()}]})
        };
        // R4 search.html#number: 100 matches [99.5, 100.5); 100.00 matches [99.995, 100.005).
        assert!(at(&risk("99.5"), "probability", "100"));
        assert!(at(&risk("100.4"), "probability", "100"));
        assert!(!at(&risk("100.5"), "probability", "100"));
        assert!(!at(&risk("100.4"), "probability", "100.00"));
        assert!(at(&risk("120"), "probability", "1e2"));
        assert!(at(&risk("100.4"), "probability", "ne100.00"));
        // The other prefixes ignore the precision.
        assert!(at(&risk("100.4"), "probability", "gt100"));
        assert!(!at(&risk("100"), "probability", "gt100"));
        assert!(at(&risk("100"), "probability", "ge100"));
        assert!(at(&risk("99.9"), "probability", "lt100"));
        assert!(at(&risk("100"), "probability", "le100"));
        assert!(at(&risk("101"), "probability", "sa100"));
        assert!(at(&risk("99"), "probability", "eb100"));
        assert!(at(&risk("109"), "probability", "ap100"));
        assert!(!at(&risk("111"), "probability", "ap100"));
        assert!(matches(&risk("1"), "probability", "many").is_err());
    }

    #[test]
    fn quantities_match_number_system_and_code() {
        let observation = json!({"resourceType": "Observation", "valueQuantity":
            {"value": 5.4, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}});
        assert!(at(&observation, "value-quantity", "5.4|http://unitsofmeasure.org|mg"));
        assert!(at(&observation, "value-quantity", "5.4||mg"));
        assert!(at(&observation, "value-quantity", "5.4"));
        assert!(!at(&observation, "value-quantity", "5.4|http://unitsofmeasure.org|g"));
        assert!(!at(&observation, "value-quantity", "5.4|urn:other|mg"));
        assert!(at(&observation, "value-quantity", "gt5|http://unitsofmeasure.org|mg"));
        assert!(!at(&observation, "value-quantity", "lt5||mg"));
        assert!(at(&observation, "value-quantity", "le5.4||mg"));
        assert!(!at(&observation, "value-quantity", "5.5||mg"));
        let text = json!({"resourceType": "Observation", "valueString": "5.4"});
        assert!(!at(&text, "value-quantity", "5.4"));
        assert!(matches(&observation, "value-quantity", "5.4|urn:system-without-code").is_err());
    }

    #[test]
    fn composites_match_each_component() {
        let order = json!({"resourceType": "ServiceRequest",
            "code": {"coding": [{"system": "urn:codes", "code": "CTHEAD"}]},
            "category": [{"coding": [{"system": "urn:dcm", "code": "CT"}]}]});
        assert!(at(&order, "code-category", "urn:codes|CTHEAD$urn:dcm|CT"));
        assert!(!at(&order, "code-category", "urn:codes|CTHEAD$urn:dcm|MR"));
        assert!(at(&order, "code-category", "urn:codes|X$urn:dcm|CT,CTHEAD$CT"));
        assert!(matches(&order, "code-category", "CTHEAD").is_err());
    }

    #[test]
    fn strings_match_by_prefix_ignoring_case_and_accents() {
        let patient = json!({"resourceType": "Patient", "name": [{"family": "Tremblay", "given": ["Élise"]}]});
        assert!(at(&patient, "family", "trem"));
        assert!(!at(&patient, "family", "blay"));
        assert!(at(&patient, "family:contains", "BLAY"));
        assert!(at(&patient, "name", "elise"));
        assert!(at(&patient, "family:exact", "Tremblay"));
        assert!(!at(&patient, "family:exact", "tremblay"));
    }

    #[test]
    fn references_match_in_every_form() {
        let study = json!({"resourceType": "ImagingStudy",
            "subject": {"reference": "http://server/fhir/Patient/p1/_history/2"},
            "basedOn": [{"reference": "ServiceRequest/o1"}]});
        assert!(at(&study, "patient", "Patient/p1"));
        assert!(at(&study, "patient", "p1"));
        assert!(at(&study, "subject", "http://server/fhir/Patient/p1"));
        assert!(!at(&study, "patient", "Patient/p2"));
        assert!(at(&study, "basedon", "ServiceRequest/o1"));
        assert_eq!(references(&study, "patient"), ["Patient/p1"]);
        assert!(matches(&study, "performer", "x").is_err());
    }
}
