//! Aggregates: `aggregate(aggregator [, init])`, with `$total` bound to the running result.

use crate::EvalError;
use crate::eval::Scope;
use crate::functions::Call;
use crate::value::Collection;

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let mut total = if call.args.len() > 1 { call.arg(1)? } else { Collection::new() };
    for (idx, item) in call.items().iter().enumerate() {
        let aggregate_scope =
            Scope { this: Some(item.clone()), index: Some(idx), total: Some(total.clone()) };
        total = call.ev.eval(&call.args[0], &Collection(vec![item.clone()]), &aggregate_scope)?;
    }
    Ok(total)
}
