//! Combining functions: `union` (which removes duplicates) and `combine` (which keeps them).

use crate::EvalError;
use crate::ast::Function;
use crate::functions::Call;
use crate::ops;
use crate::value::Collection;

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let other = call.arg(0)?;
    Ok(match call.function {
        Function::Union => ops::union(call.input.clone(), other),
        _ => Collection(call.items().iter().cloned().chain(other.0).collect()),
    })
}
