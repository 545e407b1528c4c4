//! Snapshot generation: applies a profile's differential to its base snapshot.
//!
//! Differential elements are matched to snapshot elements by element id (`Patient.identifier:mrn.system`).
//! A missing slice is created by copying the sliced element and its subtree; a missing child of a
//! complex element is reached by unfolding the element's datatype (or `contentReference`) first, so a
//! differential can constrain `Patient.identifier.system` although the base snapshot stops at
//! `Patient.identifier`. A renamed choice (`Observation.valueQuantity`) constrains `value[x]`.

use serde_json::{Map, Value};

use crate::structure::str_field;

/// Looks up the snapshot elements of a datatype StructureDefinition by canonical URL.
pub(crate) type TypeSnapshots<'a> = dyn Fn(&str) -> Result<Vec<Value>, String> + 'a;

/// Builds the snapshot of a profile from its base snapshot and its differential.
pub(crate) fn generate(
    base: &[Value],
    differential: &[Value],
    type_snapshots: &TypeSnapshots<'_>,
) -> Result<Vec<Value>, String> {
    let mut elements: Vec<Map<String, Value>> = Vec::with_capacity(base.len() + differential.len());
    for element in base {
        let Some(element) = element.as_object() else {
            return Err("base snapshot element is not an object".to_owned());
        };
        let mut element = element.clone();
        if !element.contains_key("id") {
            let id = element_id(&element);
            element.insert("id".to_owned(), Value::String(id));
        }
        elements.push(element);
    }
    let base_root =
        elements.first().and_then(|root| str_field(root, "path")).unwrap_or_default().to_owned();
    for diff in differential {
        let Some(diff) = diff.as_object() else {
            return Err("differential element is not an object".to_owned());
        };
        let mut id = match str_field(diff, "id") {
            Some(id) => id.to_owned(),
            None => element_id(diff),
        };
        // A differential of a constraint on a type may name its root differently (e.g. `Extension`).
        if let Some((root, rest)) = id.split_once('.')
            && root != base_root
            && !root.contains(':')
        {
            id = format!("{base_root}.{rest}");
        } else if !id.contains('.') && !id.contains(':') {
            id.clone_from(&base_root);
        }
        let idx = ensure(&mut elements, &id, type_snapshots, 0)?;
        merge(&mut elements[idx], diff);
    }
    Ok(elements.into_iter().map(Value::Object).collect())
}

fn element_id(element: &Map<String, Value>) -> String {
    let path = str_field(element, "path").unwrap_or_default();
    match str_field(element, "sliceName") {
        Some(slice) => format!("{path}:{slice}"),
        None => path.to_owned(),
    }
}

fn find(elements: &[Map<String, Value>], id: &str) -> Option<usize> {
    elements.iter().position(|element| str_field(element, "id") == Some(id))
}

/// Returns the index of the element with this id, creating slices and unfolding types as needed.
fn ensure(
    elements: &mut Vec<Map<String, Value>>,
    id: &str,
    type_snapshots: &TypeSnapshots<'_>,
    depth: usize,
) -> Result<usize, String> {
    if let Some(idx) = find(elements, id) {
        return Ok(idx);
    }
    if depth > 32 {
        return Err(format!("element id {id} is nested too deeply"));
    }
    let Some((parent_id, last)) = id.rsplit_once('.') else {
        return Err(format!("differential element {id} does not match the base"));
    };
    let parent_idx = ensure(elements, parent_id, type_snapshots, depth + 1)?;
    // The parent may have been found under another id (a renamed choice such as `valueCoding`).
    let actual_parent_id = str_field(&elements[parent_idx], "id").unwrap_or_default().to_owned();
    if actual_parent_id != parent_id {
        return ensure(elements, &format!("{actual_parent_id}.{last}"), type_snapshots, depth + 1);
    }
    if let Some((name, slice_name)) = last.split_once(':') {
        // A reslice (`identifier:JHN/ONHCN`) is a slice of its parent slice, copied from it.
        let sliced_id = match slice_name.rsplit_once('/') {
            Some((parent_slice, _)) => format!("{parent_id}.{name}:{parent_slice}"),
            None => format!("{parent_id}.{name}"),
        };
        let sliced_idx = ensure(elements, &sliced_id, type_snapshots, depth + 1)?;
        return Ok(create_slice(elements, sliced_idx, &sliced_id, id, slice_name));
    }
    let has_children = elements.iter().any(|element| {
        str_field(element, "id").is_some_and(|child| is_direct_child(child, parent_id))
    });
    if !has_children {
        unfold(elements, parent_idx, type_snapshots)?;
        if let Some(idx) = find(elements, id) {
            return Ok(idx);
        }
    }
    // `valueQuantity` names the `value[x]` element restricted to one type.
    let choice = elements.iter().position(|element| {
        str_field(element, "id").is_some_and(|child| {
            is_direct_child(child, parent_id)
                && child[parent_id.len() + 1..]
                    .strip_suffix("[x]")
                    .is_some_and(|prefix| last.len() > prefix.len() && last.starts_with(prefix))
        })
    });
    let Some(idx) = choice else {
        return Err(format!("differential element {id} does not match any element of the base"));
    };
    let prefix_len = str_field(&elements[idx], "path")
        .map_or(0, |path| path.rsplit('.').next().unwrap_or_default().len() - 3);
    let type_name = &last[prefix_len..];
    if let Some(Value::Array(types)) = elements[idx].get_mut("type") {
        types.retain(|type_ref| {
            type_ref.get("code").and_then(Value::as_str).is_some_and(|code| {
                code.len() == type_name.len()
                    && code[..1].eq_ignore_ascii_case(&type_name[..1])
                    && code[1..] == type_name[1..]
            })
        });
    }
    Ok(idx)
}

fn is_direct_child(id: &str, parent_id: &str) -> bool {
    id.len() > parent_id.len() + 1
        && id.starts_with(parent_id)
        && id.as_bytes()[parent_id.len()] == b'.'
        && !id[parent_id.len() + 1..].contains(['.', ':'])
}

fn create_slice(
    elements: &mut Vec<Map<String, Value>>,
    sliced_idx: usize,
    sliced_id: &str,
    slice_id: &str,
    slice_name: &str,
) -> usize {
    let mut end = sliced_idx + 1;
    while end < elements.len()
        && str_field(&elements[end], "id").is_some_and(|id| {
            id.len() > sliced_id.len()
                && id.starts_with(sliced_id)
                && matches!(id.as_bytes()[sliced_id.len()], b'.' | b':' | b'/')
        })
    {
        end += 1;
    }
    let mut slice = elements[sliced_idx].clone();
    slice.remove("slicing");
    slice.insert("id".to_owned(), Value::String(slice_id.to_owned()));
    slice.insert("sliceName".to_owned(), Value::String(slice_name.to_owned()));
    slice.insert("min".to_owned(), Value::from(0));
    let mut new_elements = vec![slice];
    let child_prefix = format!("{sliced_id}.");
    for element in &elements[sliced_idx + 1..end] {
        let Some(id) = str_field(element, "id") else { continue };
        if let Some(rest) = id.strip_prefix(&child_prefix) {
            let mut copy = element.clone();
            copy.insert("id".to_owned(), Value::String(format!("{slice_id}.{rest}")));
            new_elements.push(copy);
        }
    }
    elements.splice(end..end, new_elements);
    end
}

/// Inserts the children of a complex element's type (or `contentReference` target) below it.
fn unfold(
    elements: &mut Vec<Map<String, Value>>,
    parent_idx: usize,
    type_snapshots: &TypeSnapshots<'_>,
) -> Result<(), String> {
    let parent = &elements[parent_idx];
    let parent_id = str_field(parent, "id").unwrap_or_default().to_owned();
    let parent_path = str_field(parent, "path").unwrap_or_default().to_owned();
    let source: Vec<Map<String, Value>> = match str_field(parent, "contentReference") {
        Some(reference) => {
            let target = reference.trim_start_matches(|c| c != '#').trim_start_matches('#');
            let prefix = format!("{target}.");
            elements
                .iter()
                .filter(|element| {
                    str_field(element, "id").is_some_and(|id| id.starts_with(&prefix))
                })
                .map(|element| {
                    let mut copy = element.clone();
                    rebase(&mut copy, target, &parent_id, &parent_path);
                    copy
                })
                .collect()
        }
        None => {
            let types =
                parent.get("type").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let [type_ref] = types else {
                return Err(format!(
                    "cannot unfold {parent_id}: it does not have exactly one type"
                ));
            };
            let code = type_ref.get("code").and_then(Value::as_str).unwrap_or_default();
            let url = type_ref
                .get("profile")
                .and_then(Value::as_array)
                .and_then(|profiles| profiles.first())
                .and_then(Value::as_str)
                .map_or_else(
                    || format!("http://hl7.org/fhir/StructureDefinition/{code}"),
                    str::to_owned,
                );
            let snapshot = type_snapshots(&url)?;
            let root = snapshot
                .first()
                .and_then(|root| root.get("path"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            snapshot
                .iter()
                .skip(1)
                .filter_map(Value::as_object)
                .map(|element| {
                    let mut copy = element.clone();
                    if !copy.contains_key("id") {
                        let id = element_id(&copy);
                        copy.insert("id".to_owned(), Value::String(id));
                    }
                    rebase(&mut copy, &root, &parent_id, &parent_path);
                    copy
                })
                .collect()
        }
    };
    elements.splice(parent_idx + 1..parent_idx + 1, source);
    Ok(())
}

/// Rewrites the id and path of an element copied from under `old_root` to sit under the new parent.
fn rebase(element: &mut Map<String, Value>, old_root: &str, parent_id: &str, parent_path: &str) {
    if let Some(id) = str_field(element, "id")
        && let Some(rest) = id.strip_prefix(old_root)
    {
        let id = format!("{parent_id}{rest}");
        element.insert("id".to_owned(), Value::String(id));
    }
    if let Some(path) = str_field(element, "path")
        && let Some(rest) = path.strip_prefix(old_root)
    {
        let path = format!("{parent_path}{rest}");
        element.insert("path".to_owned(), Value::String(path));
    }
}

fn merge(element: &mut Map<String, Value>, diff: &Map<String, Value>) {
    let replaces_value =
        diff.keys().any(|key| key.starts_with("fixed") || key.starts_with("pattern"));
    if replaces_value {
        element.retain(|key, _| !key.starts_with("fixed") && !key.starts_with("pattern"));
    }
    for (key, value) in diff {
        match key.as_str() {
            "id" | "path" => {}
            "constraint" => {
                let existing =
                    element.entry("constraint").or_insert_with(|| Value::Array(Vec::new()));
                if let (Value::Array(existing), Value::Array(added)) = (existing, value) {
                    for constraint in added {
                        let key = constraint.get("key");
                        if !existing.iter().any(|old| old.get("key") == key) {
                            existing.push(constraint.clone());
                        }
                    }
                }
            }
            _ => {
                element.insert(key.clone(), value.clone());
            }
        }
    }
}
