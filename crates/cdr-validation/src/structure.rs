//! A StructureDefinition snapshot compiled into a tree the validator walks: children by element id,
//! slices attached to the element they slice, types normalized to FHIR type names.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::invariants::{self, Invariant};

/// A compiled StructureDefinition. Element 0 is the root.
#[derive(Debug)]
pub(crate) struct CompiledSd {
    pub(crate) url: String,
    /// `StructureDefinition.type`, e.g. `Patient`, `Identifier`, `Extension`.
    pub(crate) type_name: String,
    pub(crate) kind: SdKind,
    /// `StructureDefinition.baseDefinition`.
    pub(crate) base: Option<String>,
    /// `StructureDefinition.context`, for extensions (entries of an unknown type are left out).
    pub(crate) contexts: Vec<ExtensionContext>,
    pub(crate) elements: Vec<Elem>,
    /// Compiled invariants by element index (a slice's include the unsliced element's).
    pub(crate) invariants: HashMap<usize, Vec<Invariant>>,
}

/// One `StructureDefinition.context` entry: where an extension may be used.
#[derive(Debug)]
pub(crate) struct ExtensionContext {
    pub(crate) kind: ContextKind,
    pub(crate) expression: String,
}

/// `StructureDefinition.context.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    /// An element path (`HumanName.family`, `Patient`) or a type name (`HumanName`, `Element`).
    Element,
    /// Inside the extension with this url.
    Extension,
    /// The elements a FHIRPath expression selects.
    Fhirpath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdKind {
    PrimitiveType,
    ComplexType,
    Resource,
    Logical,
}

/// One compiled ElementDefinition.
#[derive(Debug)]
pub(crate) struct Elem {
    pub(crate) id: String,
    pub(crate) path: String,
    /// The last path segment, e.g. `identifier` or `value[x]`.
    pub(crate) name: String,
    /// For choice elements (`value[x]`), the name without `[x]`.
    pub(crate) choice_prefix: Option<String>,
    pub(crate) slice_name: Option<String>,
    pub(crate) min: u64,
    /// `None` means `*`.
    pub(crate) max: Option<u64>,
    /// The base definition's max: decides whether the JSON form is an array.
    pub(crate) base_max: Option<u64>,
    pub(crate) base_path: String,
    pub(crate) types: Vec<TypeRef>,
    pub(crate) children: Vec<usize>,
    pub(crate) slicing: Option<Slicing>,
    pub(crate) slices: Vec<usize>,
    /// Index of the element a `contentReference` points to.
    pub(crate) content_reference: Option<usize>,
    pub(crate) fixed: Option<Value>,
    pub(crate) pattern: Option<Value>,
    pub(crate) binding: Option<Binding>,
    pub(crate) constraints: Vec<Constraint>,
    pub(crate) max_length: Option<u64>,
    /// `minValue[x]` and `maxValue[x]`.
    pub(crate) min_value: Option<Value>,
    pub(crate) max_value: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct TypeRef {
    /// The FHIR type name (`string`, `Identifier`, `Resource`, ...).
    pub(crate) code: String,
    pub(crate) profiles: Vec<String>,
    /// `targetProfile`: what a Reference (or canonical) may point to.
    pub(crate) target_profiles: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Slicing {
    pub(crate) discriminators: Vec<Discriminator>,
    pub(crate) ordered: bool,
    pub(crate) rules: SlicingRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlicingRules {
    Closed,
    Open,
    OpenAtEnd,
}

#[derive(Debug, Clone)]
pub(crate) struct Discriminator {
    pub(crate) kind: DiscriminatorKind,
    pub(crate) path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscriminatorKind {
    Value,
    Pattern,
    Exists,
    Type,
    Profile,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) strength: BindingStrength,
    pub(crate) value_set: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindingStrength {
    Required,
    Extensible,
    Preferred,
    Example,
}

#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    pub(crate) key: String,
    pub(crate) error: bool,
    pub(crate) human: String,
    pub(crate) expression: String,
}

const FHIR_TYPE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

impl CompiledSd {
    /// Compiles a StructureDefinition whose `snapshot.element` is given separately (it may have
    /// been generated). Returns an error message when the snapshot is unusable.
    pub(crate) fn compile(
        sd: &Map<String, Value>,
        snapshot: &[Value],
    ) -> Result<CompiledSd, String> {
        let url = str_field(sd, "url").unwrap_or_default().to_owned();
        let type_name = str_field(sd, "type").unwrap_or_default().to_owned();
        let kind = match str_field(sd, "kind") {
            Some("primitive-type") => SdKind::PrimitiveType,
            Some("complex-type") => SdKind::ComplexType,
            Some("resource") => SdKind::Resource,
            _ => SdKind::Logical,
        };
        let base = str_field(sd, "baseDefinition").map(str::to_owned);
        let contexts = sd
            .get("context")
            .and_then(Value::as_array)
            .map(|contexts| contexts.iter().filter_map(extension_context).collect())
            .unwrap_or_default();
        let mut elements = Vec::with_capacity(snapshot.len());
        let mut by_id: HashMap<String, usize> = HashMap::with_capacity(snapshot.len());
        let mut by_path: HashMap<String, usize> = HashMap::new();
        for element in snapshot {
            let Some(element) = element.as_object() else {
                return Err("snapshot element is not an object".to_owned());
            };
            let elem = compile_element(element);
            let idx = elements.len();
            by_id.insert(elem.id.clone(), idx);
            if elem.slice_name.is_none() && !elem.id.contains(':') {
                by_path.entry(elem.path.clone()).or_insert(idx);
            }
            elements.push(elem);
        }
        if elements.is_empty() {
            return Err("snapshot has no elements".to_owned());
        }
        for idx in 1..elements.len() {
            let id = elements[idx].id.clone();
            let Some((parent_id, last)) = id.rsplit_once('.') else { continue };
            match last.split_once(':') {
                Some((name, slice)) => {
                    // A reslice (`identifier:JHN/ONHCN`) belongs to its parent slice.
                    let sliced_id = match slice.rsplit_once('/') {
                        Some((parent_slice, _)) => format!("{parent_id}.{name}:{parent_slice}"),
                        None => format!("{parent_id}.{name}"),
                    };
                    if let Some(&sliced) = by_id.get(&sliced_id) {
                        elements[sliced].slices.push(idx);
                    }
                }
                None => {
                    if let Some(&parent) = by_id.get(parent_id) {
                        elements[parent].children.push(idx);
                    }
                }
            }
        }
        for element in snapshot.iter().filter_map(Value::as_object).enumerate() {
            let (idx, element) = element;
            if let Some(reference) = str_field(element, "contentReference") {
                let target = reference.trim_start_matches(|c| c != '#').trim_start_matches('#');
                elements[idx].content_reference = by_path.get(target).copied();
            }
        }
        let invariants = invariants::compile(&elements);
        Ok(CompiledSd { url, type_name, kind, base, contexts, elements, invariants })
    }

    /// The element's children, following `contentReference`.
    pub(crate) fn children_of(&self, idx: usize) -> &[usize] {
        let elem = &self.elements[idx];
        match elem.content_reference {
            Some(target) if elem.children.is_empty() => &self.elements[target].children,
            _ => &elem.children,
        }
    }

    /// Finds the element reached from `idx` by a dotted relative path (no functions).
    pub(crate) fn descendant(&self, idx: usize, relative: &str) -> Option<usize> {
        let mut current = idx;
        for segment in relative.split('.') {
            if segment.is_empty() || segment == "$this" {
                continue;
            }
            current = *self.children_of(current).iter().find(|&&child| {
                let elem = &self.elements[child];
                elem.name == segment
                    || elem
                        .choice_prefix
                        .as_deref()
                        .is_some_and(|prefix| segment.starts_with(prefix))
            })?;
        }
        Some(current)
    }
}

fn compile_element(element: &Map<String, Value>) -> Elem {
    let path = str_field(element, "path").unwrap_or_default().to_owned();
    let slice_name = str_field(element, "sliceName").map(str::to_owned);
    let id = match str_field(element, "id") {
        Some(id) => id.to_owned(),
        None => match &slice_name {
            Some(slice) => format!("{path}:{slice}"),
            None => path.clone(),
        },
    };
    let name = path.rsplit('.').next().unwrap_or_default().to_owned();
    let choice_prefix = name.strip_suffix("[x]").map(str::to_owned);
    let max = parse_max(str_field(element, "max"));
    let base = element.get("base").and_then(Value::as_object);
    let base_max = match base {
        Some(base) => parse_max(str_field(base, "max")),
        None => max,
    };
    let base_path = base.and_then(|base| str_field(base, "path")).unwrap_or(&path).to_owned();
    let types = element
        .get("type")
        .and_then(Value::as_array)
        .map(|types| types.iter().filter_map(Value::as_object).map(compile_type).collect())
        .unwrap_or_default();
    let mut fixed = None;
    let mut pattern = None;
    let mut min_value = None;
    let mut max_value = None;
    for (key, value) in element {
        if key.starts_with("fixed") {
            fixed = Some(value.clone());
        } else if key.starts_with("pattern") {
            pattern = Some(value.clone());
        } else if key.starts_with("minValue") {
            min_value = Some(value.clone());
        } else if key.starts_with("maxValue") {
            max_value = Some(value.clone());
        }
    }
    Elem {
        id,
        path,
        name,
        choice_prefix,
        slice_name,
        min: element.get("min").and_then(Value::as_u64).unwrap_or(0),
        max,
        base_max,
        base_path,
        types,
        children: Vec::new(),
        slicing: element.get("slicing").and_then(Value::as_object).map(compile_slicing),
        slices: Vec::new(),
        content_reference: None,
        fixed,
        pattern,
        binding: element.get("binding").and_then(Value::as_object).and_then(compile_binding),
        constraints: element
            .get("constraint")
            .and_then(Value::as_array)
            .map(|constraints| {
                constraints
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(compile_constraint)
                    .collect()
            })
            .unwrap_or_default(),
        max_length: element.get("maxLength").and_then(Value::as_u64),
        min_value,
        max_value,
    }
}

fn parse_max(max: Option<&str>) -> Option<u64> {
    match max {
        None | Some("*") => None,
        Some(max) => max.parse().ok(),
    }
}

fn compile_type(type_ref: &Map<String, Value>) -> TypeRef {
    let code = str_field(type_ref, "code").unwrap_or_default();
    let code = match code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some(system_type) => {
            let fhir_type = type_ref
                .get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|ext| ext.get("url").and_then(Value::as_str) == Some(FHIR_TYPE_EXTENSION))
                .and_then(|ext| ext.get("valueUrl").or_else(|| ext.get("valueUri")))
                .and_then(Value::as_str);
            match fhir_type {
                Some(fhir_type) => fhir_type.to_owned(),
                None => match system_type {
                    "Boolean" => "boolean".to_owned(),
                    "Integer" => "integer".to_owned(),
                    "Decimal" => "decimal".to_owned(),
                    "Date" => "date".to_owned(),
                    "DateTime" => "dateTime".to_owned(),
                    "Time" => "time".to_owned(),
                    _ => "string".to_owned(),
                },
            }
        }
        None => code.to_owned(),
    };
    let urls = |key: &str| -> Vec<String> {
        type_ref
            .get(key)
            .and_then(Value::as_array)
            .map(|urls| urls.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    TypeRef { code, profiles: urls("profile"), target_profiles: urls("targetProfile") }
}

fn compile_slicing(slicing: &Map<String, Value>) -> Slicing {
    let discriminators = slicing
        .get("discriminator")
        .and_then(Value::as_array)
        .map(|discriminators| {
            discriminators
                .iter()
                .filter_map(|discriminator| {
                    let kind = match discriminator.get("type").and_then(Value::as_str)? {
                        "value" => DiscriminatorKind::Value,
                        "pattern" => DiscriminatorKind::Pattern,
                        "exists" => DiscriminatorKind::Exists,
                        "type" => DiscriminatorKind::Type,
                        "profile" => DiscriminatorKind::Profile,
                        _ => return None,
                    };
                    let path = discriminator.get("path").and_then(Value::as_str)?.to_owned();
                    Some(Discriminator { kind, path })
                })
                .collect()
        })
        .unwrap_or_default();
    let rules = match str_field(slicing, "rules") {
        Some("closed") => SlicingRules::Closed,
        Some("openAtEnd") => SlicingRules::OpenAtEnd,
        _ => SlicingRules::Open,
    };
    let ordered = slicing.get("ordered").and_then(Value::as_bool).unwrap_or(false);
    Slicing { discriminators, ordered, rules }
}

fn compile_binding(binding: &Map<String, Value>) -> Option<Binding> {
    let strength = match str_field(binding, "strength")? {
        "required" => BindingStrength::Required,
        "extensible" => BindingStrength::Extensible,
        "preferred" => BindingStrength::Preferred,
        _ => BindingStrength::Example,
    };
    let value_set = str_field(binding, "valueSet")?.to_owned();
    Some(Binding { strength, value_set })
}

fn compile_constraint(constraint: &Map<String, Value>) -> Option<Constraint> {
    Some(Constraint {
        key: str_field(constraint, "key")?.to_owned(),
        error: str_field(constraint, "severity") == Some("error"),
        human: str_field(constraint, "human").unwrap_or_default().to_owned(),
        expression: str_field(constraint, "expression")?.to_owned(),
    })
}

fn extension_context(context: &Value) -> Option<ExtensionContext> {
    let kind = match context.get("type").and_then(Value::as_str)? {
        "element" => ContextKind::Element,
        "extension" => ContextKind::Extension,
        "fhirpath" => ContextKind::Fhirpath,
        _ => return None,
    };
    let expression = context.get("expression").and_then(Value::as_str)?.to_owned();
    Some(ExtensionContext { kind, expression })
}

pub(crate) fn str_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}
