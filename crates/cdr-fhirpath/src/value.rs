//! Items and collections: nodes of the input JSON typed by the FHIR model, and FHIRPath System values.

use std::fmt;
use std::ops::Deref;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::EvalError;
use crate::datetime::Partial;
use crate::model::{ModelType, TypeId, TypeKind, model};

/// One item of a collection: a node of the input JSON, or a value computed by the expression.
#[derive(Clone, Debug)]
pub enum Item<'a> {
    /// A node of the input JSON (an element, a resource or a primitive) with its FHIR type.
    Node(Node<'a>),
    /// A FHIRPath System value.
    Value(SystemValue),
}

/// A node of the input JSON.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    /// The JSON value; absent for a primitive that has only extensions, or for a reference target known
    /// only by its type.
    pub(crate) value: Option<&'a Value>,
    /// The `_name` sibling of a primitive, holding its `id` and `extension`.
    pub(crate) extras: Option<&'a Value>,
    pub(crate) type_id: Option<TypeId>,
}

/// A FHIRPath System value.
#[derive(Clone, Debug, PartialEq)]
pub enum SystemValue {
    /// `System.Boolean`.
    Boolean(bool),
    /// `System.String`.
    String(String),
    /// `System.Integer`.
    Integer(i64),
    /// `System.Decimal`, with its scale (`1.0` keeps one decimal place).
    Decimal(Decimal),
    /// `System.Date`, to year, month or day precision.
    Date(Partial),
    /// `System.DateTime`, to any precision, with an optional time zone offset.
    DateTime(Partial),
    /// `System.Time`.
    Time(Partial),
    /// `System.Quantity`: a value and a UCUM unit or calendar duration keyword.
    Quantity(Decimal, String),
}

/// The result of an evaluation: an ordered collection of items.
#[derive(Clone, Debug, Default)]
pub struct Collection<'a>(pub(crate) Vec<Item<'a>>);

impl<'a> Collection<'a> {
    /// An empty collection.
    pub fn new() -> Collection<'a> {
        Collection(Vec::new())
    }

    /// A collection of the given items.
    pub fn from_items(items: Vec<Item<'a>>) -> Collection<'a> {
        Collection(items)
    }

    /// The items.
    pub fn into_items(self) -> Vec<Item<'a>> {
        self.0
    }

    /// The collection as a boolean for invariant checking: empty is `None`, a single boolean is itself, and
    /// any other single item is `true`; several items are an error.
    pub fn to_boolean(&self) -> Result<Option<bool>, EvalError> {
        match self.0.as_slice() {
            [] => Ok(None),
            [item] => Ok(Some(
                item.system_value().is_none_or(|v| !matches!(v, SystemValue::Boolean(false))),
            )),
            _ => Err(EvalError::new("expected a single boolean, found several items")),
        }
    }
}

impl<'a> Deref for Collection<'a> {
    type Target = [Item<'a>];

    fn deref(&self) -> &[Item<'a>] {
        &self.0
    }
}

impl<'a> Item<'a> {
    pub(crate) fn node(value: &'a Value, type_id: Option<TypeId>) -> Item<'a> {
        Item::Node(Node { value: Some(value), extras: None, type_id })
    }

    pub(crate) fn boolean(value: bool) -> Item<'a> {
        Item::Value(SystemValue::Boolean(value))
    }

    pub(crate) fn string(value: String) -> Item<'a> {
        Item::Value(SystemValue::String(value))
    }

    /// The JSON node, when the item is one.
    pub fn json(&self) -> Option<&'a Value> {
        match self {
            Item::Node(node) => node.value,
            Item::Value(_) => None,
        }
    }

    /// The type name: the FHIR type of a node (`Quantity`, `dateTime`, `Patient`, `BackboneElement`), or the
    /// System type of a value (`Boolean`, `String`, `Integer`, `Decimal`, `Date`, `DateTime`, `Time`,
    /// `Quantity`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Item::Node(node) => node.type_name(),
            Item::Value(value) => value.type_name(),
        }
    }

    /// Whether the type is in the `System` namespace rather than `FHIR`.
    pub fn is_system(&self) -> bool {
        match self {
            Item::Node(node) => node.type_id.is_none() && !node.value.is_some_and(Value::is_object),
            Item::Value(_) => true,
        }
    }

    /// The item as a System value: itself, or the value of a primitive node (a Quantity node gives a System
    /// Quantity). `None` for other nodes.
    pub fn system_value(&self) -> Option<SystemValue> {
        match self {
            Item::Node(node) => node.system_value(),
            Item::Value(value) => Some(value.clone()),
        }
    }

    /// The R4 model type of a node; `None` for a computed value and for untyped JSON.
    pub fn model_type(&self) -> Option<ModelType> {
        match self {
            Item::Node(node) => node.type_id.map(ModelType::new),
            Item::Value(_) => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Item::Node(node) => node.value.and_then(Value::as_str).filter(|_| node.is_stringish()),
            Item::Value(SystemValue::String(value)) => Some(value),
            Item::Value(_) => None,
        }
    }
}

impl<'a> Node<'a> {
    pub(crate) fn type_name(&self) -> &'static str {
        if let Some(type_id) = self.type_id {
            return model().get(type_id).name;
        }
        match self.value {
            Some(Value::Bool(_)) => "boolean",
            Some(Value::Number(number)) if number.as_str().contains(['.', 'e', 'E']) => "decimal",
            Some(Value::Number(_)) => "integer",
            Some(Value::String(_)) => "string",
            _ => "Element",
        }
    }

    pub(crate) fn is_primitive(&self) -> bool {
        match self.type_id {
            Some(type_id) => model().get(type_id).kind == TypeKind::Primitive,
            None => !self.value.is_some_and(Value::is_object),
        }
    }

    fn is_stringish(&self) -> bool {
        !matches!(
            self.type_name(),
            "boolean"
                | "integer"
                | "decimal"
                | "positiveInt"
                | "unsignedInt"
                | "date"
                | "dateTime"
                | "instant"
                | "time"
        )
    }

    pub(crate) fn system_value(&self) -> Option<SystemValue> {
        let value = self.value?;
        let type_name = self.type_name();
        if let Value::Object(object) = value {
            if !is_quantity_type(type_name) {
                return None;
            }
            let amount = object.get("value").and_then(decimal_of)?;
            let unit = object
                .get("code")
                .or_else(|| object.get("unit"))
                .and_then(Value::as_str)
                .unwrap_or("1");
            return Some(SystemValue::Quantity(amount, unit.to_owned()));
        }
        Some(match (type_name, value) {
            (_, Value::Bool(flag)) => SystemValue::Boolean(*flag),
            ("decimal", _) => SystemValue::Decimal(decimal_of(value)?),
            (_, Value::Number(number)) => match number.as_str().parse::<i64>() {
                Ok(integer) => SystemValue::Integer(integer),
                Err(_) => SystemValue::Decimal(decimal_of(value)?),
            },
            ("date", Value::String(text)) => SystemValue::Date(Partial::parse_date(text)?),
            ("dateTime" | "instant", Value::String(text)) => {
                let parsed = Partial::parse_date_time(text, false)?;
                SystemValue::DateTime(parsed)
            }
            ("time", Value::String(text)) => SystemValue::Time(Partial::parse_time(text)?),
            (_, Value::String(text)) => SystemValue::String(text.clone()),
            _ => return None,
        })
    }
}

pub(crate) fn is_quantity_type(type_name: &str) -> bool {
    matches!(
        type_name,
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity"
    )
}

pub(crate) fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(number) => {
            let text = number.as_str();
            text.parse().ok().or_else(|| Decimal::from_scientific(text).ok())
        }
        _ => None,
    }
}

impl SystemValue {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            SystemValue::Boolean(_) => "Boolean",
            SystemValue::String(_) => "String",
            SystemValue::Integer(_) => "Integer",
            SystemValue::Decimal(_) => "Decimal",
            SystemValue::Date(_) => "Date",
            SystemValue::DateTime(_) => "DateTime",
            SystemValue::Time(_) => "Time",
            SystemValue::Quantity(..) => "Quantity",
        }
    }
}

impl fmt::Display for SystemValue {
    /// The FHIRPath `toString()` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemValue::Boolean(flag) => write!(f, "{flag}"),
            SystemValue::String(text) => f.write_str(text),
            SystemValue::Integer(integer) => write!(f, "{integer}"),
            SystemValue::Decimal(decimal) => write!(f, "{decimal}"),
            SystemValue::Date(date) | SystemValue::DateTime(date) | SystemValue::Time(date) => {
                write!(f, "{date}")
            }
            SystemValue::Quantity(amount, unit) => {
                if crate::datetime::is_calendar_keyword(unit) {
                    write!(f, "{amount} {unit}")
                } else {
                    write!(f, "{amount} '{unit}'")
                }
            }
        }
    }
}
