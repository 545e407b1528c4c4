//! Reflection: `type()`, the namespace-qualified type name of each item.

use crate::EvalError;
use crate::functions::Call;
use crate::value::{Collection, Item};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    Ok(Collection(
        call.items()
            .iter()
            .map(|item| {
                let namespace = if item.is_system() { "System" } else { "FHIR" };
                Item::string(format!("{namespace}.{}", item.type_name()))
            })
            .collect(),
    ))
}
