//! Filtering and projection functions: `where`, `select`, `repeat` and `sort` (`ofType` is an operator of
//! the evaluator).

use std::cmp::Ordering;

use crate::EvalError;
use crate::ast::{Expr, Function};
use crate::distinct::ItemSet;
use crate::functions::{Call, MAX_REPEAT_ITEMS, filter, lambda_scope, select};
use crate::ops::{compare_values, singleton_value};
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let (ev, scope) = (call.ev, call.scope);
    Ok(match call.function {
        Function::Where => filter(ev, call.input, &call.args[0], scope)?,
        Function::Select => select(ev, call.input, &call.args[0], scope)?,
        Function::Sort => sort(call)?,
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

/// `sort([key, ...])` (FHIRPath 2.0): the items ordered by their keys, each key evaluated with the item as
/// `$this` and compared as `<` compares; without keys, by the items' own values. A key written `-key` sorts
/// descending, as the HL7 suite writes it (`sort(-family)`; a negated number orders the same way). An item
/// whose key is empty comes first in either direction (the suite puts a name without a family first under
/// `-family`). Equal keys keep the input order. A key of several items, or two keys `<` cannot order (a
/// string and a number, dates of different precisions), is an error.
fn sort<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let criteria: Vec<(&Expr, bool)> = call
        .args
        .iter()
        .map(|arg| match arg {
            Expr::Negate(inner) => (&**inner, true),
            key => (key, false),
        })
        .collect();
    let mut keyed = Vec::with_capacity(call.items().len());
    for (idx, item) in call.items().iter().enumerate() {
        let keys = if criteria.is_empty() {
            vec![singleton_value(&Collection(vec![item.clone()]))?]
        } else {
            let mut keys = Vec::with_capacity(criteria.len());
            for (key, _) in &criteria {
                let focus = Collection(vec![item.clone()]);
                let value = call.ev.eval(key, &focus, &lambda_scope(item, idx, call.scope))?;
                keys.push(singleton_value(&value)?);
            }
            keys
        };
        keyed.push((keys, item.clone()));
    }
    type Keyed<'a> = (Vec<Option<SystemValue>>, Item<'a>);
    let compare = |(left, _): &Keyed<'a>, (right, _): &Keyed<'a>| {
        for (idx, (a, b)) in left.iter().zip(right).enumerate() {
            let descending = criteria.get(idx).is_some_and(|(_, descending)| *descending);
            let order = match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => {
                    let order = compare_values(a, b)?.ok_or_else(|| {
                        EvalError::new(format!("sort() cannot order {a} and {b}"))
                    })?;
                    if descending { order.reverse() } else { order }
                }
            };
            if order != Ordering::Equal {
                return Ok(order);
            }
        }
        Ok(Ordering::Equal)
    };
    let sorted = merge_sort(keyed, &compare)?;
    Ok(Collection(sorted.into_iter().map(|(_, item)| item).collect()))
}

/// A stable merge sort with a comparison that may fail; unlike `slice::sort_by` it never panics, whatever
/// the comparison returns.
fn merge_sort<T, E>(
    mut items: Vec<T>,
    compare: &impl Fn(&T, &T) -> Result<Ordering, E>,
) -> Result<Vec<T>, E> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let right = merge_sort(items.split_off(items.len() / 2), compare)?;
    let left = merge_sort(items, compare)?;
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (left.peek(), right.peek()) {
        let next = if compare(b, a)? == Ordering::Less { right.next() } else { left.next() };
        merged.extend(next);
    }
    merged.extend(left);
    merged.extend(right);
    Ok(merged)
}
