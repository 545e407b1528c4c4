//! Filtering and projection functions: `where`, `select` and `repeat` (`ofType` is an operator of the
//! evaluator).

use crate::EvalError;
use crate::ast::Function;
use crate::distinct::ItemSet;
use crate::functions::{Call, MAX_REPEAT_ITEMS, filter, lambda_scope, select};
use crate::value::{Collection, Item};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let (ev, scope) = (call.ev, call.scope);
    Ok(match call.function {
        Function::Where => filter(ev, call.input, &call.args[0], scope)?,
        Function::Select => select(ev, call.input, &call.args[0], scope)?,
        _ => {
            let mut out = ItemSet::default();
            let mut queue: Vec<Item<'a>> = call.items().to_vec();
            while let Some(item) = queue.pop() {
                let next = ev.eval(
                    &call.args[0],
                    &Collection(vec![item.clone()]),
                    &lambda_scope(&item, 0, scope),
                )?;
                for produced in next.0.into_iter().rev() {
                    if out.insert(produced.clone()) {
                        queue.push(produced);
                    }
                }
                if out.len() > MAX_REPEAT_ITEMS {
                    return Err(EvalError::new("repeat produced too many items"));
                }
            }
            Collection(out.into_items())
        }
    })
}
