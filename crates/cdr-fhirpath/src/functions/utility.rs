//! Utility functions: `trace`, `now`, `today` and `timeOfDay`.

use crate::EvalError;
use crate::ast::Function;
use crate::datetime::{Partial, now_utc};
use crate::functions::{Call, select, single_string};
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let ev = call.ev;
    let now = || ev.ctx.now.unwrap_or_else(now_utc);
    let value = match call.function {
        Function::Trace => {
            let name = single_string(&call.arg(0)?)?.unwrap_or_default();
            if let Some(trace) = ev.ctx.trace {
                let shown = if call.args.len() > 1 {
                    select(ev, call.input, &call.args[1], call.scope)?
                } else {
                    call.input.clone()
                };
                trace(&name, &shown);
            }
            return Ok(call.input.clone());
        }
        Function::Now => SystemValue::DateTime(now()),
        Function::Today => SystemValue::Date(now().date_part()),
        _ => SystemValue::Time(Partial { first: 3, offset: None, ..now() }),
    };
    Ok(Collection(vec![Item::Value(value)]))
}
