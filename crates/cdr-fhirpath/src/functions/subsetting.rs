//! Subsetting functions: `single`, `first`, `last`, `tail`, `skip`, `take`, `intersect` and `exclude`.

use crate::EvalError;
use crate::ast::Function;
use crate::distinct::ItemSet;
use crate::functions::Call;
use crate::ops;
use crate::value::Collection;

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let items = call.items();
    Ok(match call.function {
        Function::Single => match items {
            [] | [_] => call.input.clone(),
            _ => return Err(EvalError::new("single() on a collection of several items")),
        },
        Function::First => Collection(items.first().cloned().into_iter().collect()),
        Function::Last => Collection(items.last().cloned().into_iter().collect()),
        Function::Tail => Collection(items.iter().skip(1).cloned().collect()),
        Function::Skip => {
            let count = call.integer_arg(0)?.unwrap_or(0);
            Collection(items.iter().skip(usize::try_from(count).unwrap_or(0)).cloned().collect())
        }
        Function::Take => {
            let count = call.integer_arg(0)?.unwrap_or(0);
            Collection(items.iter().take(usize::try_from(count).unwrap_or(0)).cloned().collect())
        }
        Function::Intersect => {
            let other = ItemSet::index(&call.arg(0)?);
            let kept = items.iter().filter(|item| other.contains(item)).cloned();
            ops::union(Collection(kept.collect()), Collection::new())
        }
        _ => {
            let other = ItemSet::index(&call.arg(0)?);
            Collection(items.iter().filter(|item| !other.contains(item)).cloned().collect())
        }
    })
}
