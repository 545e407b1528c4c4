//! The functions FHIR adds to FHIRPath: `extension`, `hasValue`, `getValue`, `resolve`, `memberOf`,
//! `conformsTo` and `htmlChecks`, with FHIRPath 2.0's `comparable`; those needing terminology or profile
//! knowledge the engine does not have (`subsumes`, `subsumedBy`, `elementDefinition`, `slice`,
//! `checkModifiers`) yield empty.

use serde_json::Value;

use crate::EvalError;
use crate::ast::Function;
use crate::eval::{Evaluator, bool_collection, resource_type_of};
use crate::functions::{Call, strings};
use crate::model::model;
use crate::ops::{singleton_value, units_comparable};
use crate::value::{Collection, Item, Node, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let (ev, items) = (call.ev, call.items());
    Ok(match call.function {
        Function::Extension => {
            let Some(url) = call.string_arg(0)? else { return Ok(Collection::new()) };
            let mut extensions = Vec::new();
            for item in items {
                ev.child(item, "extension", &mut extensions)?;
            }
            Collection(
                extensions
                    .into_iter()
                    .filter(|e| {
                        e.json().and_then(|v| v.get("url")).and_then(Value::as_str)
                            == Some(url.as_str())
                    })
                    .collect(),
            )
        }
        Function::HasValue => bool_collection(
            matches!(items, [Item::Node(node)] if node.is_primitive() && node.value.is_some()),
        ),
        Function::GetValue => Collection(
            items
                .iter()
                .filter(|item| matches!(item, Item::Node(node) if node.is_primitive()))
                .filter_map(Item::system_value)
                .map(Item::Value)
                .collect(),
        ),
        Function::Resolve => {
            let mut out = Vec::new();
            for item in items {
                resolve(ev, item, &mut out);
            }
            Collection(out)
        }
        Function::MemberOf => {
            let Some(value_set) = call.string_arg(0)? else { return Ok(Collection::new()) };
            let (Some(member_of), [item]) = (ev.ctx.member_of, items) else {
                return Ok(Collection::new());
            };
            Collection(member_of(item, &value_set).map(Item::boolean).into_iter().collect())
        }
        Function::ConformsTo => {
            let Some(profile) = call.string_arg(0)? else { return Ok(Collection::new()) };
            conforms_to(ev, items, &profile)?
        }
        Function::Comparable => {
            let other = call.arg(0)?;
            match (singleton_value(call.input)?, singleton_value(&other)?) {
                (Some(SystemValue::Quantity(_, left)), Some(SystemValue::Quantity(_, right))) => {
                    bool_collection(units_comparable(&left, &right))
                }
                (None, _) | (_, None) => Collection::new(),
                _ => return Err(EvalError::new("comparable() compares two quantities")),
            }
        }
        Function::HtmlChecks => {
            bool_collection(items.iter().all(|item| {
                strings::html_is_safe(item.json().and_then(Value::as_str).unwrap_or(""))
            }))
        }
        _ => Collection::new(),
    })
}

fn conforms_to<'a>(
    ev: &Evaluator<'_, 'a>,
    items: &[Item<'a>],
    profile: &str,
) -> Result<Collection<'a>, EvalError> {
    if !profile.starts_with("http://hl7.org/fhir/StructureDefinition/")
        && ev.ctx.conforms_to.is_none()
    {
        return Err(EvalError::new(format!("unknown profile {profile}")));
    }
    let Some(resource) = items.first().and_then(Item::json) else {
        return Ok(Collection::new());
    };
    Ok(match ev.ctx.conforms_to {
        Some(conforms_to) => {
            Collection(conforms_to(resource, profile).map(Item::boolean).into_iter().collect())
        }
        None => {
            let declared = profile.rsplit('/').next().unwrap_or_default();
            let actual = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
            bool_collection(declared == actual)
        }
    })
}

fn resolve<'a>(ev: &Evaluator<'_, 'a>, item: &Item<'a>, out: &mut Vec<Item<'a>>) {
    let reference = match item {
        Item::Node(node) => match node.value {
            Some(Value::Object(object)) => object.get("reference").and_then(Value::as_str),
            Some(Value::String(text)) => Some(text.as_str()),
            _ => None,
        },
        Item::Value(_) => None,
    };
    let Some(reference) = reference else { return };
    if let Some(local_id) = reference.strip_prefix('#') {
        let container = ev.resource.or(ev.root_resource);
        let contained = container.and_then(|r| r.get("contained")).and_then(Value::as_array);
        if let Some(found) = contained
            .into_iter()
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(local_id))
        {
            out.push(Item::node(found, resource_type_of(found)));
        }
        return;
    }
    // Within a Bundle, entries are found by fullUrl (or by their type/id).
    let bundle = ev
        .root_resource
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"));
    let entries = bundle.and_then(|b| b.get("entry")).and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        let Some(resource) = entry.get("resource") else { continue };
        let type_and_id = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .zip(resource.get("id").and_then(Value::as_str));
        let matches = full_url == Some(reference)
            || full_url.is_some_and(|url| url.ends_with(&format!("/{reference}")))
            || type_and_id.is_some_and(|(t, id)| reference == format!("{t}/{id}"));
        if matches {
            out.push(Item::node(resource, resource_type_of(resource)));
            return;
        }
    }
    // Otherwise the target is known only by its type.
    let path = reference.find("/_history/").map_or(reference, |idx| &reference[..idx]);
    let type_name = path.rsplit('/').nth(1);
    let type_id =
        type_name.and_then(|name| model().type_by_name(name)).filter(|&t| model().is_resource(t));
    if let Some(type_id) = type_id {
        out.push(Item::Node(Node { value: None, extras: None, type_id: Some(type_id) }));
    }
}
