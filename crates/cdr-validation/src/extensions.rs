//! Where an extension may be used: its definition's `StructureDefinition.context`, checked as the HL7
//! validator checks it (`InstanceValidator.checkExtensionContext`).
//!
//! The element holding the extension is named by every path the HL7 validator's `NodeStack` gives it: the
//! literal path without indices (`Patient.name.family`), its definitional path in each enclosing type
//! (`HumanName.family`, `Patient.name.family`), and its type (`string`, `HumanName`, `BackboneElement`,
//! `Patient`). An `element` context allows the extension when it is `Element` or `Any`, equals one of those
//! paths, or equals one of them with its first segment replaced by a type it derives from (`DomainResource`
//! for `Patient`, `Resource` for `Bundle`, `Quantity` for `Age`). An `extension` context allows it inside an
//! extension with that url. A `fhirpath` context allows it on the elements its expression selects, evaluated
//! once the walk is done with the enclosing resource as focus (and `%resource`, `%rootResource`), as there; an
//! expression that does not parse or evaluate gives an information issue and no error. Extensions on
//! `ElementDefinition.example.value`, `.pattern[x]` and `.fixed[x]` are always allowed, as there. Any other use
//! is an error.

use std::collections::HashSet;
use std::sync::Arc;

use cdr_fhirpath::{Collection, EvaluationContext, Expression, Item};
use cdr_model::{IssueSeverity, IssueType};
use serde_json::Value;

use crate::invariants::{address, typed_items};
use crate::report::ValidationIssue;
use crate::structure::{CompiledSd, ContextKind};
use crate::validator::Walker;

const HL7_SD: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Published R4 contexts the HL7 validator replaces (`fixContexts`), because R4's own definitions and
/// examples use these extensions elsewhere: the extension's url, the position of the context, and the context
/// used in its place.
const CORRECTED_CONTEXTS: &[(&str, usize, &str)] = &[
    // Published `ElementDefinition.type.code`; the R4 snapshots put it on `ElementDefinition.type`.
    ("structuredefinition-fhir-type", 0, "ElementDefinition.type"),
    ("regex", 1, "ElementDefinition.type"),
    // Published `StructureDefinition`; R4 puts it on the elements of every definition.
    ("structuredefinition-normative-version", 0, "Element"),
    ("capabilitystatement-expectation", 0, "Element"),
    ("capabilitystatement-prohibited", 0, "Element"),
];

/// Holders on which every extension is allowed (examples, fixed and pattern values).
const ANY_EXTENSION: &[&str] =
    &["ElementDefinition.example.value", "ElementDefinition.pattern", "ElementDefinition.fixed"];

/// An element whose type definition is being walked: the item it types holds the content being checked.
pub(crate) struct Frame {
    pub(crate) sd: Arc<CompiledSd>,
    pub(crate) idx: usize,
    /// The item's type (`HumanName`, `string`, `Extension`).
    pub(crate) type_code: String,
    /// For an Extension item, its `url`.
    pub(crate) url: Option<String>,
    /// For a primitive item (whose `_x` part is walked), the address of its value, if it has one.
    pub(crate) primitive: Option<Option<usize>>,
}

/// An extension allowed only by `fhirpath` contexts, whose expressions are evaluated after the walk.
pub(crate) struct PendingContext {
    /// The address of the node holding the extension (a JSON object, or a primitive's value).
    container: usize,
    /// Addresses of the nearest enclosing resource and of the resource containing it.
    resource: usize,
    root_resource: usize,
    expressions: Vec<String>,
    location: String,
    /// The error, when no expression selects the container.
    message: String,
}

impl Walker<'_> {
    /// Reports an extension used where `definition`'s contexts do not allow it; `idx` is its element in `sd`.
    pub(crate) fn check_extension_context(
        &mut self,
        sd: &CompiledSd,
        idx: usize,
        definition: &CompiledSd,
    ) {
        let anywhere = |position: usize, expression: &str| {
            matches!(
                corrected_context(&definition.url, position).unwrap_or(expression),
                "Element" | "Any"
            )
        };
        if definition.contexts.is_empty()
            || definition.contexts.iter().enumerate().any(|(position, context)| {
                context.kind == ContextKind::Element && anywhere(position, &context.expression)
            })
        {
            return;
        }
        let paths = self.holder_paths(sd, idx);
        if paths.iter().any(|path| ANY_EXTENSION.contains(&path.as_str())) {
            return;
        }
        let container_url = self
            .outer
            .last()
            .filter(|_| is_root(holder(&sd.elements[idx].path)))
            .and_then(|frame| frame.url.as_deref().filter(|_| frame.type_code == "Extension"));
        let mut allowed = Vec::with_capacity(definition.contexts.len());
        let mut expressions = Vec::new();
        for (position, context) in definition.contexts.iter().enumerate() {
            let expression =
                corrected_context(&definition.url, position).unwrap_or(context.expression.as_str());
            let (prefix, ok) = match context.kind {
                ContextKind::Element => ("e", self.element_context_allows(expression, &paths)),
                ContextKind::Extension => ("x", container_url == Some(expression)),
                ContextKind::Fhirpath => {
                    expressions.push(expression.to_owned());
                    ("p", false)
                }
            };
            if ok {
                return;
            }
            allowed.push(format!("{prefix}:{expression}"));
        }
        let message = format!(
            "extension {} is not allowed to be used at this point (this element is {}; allowed = {})",
            definition.url,
            paths.join(", "),
            allowed.join(", ")
        );
        if expressions.is_empty() {
            return self.issue(IssueSeverity::Error, IssueType::Structure, message);
        }
        let container = match self.outer.last() {
            Some(Frame { primitive: Some(value), .. })
                if is_root(holder(&sd.elements[idx].path)) =>
            {
                *value
            }
            _ => self.objects.last().copied(),
        };
        // A primitive with no value is selected by no FHIRPath result that could be told apart: accepted.
        let Some(container) = container else { return };
        let (resource, root_resource) = self.resources.last().copied().unwrap_or((0, 0));
        let location = self.location();
        self.pending_contexts.push(PendingContext {
            container,
            resource,
            root_resource,
            expressions,
            location,
            message,
        });
    }

    /// Evaluates the `fhirpath` contexts of the extensions noted during the walk of `root`: an extension is
    /// allowed when one of its expressions, evaluated on the enclosing resource, selects the node holding it.
    pub(crate) fn evaluate_extension_contexts(&mut self, root: &Value) {
        let pending = std::mem::take(&mut self.pending_contexts);
        if pending.is_empty() {
            return;
        }
        let wanted: HashSet<usize> =
            pending.iter().flat_map(|noted| [noted.resource, noted.root_resource]).collect();
        let items = typed_items(root, &wanted);
        for noted in pending {
            let Some(resource) = items.get(&noted.resource) else { continue };
            let mut context = EvaluationContext::new();
            if let Some(json) = resource.json() {
                context = context.with_resource(json);
            }
            if let Some(json) = items.get(&noted.root_resource).and_then(Item::json) {
                context = context.with_root_resource(json);
            }
            let mut failure = None;
            let mut selected = false;
            for text in &noted.expressions {
                let focus = Collection::from_items(vec![resource.clone()]);
                let result = Expression::parse(text).map_err(|error| error.to_string()).and_then(
                    |expression| {
                        expression
                            .evaluate_items(focus, &context)
                            .map_err(|error| error.to_string())
                    },
                );
                match result {
                    Ok(result) => {
                        selected = result.iter().any(|item| {
                            item.json().is_some_and(|json| is_node(json, noted.container))
                        });
                        if selected {
                            break;
                        }
                    }
                    Err(error) => failure = Some(format!("{text}: {error}")),
                }
            }
            let (severity, code, message) = match (selected, failure) {
                (true, _) => continue,
                (false, Some(error)) => (
                    IssueSeverity::Information,
                    IssueType::Informational,
                    format!("extension context not evaluated: {error}"),
                ),
                (false, None) => (IssueSeverity::Error, IssueType::Structure, noted.message),
            };
            self.issues.push(ValidationIssue {
                severity,
                code,
                expression: noted.location,
                message,
            });
        }
    }

    /// Whether an `element` context (other than `Element` and `Any`, which allow any element) names one of the
    /// holder's paths, directly or through a base type of the path's first segment.
    fn element_context_allows(&self, expression: &str, paths: &[String]) -> bool {
        paths.iter().any(|path| {
            if path == expression {
                return true;
            }
            let (first, rest) = path.split_once('.').map_or((path.as_str(), ""), |(f, r)| (f, r));
            let mut url = Some(format!("{HL7_SD}{first}"));
            // The base chain is short (at most Age → Quantity → Element); the bound guards a cycle.
            for _ in 0..8 {
                let Some(sd) = url.as_deref().and_then(|url| self.set.compiled(url).ok()) else {
                    return false;
                };
                let named = if rest.is_empty() {
                    sd.type_name == expression
                } else {
                    expression
                        .strip_prefix(sd.type_name.as_str())
                        .and_then(|tail| tail.strip_prefix('.'))
                        == Some(rest)
                };
                if named {
                    return true;
                }
                url.clone_from(&sd.base);
            }
            false
        })
    }

    /// Every path naming the element that holds element `idx` of `sd` (an `extension` or
    /// `modifierExtension`), without duplicates.
    fn holder_paths(&self, sd: &CompiledSd, idx: usize) -> Vec<String> {
        let holder_path = holder(&sd.elements[idx].path);
        let mut paths = vec![literal_holder(&self.path)];
        if is_root(holder_path) {
            // The extension is on the item `sd` types: a resource, a datatype item or a primitive.
            match self.outer.len().checked_sub(1) {
                Some(last) => paths.extend(self.item_paths(last)),
                None => paths.push(sd.type_name.clone()),
            }
        } else {
            paths.extend(self.paths_in(self.outer.len(), sd, holder_path, None));
            if let Some(elem) = sd.elements.iter().find(|elem| elem.path == holder_path) {
                paths.extend(elem.types.iter().map(|type_ref| type_ref.code.clone()));
                if let Some(target) = elem.content_reference {
                    paths.push(sd.elements[target].path.clone());
                }
            }
        }
        let mut unique: Vec<String> = Vec::with_capacity(paths.len());
        for path in paths {
            if !unique.contains(&path) {
                unique.push(path);
            }
        }
        unique
    }

    /// The paths of the item typed by `self.outer[depth]`: its element's paths and its type.
    fn item_paths(&self, depth: usize) -> Vec<String> {
        let Some(frame) = self.outer.get(depth) else { return Vec::new() };
        let path = &frame.sd.elements[frame.idx].path;
        let mut paths = self.paths_in(depth, &frame.sd, path, Some(&frame.type_code));
        paths.push(frame.type_code.clone());
        paths
    }

    /// The paths of element `path` of `sd`, the definition walked at `depth` (`self.outer.len()` for the
    /// current one): `path` itself, and its tail appended to each path of the item `sd` types. A choice element
    /// is named without `[x]` and, given its type, with it (`valueQuantity`, `value.ofType(Quantity)`).
    fn paths_in(
        &self,
        depth: usize,
        sd: &CompiledSd,
        path: &str,
        type_code: Option<&str>,
    ) -> Vec<String> {
        let mut own = vec![path.strip_suffix("[x]").unwrap_or(path).to_owned()];
        if let (Some(prefix), Some(code)) = (path.strip_suffix("[x]"), type_code) {
            let mut chars = code.chars();
            let capitalised: String =
                chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
            own.push(format!("{prefix}{capitalised}"));
            own.push(format!("{prefix}.ofType({code})"));
        }
        let mut paths = own.clone();
        if depth > 0 && !sd.elements.is_empty() {
            let root = &sd.elements[0].path;
            for outer in self.item_paths(depth - 1) {
                for own_path in &own {
                    if let Some(tail) = own_path.strip_prefix(root.as_str()) {
                        paths.push(format!("{outer}{tail}"));
                    }
                }
            }
        }
        paths
    }
}

/// Whether `json` is the node at `container`: the value itself, or the object inside it.
fn is_node(json: &Value, container: usize) -> bool {
    address(json) == container
        || json.as_object().is_some_and(|object| std::ptr::from_ref(object) as usize == container)
}

/// The context used for the context at `position` of the extension `url`, when the HL7 validator corrects it.
fn corrected_context(url: &str, position: usize) -> Option<&'static str> {
    let name = url.strip_prefix(HL7_SD)?;
    CORRECTED_CONTEXTS
        .iter()
        .find(|(corrected, at, _)| *corrected == name && *at == position)
        .map(|(_, _, context)| *context)
}

/// The path of the element holding the element at `path` (`Patient.contact` for `Patient.contact.extension`).
fn holder(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(holder, _)| holder)
}

fn is_root(path: &str) -> bool {
    !path.contains('.')
}

/// The literal path of the item holding the extension being checked, without indices
/// (`Patient.name.family` for `Patient.name[0].family.extension[1]`).
fn literal_holder(location: &str) -> String {
    let holder = holder(location);
    let mut out = String::with_capacity(holder.len());
    let mut skipping = false;
    for c in holder.chars() {
        match c {
            '[' => skipping = true,
            ']' => skipping = false,
            _ if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}
