//! The evaluator: walks the syntax tree over collections, navigating the input JSON by the FHIR model.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::ast::{BinaryOp, Expr, Literal, TypeSpecifier};
use crate::context::{EvaluationCache, EvaluationContext};
use crate::distinct::ItemSet;
use crate::model::{TypeId, TypeKind, model};
use crate::value::{Collection, Item, Node, SystemValue};
use crate::{EvalError, functions, ops};

/// The bindings of `$this`, `$index` and `$total` inside function arguments.
#[derive(Clone, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) this: Option<Item<'a>>,
    pub(crate) index: Option<usize>,
    pub(crate) total: Option<Collection<'a>>,
}

pub(crate) struct Evaluator<'c, 'a> {
    pub(crate) ctx: &'c EvaluationContext<'a>,
    pub(crate) root: Collection<'a>,
    /// The resource used for `%resource` and for resolving references.
    pub(crate) resource: Option<&'a Value>,
    pub(crate) root_resource: Option<&'a Value>,
    /// The results of the [`Expr::Constant`] subexpressions evaluated so far, by address.
    memo: RefCell<HashMap<usize, Arc<Memo<'a>>>>,
    /// A cache shared with other evaluations, used instead of `memo`.
    cache: Option<&'c EvaluationCache<'a>>,
}

/// The memoised result of a constant subexpression, with an index for membership tests built on first use.
pub(crate) struct Memo<'a> {
    items: Collection<'a>,
    index: OnceLock<ItemSet<'a>>,
}

impl<'a> Memo<'a> {
    fn index(&self) -> &ItemSet<'a> {
        self.index.get_or_init(|| ItemSet::index(&self.items))
    }
}

pub(crate) fn evaluate<'a>(
    expr: &Expr,
    root: &'a Value,
    ctx: &EvaluationContext<'a>,
) -> Result<Collection<'a>, EvalError> {
    let root_item = Item::node(root, resource_type_of(root));
    let focus = Collection(vec![root_item]);
    let evaluator = Evaluator {
        ctx,
        root: focus.clone(),
        resource: ctx.resource.or(Some(root)),
        root_resource: ctx.root_resource.or(ctx.resource).or(Some(root)),
        memo: RefCell::default(),
        cache: None,
    };
    let scope = Scope { this: Some(focus[0].clone()), ..Scope::default() };
    evaluator.eval(expr, &focus, &scope)
}

pub(crate) fn evaluate_items<'c, 'a>(
    expr: &Expr,
    focus: Collection<'a>,
    ctx: &'c EvaluationContext<'a>,
    cache: Option<&'c EvaluationCache<'a>>,
) -> Result<Collection<'a>, EvalError> {
    let scope = Scope { this: focus.first().cloned(), ..Scope::default() };
    let evaluator = Evaluator {
        ctx,
        root: focus,
        resource: ctx.resource,
        root_resource: ctx.root_resource.or(ctx.resource),
        memo: RefCell::default(),
        cache,
    };
    evaluator.eval(expr, &evaluator.root, &scope)
}

pub(crate) fn resource_type_of(value: &Value) -> Option<TypeId> {
    value.get("resourceType").and_then(Value::as_str).and_then(|name| model().type_by_name(name))
}

impl<'a> Evaluator<'_, 'a> {
    pub(crate) fn eval(
        &self,
        expr: &Expr,
        focus: &Collection<'a>,
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        Ok(match expr {
            Expr::Empty => Collection::new(),
            Expr::Literal(literal) => Collection(vec![Item::Value(literal_value(literal))]),
            Expr::This => Collection(scope.this.clone().into_iter().collect()),
            Expr::Index => Collection(
                scope
                    .index
                    .map(|idx| {
                        Item::Value(SystemValue::Integer(i64::try_from(idx).unwrap_or(i64::MAX)))
                    })
                    .into_iter()
                    .collect(),
            ),
            Expr::Total => scope.total.clone().unwrap_or_default(),
            Expr::Variable(name) => self.variable(name, focus)?,
            Expr::Member(base, name) => {
                let input = match base {
                    Some(base) => self.eval(base, focus, scope)?,
                    None => focus.clone(),
                };
                if base.is_none()
                    && let Some(filtered) = self.type_filter(&input, name)
                {
                    return Ok(filtered);
                }
                let mut out = Vec::new();
                for item in input.iter() {
                    self.child(item, name, &mut out)?;
                }
                Collection(out)
            }
            Expr::Call(base, function, args) => {
                let input = match base {
                    Some(base) => self.eval(base, focus, scope)?,
                    None => focus.clone(),
                };
                functions::call(self, *function, &input, args, focus, scope)?
            }
            Expr::Indexer(base, index) => {
                let input = self.eval(base, focus, scope)?;
                let index = self.eval(index, focus, scope)?;
                match index.first().and_then(Item::system_value) {
                    Some(SystemValue::Integer(idx)) => Collection(
                        usize::try_from(idx)
                            .ok()
                            .and_then(|idx| input.0.get(idx).cloned())
                            .into_iter()
                            .collect(),
                    ),
                    None if index.is_empty() => Collection::new(),
                    _ => return Err(EvalError::new("an indexer needs an integer")),
                }
            }
            Expr::Negate(operand) => {
                let operand = self.eval(operand, focus, scope)?;
                ops::negate(&operand)?
            }
            Expr::Binary(op, left, right) => self.binary(*op, left, right, focus, scope)?,
            Expr::Constant(inner) => self.constant(inner, focus, scope)?.items.clone(),
            Expr::Is(base, type_specifier) => {
                let input = match base {
                    Some(base) => self.eval(base, focus, scope)?,
                    None => focus.clone(),
                };
                match input.0.as_slice() {
                    [] => Collection::new(),
                    [item] => Collection(vec![Item::boolean(self.is_type(item, type_specifier))]),
                    _ => return Err(EvalError::new("'is' needs a single item")),
                }
            }
            Expr::As(base, type_specifier) => {
                let input = match base {
                    Some(base) => self.eval(base, focus, scope)?,
                    None => focus.clone(),
                };
                // FHIRPath makes `as` on several items an error, but R4 relies on it filtering: 63 R4
                // SearchParameters apply `x as T` to repeating elements (`Observation.component.value as
                // Quantity`) and dom-3 applies `descendants().as(canonical)`. Like the HL7 Java engine
                // before R5, `as` filters like `ofType` and only strict mode enforces the singleton rule.
                if self.ctx.strict && input.len() > 1 && base.is_some() {
                    return Err(EvalError::new("'as' needs a single item"));
                }
                Collection(
                    input
                        .0
                        .into_iter()
                        .filter(|item| self.is_cast_type(item, type_specifier))
                        .collect(),
                )
            }
            Expr::OfType(base, type_specifier) => {
                let input = match base {
                    Some(base) => self.eval(base, focus, scope)?,
                    None => focus.clone(),
                };
                Collection(
                    input
                        .0
                        .into_iter()
                        .filter(|item| self.is_cast_type(item, type_specifier))
                        .collect(),
                )
            }
        })
    }

    fn variable(&self, name: &str, focus: &Collection<'a>) -> Result<Collection<'a>, EvalError> {
        if let Some(value) = self.ctx.variables.get(name) {
            return Ok(value.clone());
        }
        let resource_item = |value: Option<&'a Value>| {
            Collection(
                value.map(|value| Item::node(value, resource_type_of(value))).into_iter().collect(),
            )
        };
        let string = |text: &str| Collection(vec![Item::string(text.to_owned())]);
        Ok(match name {
            "resource" => resource_item(self.resource),
            "rootResource" => resource_item(self.root_resource),
            "context" => self.ctx.context.clone().unwrap_or_else(|| {
                if self.root.is_empty() { focus.clone() } else { self.root.clone() }
            }),
            "ucum" => string("http://unitsofmeasure.org"),
            "sct" => string("http://snomed.info/sct"),
            "loinc" => string("http://loinc.org"),
            _ => {
                if let Some(value_set) = name.strip_prefix("vs-") {
                    return Ok(string(&format!("http://hl7.org/fhir/ValueSet/{value_set}")));
                }
                if let Some(extension) = name.strip_prefix("ext-") {
                    return Ok(string(&format!(
                        "http://hl7.org/fhir/StructureDefinition/{extension}"
                    )));
                }
                return Err(EvalError::new(format!("unknown variable %{name}")));
            }
        })
    }

    /// A leading identifier naming a type filters the focus by it (`Patient.name` on a Patient).
    fn type_filter(&self, input: &Collection<'a>, name: &str) -> Option<Collection<'a>> {
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            return None;
        }
        let type_id = model().type_by_name(name)?;
        let filtered = input
            .iter()
            .filter(|item| matches!(item, Item::Node(node) if node.type_id.is_some_and(|t| model().is_subtype(t, type_id))))
            .cloned()
            .collect();
        Some(Collection(filtered))
    }

    /// Appends the children called `name` of `item` to `out`.
    pub(crate) fn child(
        &self,
        item: &Item<'a>,
        name: &str,
        out: &mut Vec<Item<'a>>,
    ) -> Result<(), EvalError> {
        let Item::Node(node) = item else { return Ok(()) };
        if node.is_primitive() {
            // A primitive's children are the `id` and `extension` of its `_name` sibling.
            if let Some(extras) = node.extras
                && matches!(name, "id" | "extension")
            {
                let type_id =
                    model().type_by_name(if name == "id" { "string" } else { "Extension" });
                push_values(extras.get(name), None, type_id, out);
            }
            return Ok(());
        }
        let Some(object) = node.value.and_then(Value::as_object) else { return Ok(()) };
        let Some(owner) = node.type_id else {
            // Untyped JSON: navigate by key.
            push_values(object.get(name), object.get(&format!("_{name}")), None, out);
            return Ok(());
        };
        let model = model();
        match model.element(owner, name) {
            Some(element) if element.choice => {
                for &type_id in &element.types {
                    let key = choice_key(name, model.get(type_id).name);
                    let value = object.get(&key);
                    let extras = object.get(&format!("_{key}"));
                    if value.is_some() || extras.is_some() {
                        push_values(value, extras, Some(type_id), out);
                        break;
                    }
                }
            }
            Some(element) => {
                let value = object.get(name);
                let extras = if value.is_some_and(|v| {
                    v.is_object()
                        || v.as_array().is_some_and(|a| a.first().is_some_and(Value::is_object))
                }) {
                    None
                } else {
                    object.get(&format!("_{name}"))
                };
                push_values(value, extras, element.types.first().copied(), out);
            }
            None => {
                // A choice element named with its type suffix (`valueQuantity`) is typed by the suffix.
                if let Some(value) = object.get(name)
                    && let Some(type_id) = suffix_type(owner, name)
                {
                    if self.ctx.strict {
                        return Err(EvalError::new(format!(
                            "{name} is not an element of {}",
                            node.type_name()
                        )));
                    }
                    push_values(Some(value), object.get(&format!("_{name}")), Some(type_id), out);
                    return Ok(());
                }
                if self.ctx.strict {
                    return Err(EvalError::new(format!(
                        "{name} is not an element of {}",
                        node.type_name()
                    )));
                }
                push_values(object.get(name), object.get(&format!("_{name}")), None, out);
            }
        }
        Ok(())
    }

    pub(crate) fn is_type(&self, item: &Item<'a>, type_specifier: &TypeSpecifier) -> bool {
        let name = type_specifier.name.as_str();
        let namespace = type_specifier.namespace.as_deref();
        match item {
            Item::Value(value) => namespace != Some("FHIR") && value.type_name() == name,
            Item::Node(node) => {
                if namespace == Some("System") {
                    return false;
                }
                match node.type_id {
                    Some(type_id) => model().is_subtype_name(type_id, name),
                    None => node.type_name() == name,
                }
            }
        }
    }

    /// The type test of `as` and `ofType`: like `is`, except that a FHIR primitive matches only its own
    /// type, not the primitive it specializes (a `code` is not cast to `string`, as the HL7 suite expects).
    fn is_cast_type(&self, item: &Item<'a>, type_specifier: &TypeSpecifier) -> bool {
        match item {
            Item::Node(Node { type_id: Some(type_id), .. })
                if model().get(*type_id).kind == TypeKind::Primitive =>
            {
                type_specifier.namespace.as_deref() != Some("System")
                    && model().get(*type_id).name == type_specifier.name
            }
            _ => self.is_type(item, type_specifier),
        }
    }

    /// The result of a constant subexpression, evaluated on first use.
    fn constant(
        &self,
        inner: &Expr,
        focus: &Collection<'a>,
        scope: &Scope<'a>,
    ) -> Result<Arc<Memo<'a>>, EvalError> {
        let key = std::ptr::from_ref(inner) as usize;
        let address = |value: Option<&Value>| value.map_or(0, |v| std::ptr::from_ref(v) as usize);
        let shared_key = (key, address(self.resource), address(self.root_resource));
        let found = match self.cache {
            Some(cache) => cache.get(shared_key),
            None => self.memo.borrow().get(&key).cloned(),
        };
        if let Some(memo) = found {
            return Ok(memo);
        }
        let memo =
            Arc::new(Memo { items: self.eval(inner, focus, scope)?, index: OnceLock::new() });
        match self.cache {
            Some(cache) => cache.insert(shared_key, memo.clone()),
            None => {
                self.memo.borrow_mut().insert(key, memo.clone());
            }
        }
        Ok(memo)
    }

    fn binary(
        &self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        focus: &Collection<'a>,
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        // Membership in a constant collection looks the element up in its memoised index.
        if let (BinaryOp::Contains, Expr::Constant(container)) = (op, left) {
            let container = self.constant(container, focus, scope)?;
            return membership(&self.eval(right, focus, scope)?, &container);
        }
        let left_value = self.eval(left, focus, scope)?;
        if let (BinaryOp::In, Expr::Constant(container)) = (op, right) {
            let container = self.constant(container, focus, scope)?;
            return membership(&left_value, &container);
        }
        // Short-circuit the boolean operators where the left side decides.
        match op {
            BinaryOp::And if ops::singleton_boolean(&left_value)? == Some(false) => {
                return Ok(bool_collection(false));
            }
            BinaryOp::Or if ops::singleton_boolean(&left_value)? == Some(true) => {
                return Ok(bool_collection(true));
            }
            BinaryOp::Implies if ops::singleton_boolean(&left_value)? == Some(false) => {
                return Ok(bool_collection(true));
            }
            _ => {}
        }
        let right_value = self.eval(right, focus, scope)?;
        ops::binary(op, left_value, right_value)
    }
}

/// `element in container`, for a memoised container.
fn membership<'a>(
    element: &Collection<'a>,
    container: &Memo<'a>,
) -> Result<Collection<'a>, EvalError> {
    match element.0.as_slice() {
        [] => Ok(Collection::new()),
        [item] => Ok(bool_collection(container.index().contains(item))),
        _ => Err(EvalError::new("membership needs a single item")),
    }
}

pub(crate) fn bool_collection<'a>(value: bool) -> Collection<'a> {
    Collection(vec![Item::boolean(value)])
}

pub(crate) fn choice_key(name: &str, type_name: &str) -> String {
    let mut key = String::with_capacity(name.len() + type_name.len());
    key.push_str(name);
    let mut chars = type_name.chars();
    if let Some(first) = chars.next() {
        key.push(first.to_ascii_uppercase());
        key.push_str(chars.as_str());
    }
    key
}

/// The type of `name` when it is a choice element plus a type suffix, such as `valueQuantity`.
fn suffix_type(owner: TypeId, name: &str) -> Option<TypeId> {
    let model = model();
    let split = name.find(|c: char| c.is_ascii_uppercase())?;
    let element = model.element(owner, &name[..split])?;
    if !element.choice {
        return None;
    }
    element
        .types
        .iter()
        .copied()
        .find(|&type_id| choice_key(&name[..split], model.get(type_id).name) == name)
}

/// Appends a JSON value (or each element of an array) with its `_name` sibling as nodes.
pub(crate) fn push_values<'a>(
    value: Option<&'a Value>,
    extras: Option<&'a Value>,
    type_id: Option<TypeId>,
    out: &mut Vec<Item<'a>>,
) {
    let typed = |value: Option<&'a Value>| match value {
        // A resource in `contained` or `Bundle.entry.resource` is typed by its own resourceType.
        Some(inner @ Value::Object(object)) if object.contains_key("resourceType") => {
            resource_type_of(inner).or(type_id)
        }
        _ => type_id,
    };
    match (value, extras) {
        (Some(Value::Array(values)), extras) => {
            let extras = extras.and_then(Value::as_array);
            for (idx, element) in values.iter().enumerate() {
                let element_extras = extras.and_then(|e| e.get(idx)).filter(|e| !e.is_null());
                let element_value = Some(element).filter(|e| !e.is_null());
                if element_value.is_some() || element_extras.is_some() {
                    out.push(Item::Node(Node {
                        value: element_value,
                        extras: element_extras,
                        type_id: typed(element_value),
                    }));
                }
            }
        }
        (None, Some(Value::Array(extras))) => {
            for element_extras in extras.iter().filter(|e| !e.is_null()) {
                out.push(Item::Node(Node { value: None, extras: Some(element_extras), type_id }));
            }
        }
        (None, None) | (Some(Value::Null), None) => {}
        (value, extras) => {
            let value = value.filter(|v| !v.is_null());
            out.push(Item::Node(Node { value, extras, type_id: typed(value) }));
        }
    }
}

pub(crate) fn literal_value(literal: &Literal) -> SystemValue {
    match literal {
        Literal::Boolean(flag) => SystemValue::Boolean(*flag),
        Literal::String(text) => SystemValue::String(text.clone()),
        Literal::Integer(integer) => SystemValue::Integer(*integer),
        Literal::Decimal(decimal) => SystemValue::Decimal(*decimal),
        Literal::Date(date) => SystemValue::Date(*date),
        Literal::DateTime(date_time) => SystemValue::DateTime(*date_time),
        Literal::Time(time) => SystemValue::Time(*time),
        Literal::Quantity(amount, unit) => SystemValue::Quantity(*amount, unit.clone()),
    }
}
