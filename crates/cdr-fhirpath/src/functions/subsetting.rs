//! Subsetting functions: `single`, `first`, `last`, `tail`, `skip`, `take`, `intersect` and `exclude`.

use crate::EvalError;
use crate::ast::Function;
use crate::functions::Call;
use crate::ops::{self, items_equal};
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
            let other = call.arg(0)?;
            let kept = items
                .iter()
                .filter(|item| other.iter().any(|o| items_equal(item, o) == Some(true)))
                .cloned();
            ops::union(Collection(kept.collect()), Collection::new())
        }
        _ => {
            let other = call.arg(0)?;
            Collection(
                items
                    .iter()
                    .filter(|item| !other.iter().any(|o| items_equal(item, o) == Some(true)))
                    .cloned()
                    .collect(),
            )
        }
    })
}
