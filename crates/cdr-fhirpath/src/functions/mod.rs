//! The FHIRPath function library, plus the FHIR extras (`extension`, `hasValue`, `resolve`, `memberOf`, ...):
//! one module per section of the specification, chosen by [`Function::section`].

mod aggregates;
mod combining;
pub(crate) mod conversions;
mod existence;
mod fhir;
mod filtering;
mod math;
mod navigation;
mod reflection;
pub(crate) mod strings;
mod subsetting;
mod utility;

use crate::EvalError;
use crate::ast::{Expr, Function, Section};
use crate::eval::{Evaluator, Scope};
use crate::ops::{singleton_boolean, singleton_value};
use crate::value::{Collection, Item, SystemValue};

/// The most items `repeat` and `descendants` may produce.
const MAX_REPEAT_ITEMS: usize = 100_000;

/// One function call being evaluated: the function, its input, its unevaluated arguments, and the focus and
/// scope the arguments are evaluated in.
pub(crate) struct Call<'x, 'c, 'a> {
    pub(crate) ev: &'x Evaluator<'c, 'a>,
    pub(crate) function: Function,
    pub(crate) input: &'x Collection<'a>,
    pub(crate) args: &'x [Expr],
    pub(crate) focus: &'x Collection<'a>,
    pub(crate) scope: &'x Scope<'a>,
}

impl<'a> Call<'_, '_, 'a> {
    /// The input items.
    pub(crate) fn items(&self) -> &[Item<'a>] {
        &self.input.0
    }

    /// Argument `idx` evaluated against the call's focus.
    pub(crate) fn arg(&self, idx: usize) -> Result<Collection<'a>, EvalError> {
        self.ev.eval(&self.args[idx], self.focus, self.scope)
    }

    /// Argument `idx` as a single string, `None` when it is absent or empty.
    pub(crate) fn string_arg(&self, idx: usize) -> Result<Option<String>, EvalError> {
        if idx < self.args.len() { single_string(&self.arg(idx)?) } else { Ok(None) }
    }

    /// Argument `idx` as a single integer, `None` when it is absent or empty.
    pub(crate) fn integer_arg(&self, idx: usize) -> Result<Option<i64>, EvalError> {
        if idx < self.args.len() { integer_arg(&self.arg(idx)?) } else { Ok(None) }
    }
}

pub(crate) fn call<'a>(
    ev: &Evaluator<'_, 'a>,
    function: Function,
    input: &Collection<'a>,
    args: &[Expr],
    focus: &Collection<'a>,
    scope: &Scope<'a>,
) -> Result<Collection<'a>, EvalError> {
    let call = Call { ev, function, input, args, focus, scope };
    match function.section() {
        Section::Existence => existence::call(&call),
        Section::Filtering => filtering::call(&call),
        Section::Subsetting => subsetting::call(&call),
        Section::Combining => combining::call(&call),
        Section::Conversion => conversions::call(&call),
        Section::String => strings::call(&call),
        Section::Math => math::call(&call),
        Section::Navigation => navigation::call(&call),
        Section::Utility => utility::call(&call),
        Section::Aggregate => aggregates::call(&call),
        Section::Types => reflection::call(&call),
        Section::Fhir => fhir::call(&call),
    }
}

/// The scope of a lambda argument evaluated for `item`, the `idx`th input item.
pub(crate) fn lambda_scope<'a>(item: &Item<'a>, idx: usize, scope: &Scope<'a>) -> Scope<'a> {
    Scope { this: Some(item.clone()), index: Some(idx), total: scope.total.clone() }
}

/// The input items for which `criterion` is true.
pub(crate) fn filter<'a>(
    ev: &Evaluator<'_, 'a>,
    input: &Collection<'a>,
    criterion: &Expr,
    scope: &Scope<'a>,
) -> Result<Collection<'a>, EvalError> {
    let mut out = Vec::new();
    for (idx, item) in input.iter().enumerate() {
        let result =
            ev.eval(criterion, &Collection(vec![item.clone()]), &lambda_scope(item, idx, scope))?;
        if singleton_boolean(&result)? == Some(true) {
            out.push(item.clone());
        }
    }
    Ok(Collection(out))
}

/// `projection` evaluated for each input item, concatenated.
pub(crate) fn select<'a>(
    ev: &Evaluator<'_, 'a>,
    input: &Collection<'a>,
    projection: &Expr,
    scope: &Scope<'a>,
) -> Result<Collection<'a>, EvalError> {
    let mut out = Vec::new();
    for (idx, item) in input.iter().enumerate() {
        out.extend(
            ev.eval(projection, &Collection(vec![item.clone()]), &lambda_scope(item, idx, scope))?
                .0,
        );
    }
    Ok(Collection(out))
}

pub(crate) fn integer_arg(collection: &Collection<'_>) -> Result<Option<i64>, EvalError> {
    match singleton_value(collection)? {
        None => Ok(None),
        Some(SystemValue::Integer(integer)) => Ok(Some(integer)),
        Some(other) => {
            Err(EvalError::new(format!("expected an integer, found {}", other.type_name())))
        }
    }
}

pub(crate) fn single_string(collection: &Collection<'_>) -> Result<Option<String>, EvalError> {
    match collection.0.as_slice() {
        [] => Ok(None),
        [item] => match item.system_value() {
            Some(SystemValue::String(text)) => Ok(Some(text)),
            _ => Err(EvalError::new("expected a string argument")),
        },
        _ => Err(EvalError::new("expected a single string argument")),
    }
}
