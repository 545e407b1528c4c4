//! The SearchParameter registry: which parameters each resource type has.
//!
//! The official R4 definitions (`data/search-parameters.json`, CC0) are compiled in, with the corrections of
//! `data/overlay.json` applied over them (`overlay.rs`: a few published definitions are wrong).
//! Extra definitions (custom SearchParameters from `profiles/`) are handed in as JSON text; a definition with the
//! same base type and code as an official one replaces it.
//!
//! A definition with several bases is split into one [`SearchParamDef`] per base type, each with only its part of
//! the FHIRPath expression: `ImagingStudy.subject | DiagnosticReport.subject` gives `ImagingStudy.subject` to
//! ImagingStudy.
//! Definitions on `Resource` apply to every type and those on `DomainResource` to every type except `Bundle`,
//! `Binary` and `Parameters`; their expressions are rewritten to start with the concrete type
//! (`Resource.meta.tag` becomes `Patient.meta.tag`).

use std::collections::HashMap;

use cdr_fhirpath::Expression;
use cdr_model::{ALL_RESOURCE_TYPES, ResourceType};
use serde_json::Value;

use crate::ast::{Modifier, Prefix};
use crate::code_systems::CODE_SYSTEMS;

const R4_SEARCH_PARAMETERS: &str = include_str!("../data/search-parameters.json");

/// The R4 `near` parameter of Location, the one `special` parameter the server interprets
/// ([`crate::SearchValue::Near`]); other special parameters are parsed as text and cannot be searched.
pub(crate) const NEAR_URL: &str = "http://hl7.org/fhir/SearchParameter/Location-near";

/// The type of a search parameter (R4 `SearchParamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

/// One search parameter of one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParamDef {
    /// The name used in query strings, such as `based-on`.
    pub code: String,
    /// The canonical URL of the SearchParameter.
    pub url: String,
    /// The resource type this definition applies to.
    pub base: ResourceType,
    pub param_type: SearchParamType,
    /// The FHIRPath expression for `base` only; `None` for parameters the server must implement specially
    /// (`_text`, `_content`, `_query`, …).
    pub expression: Option<String>,
    /// Allowed target types of a reference parameter; empty for other types.
    pub targets: Vec<ResourceType>,
    /// Modifiers the parameter accepts (the definition's list, or the R4 defaults for its type).
    /// `:missing` is always accepted and `:[type]` is accepted whenever `Type` is one of the targets.
    pub modifiers: Vec<Modifier>,
    /// Prefixes accepted on number, date and quantity parameters (all nine when the definition lists none).
    pub comparators: Vec<Prefix>,
    /// The components of a composite parameter, in order.
    pub components: Vec<CompositeComponent>,
    /// Chained parameter names the definition allows (`SearchParameter.chain`); empty means every parameter of
    /// the target types may be chained.
    pub chain: Vec<String>,
    /// For a token parameter of the R4 definitions whose expression lands on `code` elements: the code system
    /// their required binding implies (`Patient.gender`: `http://hl7.org/fhir/administrative-gender`), which
    /// extraction gives their rows (R4 search.html#token). From the generated table `src/code_systems.rs`.
    pub code_system: Option<&'static str>,
}

/// One component of a composite parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositeComponent {
    /// The canonical URL of the component's own SearchParameter (it gives the component's type).
    pub definition: String,
    /// FHIRPath relative to each node the composite's expression selects.
    pub expression: String,
}

/// All search parameters known to the server, by resource type and code.
///
/// Every FHIRPath expression is parsed once, when the registry is built; [`crate::extract()`] evaluates the parsed
/// form.
#[derive(Debug, Clone)]
pub struct SearchParamRegistry {
    definitions: Vec<SearchParamDef>,
    /// The parsed expressions of `definitions[i]`, at the same index.
    compiled: Vec<CompiledParam>,
    by_type_and_code: HashMap<(ResourceType, String), usize>,
    /// Codes defined on `Resource` (valid on every type and in system-level search).
    common_codes: Vec<String>,
}

/// The parsed expressions of one definition.
#[derive(Debug, Clone)]
pub(crate) struct CompiledParam {
    /// `None` when the definition has no expression; `Err` when our FHIRPath engine cannot parse it.
    pub(crate) expression: Option<Result<Expression, String>>,
    /// One per composite component, relative to each node `expression` selects.
    pub(crate) components: Vec<Result<Expression, String>>,
}

/// Why a SearchParameter definition could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The text is not JSON.
    #[error("extra search parameter #{index} is not valid JSON: {message}")]
    Json { index: usize, message: String },
    /// The JSON is neither a SearchParameter nor a Bundle of them.
    #[error("extra search parameter #{index} is not a SearchParameter or a Bundle")]
    NotASearchParameter { index: usize },
    /// A required element is absent or has the wrong JSON type.
    #[error("search parameter '{url}': missing or invalid '{element}'")]
    MissingElement { url: String, element: &'static str },
    /// `type` is not one of the R4 search parameter types.
    #[error("search parameter '{url}': unknown type '{value}'")]
    UnknownType { url: String, value: String },
    /// A base or target names no R4 resource type.
    #[error("search parameter '{url}': unknown resource type '{value}'")]
    UnknownResourceType { url: String, value: String },
    /// A correction of `data/overlay.json` (named by its SearchParameter url, or by the file when the overlay
    /// itself is malformed) does not apply to the official definitions.
    #[error("search parameter correction {url}: {message}")]
    Overlay { url: String, message: String },
    /// A modifier or comparator is not an R4 code.
    #[error("search parameter '{url}': unknown {element} '{value}'")]
    UnknownCode { url: String, element: &'static str, value: String },
}

impl SearchParamType {
    /// Parses an R4 `SearchParamType` code such as `token`.
    #[must_use]
    pub fn parse(code: &str) -> Option<SearchParamType> {
        let param_type = match code {
            "number" => SearchParamType::Number,
            "date" => SearchParamType::Date,
            "string" => SearchParamType::String,
            "token" => SearchParamType::Token,
            "reference" => SearchParamType::Reference,
            "composite" => SearchParamType::Composite,
            "quantity" => SearchParamType::Quantity,
            "uri" => SearchParamType::Uri,
            "special" => SearchParamType::Special,
            _ => return None,
        };
        Some(param_type)
    }

    /// The R4 code, such as `token`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SearchParamType::Number => "number",
            SearchParamType::Date => "date",
            SearchParamType::String => "string",
            SearchParamType::Token => "token",
            SearchParamType::Reference => "reference",
            SearchParamType::Composite => "composite",
            SearchParamType::Quantity => "quantity",
            SearchParamType::Uri => "uri",
            SearchParamType::Special => "special",
        }
    }

    /// Whether values of this type take `eq`/`ne`/`gt`/… prefixes.
    #[must_use]
    pub fn takes_prefix(self) -> bool {
        matches!(self, SearchParamType::Number | SearchParamType::Date | SearchParamType::Quantity)
    }

    /// The modifiers R4 defines for this type, besides `:missing` and `:[type]`.
    #[must_use]
    pub fn default_modifiers(self) -> &'static [Modifier] {
        match self {
            SearchParamType::String => &[Modifier::Exact, Modifier::Contains],
            SearchParamType::Token => &[
                Modifier::Text,
                Modifier::Not,
                Modifier::Above,
                Modifier::Below,
                Modifier::In,
                Modifier::NotIn,
                Modifier::OfType,
            ],
            SearchParamType::Reference => &[Modifier::Identifier, Modifier::Above, Modifier::Below],
            SearchParamType::Uri => &[Modifier::Above, Modifier::Below],
            SearchParamType::Number
            | SearchParamType::Date
            | SearchParamType::Composite
            | SearchParamType::Quantity
            | SearchParamType::Special => &[],
        }
    }
}

impl SearchParamDef {
    /// Whether the server can search with this parameter: every parameter but the `special` ones other than
    /// Location `near`.
    #[must_use]
    pub fn is_searchable(&self) -> bool {
        self.param_type != SearchParamType::Special || self.url == NEAR_URL
    }

    /// Whether `modifier` may be used with this parameter.
    #[must_use]
    pub fn accepts_modifier(&self, modifier: Modifier) -> bool {
        modifier == Modifier::Missing || self.modifiers.contains(&modifier)
    }
}

impl SearchParamRegistry {
    /// The official R4 search parameters only (with the corrections of `data/overlay.json`).
    ///
    /// # Errors
    /// Never for the vendored bundle; the `Result` guards the parsing code shared with [`Self::with_extra`].
    pub fn r4() -> Result<SearchParamRegistry, RegistryError> {
        SearchParamRegistry::with_extra(&[])
    }

    /// The official R4 search parameters plus `extra`, each the JSON text of a SearchParameter or of a Bundle of
    /// SearchParameters.
    ///
    /// # Errors
    /// When an extra text is not JSON, not a SearchParameter, or a definition is incomplete.
    pub fn with_extra(extra: &[&str]) -> Result<SearchParamRegistry, RegistryError> {
        let mut registry = SearchParamRegistry {
            definitions: Vec::new(),
            compiled: Vec::new(),
            by_type_and_code: HashMap::new(),
            common_codes: Vec::new(),
        };
        let mut official: Value = serde_json::from_str(R4_SEARCH_PARAMETERS)
            .map_err(|error| RegistryError::Json { index: 0, message: error.to_string() })?;
        crate::overlay::apply(&mut official)?;
        registry.add_json(&official, 0)?;
        for (index, text) in extra.iter().enumerate() {
            let json: Value = serde_json::from_str(text).map_err(|error| RegistryError::Json {
                index: index + 1,
                message: error.to_string(),
            })?;
            registry.add_json(&json, index + 1)?;
        }
        registry.common_codes.sort();
        registry.common_codes.dedup();
        Ok(registry)
    }

    /// The parameter `code` of `resource_type`.
    #[must_use]
    pub fn get(&self, resource_type: ResourceType, code: &str) -> Option<&SearchParamDef> {
        let index = self.by_type_and_code.get(&(resource_type, code.to_owned()))?;
        Some(&self.definitions[*index])
    }

    /// The parameter of `resource_type` whose SearchParameter has this canonical URL.
    #[must_use]
    pub fn get_by_url(&self, resource_type: ResourceType, url: &str) -> Option<&SearchParamDef> {
        self.definitions.iter().rev().find(|def| def.base == resource_type && def.url == url)
    }

    /// Every parameter of `resource_type`, sorted by code.
    #[must_use]
    pub fn params_for(&self, resource_type: ResourceType) -> Vec<&SearchParamDef> {
        let mut params: Vec<&SearchParamDef> = self
            .by_type_and_code
            .iter()
            .filter(|((base, _), _)| *base == resource_type)
            .map(|(_, index)| &self.definitions[*index])
            .collect();
        params.sort_by(|left, right| left.code.cmp(&right.code));
        params
    }

    /// The parameters of `resource_type` with their parsed expressions.
    pub(crate) fn compiled_params_for(
        &self,
        resource_type: ResourceType,
    ) -> impl Iterator<Item = (&SearchParamDef, &CompiledParam)> {
        self.by_type_and_code
            .iter()
            .filter(move |((base, _), _)| *base == resource_type)
            .map(|(_, index)| (&self.definitions[*index], &self.compiled[*index]))
    }

    /// Every expression our FHIRPath engine cannot parse, as `(type, code, parse error)`, sorted.
    #[must_use]
    pub fn unparsed_expressions(&self) -> Vec<(ResourceType, String, String)> {
        let mut unparsed: Vec<(ResourceType, String, String)> = self
            .by_type_and_code
            .iter()
            .filter_map(|((resource_type, code), index)| {
                let compiled = &self.compiled[*index];
                let expression_error =
                    compiled.expression.as_ref().and_then(|parsed| parsed.as_ref().err());
                let component_error =
                    compiled.components.iter().find_map(|parsed| parsed.as_ref().err());
                let error = expression_error.or(component_error)?;
                Some((*resource_type, code.clone(), error.clone()))
            })
            .collect();
        unparsed.sort();
        unparsed
    }

    /// Whether `code` is defined on `Resource`, and so valid on every type and in system-level search.
    #[must_use]
    pub fn is_common(&self, code: &str) -> bool {
        self.common_codes.binary_search_by(|common| common.as_str().cmp(code)).is_ok()
    }

    fn add_json(&mut self, json: &Value, index: usize) -> Result<(), RegistryError> {
        match json.get("resourceType").and_then(Value::as_str) {
            Some("SearchParameter") => self.add_definition(json),
            Some("Bundle") => {
                let entries =
                    json.get("entry").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                for entry in entries {
                    let Some(resource) = entry.get("resource") else { continue };
                    if resource.get("resourceType").and_then(Value::as_str)
                        == Some("SearchParameter")
                    {
                        self.add_definition(resource)?;
                    }
                }
                Ok(())
            }
            _ => Err(RegistryError::NotASearchParameter { index }),
        }
    }

    fn add_definition(&mut self, json: &Value) -> Result<(), RegistryError> {
        let url = json.get("url").and_then(Value::as_str).unwrap_or("(no url)").to_owned();
        let missing =
            |element: &'static str| RegistryError::MissingElement { url: url.clone(), element };
        let code = json.get("code").and_then(Value::as_str).ok_or_else(|| missing("code"))?;
        let type_code = json.get("type").and_then(Value::as_str).ok_or_else(|| missing("type"))?;
        let param_type = SearchParamType::parse(type_code).ok_or_else(|| {
            RegistryError::UnknownType { url: url.clone(), value: type_code.to_owned() }
        })?;
        let bases = string_list(json, "base");
        if bases.is_empty() {
            return Err(missing("base"));
        }
        let targets = string_list(json, "target")
            .into_iter()
            .filter(|target| *target != "Resource")
            .map(|target| {
                ResourceType::parse(target).map_err(|_| RegistryError::UnknownResourceType {
                    url: url.clone(),
                    value: target.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let modifiers = match string_list(json, "modifier").as_slice() {
            [] => param_type.default_modifiers().to_vec(),
            listed => listed
                .iter()
                .filter(|code| **code != "type" && **code != "missing")
                .map(|code| {
                    Modifier::parse(code).ok_or_else(|| RegistryError::UnknownCode {
                        url: url.clone(),
                        element: "modifier",
                        value: (*code).to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let comparators = match string_list(json, "comparator").as_slice() {
            [] if param_type.takes_prefix() => Prefix::ALL.to_vec(),
            listed => listed
                .iter()
                .map(|code| {
                    Prefix::parse(code).ok_or_else(|| RegistryError::UnknownCode {
                        url: url.clone(),
                        element: "comparator",
                        value: (*code).to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let components = json
            .get("component")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|component| {
                let definition = component.get("definition").and_then(Value::as_str);
                let expression = component.get("expression").and_then(Value::as_str);
                match (definition, expression) {
                    (Some(definition), Some(expression)) => Ok(CompositeComponent {
                        definition: definition.to_owned(),
                        expression: expression.to_owned(),
                    }),
                    _ => Err(missing("component")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chain: Vec<String> =
            string_list(json, "chain").into_iter().map(str::to_owned).collect();
        let expression = json.get("expression").and_then(Value::as_str);
        let mut placements = Vec::new();
        for base in bases {
            let concrete_types = concrete_types_of(base).ok_or_else(|| {
                RegistryError::UnknownResourceType { url: url.clone(), value: base.to_owned() }
            })?;
            if base == "Resource" {
                self.common_codes.push(code.to_owned());
            }
            placements
                .extend(concrete_types.into_iter().map(|resource_type| (base, resource_type)));
        }
        for (base, resource_type) in placements {
            self.insert(SearchParamDef {
                code: code.to_owned(),
                url: url.clone(),
                base: resource_type,
                param_type,
                expression: expression.and_then(|text| expression_for(text, base, resource_type)),
                targets: targets.clone(),
                modifiers: modifiers.clone(),
                comparators: comparators.clone(),
                components: components.clone(),
                chain: chain.clone(),
                code_system: (param_type == SearchParamType::Token)
                    .then(|| implied_code_system(resource_type, &url))
                    .flatten(),
            });
        }
        Ok(())
    }

    fn insert(&mut self, def: SearchParamDef) {
        let key = (def.base, def.code.clone());
        let parse = |text: &str| Expression::parse(text).map_err(|error| error.to_string());
        self.compiled.push(CompiledParam {
            expression: def.expression.as_deref().map(parse),
            components: def
                .components
                .iter()
                .map(|component| parse(&component.expression))
                .collect(),
        });
        self.definitions.push(def);
        self.by_type_and_code.insert(key, self.definitions.len() - 1);
    }
}

/// The code system the generated table gives the token parameter `url` of `resource_type`.
fn implied_code_system(resource_type: ResourceType, url: &str) -> Option<&'static str> {
    let key = (resource_type.as_str(), url);
    CODE_SYSTEMS
        .binary_search_by(|(name, param_url, _)| (*name, *param_url).cmp(&key))
        .ok()
        .map(|index| CODE_SYSTEMS[index].2)
}

fn string_list<'a>(json: &'a Value, element: &str) -> Vec<&'a str> {
    json.get(element)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The concrete types a base name covers, or `None` if it is not a resource type.
fn concrete_types_of(base: &str) -> Option<Vec<ResourceType>> {
    let all = || ALL_RESOURCE_TYPES.iter().filter_map(|name| ResourceType::parse(name).ok());
    match base {
        "Resource" => Some(all().collect()),
        "DomainResource" => Some(
            all().filter(|ty| !matches!(ty.as_str(), "Bundle" | "Binary" | "Parameters")).collect(),
        ),
        _ => ResourceType::parse(base).ok().map(|ty| vec![ty]),
    }
}

/// The part of a shared expression that applies to `resource_type` (declared under `base`), with leading
/// `Resource.`/`DomainResource.` rewritten to the concrete type, and relative parts prefixed with it.
/// Returns `None` when no part applies.
fn expression_for(expression: &str, base: &str, resource_type: ResourceType) -> Option<String> {
    let type_name = resource_type.as_str();
    let parts: Vec<String> = split_top_level_unions(expression)
        .into_iter()
        .filter_map(|part| {
            let n_parens = part.len() - part.trim_start_matches('(').len();
            let (parens, rest) = part.split_at(n_parens);
            let head_len = rest
                .find(|character: char| !character.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let head = &rest[..head_len];
            if head == type_name {
                return Some(part.to_owned());
            }
            if matches!(head, "Resource" | "DomainResource")
                && matches!(base, "Resource" | "DomainResource")
            {
                return Some(format!("{parens}{type_name}{}", &rest[head_len..]));
            }
            let is_type_name = head.starts_with(|character: char| character.is_ascii_uppercase());
            (!is_type_name).then(|| format!("{parens}{type_name}.{rest}"))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(parts.join(" | "))
}

/// Splits a FHIRPath expression on the `|` operators that are not inside parentheses, brackets or quotes.
fn split_top_level_unions(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0_usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (offset, character) in expression.char_indices() {
        if let Some(open_quote) = quote {
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == open_quote {
                quote = None;
            }
            continue;
        }
        match character {
            '\'' | '`' | '"' => quote = Some(character),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                parts.push(expression[start..offset].trim());
                start = offset + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_shared_expressions_per_base() {
        let patient = ResourceType::parse("Patient").unwrap();
        let study = ResourceType::parse("ImagingStudy").unwrap();
        let shared = "ImagingStudy.subject | DiagnosticReport.subject.where(resolve() is Patient)";
        assert_eq!(
            expression_for(shared, "ImagingStudy", study).as_deref(),
            Some("ImagingStudy.subject")
        );
        assert_eq!(expression_for(shared, "Patient", patient), None);
        assert_eq!(
            expression_for("Resource.meta.tag", "Resource", patient).as_deref(),
            Some("Patient.meta.tag")
        );
        assert_eq!(
            expression_for(
                "(ImagingStudy.a as Reference) | (Patient.b | Patient.c)",
                "Patient",
                patient
            )
            .as_deref(),
            Some("(Patient.b | Patient.c)")
        );
        assert_eq!(
            expression_for("name | alias", "Patient", patient).as_deref(),
            Some("Patient.name | Patient.alias")
        );
        assert_eq!(split_top_level_unions("a.where(b = '|') | c"), vec!["a.where(b = '|')", "c"]);
    }
}
