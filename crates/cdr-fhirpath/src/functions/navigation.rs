//! Tree navigation functions: `children` and `descendants`.

use serde_json::Value;

use crate::EvalError;
use crate::ast::Function;
use crate::eval::push_values;
use crate::functions::{Call, MAX_REPEAT_ITEMS};
use crate::model::model;
use crate::value::{Collection, Item};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let mut out = Vec::new();
    for item in call.items() {
        children(item, &mut out);
    }
    if call.function == Function::Descendants {
        let mut next = 0;
        while next < out.len() {
            let item = out[next].clone();
            children(&item, &mut out);
            next += 1;
            if out.len() > MAX_REPEAT_ITEMS {
                return Err(EvalError::new("descendants() produced too many items"));
            }
        }
    }
    Ok(Collection(out))
}

/// The child nodes of an item: every property of an object, typed where the model knows them.
fn children<'a>(item: &Item<'a>, out: &mut Vec<Item<'a>>) {
    let Item::Node(node) = item else { return };
    if node.is_primitive() {
        if let Some(extras) = node.extras {
            push_values(extras.get("extension"), None, model().type_by_name("Extension"), out);
        }
        return;
    }
    let Some(object) = node.value.and_then(Value::as_object) else { return };
    let model = model();
    for (key, value) in object {
        if key == "resourceType" {
            continue;
        }
        let (name, extras) = match key.strip_prefix('_') {
            Some(name) if object.contains_key(name) => continue,
            Some(name) => (name, Some(value)),
            None => (key.as_str(), object.get(&format!("_{key}"))),
        };
        let value = if key.starts_with('_') { None } else { Some(value) };
        let type_id =
            node.type_id.and_then(|owner| match model.element(owner, name) {
                Some(element) if !element.choice => element.types.first().copied(),
                _ => {
                    let split = name.find(|c: char| c.is_ascii_uppercase())?;
                    let element = model.element(owner, &name[..split])?;
                    element.types.iter().copied().find(|&t| {
                        crate::eval::choice_key(&name[..split], model.get(t).name) == name
                    })
                }
            });
        push_values(value, extras, type_id, out);
    }
}
