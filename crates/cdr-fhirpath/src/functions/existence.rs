//! Existence functions (`empty`, `exists`, `all`, `allTrue`, ..., `count`, `distinct`, `isDistinct`), and
//! `not()` from Boolean logic.

use crate::EvalError;
use crate::ast::Function;
use crate::distinct::ItemSet;
use crate::eval::bool_collection;
use crate::functions::{Call, filter, lambda_scope};
use crate::ops::{self, singleton_boolean};
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let items = call.items();
    Ok(match call.function {
        Function::Empty => bool_collection(items.is_empty()),
        Function::Exists if call.args.is_empty() => bool_collection(!items.is_empty()),
        Function::Exists => {
            bool_collection(!filter(call.ev, call.input, &call.args[0], call.scope)?.is_empty())
        }
        Function::All => {
            for (idx, item) in items.iter().enumerate() {
                let result = call.ev.eval(
                    &call.args[0],
                    &Collection(vec![item.clone()]),
                    &lambda_scope(item, idx, call.scope),
                )?;
                if singleton_boolean(&result)? != Some(true) {
                    return Ok(bool_collection(false));
                }
            }
            bool_collection(true)
        }
        Function::AllTrue => bool_collection(all_booleans(items, true)?),
        Function::AnyTrue => bool_collection(any_boolean(items, true)?),
        Function::AllFalse => bool_collection(all_booleans(items, false)?),
        Function::AnyFalse => bool_collection(any_boolean(items, false)?),
        Function::SubsetOf => {
            let other = ItemSet::index(&call.arg(0)?);
            bool_collection(items.iter().all(|item| other.contains(item)))
        }
        Function::SupersetOf => {
            let other = call.arg(0)?;
            let items = ItemSet::index(items);
            bool_collection(other.iter().all(|o| items.contains(o)))
        }
        Function::Count => Collection(vec![Item::Value(SystemValue::Integer(
            i64::try_from(items.len()).unwrap_or(i64::MAX),
        ))]),
        Function::Distinct => ops::union(call.input.clone(), Collection::new()),
        Function::IsDistinct => {
            let mut seen = ItemSet::with_capacity(items.len());
            bool_collection(items.iter().all(|item| seen.insert(item.clone())))
        }
        _ => match singleton_boolean(call.input)? {
            Some(flag) => bool_collection(!flag),
            None => Collection::new(),
        },
    })
}

fn booleans(items: &[Item<'_>]) -> Result<Vec<bool>, EvalError> {
    items
        .iter()
        .map(|item| match item.system_value() {
            Some(SystemValue::Boolean(flag)) => Ok(flag),
            _ => Err(EvalError::new("expected booleans")),
        })
        .collect()
}

fn all_booleans(items: &[Item<'_>], wanted: bool) -> Result<bool, EvalError> {
    Ok(booleans(items)?.into_iter().all(|flag| flag == wanted))
}

fn any_boolean(items: &[Item<'_>], wanted: bool) -> Result<bool, EvalError> {
    Ok(booleans(items)?.into_iter().any(|flag| flag == wanted))
}
