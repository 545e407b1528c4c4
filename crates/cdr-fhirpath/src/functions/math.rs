//! Math functions: `abs`, `ceiling`, `exp`, `floor`, `ln`, `log`, `power`, `round`, `sqrt` and `truncate`.

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use crate::EvalError;
use crate::ast::Function;
use crate::functions::Call;
use crate::ops::singleton_value;
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    let Some(value) = singleton_value(call.input)? else { return Ok(Collection::new()) };
    let argument = if call.args.is_empty() { None } else { singleton_value(&call.arg(0)?)? };
    Ok(Collection(math(call.function, &value, argument)?.map(Item::Value).into_iter().collect()))
}

fn math(
    function: Function,
    value: &SystemValue,
    argument: Option<SystemValue>,
) -> Result<Option<SystemValue>, EvalError> {
    let as_decimal = |value: &SystemValue| match value {
        SystemValue::Integer(integer) => Some(Decimal::from(*integer)),
        SystemValue::Decimal(decimal) => Some(*decimal),
        _ => None,
    };
    let decimal = match value {
        SystemValue::Quantity(amount, unit) if function == Function::Abs => {
            return Ok(Some(SystemValue::Quantity(amount.abs(), unit.clone())));
        }
        other => as_decimal(other)
            .ok_or_else(|| EvalError::new(format!("{function:?} needs a number")))?,
    };
    let float = decimal.to_f64().unwrap_or(f64::NAN);
    let from_float = |result: f64| {
        Decimal::from_f64(result).map(|d| SystemValue::Decimal(d.round_dp(8).normalize()))
    };
    Ok(match function {
        Function::Abs => Some(match value {
            SystemValue::Integer(integer) => SystemValue::Integer(integer.abs()),
            _ => SystemValue::Decimal(decimal.abs()),
        }),
        Function::Ceiling => decimal.ceil().to_i64().map(SystemValue::Integer),
        Function::Floor => decimal.floor().to_i64().map(SystemValue::Integer),
        Function::Truncate => decimal.trunc().to_i64().map(SystemValue::Integer),
        Function::Exp => from_float(float.exp()),
        Function::Ln if float > 0.0 => from_float(float.ln()),
        Function::Log => {
            let base = argument.as_ref().and_then(as_decimal).and_then(|b| b.to_f64());
            match base {
                Some(base) if float > 0.0 && base > 0.0 && base != 1.0 => {
                    from_float(float.ln() / base.ln())
                }
                _ => None,
            }
        }
        Function::Power => {
            let Some(exponent) = argument else { return Ok(None) };
            match (value, &exponent) {
                (SystemValue::Integer(base), SystemValue::Integer(power)) if *power >= 0 => {
                    u32::try_from(*power)
                        .ok()
                        .and_then(|p| base.checked_pow(p))
                        .map(SystemValue::Integer)
                }
                _ => {
                    let exponent =
                        as_decimal(&exponent).and_then(|e| e.to_f64()).unwrap_or(f64::NAN);
                    let result = float.powf(exponent);
                    if result.is_finite() { from_float(result) } else { None }
                }
            }
        }
        Function::Round => {
            let places = match argument {
                Some(SystemValue::Integer(places)) if places >= 0 => {
                    u32::try_from(places).unwrap_or(0)
                }
                Some(_) => return Err(EvalError::new("round() needs a non-negative integer")),
                None => 0,
            };
            Some(SystemValue::Decimal(decimal.round_dp_with_strategy(
                places,
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            )))
        }
        Function::Sqrt if float >= 0.0 => from_float(float.sqrt()),
        _ => None,
    })
}
