//! Conversion functions: `iif`, `toX` and `convertsToX`, and the boundary functions (`lowBoundary`,
//! `highBoundary`, `precision`).

use rust_decimal::{Decimal, RoundingStrategy};

use crate::EvalError;
use crate::ast::Function;
use crate::datetime::{BoundaryOf, Partial, is_calendar_keyword};
use crate::eval::Scope;
use crate::functions::Call;
use crate::ops::singleton_value;
use crate::units;
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    match call.function {
        Function::Iif => iif(call),
        Function::LowBoundary | Function::HighBoundary | Function::Precision => {
            boundary(call.function, call.input, call.integer_arg(0)?)
        }
        function => convert(function, call.input, call.string_arg(0)?.as_deref()),
    }
}

fn iif<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let (items, args) = (call.items(), call.args);
    if items.len() > 1 {
        return Err(EvalError::new("iif() on a collection of several items"));
    }
    let iif_focus = if items.is_empty() { call.focus.clone() } else { call.input.clone() };
    let scope = &Scope {
        this: items.first().cloned().or_else(|| call.scope.this.clone()),
        ..call.scope.clone()
    };
    let criterion = call.ev.eval(&args[0], &iif_focus, scope)?;
    let decided = match criterion.0.as_slice() {
        [] => false,
        [item] => match item.system_value() {
            Some(SystemValue::Boolean(flag)) => flag,
            _ => return Err(EvalError::new("iif() criterion is not a boolean")),
        },
        _ => return Err(EvalError::new("iif() criterion has several items")),
    };
    match (decided, args.get(2)) {
        (true, _) => call.ev.eval(&args[1], &iif_focus, scope),
        (false, Some(otherwise)) => call.ev.eval(otherwise, &iif_focus, scope),
        (false, None) => Ok(Collection::new()),
    }
}

fn convert<'a>(
    function: Function,
    input: &Collection<'a>,
    unit: Option<&str>,
) -> Result<Collection<'a>, EvalError> {
    if input.len() > 1 {
        return Err(EvalError::new("conversion of a collection of several items"));
    }
    let Some(value) = singleton_value(input).ok().flatten() else {
        if input.is_empty() {
            return Ok(Collection::new());
        }
        let converts = matches!(function, Function::ConvertsToString);
        return Ok(converts_result(function, converts));
    };
    let (target, checks) = match function {
        Function::ToBoolean => (Target::Boolean, false),
        Function::ConvertsToBoolean => (Target::Boolean, true),
        Function::ToInteger => (Target::Integer, false),
        Function::ConvertsToInteger => (Target::Integer, true),
        Function::ToDecimal => (Target::Decimal, false),
        Function::ConvertsToDecimal => (Target::Decimal, true),
        Function::ToStringFn => (Target::String, false),
        Function::ConvertsToString => (Target::String, true),
        Function::ToDate => (Target::Date, false),
        Function::ConvertsToDate => (Target::Date, true),
        Function::ToDateTime => (Target::DateTime, false),
        Function::ConvertsToDateTime => (Target::DateTime, true),
        Function::ToTime => (Target::Time, false),
        Function::ConvertsToTime => (Target::Time, true),
        Function::ToQuantity => (Target::Quantity, false),
        _ => (Target::Quantity, true),
    };
    let mut converted = to_target(value, target);
    if let (Some(SystemValue::Quantity(amount, from)), Some(unit)) = (&converted, unit)
        && from != unit
    {
        converted = units::convert(*amount, from, unit)
            .map(|amount| SystemValue::Quantity(amount, unit.to_owned()));
    }
    if checks {
        return Ok(Collection(vec![Item::boolean(converted.is_some())]));
    }
    Ok(Collection(converted.map(Item::Value).into_iter().collect()))
}

fn converts_result<'a>(function: Function, converts: bool) -> Collection<'a> {
    let name = format!("{function:?}");
    if name.starts_with("ConvertsTo") {
        Collection(vec![Item::boolean(converts)])
    } else {
        Collection::new()
    }
}

#[derive(Clone, Copy)]
enum Target {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
    Quantity,
}

fn to_target(value: SystemValue, target: Target) -> Option<SystemValue> {
    use SystemValue as V;
    match (target, value) {
        (Target::Boolean, V::Boolean(flag)) => Some(V::Boolean(flag)),
        (Target::Boolean, V::Integer(integer)) => match integer {
            1 => Some(V::Boolean(true)),
            0 => Some(V::Boolean(false)),
            _ => None,
        },
        (Target::Boolean, V::Decimal(decimal)) => {
            if decimal == Decimal::ONE {
                Some(V::Boolean(true))
            } else if decimal.is_zero() {
                Some(V::Boolean(false))
            } else {
                None
            }
        }
        (Target::Boolean, V::String(text)) => match text.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(V::Boolean(true)),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(V::Boolean(false)),
            _ => None,
        },
        (Target::Integer, V::Integer(integer)) => Some(V::Integer(integer)),
        (Target::Integer, V::Boolean(flag)) => Some(V::Integer(i64::from(flag))),
        (Target::Integer, V::String(text)) => {
            let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok().map(V::Integer)
        }
        (Target::Decimal, V::Decimal(decimal)) => Some(V::Decimal(decimal)),
        (Target::Decimal, V::Integer(integer)) => Some(V::Decimal(Decimal::from(integer))),
        (Target::Decimal, V::Boolean(flag)) => {
            Some(V::Decimal(if flag { Decimal::ONE } else { Decimal::ZERO }))
        }
        (Target::Decimal, V::String(text)) => parse_decimal_text(&text).map(V::Decimal),
        (Target::String, value) => Some(V::String(value.to_string())),
        (Target::Date, V::Date(date)) => Some(V::Date(date)),
        (Target::Date, V::DateTime(date_time)) => Some(V::Date(date_time.date_part())),
        (Target::Date, V::String(text)) => Partial::parse_date(&text)
            .or_else(|| Partial::parse_date_time(&text, true).map(|d| d.date_part()))
            .map(V::Date),
        (Target::DateTime, V::DateTime(date_time) | V::Date(date_time)) => {
            Some(V::DateTime(date_time))
        }
        (Target::DateTime, V::String(text)) => {
            Partial::parse_date_time(&text, false).map(V::DateTime)
        }
        (Target::Time, V::Time(time)) => Some(V::Time(time)),
        (Target::Time, V::String(text)) => Partial::parse_time(&text).map(V::Time),
        (Target::Quantity, V::Quantity(amount, unit)) => Some(V::Quantity(amount, unit)),
        (Target::Quantity, V::Integer(integer)) => {
            Some(V::Quantity(Decimal::from(integer), "1".to_owned()))
        }
        (Target::Quantity, V::Decimal(decimal)) => Some(V::Quantity(decimal, "1".to_owned())),
        (Target::Quantity, V::Boolean(flag)) => {
            Some(V::Quantity(if flag { Decimal::ONE } else { Decimal::ZERO }, "1".to_owned()))
        }
        (Target::Quantity, V::String(text)) => parse_quantity_text(&text),
        _ => None,
    }
}

fn parse_decimal_text(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let valid = !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    text.parse().ok()
}

/// Parses `1`, `1.5 'mg'` or `4 days`.
fn parse_quantity_text(text: &str) -> Option<SystemValue> {
    let text = text.trim();
    let (number, unit) = match text.split_once(' ') {
        Some((number, unit)) => (number, Some(unit.trim())),
        None => (text, None),
    };
    let amount = parse_decimal_text(number)?;
    let unit = match unit {
        None => "1".to_owned(),
        Some(quoted) if quoted.len() >= 2 && quoted.starts_with('\'') && quoted.ends_with('\'') => {
            quoted[1..quoted.len() - 1].to_owned()
        }
        Some(word) if is_calendar_keyword(word) => word.to_owned(),
        Some(_) => return None,
    };
    Some(SystemValue::Quantity(amount, unit))
}

/// `lowBoundary`, `highBoundary` and `precision` for decimals, integers, quantities, dates, date-times and
/// times.
fn boundary<'a>(
    function: Function,
    input: &Collection<'a>,
    precision: Option<i64>,
) -> Result<Collection<'a>, EvalError> {
    let Some(value) = singleton_value(input)? else { return Ok(Collection::new()) };
    if function == Function::Precision {
        return Ok(Collection(precision_of(&value).map(Item::Value).into_iter().collect()));
    }
    let low = function == Function::LowBoundary;
    let result = match value {
        SystemValue::Decimal(decimal) => {
            decimal_boundary(decimal, precision, low).map(SystemValue::Decimal)
        }
        // An integer stands for the decimals that round to it (`1.lowBoundary()` is 0.50000000).
        SystemValue::Integer(integer) => {
            decimal_boundary(Decimal::from(integer), precision, low).map(SystemValue::Decimal)
        }
        SystemValue::Quantity(amount, unit) => decimal_boundary(amount, precision, low)
            .map(|amount| SystemValue::Quantity(amount, unit)),
        SystemValue::Date(date) => {
            date.boundary(precision.unwrap_or(8), low, BoundaryOf::Date).map(SystemValue::Date)
        }
        SystemValue::DateTime(date_time) => date_time
            .boundary(precision.unwrap_or(17), low, BoundaryOf::DateTime)
            .map(SystemValue::DateTime),
        SystemValue::Time(time) => {
            time.boundary(precision.unwrap_or(9), low, BoundaryOf::Time).map(SystemValue::Time)
        }
        SystemValue::Boolean(_) | SystemValue::String(_) => None,
    };
    Ok(Collection(result.map(Item::Value).into_iter().collect()))
}

/// `precision()`: the decimal places of a decimal, or the digits of a date, date-time or time.
fn precision_of(value: &SystemValue) -> Option<SystemValue> {
    match value {
        SystemValue::Decimal(decimal) => Some(SystemValue::Integer(i64::from(decimal.scale()))),
        SystemValue::Integer(_) => Some(SystemValue::Integer(0)),
        SystemValue::Date(date) | SystemValue::DateTime(date) | SystemValue::Time(date) => {
            date.digits().map(SystemValue::Integer)
        }
        _ => None,
    }
}

/// The boundary of the range of decimals `value` stands for (those within half a unit of its last digit),
/// to `places` decimal places (8 by default; beyond 28, what `rust_decimal` holds, the result is empty).
///
/// Where the boundary has more digits than `places`, the low boundary is truncated and the high boundary
/// rounded half up, on the magnitude, the boundaries of a negative value being those of its magnitude
/// mirrored. The FHIRPath specification leaves that rounding open; this is what the HL7 Java engine does and
/// what the HL7 suite expects (`0.0034.highBoundary(1)` is 0.0, `(-1.587).lowBoundary(2)` is -1.59).
fn decimal_boundary(value: Decimal, places: Option<i64>, low: bool) -> Option<Decimal> {
    let places = u32::try_from(places.unwrap_or(8)).ok().filter(|places| *places <= 28)?;
    let half = Decimal::try_new(5, value.scale() + 1).ok()?;
    let negative = value.is_sign_negative() && !value.is_zero();
    let magnitude = value.abs();
    let mut bound = if low == negative {
        magnitude
            .checked_add(half)?
            .round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero)
    } else {
        magnitude.checked_sub(half)?.round_dp_with_strategy(places, RoundingStrategy::ToZero)
    };
    bound.rescale(places);
    Some(if negative { -bound } else { bound })
}
