//! The FHIRPath function library, plus the FHIR extras (`extension`, `hasValue`, `resolve`, `memberOf`, ...).

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde_json::Value;

use crate::ast::{Expr, Function};
use crate::datetime::{Partial, now_utc};
use crate::eval::{Evaluator, Scope, bool_collection, push_values, resource_type_of};
use crate::model::model;
use crate::ops::{self, items_equal, singleton_boolean, singleton_value};
use crate::value::{Collection, Item, Node, SystemValue};
use crate::{EvalError, conversions, strings};

/// The most items `repeat` and `descendants` may produce.
const MAX_REPEAT_ITEMS: usize = 100_000;

#[allow(clippy::too_many_lines, reason = "one arm per function keeps the library in one table")]
pub(crate) fn call<'a>(
    ev: &Evaluator<'_, 'a>,
    function: Function,
    input: &Collection<'a>,
    args: &[Expr],
    focus: &Collection<'a>,
    scope: &Scope<'a>,
) -> Result<Collection<'a>, EvalError> {
    let arg =
        |idx: usize| -> Result<Collection<'a>, EvalError> { ev.eval(&args[idx], focus, scope) };
    let items = &input.0;
    let one = |value: SystemValue| Collection(vec![Item::Value(value)]);
    Ok(match function {
        Function::Empty => bool_collection(items.is_empty()),
        Function::Exists if args.is_empty() => bool_collection(!items.is_empty()),
        Function::Exists => bool_collection(!filter(ev, input, &args[0], scope)?.is_empty()),
        Function::All => {
            for (idx, item) in items.iter().enumerate() {
                let result = ev.eval(
                    &args[0],
                    &Collection(vec![item.clone()]),
                    &lambda_scope(item, idx, scope),
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
            let other = arg(0)?;
            bool_collection(
                items.iter().all(|item| other.iter().any(|o| items_equal(item, o) == Some(true))),
            )
        }
        Function::SupersetOf => {
            let other = arg(0)?;
            bool_collection(
                other.iter().all(|o| items.iter().any(|item| items_equal(item, o) == Some(true))),
            )
        }
        Function::Count => {
            one(SystemValue::Integer(i64::try_from(items.len()).unwrap_or(i64::MAX)))
        }
        Function::Distinct => ops::union(input.clone(), Collection::new()),
        Function::IsDistinct => {
            bool_collection(ops::union(input.clone(), Collection::new()).len() == items.len())
        }
        Function::Where => filter(ev, input, &args[0], scope)?,
        Function::Select => {
            let mut out = Vec::new();
            for (idx, item) in items.iter().enumerate() {
                out.extend(
                    ev.eval(
                        &args[0],
                        &Collection(vec![item.clone()]),
                        &lambda_scope(item, idx, scope),
                    )?
                    .0,
                );
            }
            Collection(out)
        }
        Function::Repeat => {
            let mut out: Vec<Item<'a>> = Vec::new();
            let mut queue: Vec<Item<'a>> = items.clone();
            while let Some(item) = queue.pop() {
                let next = ev.eval(
                    &args[0],
                    &Collection(vec![item.clone()]),
                    &lambda_scope(&item, 0, scope),
                )?;
                for produced in next.0.into_iter().rev() {
                    if !out.iter().any(|existing| items_equal(existing, &produced) == Some(true)) {
                        out.push(produced.clone());
                        queue.push(produced);
                    }
                }
                if out.len() > MAX_REPEAT_ITEMS {
                    return Err(EvalError::new("repeat produced too many items"));
                }
            }
            Collection(out)
        }
        Function::Single => match items.as_slice() {
            [] | [_] => input.clone(),
            _ => return Err(EvalError::new("single() on a collection of several items")),
        },
        Function::First => Collection(items.first().cloned().into_iter().collect()),
        Function::Last => Collection(items.last().cloned().into_iter().collect()),
        Function::Tail => Collection(items.iter().skip(1).cloned().collect()),
        Function::Skip => {
            let count = integer_arg(&arg(0)?)?.unwrap_or(0);
            Collection(items.iter().skip(usize::try_from(count).unwrap_or(0)).cloned().collect())
        }
        Function::Take => {
            let count = integer_arg(&arg(0)?)?.unwrap_or(0);
            Collection(items.iter().take(usize::try_from(count).unwrap_or(0)).cloned().collect())
        }
        Function::Intersect => {
            let other = arg(0)?;
            let kept = items
                .iter()
                .filter(|item| other.iter().any(|o| items_equal(item, o) == Some(true)))
                .cloned();
            ops::union(Collection(kept.collect()), Collection::new())
        }
        Function::Exclude => {
            let other = arg(0)?;
            Collection(
                items
                    .iter()
                    .filter(|item| !other.iter().any(|o| items_equal(item, o) == Some(true)))
                    .cloned()
                    .collect(),
            )
        }
        Function::Union => ops::union(input.clone(), arg(0)?),
        Function::Combine => Collection(items.iter().cloned().chain(arg(0)?.0).collect()),
        Function::Iif => {
            if items.len() > 1 {
                return Err(EvalError::new("iif() on a collection of several items"));
            }
            let iif_focus = if items.is_empty() { focus.clone() } else { input.clone() };
            let iif_scope = Scope {
                this: items.first().cloned().or_else(|| scope.this.clone()),
                ..scope.clone()
            };
            let scope = &iif_scope;
            let criterion = ev.eval(&args[0], &iif_focus, scope)?;
            let decided = match criterion.0.as_slice() {
                [] => false,
                [item] => match item.system_value() {
                    Some(SystemValue::Boolean(flag)) => flag,
                    _ => return Err(EvalError::new("iif() criterion is not a boolean")),
                },
                _ => return Err(EvalError::new("iif() criterion has several items")),
            };
            match (decided, args.get(2)) {
                (true, _) => ev.eval(&args[1], &iif_focus, scope)?,
                (false, Some(otherwise)) => ev.eval(otherwise, &iif_focus, scope)?,
                (false, None) => Collection::new(),
            }
        }
        Function::Not => match singleton_boolean(input)? {
            Some(flag) => bool_collection(!flag),
            None => Collection::new(),
        },
        Function::ToBoolean
        | Function::ConvertsToBoolean
        | Function::ToInteger
        | Function::ConvertsToInteger
        | Function::ToDecimal
        | Function::ConvertsToDecimal
        | Function::ToStringFn
        | Function::ConvertsToString
        | Function::ToDate
        | Function::ConvertsToDate
        | Function::ToDateTime
        | Function::ConvertsToDateTime
        | Function::ToTime
        | Function::ConvertsToTime
        | Function::ToQuantity
        | Function::ConvertsToQuantity => {
            let unit = if args.is_empty() { None } else { single_string(&arg(0)?)? };
            conversions::convert(function, input, unit.as_deref())?
        }
        Function::IndexOf
        | Function::Substring
        | Function::StartsWith
        | Function::EndsWith
        | Function::ContainsFn
        | Function::Upper
        | Function::Lower
        | Function::Replace
        | Function::Matches
        | Function::ReplaceMatches
        | Function::Length
        | Function::ToChars
        | Function::Split
        | Function::Trim
        | Function::Encode
        | Function::Decode
        | Function::Escape
        | Function::Unescape => {
            let mut evaluated = Vec::with_capacity(args.len());
            for idx in 0..args.len() {
                evaluated.push(arg(idx)?);
            }
            strings::call(function, input, &evaluated)?
        }
        Function::Join => {
            let separator = if args.is_empty() { None } else { single_string(&arg(0)?)? };
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| EvalError::new("join() needs strings"))?,
                );
            }
            Collection(vec![Item::string(parts.join(separator.as_deref().unwrap_or("")))])
        }
        Function::Abs
        | Function::Ceiling
        | Function::Exp
        | Function::Floor
        | Function::Ln
        | Function::Log
        | Function::Power
        | Function::Round
        | Function::Sqrt
        | Function::Truncate => {
            let Some(value) = singleton_value(input)? else { return Ok(Collection::new()) };
            let argument = if args.is_empty() { None } else { singleton_value(&arg(0)?)? };
            Collection(math(function, value, argument)?.map(Item::Value).into_iter().collect())
        }
        Function::Children => {
            let mut out = Vec::new();
            for item in items {
                children(item, &mut out);
            }
            Collection(out)
        }
        Function::Descendants => {
            let mut out = Vec::new();
            let mut next = 0;
            for item in items {
                children(item, &mut out);
            }
            while next < out.len() {
                let item = out[next].clone();
                children(&item, &mut out);
                next += 1;
                if out.len() > MAX_REPEAT_ITEMS {
                    return Err(EvalError::new("descendants() produced too many items"));
                }
            }
            Collection(out)
        }
        Function::Trace => {
            let name = single_string(&arg(0)?)?.unwrap_or_default();
            if let Some(trace) = ev.ctx.trace {
                let shown = if args.len() > 1 {
                    select(ev, input, &args[1], scope)?
                } else {
                    input.clone()
                };
                trace(&name, &shown);
            }
            input.clone()
        }
        Function::Now => one(SystemValue::DateTime(ev.ctx.now.unwrap_or_else(now_utc))),
        Function::Today => one(SystemValue::Date(ev.ctx.now.unwrap_or_else(now_utc).date_part())),
        Function::TimeOfDay => {
            let now = ev.ctx.now.unwrap_or_else(now_utc);
            one(SystemValue::Time(Partial { first: 3, offset: None, ..now }))
        }
        Function::Extension => {
            let Some(url) = single_string(&arg(0)?)? else { return Ok(Collection::new()) };
            let mut extensions = Vec::new();
            for item in items {
                ev.child(item, "extension", &mut extensions)?;
            }
            Collection(
                extensions
                    .into_iter()
                    .filter(|e| {
                        e.json().and_then(|v| v.get("url")).and_then(Value::as_str)
                            == Some(url.as_str())
                    })
                    .collect(),
            )
        }
        Function::HasValue => bool_collection(
            matches!(items.as_slice(), [Item::Node(node)] if node.is_primitive() && node.value.is_some()),
        ),
        Function::GetValue => Collection(
            items
                .iter()
                .filter(|item| matches!(item, Item::Node(node) if node.is_primitive()))
                .filter_map(Item::system_value)
                .map(Item::Value)
                .collect(),
        ),
        Function::Resolve => {
            let mut out = Vec::new();
            for item in items {
                resolve(ev, item, &mut out);
            }
            Collection(out)
        }
        Function::MemberOf => {
            let Some(value_set) = single_string(&arg(0)?)? else { return Ok(Collection::new()) };
            let (Some(member_of), [item]) = (ev.ctx.member_of, items.as_slice()) else {
                return Ok(Collection::new());
            };
            Collection(member_of(item, &value_set).map(Item::boolean).into_iter().collect())
        }
        Function::ConformsTo => {
            let Some(profile) = single_string(&arg(0)?)? else { return Ok(Collection::new()) };
            if !profile.starts_with("http://hl7.org/fhir/StructureDefinition/")
                && ev.ctx.conforms_to.is_none()
            {
                return Err(EvalError::new(format!("unknown profile {profile}")));
            }
            let Some(resource) = items.first().and_then(Item::json) else {
                return Ok(Collection::new());
            };
            match ev.ctx.conforms_to {
                Some(conforms_to) => Collection(
                    conforms_to(resource, &profile).map(Item::boolean).into_iter().collect(),
                ),
                None => {
                    let declared = profile.rsplit('/').next().unwrap_or_default();
                    let actual =
                        resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
                    bool_collection(declared == actual)
                }
            }
        }
        Function::HtmlChecks => {
            bool_collection(items.iter().all(|item| {
                strings::html_is_safe(item.json().and_then(Value::as_str).unwrap_or(""))
            }))
        }
        Function::Aggregate => {
            let mut total = if args.len() > 1 { arg(1)? } else { Collection::new() };
            for (idx, item) in items.iter().enumerate() {
                let aggregate_scope = Scope {
                    this: Some(item.clone()),
                    index: Some(idx),
                    total: Some(total.clone()),
                };
                total = ev.eval(&args[0], &Collection(vec![item.clone()]), &aggregate_scope)?;
            }
            total
        }
        Function::LowBoundary | Function::HighBoundary | Function::Precision => {
            conversions::boundary(
                function,
                input,
                if args.is_empty() { None } else { integer_arg(&arg(0)?)? },
            )?
        }
        Function::Subsumes
        | Function::SubsumedBy
        | Function::Comparable
        | Function::ElementDefinition
        | Function::Slice
        | Function::CheckModifiers => {
            // These need terminology or profile knowledge the engine does not have.
            Collection::new()
        }
        Function::TypeFn => Collection(
            items
                .iter()
                .map(|item| {
                    let namespace = if item.is_system() { "System" } else { "FHIR" };
                    Item::string(format!("{namespace}.{}", item.type_name()))
                })
                .collect(),
        ),
    })
}

fn lambda_scope<'a>(item: &Item<'a>, idx: usize, scope: &Scope<'a>) -> Scope<'a> {
    Scope { this: Some(item.clone()), index: Some(idx), total: scope.total.clone() }
}

fn filter<'a>(
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

fn select<'a>(
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

/// The child nodes of an item: every property of an object, typed where the model knows them.
fn children<'a>(item: &Item<'a>, out: &mut Vec<Item<'a>>) {
    let Item::Node(node) = item else { return };
    if node.is_primitive() {
        if let Some(extras) = node.extras {
            push_values(extras.get("extension"), None, model().type_by_name("Extension"), out);
        }
        return;
    }
    let Some(object) = node.value.and_then(Value::as_object) else { return };
    let model = model();
    for (key, value) in object {
        if key == "resourceType" {
            continue;
        }
        let (name, extras) = match key.strip_prefix('_') {
            Some(name) if object.contains_key(name) => continue,
            Some(name) => (name, Some(value)),
            None => (key.as_str(), object.get(&format!("_{key}"))),
        };
        let value = if key.starts_with('_') { None } else { Some(value) };
        let type_id =
            node.type_id.and_then(|owner| match model.element(owner, name) {
                Some(element) if !element.choice => element.types.first().copied(),
                _ => {
                    let split = name.find(|c: char| c.is_ascii_uppercase())?;
                    let element = model.element(owner, &name[..split])?;
                    element.types.iter().copied().find(|&t| {
                        crate::eval::choice_key(&name[..split], model.get(t).name) == name
                    })
                }
            });
        push_values(value, extras, type_id, out);
    }
}

fn resolve<'a>(ev: &Evaluator<'_, 'a>, item: &Item<'a>, out: &mut Vec<Item<'a>>) {
    let reference = match item {
        Item::Node(node) => match node.value {
            Some(Value::Object(object)) => object.get("reference").and_then(Value::as_str),
            Some(Value::String(text)) => Some(text.as_str()),
            _ => None,
        },
        Item::Value(_) => None,
    };
    let Some(reference) = reference else { return };
    if let Some(local_id) = reference.strip_prefix('#') {
        let container = ev.resource.or(ev.root_resource);
        let contained = container.and_then(|r| r.get("contained")).and_then(Value::as_array);
        if let Some(found) = contained
            .into_iter()
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(local_id))
        {
            out.push(Item::node(found, resource_type_of(found)));
        }
        return;
    }
    // Within a Bundle, entries are found by fullUrl (or by their type/id).
    let bundle = ev
        .root_resource
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"));
    let entries = bundle.and_then(|b| b.get("entry")).and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        let Some(resource) = entry.get("resource") else { continue };
        let type_and_id = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .zip(resource.get("id").and_then(Value::as_str));
        let matches = full_url == Some(reference)
            || full_url.is_some_and(|url| url.ends_with(&format!("/{reference}")))
            || type_and_id.is_some_and(|(t, id)| reference == format!("{t}/{id}"));
        if matches {
            out.push(Item::node(resource, resource_type_of(resource)));
            return;
        }
    }
    // Otherwise the target is known only by its type.
    let path = reference.find("/_history/").map_or(reference, |idx| &reference[..idx]);
    let type_name = path.rsplit('/').nth(1);
    let type_id =
        type_name.and_then(|name| model().type_by_name(name)).filter(|&t| model().is_resource(t));
    if let Some(type_id) = type_id {
        out.push(Item::Node(Node { value: None, extras: None, type_id: Some(type_id) }));
    }
}

fn math(
    function: Function,
    value: SystemValue,
    argument: Option<SystemValue>,
) -> Result<Option<SystemValue>, EvalError> {
    let as_decimal = |value: &SystemValue| match value {
        SystemValue::Integer(integer) => Some(Decimal::from(*integer)),
        SystemValue::Decimal(decimal) => Some(*decimal),
        _ => None,
    };
    let decimal = match &value {
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
            match (&value, &exponent) {
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
