//! The walker: checks a resource's JSON against compiled StructureDefinitions, element by element.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use cdr_model::{IssueSeverity, IssueType};
use serde_json::{Map, Value};

use crate::extensions::{Frame, PendingContext};
use crate::invariants::{Pending, address};
use crate::limits;
use crate::primitives;
use crate::profile_set::ProfileSet;
use crate::reference;
use crate::report::{ValidationIssue, ValidationReport};
use crate::structure::{BindingStrength, CompiledSd, Elem, SdKind, TypeRef};
use crate::terminology::Membership;

/// Deeper JSON than this is refused rather than walked (guards the stack).
const MAX_DEPTH: usize = 64;

const HL7_SD: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Validates one resource against the base R4 definition of its type, the profiles it declares in
/// `meta.profile`, and `extra_profile_urls` (e.g. the server's profiles for that type).
///
/// Never panics and never fails: every problem, including unknown profiles and malformed JSON
/// shapes, is an issue of the report.
#[must_use]
pub fn validate(
    resource: &Value,
    profiles: &ProfileSet,
    extra_profile_urls: &[&str],
) -> ValidationReport {
    let mut walker = Walker::new(profiles);
    match resource {
        Value::Object(object) => {
            walker.resource(resource, object, extra_profile_urls, true, false);
            walker.evaluate_invariants(resource);
            walker.evaluate_extension_contexts(resource);
        }
        other => walker.issue(
            IssueSeverity::Error,
            IssueType::Structure,
            format!("a resource must be a JSON object, found {}", primitives::kind(other)),
        ),
    }
    let mut report = ValidationReport { issues: walker.issues };
    report.dedup();
    report
}

/// The state of one validation.
pub(crate) struct Walker<'a> {
    pub(crate) set: &'a ProfileSet,
    pub(crate) issues: Vec<ValidationIssue>,
    /// FHIRPath of the element being checked.
    pub(crate) path: String,
    depth: usize,
    /// The elements whose type definitions are being walked, in the resource being walked (for extension
    /// contexts).
    pub(crate) outer: Vec<Frame>,
    /// Items whose invariants are evaluated once the walk is done.
    pub(crate) pending: Vec<Pending>,
    /// Extensions whose `fhirpath` contexts are evaluated once the walk is done.
    pub(crate) pending_contexts: Vec<PendingContext>,
    /// Addresses of the JSON objects being walked, innermost last.
    pub(crate) objects: Vec<usize>,
    /// Addresses of the resources being walked and of the resources containing them.
    pub(crate) resources: Vec<(usize, usize)>,
}

/// One JSON property being checked against an element: its value and its `_` sibling.
#[derive(Clone, Copy)]
pub(crate) struct Property<'v> {
    /// The JSON key (`valueQuantity`), used in messages.
    pub(crate) key: &'v str,
    pub(crate) value: Option<&'v Value>,
    pub(crate) extension: Option<&'v Value>,
    /// For a choice element, the type named by the key.
    pub(crate) type_code: Option<&'v str>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(set: &'a ProfileSet) -> Walker<'a> {
        Walker {
            set,
            issues: Vec::new(),
            path: String::new(),
            depth: 0,
            outer: Vec::new(),
            pending: Vec::new(),
            pending_contexts: Vec::new(),
            objects: Vec::new(),
            resources: Vec::new(),
        }
    }

    /// The FHIRPath of the element being checked.
    pub(crate) fn location(&self) -> String {
        if self.path.is_empty() { "Resource".to_owned() } else { self.path.clone() }
    }

    pub(crate) fn issue(&mut self, severity: IssueSeverity, code: IssueType, message: String) {
        let expression = self.location();
        self.issues.push(ValidationIssue { severity, code, expression, message });
    }

    fn error(&mut self, code: IssueType, message: String) {
        self.issue(IssueSeverity::Error, code, message);
    }

    /// Validates a resource (top-level or nested) against its base definition and declared profiles.
    pub(crate) fn resource(
        &mut self,
        resource_value: &Value,
        object: &Map<String, Value>,
        extra_profiles: &[&str],
        top: bool,
        contained: bool,
    ) {
        let resource_type = match object.get("resourceType") {
            Some(Value::String(resource_type)) => resource_type.as_str(),
            Some(other) => {
                let kind = primitives::kind(other);
                return self.error(
                    IssueType::Structure,
                    format!("resourceType must be a string, found {kind}"),
                );
            }
            None => return self.error(IssueType::Structure, "missing resourceType".to_owned()),
        };
        if top {
            self.path = resource_type.to_owned();
        }
        let base = self.set.compiled(&format!("{HL7_SD}{resource_type}"));
        let base = match base {
            Ok(base) if base.kind == SdKind::Resource && base.type_name == resource_type => base,
            _ => {
                return self.error(
                    IssueType::Structure,
                    format!("unknown resource type '{resource_type}'"),
                );
            }
        };
        let here = address(resource_value);
        let root = match self.resources.last() {
            Some(&(_, container_root)) if contained => container_root,
            _ => here,
        };
        self.resources.push((here, root));
        // A resource's elements are named from the resource, not from where it is held.
        let outer = std::mem::take(&mut self.outer);
        self.object(&base, 0, object);
        self.note_invariants(&base, 0, resource_value);
        let declared = object
            .get("meta")
            .and_then(|meta| meta.get("profile"))
            .and_then(Value::as_array)
            .map(|profiles| profiles.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        // Each distinct profile is checked once; it is requested when any occurrence is.
        let mut profile_urls: Vec<(&str, bool)> = Vec::new();
        let mut positions: HashMap<&str, usize> = HashMap::new();
        for (url, requested) in declared
            .iter()
            .map(|url| (*url, false))
            .chain(extra_profiles.iter().map(|url| (*url, true)))
        {
            match positions.entry(url) {
                Entry::Occupied(position) => profile_urls[*position.get()].1 |= requested,
                Entry::Vacant(position) => {
                    position.insert(profile_urls.len());
                    profile_urls.push((url, requested));
                }
            }
        }
        for (profile_url, requested) in profile_urls {
            match self.set.compiled(profile_url) {
                Ok(profile) if profile.type_name == resource_type => {
                    self.object(&profile, 0, object);
                    self.note_invariants(&profile, 0, resource_value);
                }
                Ok(profile) => {
                    let message = format!(
                        "profile {profile_url} constrains {}, not {resource_type}",
                        profile.type_name
                    );
                    self.error(IssueType::Processing, message);
                }
                Err(reason) => {
                    let severity =
                        if requested { IssueSeverity::Error } else { IssueSeverity::Warning };
                    self.issue(
                        severity,
                        IssueType::NotSupported,
                        format!("profile not checked: {reason}"),
                    );
                }
            }
        }
        self.outer = outer;
        self.resources.pop();
    }

    /// Validates the content of a JSON object against the children of element `idx`.
    pub(crate) fn object(&mut self, sd: &Arc<CompiledSd>, idx: usize, object: &Map<String, Value>) {
        if self.depth >= MAX_DEPTH {
            return self.error(
                IssueType::TooCostly,
                format!("content nested deeper than {MAX_DEPTH} levels"),
            );
        }
        if object.is_empty() {
            return self.error(
                IssueType::Structure,
                "empty object (an element must have a value or children)".to_owned(),
            );
        }
        self.depth += 1;
        self.objects.push(std::ptr::from_ref(object) as usize);
        let children = sd.children_of(idx);
        let is_resource_root = idx == 0 && sd.kind == SdKind::Resource;
        for key in object.keys() {
            if key == "resourceType" && is_resource_root {
                continue;
            }
            let name = key.strip_prefix('_').unwrap_or(key);
            if !children.iter().any(|&child| matches_key(&sd.elements[child], name).is_some()) {
                let base_len = self.path.len();
                self.path.push('.');
                self.path.push_str(key);
                self.error(IssueType::Structure, format!("unknown element '{key}'"));
                self.path.truncate(base_len);
            }
        }
        for &child in children {
            let elem = &sd.elements[child];
            match &elem.choice_prefix {
                None => {
                    let value = object.get(elem.name.as_str());
                    let extension = object.get(format!("_{}", elem.name).as_str());
                    let property = Property { key: &elem.name, value, extension, type_code: None };
                    self.element(sd, child, property);
                }
                Some(_) => self.choice(sd, child, object),
            }
        }
        self.objects.pop();
        self.depth -= 1;
    }

    fn choice(&mut self, sd: &Arc<CompiledSd>, child: usize, object: &Map<String, Value>) {
        let elem = &sd.elements[child];
        let mut found: Vec<(&str, &str)> = Vec::new();
        for key in object.keys() {
            let name = key.strip_prefix('_').unwrap_or(key);
            if let Some(type_code) = matches_key(elem, name)
                && !found.iter().any(|(seen, _)| *seen == name)
            {
                found.push((name, type_code));
            }
        }
        if found.len() > 1 {
            let keys: Vec<&str> = found.iter().map(|(key, _)| *key).collect();
            let message =
                format!("only one of {} may be present, found {}", elem.name, keys.join(", "));
            self.error(IssueType::Structure, message);
        }
        if found.is_empty() {
            return self.element(
                sd,
                child,
                Property { key: &elem.name, value: None, extension: None, type_code: None },
            );
        }
        for (name, type_code) in found {
            let value = object.get(name);
            let extension = object.get(format!("_{name}").as_str());
            let Some((key, _)) = object
                .get_key_value(name)
                .or_else(|| object.get_key_value(format!("_{name}").as_str()))
            else {
                continue;
            };
            let key = key.strip_prefix('_').unwrap_or(key);
            self.element(sd, child, Property { key, value, extension, type_code: Some(type_code) });
        }
    }

    /// Validates one property (all its repetitions) against element `child`.
    fn element(&mut self, sd: &Arc<CompiledSd>, child: usize, property: Property<'_>) {
        let elem = &sd.elements[child];
        let base_len = self.path.len();
        self.path.push('.');
        match (&elem.choice_prefix, property.type_code) {
            (Some(prefix), Some(type_code)) => {
                self.path.push_str(prefix);
                self.path.push_str(".ofType(");
                self.path.push_str(type_code);
                self.path.push(')');
            }
            _ => self.path.push_str(&elem.name),
        }
        let repeats = elem.base_max != Some(1);
        let values = self.shape(property.value, repeats, "");
        let extensions = self.shape(property.extension, repeats, "_");
        let count = values.len().max(extensions.len());
        if (property.value.is_some() || property.extension.is_some())
            && !values.is_empty()
            && !extensions.is_empty()
            && values.len() != extensions.len()
        {
            {
                let message =
                    format!("'{0}' and '_{0}' must have the same number of items", property.key);
                self.error(IssueType::Structure, message);
            }
        }
        let count_u64 = u64::try_from(count).unwrap_or(u64::MAX);
        if count_u64 < elem.min {
            let message =
                format!("{} requires at least {} value(s), found {count}", elem.path, elem.min);
            self.error(IssueType::Required, message);
        }
        if let Some(max) = elem.max
            && count_u64 > max
        {
            self.error(
                IssueType::Structure,
                format!("{} allows at most {max} value(s), found {count}", elem.path),
            );
        }
        if count > 0 {
            let targets = match (&elem.slicing, elem.slices.is_empty()) {
                (Some(_), false) => self.slice_targets(sd, child, &values, property.type_code),
                _ => vec![child; count],
            };
            for item in 0..count {
                let item_len = self.path.len();
                if repeats {
                    self.path.push_str(&format!("[{item}]"));
                }
                let value = values.get(item).copied().filter(|value| !value.is_null());
                let extension = extensions.get(item).copied().filter(|value| !value.is_null());
                if value.is_none() && extension.is_none() {
                    self.error(
                        IssueType::Structure,
                        "null is only allowed where the matching '_' item has a value".to_owned(),
                    );
                } else {
                    let target = targets.get(item).copied().unwrap_or(child);
                    self.item(sd, target, value, extension, property.type_code);
                }
                self.path.truncate(item_len);
            }
        }
        self.path.truncate(base_len);
    }

    /// The items of a property, reporting array/non-array mismatches.
    fn shape<'v>(
        &mut self,
        value: Option<&'v Value>,
        repeats: bool,
        prefix: &str,
    ) -> Vec<&'v Value> {
        match value {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                if !repeats {
                    self.error(
                        IssueType::Structure,
                        format!("{prefix}element does not repeat: it must not be an array"),
                    );
                }
                if items.is_empty() {
                    self.error(
                        IssueType::Structure,
                        "empty array (an absent element must be omitted)".to_owned(),
                    );
                }
                items.iter().collect()
            }
            Some(single) => {
                if repeats {
                    self.error(
                        IssueType::Structure,
                        format!("{prefix}element repeats: it must be an array"),
                    );
                }
                if single.is_null() {
                    self.error(IssueType::Structure, "null is not a valid value".to_owned());
                    return Vec::new();
                }
                vec![single]
            }
        }
    }

    /// Validates one item against element `idx` (the element, or the slice it matched).
    pub(crate) fn item(
        &mut self,
        sd: &Arc<CompiledSd>,
        idx: usize,
        value: Option<&Value>,
        extension: Option<&Value>,
        type_code: Option<&str>,
    ) {
        let elem = &sd.elements[idx];
        if let Some(value) = value {
            self.note_invariants(sd, idx, value);
        }
        let type_ref = match type_code {
            Some(code) => match elem.types.iter().find(|type_ref| type_ref.code == code) {
                Some(type_ref) => Some(type_ref),
                None => {
                    let allowed: Vec<&str> =
                        elem.types.iter().map(|type_ref| type_ref.code.as_str()).collect();
                    let message = format!(
                        "type {code} is not allowed here (allowed: {})",
                        allowed.join(", ")
                    );
                    return self.error(IssueType::Structure, message);
                }
            },
            None => elem.types.first().filter(|_| elem.types.len() == 1),
        };
        let code = type_ref.map_or("", |type_ref| type_ref.code.as_str());
        let inline = !sd.children_of(idx).is_empty();
        if !inline && primitives::is_primitive(code) {
            return self.primitive(sd, idx, code, value, extension);
        }
        if extension.is_some() {
            self.error(
                IssueType::Structure,
                "'_' properties are only allowed for primitive elements".to_owned(),
            );
        }
        let Some(value) = value else { return };
        let Value::Object(object) = value else {
            let kind = primitives::kind(value);
            return self
                .error(IssueType::Structure, format!("expected a JSON object, found {kind}"));
        };
        if code == "Reference"
            && let Some(type_ref) = type_ref
            && self.reference_grammar(object)
        {
            self.reference_target(type_ref, object);
        }
        if inline {
            self.object(sd, idx, object);
        } else if code == "Resource"
            || code.starts_with(|c: char| c.is_ascii_uppercase()) && is_resource(self.set, code)
        {
            let contained = elem.base_path == "DomainResource.contained";
            self.resource(value, object, &[], false, contained);
        } else if let Some(type_ref) = type_ref {
            self.complex(sd, idx, type_ref, value, object);
        }
        self.check_value(elem, value, code);
    }

    /// Checks a literal `reference` against R4's grammar, as an error at `….reference`; `false` when it breaks it.
    fn reference_grammar(&mut self, object: &Map<String, Value>) -> bool {
        let Some(reference) = object.get("reference").and_then(Value::as_str) else { return true };
        let set = self.set;
        let Some(message) = reference::check(reference, |name| is_resource(set, name)) else {
            return true;
        };
        let base_len = self.path.len();
        self.path.push_str(".reference");
        self.error(IssueType::Value, message);
        self.path.truncate(base_len);
        false
    }

    /// Checks the type named by a literal reference (`Patient/123`, `http://x/fhir/Patient/123`,
    /// `Patient/123/_history/2`) against the element's `targetProfile`s. Contained (`#id`), `urn:`
    /// and logical references, and targets whose type cannot be resolved, are not checked.
    fn reference_target(&mut self, type_ref: &TypeRef, object: &Map<String, Value>) {
        if type_ref.target_profiles.is_empty() {
            return;
        }
        let Some(reference) = object.get("reference").and_then(Value::as_str) else { return };
        if reference.starts_with('#') || reference.starts_with("urn:") {
            return;
        }
        let address = reference.split_once("/_history/").map_or(reference, |(address, _)| address);
        let mut segments = address.rsplit('/');
        let (Some(_id), Some(target_type)) = (segments.next(), segments.next()) else { return };
        if !is_resource(self.set, target_type) {
            return;
        }
        let mut allowed: Vec<String> = Vec::new();
        for url in &type_ref.target_profiles {
            let type_name = match url.strip_prefix(HL7_SD) {
                Some(type_name) if !type_name.contains('/') => type_name.to_owned(),
                _ => match self.set.compiled(url) {
                    Ok(profile) => profile.type_name.clone(),
                    Err(_) => return,
                },
            };
            if type_name == "Resource" || type_name == target_type {
                return;
            }
            allowed.push(type_name);
        }
        let message = format!(
            "reference target type {target_type} is not allowed (expected {})",
            allowed.join(" or ")
        );
        self.error(IssueType::Structure, message);
    }

    fn complex(
        &mut self,
        sd: &Arc<CompiledSd>,
        idx: usize,
        type_ref: &TypeRef,
        value: &Value,
        object: &Map<String, Value>,
    ) {
        let mut type_sd = None;
        for profile in &type_ref.profiles {
            match self.set.compiled(profile) {
                Ok(profile) => {
                    type_sd = Some(profile);
                    break;
                }
                Err(reason) => {
                    let message = format!("type profile not checked: {reason}");
                    self.issue(IssueSeverity::Warning, IssueType::NotSupported, message);
                }
            }
        }
        let url = object.get("url").and_then(Value::as_str);
        if type_ref.code == "Extension"
            && let Some(definition) = self.extension_definition(sd, idx, url)
        {
            type_sd = type_sd.or(Some(definition));
        }
        let type_sd = match type_sd {
            Some(type_sd) => type_sd,
            None => match self.set.compiled(&format!("{HL7_SD}{}", type_ref.code)) {
                Ok(type_sd) => type_sd,
                Err(_) => {
                    let message =
                        format!("type {} is not defined, content not checked", type_ref.code);
                    return self.issue(IssueSeverity::Warning, IssueType::NotSupported, message);
                }
            },
        };
        self.outer.push(Frame {
            sd: sd.clone(),
            idx,
            type_code: type_ref.code.clone(),
            url: url.filter(|_| type_ref.code == "Extension").map(str::to_owned),
            primitive: None,
        });
        self.object(&type_sd, 0, object);
        self.outer.pop();
        self.note_invariants(&type_sd, 0, value);
    }

    /// The definition of the extension with `url` (element `idx` of `sd`), checked for its context of use.
    fn extension_definition(
        &mut self,
        sd: &Arc<CompiledSd>,
        idx: usize,
        url: Option<&str>,
    ) -> Option<Arc<CompiledSd>> {
        let definition = self.set.compiled(url?).ok()?;
        if definition.type_name != "Extension" {
            return None;
        }
        self.check_extension_context(sd, idx, &definition);
        Some(definition)
    }

    fn primitive(
        &mut self,
        sd: &Arc<CompiledSd>,
        idx: usize,
        code: &str,
        value: Option<&Value>,
        extension: Option<&Value>,
    ) {
        let elem = &sd.elements[idx];
        let code = if elem.base_path == "Resource.id" { "id" } else { code };
        if let Some(value) = value {
            match primitives::check(code, value) {
                Some(problem) => self.error(IssueType::Value, problem),
                None => {
                    if let (Some(max_length), Some(text)) = (elem.max_length, value.as_str()) {
                        let length = text.chars().count();
                        if u64::try_from(length).unwrap_or(u64::MAX) > max_length {
                            self.error(
                                IssueType::TooLong,
                                format!("{length} characters exceed maxLength {max_length}"),
                            );
                        }
                    }
                    self.check_value(elem, value, code);
                }
            }
        }
        if let Some(extension) = extension {
            let Value::Object(object) = extension else {
                let kind = primitives::kind(extension);
                return self.error(
                    IssueType::Structure,
                    format!("'_' property must be an object, found {kind}"),
                );
            };
            if let Ok(element_sd) = self.set.compiled(&format!("{HL7_SD}Element")) {
                let type_code = code.to_owned();
                let primitive = Some(value.map(address));
                self.outer.push(Frame { sd: sd.clone(), idx, type_code, url: None, primitive });
                self.object(&element_sd, 0, object);
                self.outer.pop();
            }
        }
    }

    /// fixed[x], pattern[x], minValue[x]/maxValue[x] and bindings of one element on one value.
    fn check_value(&mut self, elem: &Elem, value: &Value, code: &str) {
        for (limit, below) in [(&elem.min_value, true), (&elem.max_value, false)] {
            let Some(limit) = limit else { continue };
            let exceeded = match limits::compare(value, limit) {
                Some(std::cmp::Ordering::Less) => below,
                Some(std::cmp::Ordering::Greater) => !below,
                _ => false,
            };
            if exceeded {
                let (name, relation) =
                    if below { ("minValue", "below") } else { ("maxValue", "above") };
                let message =
                    format!("{} is {relation} the {name} {}", compact(value), compact(limit));
                self.error(IssueType::Value, message);
            }
        }
        if let Some(fixed) = &elem.fixed
            && !json_equal(fixed, value)
        {
            self.error(IssueType::Value, format!("value must be exactly {}", compact(fixed)));
        }
        if let Some(pattern) = &elem.pattern
            && !matches_pattern(pattern, value)
        {
            self.error(
                IssueType::Value,
                format!("value must match the pattern {}", compact(pattern)),
            );
        }
        let Some(binding) = &elem.binding else { return };
        if !matches!(binding.strength, BindingStrength::Required | BindingStrength::Extensible) {
            return;
        }
        let codings: Vec<(Option<&str>, &str)> = match code {
            "code" | "string" | "uri" => {
                value.as_str().map(|text| (None, text)).into_iter().collect()
            }
            "Coding" => coding(value).into_iter().collect(),
            "CodeableConcept" => value
                .get("coding")
                .and_then(Value::as_array)
                .map(|codings| codings.iter().filter_map(coding).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if codings.is_empty()
            || (code == "string" || code == "uri") && binding.strength != BindingStrength::Required
        {
            return;
        }
        let expansion = self.set.expansion(&binding.value_set);
        let memberships: Vec<Membership> =
            codings.iter().map(|(system, code)| expansion.contains(*system, code)).collect();
        if memberships.iter().any(|membership| *membership != Membership::NotMember) {
            return;
        }
        let shown: Vec<String> = codings
            .iter()
            .map(|(system, code)| match system {
                Some(system) => format!("{system}#{code}"),
                None => (*code).to_owned(),
            })
            .collect();
        let value_set = &binding.value_set;
        match binding.strength {
            BindingStrength::Required => {
                let message =
                    format!("{} is not in the required value set {value_set}", shown.join(", "));
                self.error(IssueType::CodeInvalid, message);
            }
            _ => {
                let message =
                    format!("{} is not in the extensible value set {value_set}", shown.join(", "));
                self.issue(IssueSeverity::Warning, IssueType::CodeInvalid, message);
            }
        }
    }
}

/// If the JSON key `name` names element `elem`, the type it carries (`""` for non-choice elements).
pub(crate) fn matches_key<'x>(elem: &'x Elem, name: &'x str) -> Option<&'x str> {
    match &elem.choice_prefix {
        None => (elem.name == name).then_some(""),
        Some(prefix) => {
            let suffix = name.strip_prefix(prefix.as_str())?;
            if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                return None;
            }
            let found = elem.types.iter().find(|type_ref| {
                let code = type_ref.code.as_str();
                code.len() == suffix.len()
                    && code[..1].eq_ignore_ascii_case(&suffix[..1])
                    && code[1..] == suffix[1..]
            });
            // A suffix naming no allowed type keeps its spelling; `item` reports it.
            Some(found.map_or(suffix, |type_ref| type_ref.code.as_str()))
        }
    }
}

fn is_resource(set: &ProfileSet, code: &str) -> bool {
    set.compiled(&format!("{HL7_SD}{code}")).is_ok_and(|sd| sd.kind == SdKind::Resource)
}

fn coding(value: &Value) -> Option<(Option<&str>, &str)> {
    let code = value.get("code")?.as_str()?;
    Some((value.get("system").and_then(Value::as_str), code))
}

/// Equality for fixed values: numbers compare by value, objects and arrays structurally.
pub(crate) fn json_equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(expected), Value::Number(actual)) => {
            expected.as_str() == actual.as_str()
                || expected.as_f64().is_some_and(|e| actual.as_f64() == Some(e))
        }
        (Value::Object(expected), Value::Object(actual)) => {
            expected.len() == actual.len()
                && expected.iter().all(|(key, value)| {
                    actual.get(key).is_some_and(|other| json_equal(value, other))
                })
        }
        (Value::Array(expected), Value::Array(actual)) => {
            expected.len() == actual.len()
                && expected.iter().zip(actual).all(|(e, a)| json_equal(e, a))
        }
        _ => expected == actual,
    }
}

/// Pattern matching: every property of the pattern is present in the value, recursively; each item
/// of a pattern array matches some item of the value array.
pub(crate) fn matches_pattern(pattern: &Value, actual: &Value) -> bool {
    match (pattern, actual) {
        (Value::Object(pattern), Value::Object(actual)) => pattern
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|other| matches_pattern(value, other))),
        (Value::Array(pattern), Value::Array(actual)) => {
            pattern.iter().all(|item| actual.iter().any(|other| matches_pattern(item, other)))
        }
        (Value::Array(pattern), single) => pattern.iter().all(|item| matches_pattern(item, single)),
        _ => json_equal(pattern, actual),
    }
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}
