//! Reflection: `type()`, the type of each item as a TypeInfo (FHIRPath "Types and Reflection").

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::EvalError;
use crate::functions::Call;
use crate::model::{SYSTEM_TYPES, TypeKind, model};
use crate::value::{Collection, Item};

/// The TypeInfo of every System type and R4 type, by namespace and name.
type TypeInfos = HashMap<(&'static str, &'static str), Value>;

/// `type()`: for each item, an object with the `namespace`, `name` and `baseType` of its type, navigated like
/// any JSON (`1.type().name` is `'Integer'`, `Patient.active.type()` is `FHIR.boolean` based on
/// `FHIR.Element`). The `element` list of a ClassInfo is not given.
pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let infos = type_infos();
    Ok(Collection(
        call.items()
            .iter()
            .filter_map(|item| infos.get(&type_of(item)))
            .map(|info| Item::node(info, None))
            .collect(),
    ))
}

/// The namespace and name of an item's type. Untyped JSON counts as System values, or a FHIR `Element` for
/// an object.
fn type_of(item: &Item<'_>) -> (&'static str, &'static str) {
    match item {
        Item::Value(value) => ("System", value.type_name()),
        Item::Node(node) if node.type_id.is_some() => ("FHIR", node.type_name()),
        Item::Node(_) => match item.system_value() {
            Some(value) => ("System", value.type_name()),
            None => ("FHIR", "Element"),
        },
    }
}

/// The TypeInfo objects, built on first use: a type without a base in the model (`Element`, `Resource`)
/// and every System type is based on `System.Any`.
fn type_infos() -> &'static TypeInfos {
    static INFOS: OnceLock<TypeInfos> = OnceLock::new();
    INFOS.get_or_init(|| {
        let info = |namespace: &str, name: &str, base: &str| {
            json!({"namespace": namespace, "name": name, "baseType": base})
        };
        let mut infos: TypeInfos = SYSTEM_TYPES
            .iter()
            .map(|&name| (("System", name), info("System", name, "System.Any")))
            .collect();
        let model = model();
        // A backbone element is typed by its base (`BackboneElement`), whose own entry is used.
        for type_def in model.types.iter().filter(|t| t.kind != TypeKind::Backbone) {
            let base = type_def
                .base
                .map_or_else(|| "System.Any".to_owned(), |b| format!("FHIR.{}", model.get(b).name));
            infos
                .entry(("FHIR", type_def.name))
                .or_insert_with(|| info("FHIR", type_def.name, &base));
        }
        infos
    })
}
