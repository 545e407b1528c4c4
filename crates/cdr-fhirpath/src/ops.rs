//! Operators: equality and equivalence, ordering, arithmetic, string concatenation, boolean logic,
//! collection membership and union.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::EvalError;
use crate::ast::BinaryOp;
use crate::datetime::{CalendarUnit, Partial};
use crate::distinct::ItemSet;
use crate::eval::bool_collection;
use crate::units;
use crate::value::{Collection, Item, SystemValue};

pub(crate) fn binary<'a>(
    op: BinaryOp,
    left: Collection<'a>,
    right: Collection<'a>,
) -> Result<Collection<'a>, EvalError> {
    let optional = |value: Option<bool>| Collection(value.map(Item::boolean).into_iter().collect());
    Ok(match op {
        BinaryOp::Union => union(left, right),
        BinaryOp::Equal => optional(collections_equal(&left, &right)),
        BinaryOp::NotEqual => optional(collections_equal(&left, &right).map(|equal| !equal)),
        BinaryOp::Equivalent => bool_collection(collections_equivalent(&left, &right)),
        BinaryOp::NotEquivalent => bool_collection(!collections_equivalent(&left, &right)),
        BinaryOp::And => {
            let (a, b) = (singleton_boolean(&left)?, singleton_boolean(&right)?);
            optional(match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        BinaryOp::Or => {
            let (a, b) = (singleton_boolean(&left)?, singleton_boolean(&right)?);
            optional(match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            })
        }
        BinaryOp::Xor => {
            let (a, b) = (singleton_boolean(&left)?, singleton_boolean(&right)?);
            optional(a.zip(b).map(|(a, b)| a != b))
        }
        BinaryOp::Implies => {
            let (a, b) = (singleton_boolean(&left)?, singleton_boolean(&right)?);
            optional(match (a, b) {
                (Some(false), _) | (_, Some(true)) => Some(true),
                (Some(true), Some(false)) => Some(false),
                _ => None,
            })
        }
        BinaryOp::In | BinaryOp::Contains => {
            let (element, container) =
                if op == BinaryOp::In { (left, right) } else { (right, left) };
            match element.0.as_slice() {
                [] => Collection::new(),
                [item] => bool_collection(
                    container.iter().any(|candidate| items_equal(item, candidate) == Some(true)),
                ),
                _ => return Err(EvalError::new("membership needs a single item")),
            }
        }
        BinaryOp::Concatenate => {
            let text = |c: &Collection<'_>| -> Result<String, EvalError> {
                match c.0.as_slice() {
                    [] => Ok(String::new()),
                    [item] => Ok(item.system_value().map(|v| v.to_string()).unwrap_or_default()),
                    _ => Err(EvalError::new("& needs single items")),
                }
            };
            Collection(vec![Item::string(text(&left)? + &text(&right)?)])
        }
        BinaryOp::Less | BinaryOp::Greater | BinaryOp::LessOrEqual | BinaryOp::GreaterOrEqual => {
            let (Some(a), Some(b)) = (singleton_value(&left)?, singleton_value(&right)?) else {
                return Ok(Collection::new());
            };
            let ordering = compare_values(&a, &b)?;
            optional(ordering.map(|ordering| match op {
                BinaryOp::Less => ordering == Ordering::Less,
                BinaryOp::Greater => ordering == Ordering::Greater,
                BinaryOp::LessOrEqual => ordering != Ordering::Greater,
                _ => ordering != Ordering::Less,
            }))
        }
        BinaryOp::Add
        | BinaryOp::Subtract
        | BinaryOp::Multiply
        | BinaryOp::Divide
        | BinaryOp::IntegerDivide
        | BinaryOp::Modulo => {
            let (Some(a), Some(b)) = (singleton_value(&left)?, singleton_value(&right)?) else {
                return Ok(Collection::new());
            };
            Collection(arithmetic(op, a, b)?.map(Item::Value).into_iter().collect())
        }
    })
}

pub(crate) fn union<'a>(left: Collection<'a>, right: Collection<'a>) -> Collection<'a> {
    let mut out = ItemSet::with_capacity(left.len() + right.len());
    for item in left.0.into_iter().chain(right.0) {
        out.insert(item);
    }
    Collection(out.into_items())
}

/// The single boolean of a collection: empty is `None`; a non-boolean single item counts as `true`.
pub(crate) fn singleton_boolean(collection: &Collection<'_>) -> Result<Option<bool>, EvalError> {
    match collection.0.as_slice() {
        [] => Ok(None),
        [item] => match item.system_value() {
            Some(SystemValue::Boolean(flag)) => Ok(Some(flag)),
            _ => Ok(Some(true)),
        },
        _ => Err(EvalError::new("expected a single boolean, found several items")),
    }
}

pub(crate) fn singleton_value(
    collection: &Collection<'_>,
) -> Result<Option<SystemValue>, EvalError> {
    match collection.0.as_slice() {
        [] => Ok(None),
        [item] => match item.system_value() {
            Some(value) => Ok(Some(value)),
            None => Err(EvalError::new(format!(
                "expected a primitive value, found {}",
                item.type_name()
            ))),
        },
        _ => Err(EvalError::new("expected a single item, found several")),
    }
}

pub(crate) fn negate<'a>(operand: &Collection<'a>) -> Result<Collection<'a>, EvalError> {
    let Some(value) = singleton_value(operand)? else { return Ok(Collection::new()) };
    let negated = match value {
        SystemValue::Integer(integer) => SystemValue::Integer(-integer),
        SystemValue::Decimal(decimal) => SystemValue::Decimal(-decimal),
        SystemValue::Quantity(amount, unit) => SystemValue::Quantity(-amount, unit),
        other => return Err(EvalError::new(format!("cannot negate a {}", other.type_name()))),
    };
    Ok(Collection(vec![Item::Value(negated)]))
}

pub(crate) fn collections_equal(left: &Collection<'_>, right: &Collection<'_>) -> Option<bool> {
    if left.is_empty() || right.is_empty() {
        return None;
    }
    if left.len() != right.len() {
        return Some(false);
    }
    let mut result = Some(true);
    for (a, b) in left.iter().zip(right.iter()) {
        match items_equal(a, b) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => result = None,
        }
    }
    result
}

pub(crate) fn items_equal(left: &Item<'_>, right: &Item<'_>) -> Option<bool> {
    match (left.system_value(), right.system_value()) {
        (Some(a), Some(b)) => values_equal(&a, &b),
        (None, None) => match (left, right) {
            (Item::Node(a), Item::Node(b)) => Some(a.value == b.value && a.extras == b.extras),
            _ => Some(false),
        },
        _ => Some(false),
    }
}

pub(crate) fn values_equal(left: &SystemValue, right: &SystemValue) -> Option<bool> {
    match (left, right) {
        (SystemValue::String(a), SystemValue::String(b)) => Some(a == b),
        (SystemValue::Boolean(a), SystemValue::Boolean(b)) => Some(a == b),
        (
            SystemValue::Date(a) | SystemValue::DateTime(a),
            SystemValue::Date(b) | SystemValue::DateTime(b),
        )
        | (SystemValue::Time(a), SystemValue::Time(b)) => {
            a.compare(b).map(|o| o == Ordering::Equal)
        }
        (SystemValue::Quantity(_, unit_a), SystemValue::Quantity(_, unit_b)) => {
            if calendar_against_definite(unit_a, unit_b) {
                return None;
            }
            Some(compare_quantities(left, right).ok().flatten() == Some(Ordering::Equal))
        }
        _ => match (number(left), number(right)) {
            (Some(a), Some(b)) => Some(a == b),
            _ => Some(false),
        },
    }
}

fn number(value: &SystemValue) -> Option<Decimal> {
    match value {
        SystemValue::Integer(integer) => Some(Decimal::from(*integer)),
        SystemValue::Decimal(decimal) => Some(*decimal),
        _ => None,
    }
}

pub(crate) fn collections_equivalent(left: &Collection<'_>, right: &Collection<'_>) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let mut used = vec![false; right.len()];
    'outer: for a in left.iter() {
        for (idx, b) in right.iter().enumerate() {
            if !used[idx] && items_equivalent(a, b) {
                used[idx] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

pub(crate) fn items_equivalent(left: &Item<'_>, right: &Item<'_>) -> bool {
    match (left.system_value(), right.system_value()) {
        (Some(a), Some(b)) => values_equivalent(&a, &b),
        (None, None) => items_equal(left, right) == Some(true),
        _ => false,
    }
}

fn values_equivalent(left: &SystemValue, right: &SystemValue) -> bool {
    match (left, right) {
        (SystemValue::String(a), SystemValue::String(b)) => {
            normalize_string(a) == normalize_string(b)
        }
        (
            SystemValue::Date(a) | SystemValue::DateTime(a),
            SystemValue::Date(b) | SystemValue::DateTime(b),
        )
        | (SystemValue::Time(a), SystemValue::Time(b)) => a.compare(b) == Some(Ordering::Equal),
        (SystemValue::Quantity(a, unit_a), SystemValue::Quantity(b, unit_b)) => {
            quantities_equivalent((*a, unit_a), (*b, unit_b))
        }
        _ => match (number(left), number(right)) {
            (Some(a), Some(b)) => decimals_equivalent(a, b),
            _ => values_equal(left, right) == Some(true),
        },
    }
}

fn normalize_string(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

pub(crate) fn compare_values(
    left: &SystemValue,
    right: &SystemValue,
) -> Result<Option<Ordering>, EvalError> {
    match (left, right) {
        (SystemValue::String(a), SystemValue::String(b)) => Ok(Some(a.cmp(b))),
        (
            SystemValue::Date(a) | SystemValue::DateTime(a),
            SystemValue::Date(b) | SystemValue::DateTime(b),
        )
        | (SystemValue::Time(a), SystemValue::Time(b)) => Ok(a.compare(b)),
        (SystemValue::Quantity(..), SystemValue::Quantity(..)) => compare_quantities(left, right),
        _ => match (number(left), number(right)) {
            (Some(a), Some(b)) => Ok(Some(a.cmp(&b))),
            _ => Err(EvalError::new(format!(
                "cannot compare {} with {}",
                left.type_name(),
                right.type_name()
            ))),
        },
    }
}

/// Converts a quantity to the base units of its dimension for comparison (see [`units`]); a unit the engine
/// does not convert stays as it is.
pub(crate) fn canonical_unit(amount: Decimal, unit: &str) -> (Decimal, String) {
    match units::canonical(unit).and_then(|c| Some((c.convert(amount, None)?, c.dimension_text())))
    {
        Some(converted) => converted,
        None => (amount, unit.to_owned()),
    }
}

/// Whether two units can be compared: the same unit, or units of one dimension the engine converts
/// (`comparable()`: `'cm'` and `'[in_i]'` can, `'cm'` and `'s'` cannot).
pub(crate) fn units_comparable(left: &str, right: &str) -> bool {
    left == right
        || units::canonical(left)
            .zip(units::canonical(right))
            .is_some_and(|(a, b)| a.dimension == b.dimension)
}

/// Whether `=` leaves the quantities unordered: a calendar year or month against a definite duration
/// (`1 year = 1 'a'` is empty in FHIRPath, while `1 week = 1 'wk'` is true).
fn calendar_against_definite(left: &str, right: &str) -> bool {
    let indefinite = |unit: &str| matches!(unit, "year" | "years" | "month" | "months");
    let time = |unit: &str| units::canonical(unit).is_some_and(|c| c.is_time());
    indefinite(left) != indefinite(right) && time(left) && time(right)
}

/// `~` on quantities: in the coarser of the two units, the values rounded to the fewer decimal places are
/// equal (`4 'g' ~ 4040 'mg'`, as 4.040 g is 4 g to the precision of `4 'g'`).
fn quantities_equivalent(left: (Decimal, &str), right: (Decimal, &str)) -> bool {
    let (Some(left_unit), Some(right_unit)) = (units::canonical(left.1), units::canonical(right.1))
    else {
        return left.1 == right.1 && decimals_equivalent(left.0, right.0);
    };
    if left_unit.dimension != right_unit.dimension {
        return false;
    }
    let converted = if right_unit.is_coarser_than(&left_unit) {
        left_unit.convert(left.0, Some(&right_unit)).map(|a| (a, right.0))
    } else if left_unit.is_coarser_than(&right_unit) {
        right_unit.convert(right.0, Some(&left_unit)).map(|b| (left.0, b))
    } else {
        Some((left.0, right.0))
    };
    converted.is_some_and(|(a, b)| decimals_equivalent(a, b))
}

/// Decimal `~`: equal when rounded to the fewer decimal places of the two.
fn decimals_equivalent(left: Decimal, right: Decimal) -> bool {
    let scale = left.scale().min(right.scale());
    left.round_dp(scale) == right.round_dp(scale)
}

fn compare_quantities(
    left: &SystemValue,
    right: &SystemValue,
) -> Result<Option<Ordering>, EvalError> {
    let (SystemValue::Quantity(a, unit_a), SystemValue::Quantity(b, unit_b)) = (left, right) else {
        return Ok(None);
    };
    let (a, unit_a) = canonical_unit(*a, unit_a);
    let (b, unit_b) = canonical_unit(*b, unit_b);
    if unit_a != unit_b {
        return Ok(None);
    }
    Ok(Some(a.cmp(&b)))
}

fn arithmetic(
    op: BinaryOp,
    left: SystemValue,
    right: SystemValue,
) -> Result<Option<SystemValue>, EvalError> {
    use SystemValue as V;
    Ok(match (op, left, right) {
        (BinaryOp::Add, V::String(a), V::String(b)) => Some(V::String(a + &b)),
        (BinaryOp::Add | BinaryOp::Subtract, V::Date(date), V::Quantity(amount, unit)) => {
            add_duration(date, amount, &unit, op == BinaryOp::Subtract)?.map(V::Date)
        }
        (BinaryOp::Add | BinaryOp::Subtract, V::DateTime(date), V::Quantity(amount, unit)) => {
            add_duration(date, amount, &unit, op == BinaryOp::Subtract)?.map(V::DateTime)
        }
        (BinaryOp::Add | BinaryOp::Subtract, V::Time(time), V::Quantity(amount, unit)) => {
            add_duration(time, amount, &unit, op == BinaryOp::Subtract)?.map(V::Time)
        }
        (BinaryOp::Add | BinaryOp::Subtract, V::Quantity(a, unit_a), V::Quantity(b, unit_b)) => {
            if unit_a != unit_b {
                return Ok(None);
            }
            Some(V::Quantity(if op == BinaryOp::Add { a + b } else { a - b }, unit_a))
        }
        (BinaryOp::Multiply, V::Quantity(a, unit), other)
        | (BinaryOp::Multiply, other, V::Quantity(a, unit)) => {
            match (other, number(&V::Quantity(a, unit.clone()))) {
                (V::Quantity(b, other_unit), _) => {
                    let combined = if unit == "1" {
                        other_unit
                    } else if other_unit == "1" {
                        unit
                    } else {
                        format!("{unit}.{other_unit}")
                    };
                    a.checked_mul(b).map(|value| V::Quantity(value, combined))
                }
                (scalar, _) => number(&scalar)
                    .and_then(|b| a.checked_mul(b))
                    .map(|value| V::Quantity(value, unit)),
            }
        }
        (BinaryOp::Divide, V::Quantity(a, unit_a), V::Quantity(b, unit_b)) => {
            if b.is_zero() {
                return Ok(None);
            }
            let unit = if unit_a == unit_b { "1".to_owned() } else { format!("{unit_a}/{unit_b}") };
            a.checked_div(b).map(|value| V::Quantity(value.normalize(), unit))
        }
        (BinaryOp::Divide, V::Quantity(a, unit), scalar) => {
            let Some(b) = number(&scalar) else { return Err(mismatch()) };
            if b.is_zero() { None } else { a.checked_div(b).map(|value| V::Quantity(value, unit)) }
        }
        (op, V::Integer(a), V::Integer(b)) if op != BinaryOp::Divide => match op {
            BinaryOp::Add => a.checked_add(b).map(V::Integer),
            BinaryOp::Subtract => a.checked_sub(b).map(V::Integer),
            BinaryOp::Multiply => a.checked_mul(b).map(V::Integer),
            BinaryOp::IntegerDivide => a.checked_div(b).map(V::Integer),
            _ => a.checked_rem(b).map(V::Integer),
        },
        (op, left, right) => {
            let (Some(a), Some(b)) = (number(&left), number(&right)) else {
                return Err(mismatch());
            };
            let result = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Subtract => a.checked_sub(b),
                BinaryOp::Multiply => a.checked_mul(b),
                BinaryOp::Divide => a.checked_div(b).map(|q| q.normalize()),
                BinaryOp::IntegerDivide => {
                    return Ok(a.checked_div(b).and_then(|q| q.trunc().to_i64()).map(V::Integer));
                }
                _ => a.checked_rem(b),
            };
            result.map(V::Decimal)
        }
    })
}

fn mismatch() -> EvalError {
    EvalError::new("operands of incompatible types")
}

fn add_duration(
    value: Partial,
    amount: Decimal,
    unit: &str,
    subtract: bool,
) -> Result<Option<Partial>, EvalError> {
    let Some(calendar_unit) = CalendarUnit::from_unit(unit) else {
        return Err(EvalError::new(format!(
            "'{unit}' is not a duration unit that date arithmetic accepts"
        )));
    };
    let amount = if subtract { -amount } else { amount };
    let (whole, unit) = match calendar_unit {
        CalendarUnit::Second if !amount.fract().is_zero() => {
            ((amount * Decimal::from(1000)).trunc().to_i64(), CalendarUnit::Millisecond)
        }
        _ => (amount.trunc().to_i64(), calendar_unit),
    };
    Ok(whole.and_then(|whole| value.add(whole, unit)))
}
