//! FHIRPath Patch (R4 `fhirpatch.html`): a Parameters resource whose `operation` parameters are applied in
//! order, each finding its target with a FHIRPath `path` evaluated over the resource as it stands.
//!
//! Targets are found with `cdr_fhirpath`'s [`Collection::locations`](cdr_fhirpath::Collection::locations)
//! (the keys and indices of each selected node) and changed in the JSON there. FHIR JSON's conventions are
//! kept where that is cheap:
//! - a repeating element is written as an array (the R4 model says which repeat, [`ModelType`]); a choice
//!   element named without its type (`add` of `value`) takes the suffix of the patch's value (`valueString`);
//! - a primitive's `_name` sibling follows it: `delete` removes it, `insert`, `move` and a `delete` from a list
//!   keep the `_name` array aligned with the value array, and `add` of `extension` or `id` to a primitive
//!   writes into its `_name` object;
//! - a `delete` that leaves an object or array empty removes it too, up to the resource (FHIR JSON has no
//!   empty elements; the HL7 patch test "Delete Nested Primitive #2" expects it).
//!
//! Not done: `replace` keeps the element's JSON key, so a choice element cannot change its type
//! (`valueQuantity` replaced by a string stays `valueQuantity`, which validation then refuses); extensions on
//! a patch's own primitive values (`_valueString` in a part) are refused rather than carried over.

use cdr_fhirpath::{EvaluationContext, Expression, Location, ModelType, Step};
use cdr_model::{Issue, IssueType, OperationOutcome};
use serde_json::{Map, Value};

use crate::InteractionError;

/// Most operations one FHIRPath Patch may hold: each evaluates its path over the whole resource, so their
/// number multiplies the cost of a patch.
pub(crate) const MAX_OPERATIONS: usize = 1_000;

/// A parsed FHIRPath Patch: its operations in order.
#[derive(Debug, Clone)]
pub struct FhirPathPatch {
    operations: Vec<Operation>,
}

#[derive(Debug, Clone)]
enum Operation {
    Add { path: Expression, name: String, value: PatchValue },
    Insert { path: Expression, index: usize, value: PatchValue },
    Delete { path: Expression },
    Replace { path: Expression, value: PatchValue },
    Move { path: Expression, source: usize, destination: usize },
}

impl FhirPathPatch {
    /// Calls `visit` with each JSON value the operations write, the name of the element it is written as
    /// where the patch says (the `name` of an `add`, the last step of an `insert` or `replace` path, the
    /// member name of a nested part), and the position of its operation among the parameters.
    pub(crate) fn visit_values<E>(
        &mut self,
        visit: &mut impl FnMut(&mut Value, Option<&str>, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        for (position, operation) in self.operations.iter_mut().enumerate() {
            let (name, value) = match operation {
                Operation::Add { name, value, .. } => (Some(name.as_str()), value),
                Operation::Insert { path, value, .. } | Operation::Replace { path, value } => {
                    (path.text().rsplit('.').next(), value)
                }
                Operation::Delete { .. } | Operation::Move { .. } => continue,
            };
            visit_value(value, name, position, visit)?;
        }
        Ok(())
    }
}

fn visit_value<E>(
    value: &mut PatchValue,
    name: Option<&str>,
    position: usize,
    visit: &mut impl FnMut(&mut Value, Option<&str>, usize) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        PatchValue::Typed { json, .. } => visit(json, name, position),
        PatchValue::Parts(parts) => {
            for (member, part) in parts {
                visit_value(part, Some(member.as_str()), position, visit)?;
            }
            Ok(())
        }
    }
}

/// The `value` of an operation.
#[derive(Debug, Clone)]
enum PatchValue {
    /// A `value[x]`: the type suffix (`String`, `HumanName`) and the JSON of the value.
    Typed { type_suffix: String, json: Value },
    /// Nested parts naming the members of a complex value (an anonymous type such as `Patient.contact`).
    Parts(Vec<(String, PatchValue)>),
}

/// An element of the document: the object holding it, its name (the JSON key without a leading `_`) and its
/// position when it is in a list.
struct ElementAt {
    parent: Vec<Step>,
    name: String,
    index: Option<usize>,
}

impl FhirPathPatch {
    /// Parses a Parameters resource of `operation` parameters.
    ///
    /// # Errors
    /// [`InteractionError::Invalid`] naming the parameter that is not a well-formed operation;
    /// [`InteractionError::TooCostly`] past [`MAX_OPERATIONS`].
    pub(crate) fn parse(parameters: &Value) -> Result<FhirPathPatch, InteractionError> {
        if parameters.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(InteractionError::invalid(
                "a FHIRPath Patch is a Parameters resource (send JSON Patch as application/json-patch+json)",
            ));
        }
        let parameter = match parameters.get("parameter") {
            None => &Vec::new(),
            Some(Value::Array(parameter)) => parameter,
            Some(_) => {
                return Err(invalid_at("parameter must be an array", "Parameters.parameter"));
            }
        };
        if parameter.len() > MAX_OPERATIONS {
            return Err(InteractionError::TooCostly(format!(
                "the patch holds {} operations; this server applies at most {MAX_OPERATIONS} in one patch",
                parameter.len()
            )));
        }
        let operations = parameter
            .iter()
            .enumerate()
            .map(|(index, parameter)| {
                parse_operation(parameter).map_err(|message| {
                    invalid_at(&message, &format!("Parameters.parameter[{index}]"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(FhirPathPatch { operations })
    }

    /// Applies the operations in order to `resource`.
    ///
    /// # Errors
    /// [`InteractionError::Unprocessable`] naming the first operation that cannot be applied.
    pub(crate) fn apply(&self, resource: &mut Value) -> Result<(), InteractionError> {
        for (index, operation) in self.operations.iter().enumerate() {
            apply_operation(resource, operation).map_err(|message| {
                let (kind, path) = operation.describe();
                InteractionError::Unprocessable(OperationOutcome::single(
                    Issue::error(
                        IssueType::Processing,
                        format!("FHIRPath Patch operation {index} ({kind} at '{path}'): {message}"),
                    )
                    .at(format!("Parameters.parameter[{index}]")),
                ))
            })?;
        }
        Ok(())
    }
}

impl Operation {
    fn describe(&self) -> (&'static str, &Expression) {
        match self {
            Operation::Add { path, .. } => ("add", path),
            Operation::Insert { path, .. } => ("insert", path),
            Operation::Delete { path } => ("delete", path),
            Operation::Replace { path, .. } => ("replace", path),
            Operation::Move { path, .. } => ("move", path),
        }
    }
}

fn parse_operation(parameter: &Value) -> Result<Operation, String> {
    if parameter.get("name").and_then(Value::as_str) != Some("operation") {
        return Err("each parameter of a FHIRPath Patch is named 'operation'".to_owned());
    }
    let mut kind = None;
    let mut path = None;
    let mut name = None;
    let mut value = None;
    let mut index = None;
    let mut source = None;
    let mut destination = None;
    for part in parameter.get("part").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        match part.get("name").and_then(Value::as_str) {
            Some("type") => kind = Some(primitive_part(part, "valueCode")?),
            Some("path") => path = Some(primitive_part(part, "valueString")?),
            Some("name") => name = Some(primitive_part(part, "valueString")?),
            Some("value") => value = Some(parse_value(part)?),
            Some("index") => index = Some(index_part(part)?),
            Some("source") => source = Some(index_part(part)?),
            Some("destination") => destination = Some(index_part(part)?),
            Some(other) => {
                return Err(format!("'{other}' is not a part of a FHIRPath Patch operation"));
            }
            None => return Err("every part of an operation needs a name".to_owned()),
        }
    }
    let kind = kind.ok_or("the operation has no type part")?;
    let text = path.ok_or("the operation has no path part")?;
    let path = Expression::parse(text).map_err(|error| format!("the path '{text}': {error}"))?;
    let needed = |part: &str| format!("a {kind} operation needs a {part} part");
    Ok(match kind {
        "add" => Operation::Add {
            path,
            name: name.ok_or_else(|| needed("name"))?.to_owned(),
            value: value.ok_or_else(|| needed("value"))?,
        },
        "insert" => Operation::Insert {
            path,
            index: index.ok_or_else(|| needed("index"))?,
            value: value.ok_or_else(|| needed("value"))?,
        },
        "delete" => Operation::Delete { path },
        "replace" => Operation::Replace { path, value: value.ok_or_else(|| needed("value"))? },
        "move" => Operation::Move {
            path,
            source: source.ok_or_else(|| needed("source"))?,
            destination: destination.ok_or_else(|| needed("destination"))?,
        },
        other => {
            return Err(format!(
                "'{other}' is not a FHIRPath Patch operation (add, insert, delete, replace, move)"
            ));
        }
    })
}

fn primitive_part<'a>(part: &'a Value, key: &str) -> Result<&'a str, String> {
    part.get(key).and_then(Value::as_str).ok_or_else(|| {
        let name = part.get("name").and_then(Value::as_str).unwrap_or_default();
        format!("the {name} part needs a {key}")
    })
}

fn index_part(part: &Value) -> Result<usize, String> {
    let name = part.get("name").and_then(Value::as_str).unwrap_or_default();
    part.get("valueInteger")
        .and_then(Value::as_u64)
        .and_then(|index| usize::try_from(index).ok())
        .ok_or_else(|| format!("the {name} part needs a valueInteger of 0 or more"))
}

/// A `value` part, or a nested part of one: a `value[x]`, or `part`s naming the members of a complex value.
fn parse_value(part: &Value) -> Result<PatchValue, String> {
    let Some(members) = part.as_object() else { return Err("a part must be an object".to_owned()) };
    let name = members.get("name").and_then(Value::as_str).unwrap_or_default();
    if members.keys().any(|key| key.starts_with("_value")) {
        return Err(format!(
            "the {name} part has extensions on its value ({}), which this server does not apply",
            members.keys().find(|key| key.starts_with("_value")).map_or("", String::as_str)
        ));
    }
    let mut typed = members.iter().filter_map(|(key, json)| {
        let type_suffix = key.strip_prefix("value")?;
        type_suffix
            .starts_with(|c: char| c.is_ascii_uppercase())
            .then(|| PatchValue::Typed { type_suffix: type_suffix.to_owned(), json: json.clone() })
    });
    match (typed.next(), typed.next(), members.get("part")) {
        (Some(value), None, None) => Ok(value),
        (None, None, Some(Value::Array(parts))) => {
            let members = parts
                .iter()
                .map(|part| {
                    let name = part.get("name").and_then(Value::as_str).ok_or_else(|| {
                        format!("every nested part of the {name} part needs a name")
                    })?;
                    Ok((name.to_owned(), parse_value(part)?))
                })
                .collect::<Result<_, String>>()?;
            Ok(PatchValue::Parts(members))
        }
        _ => Err(format!("the {name} part needs exactly one value[x], or nested parts")),
    }
}

/// The JSON of a patch value, an instance of `value_type` when the model knows it (which tells which
/// members of a complex value repeat).
fn value_json(value: &PatchValue, value_type: Option<ModelType>) -> Result<Value, String> {
    let parts = match value {
        PatchValue::Typed { json, .. } => return Ok(json.clone()),
        PatchValue::Parts(parts) => parts,
    };
    let mut object = Map::new();
    for (name, part) in parts {
        let element = value_type.and_then(|value_type| value_type.element(name));
        let key = match (element, part) {
            (Some(element), PatchValue::Typed { type_suffix, .. }) if element.choice => {
                format!("{name}{type_suffix}")
            }
            (Some(element), PatchValue::Parts(_)) if element.choice => {
                return Err(format!("the choice element {name} needs a value[x], not parts"));
            }
            _ => name.clone(),
        };
        let element = value_type.and_then(|value_type| value_type.element(&key));
        let json = value_json(part, element.and_then(|element| element.element_type))?;
        let repeats = element.is_some_and(|element| element.repeats)
            || parts.iter().filter(|(other, _)| other == name).count() > 1;
        match object.get_mut(&key) {
            Some(Value::Array(list)) if repeats => list.push(json),
            Some(_) => return Err(format!("the value names {key} more than once")),
            None if repeats => {
                object.insert(key, Value::Array(vec![json]));
            }
            None => {
                object.insert(key, json);
            }
        }
    }
    Ok(Value::Object(object))
}

/// A selected node: where it is, and its type in the R4 model.
struct Target {
    location: Location,
    model_type: Option<ModelType>,
}

/// The nodes `path` selects in `resource`; each must be an element of the resource.
fn select(resource: &Value, path: &Expression) -> Result<Vec<Target>, String> {
    let items =
        path.evaluate(resource, &EvaluationContext::new()).map_err(|error| error.to_string())?;
    items
        .locations(resource)
        .into_iter()
        .zip(items.iter())
        .map(|(location, item)| match location {
            Some(location) => Ok(Target { location, model_type: item.model_type() }),
            None => {
                Err("the path selects a value that is not an element of the resource".to_owned())
            }
        })
        .collect()
}

fn single(targets: Vec<Target>, what: &str) -> Result<Target, String> {
    let n_targets = targets.len();
    let mut targets = targets.into_iter();
    match (targets.next(), n_targets) {
        (Some(target), 1) => Ok(target),
        (None, _) => Err(format!("the path selects no element {what}")),
        _ => Err(format!("the path selects {n_targets} elements, and {what} needs exactly one")),
    }
}

fn apply_operation(resource: &mut Value, operation: &Operation) -> Result<(), String> {
    match operation {
        Operation::Add { path, name, value } => {
            let target = single(select(resource, path)?, "to add to")?;
            add(resource, &target, name, value)
        }
        Operation::Insert { path, index, value } => {
            let (list, element_type) = list_of(select(resource, path)?, "to insert into")?;
            let length = list_length(resource, &list)?;
            if *index > length {
                return Err(format!("index {index} is past the end of the list of {length}"));
            }
            let json = value_json(value, element_type)?;
            let parent = object_at(resource, &list.parent)?;
            list_insert(parent, &list.name, *index, json)
        }
        Operation::Delete { path } => {
            let targets = select(resource, path)?;
            if targets.is_empty() {
                return Ok(());
            }
            let target = single(targets, "to delete")?;
            let element = element_at(&target.location)?;
            let parent = object_at(resource, &element.parent)?;
            match element.index {
                Some(index) => list_remove(parent, &element.name, index),
                None => {
                    parent.shift_remove(&element.name);
                    parent.shift_remove(&format!("_{}", element.name));
                }
            }
            prune(resource, element.parent);
            Ok(())
        }
        Operation::Replace { path, value } => {
            let target = single(select(resource, path)?, "to replace")?;
            let element = element_at(&target.location)?;
            let json = value_json(value, target.model_type)?;
            let parent = object_at(resource, &element.parent)?;
            match element.index {
                Some(index) => padded_list(parent, &element.name, index + 1)?[index] = json,
                None => {
                    parent.insert(element.name, json);
                }
            }
            Ok(())
        }
        Operation::Move { path, source, destination } => {
            let (list, _) = list_of(select(resource, path)?, "to move in")?;
            let length = list_length(resource, &list)?;
            if *source >= length || *destination >= length {
                return Err(format!(
                    "source {source} and destination {destination} must both be below the list's length of {length}"
                ));
            }
            let parent = object_at(resource, &list.parent)?;
            for key in [list.name.clone(), format!("_{}", list.name)] {
                if let Some(Value::Array(values)) = parent.get_mut(&key) {
                    values.resize(length, Value::Null);
                    let moved = values.remove(*source);
                    values.insert(*destination, moved);
                }
            }
            Ok(())
        }
    }
}

/// `add`: appends `value` as the element `name` of the one target, or into the `_name` object of a primitive
/// target for `extension` and `id`.
fn add(
    resource: &mut Value,
    target: &Target,
    name: &str,
    value: &PatchValue,
) -> Result<(), String> {
    let target_is_object =
        value_at(resource, target.location.steps()).is_some_and(Value::is_object);
    let (holder, holder_type) = if target_is_object {
        (target.location.steps().to_vec(), target.model_type)
    } else if matches!(name, "extension" | "id") {
        (primitive_extras(resource, &target.location)?, ModelType::named("Element"))
    } else {
        return Err(format!("the target is a primitive value, which has no element {name}"));
    };
    let element = holder_type.and_then(|holder_type| holder_type.element(name));
    let key = match (element, value) {
        (Some(element), PatchValue::Typed { type_suffix, .. }) if element.choice => {
            format!("{name}{type_suffix}")
        }
        (Some(element), PatchValue::Parts(_)) if element.choice => {
            return Err(format!("the choice element {name} needs a value[x], not parts"));
        }
        _ => name.to_owned(),
    };
    let element = holder_type.and_then(|holder_type| holder_type.element(&key));
    let json = value_json(value, element.and_then(|element| element.element_type))?;
    let object = object_at(resource, &holder)?;
    let repeats = element.is_some_and(|element| element.repeats);
    match (object.get(&key).map(Value::is_array), repeats) {
        (Some(false), _) => Err(format!("{key} already exists; use replace to change it")),
        (Some(true), _) | (None, true) => {
            let length = list_len(object, &key);
            list_insert(object, &key, length, json)
        }
        (None, false) => {
            object.insert(key, json);
            Ok(())
        }
    }
}

/// The location of the `_name` object that holds the extensions and id of the primitive at `location`,
/// created (an array entry of it, for a primitive in a list) when absent.
fn primitive_extras(resource: &mut Value, location: &Location) -> Result<Vec<Step>, String> {
    let element = element_at(location)?;
    let extras_key = format!("_{}", element.name);
    let parent = object_at(resource, &element.parent)?;
    let extras = match element.index {
        Some(index) => {
            let length = list_len(parent, &element.name).max(index + 1);
            &mut padded_list(parent, &extras_key, length)?[index]
        }
        None => parent.entry(extras_key.clone()).or_insert(Value::Null),
    };
    if extras.is_null() {
        *extras = Value::Object(Map::new());
    }
    if !extras.is_object() {
        return Err(format!("{extras_key} is not a JSON object"));
    }
    let mut steps = element.parent;
    steps.push(Step::Key(extras_key));
    steps.extend(element.index.map(Step::Index));
    Ok(steps)
}

/// The one list the targets are the elements of (insert and move name a list by its elements), with the
/// type of its elements.
fn list_of(targets: Vec<Target>, what: &str) -> Result<(ElementAt, Option<ModelType>), String> {
    let mut elements = Vec::with_capacity(targets.len());
    let mut element_type = None;
    for target in targets {
        let element = element_at(&target.location)?;
        if element.index.is_none() {
            return Err(format!("the path selects an element that is not in a list {what}"));
        }
        element_type = element_type.or(target.model_type);
        elements.push(element);
    }
    let Some(first) = elements.first() else {
        return Err(format!(
            "the path selects no list {what} (add creates a list that does not exist yet)"
        ));
    };
    if elements.iter().any(|element| element.parent != first.parent || element.name != first.name) {
        return Err(format!("the path selects elements of several lists, and {what} needs one"));
    }
    Ok((
        ElementAt { parent: first.parent.clone(), name: first.name.clone(), index: None },
        element_type,
    ))
}

fn element_at(location: &Location) -> Result<ElementAt, String> {
    let (parent, key, index) = match location.steps() {
        [parent @ .., Step::Key(key), Step::Index(index)] => (parent, key, Some(*index)),
        [parent @ .., Step::Key(key)] => (parent, key, None),
        [] => return Err("the path selects the resource itself".to_owned()),
        _ => return Err(format!("the path selects {location}, which is not an element")),
    };
    let name = key.strip_prefix('_').unwrap_or(key).to_owned();
    Ok(ElementAt { parent: parent.to_vec(), name, index })
}

fn value_at<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get(key),
        Step::Index(index) => value.get(*index),
    })
}

fn value_at_mut<'v>(root: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get_mut(key),
        Step::Index(index) => value.get_mut(*index),
    })
}

fn object_at<'v>(
    root: &'v mut Value,
    steps: &[Step],
) -> Result<&'v mut Map<String, Value>, String> {
    value_at_mut(root, steps)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "the element's parent is not an object".to_owned())
}

fn list_length(resource: &mut Value, list: &ElementAt) -> Result<usize, String> {
    Ok(list_len(object_at(resource, &list.parent)?, &list.name))
}

/// The length of the list `name`: its value array, or its `_name` array where primitives carry only
/// extensions at the end.
fn list_len(parent: &Map<String, Value>, name: &str) -> usize {
    let len = |key: &str| parent.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    len(name).max(len(&format!("_{name}")))
}

/// The array `key` of `parent` (created when absent), padded with nulls to at least `length`.
fn padded_list<'p>(
    parent: &'p mut Map<String, Value>,
    key: &str,
    length: usize,
) -> Result<&'p mut Vec<Value>, String> {
    let entry = parent.entry(key.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = entry else { return Err(format!("{key} is not a JSON array")) };
    if list.len() < length {
        list.resize(length, Value::Null);
    }
    Ok(list)
}

/// Inserts `value` at `index` of the list `name`, and a null at the same place of its `_name` array.
fn list_insert(
    parent: &mut Map<String, Value>,
    name: &str,
    index: usize,
    value: Value,
) -> Result<(), String> {
    let length = list_len(parent, name);
    padded_list(parent, name, length)?.insert(index, value);
    let extras_key = format!("_{name}");
    if parent.contains_key(&extras_key) {
        padded_list(parent, &extras_key, length)?.insert(index, Value::Null);
    }
    Ok(())
}

/// Removes position `index` of the list `name` and of its `_name` array; an array left empty, or with
/// nulls only, goes.
fn list_remove(parent: &mut Map<String, Value>, name: &str, index: usize) {
    for key in [name.to_owned(), format!("_{name}")] {
        let Some(Value::Array(list)) = parent.get_mut(&key) else { continue };
        if index < list.len() {
            list.remove(index);
        }
        if list.iter().all(Value::is_null) {
            parent.shift_remove(&key);
        }
    }
}

/// Removes the containers a delete left empty (objects without members, arrays of nulls or of nothing),
/// from `steps` up to, not including, the resource. In a `_name` array an emptied entry becomes null, so
/// the array stays aligned with its values.
fn prune(resource: &mut Value, mut steps: Vec<Step>) {
    loop {
        let empty = match value_at(resource, &steps) {
            Some(Value::Object(members)) => members.is_empty(),
            Some(Value::Array(values)) => values.iter().all(Value::is_null),
            _ => false,
        };
        let Some(last) = steps.pop().filter(|_| empty) else { return };
        let in_extras = matches!(steps.last(), Some(Step::Key(key)) if key.starts_with('_'));
        match (value_at_mut(resource, &steps), last) {
            (Some(Value::Object(members)), Step::Key(key)) => {
                members.shift_remove(&key);
            }
            (Some(Value::Array(values)), Step::Index(index)) if index < values.len() => {
                if in_extras {
                    values[index] = Value::Null;
                } else {
                    values.remove(index);
                }
            }
            _ => return,
        }
    }
}

fn invalid_at(diagnostics: &str, expression: &str) -> InteractionError {
    InteractionError::Invalid(OperationOutcome::single(
        Issue::error(IssueType::Invalid, diagnostics).at(expression),
    ))
}
