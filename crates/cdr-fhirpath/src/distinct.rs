//! Hashing consistent with FHIRPath equality (`=`), and sets of items built on it, so that `union`,
//! `distinct()`, `isDistinct()`, `intersect`, `exclude`, `subsetOf`, `supersetOf`, `repeat` and membership
//! in a memoised collection take time linear in their input rather than quadratic.
//!
//! [`equality_hash`] gives equal items equal hashes: numbers hash by their normalised decimal value (so
//! `1`, `1.0` and `1.00` agree), dates and times by their components in UTC to their comparable precision,
//! quantities by their value in the base unit the comparison uses, strings by their text (borrowed from the
//! input, never cloned), and other nodes by a shallow, key-order-insensitive digest of their JSON. Items with
//! equal hashes are then compared with [`items_equal`], so FHIRPath semantics hold exactly (items whose
//! equality is unknown, such as dates of different precisions, stay distinct) and the hash only has to be a
//! safe, possibly coarse, key.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::ops::{canonical_unit, items_equal};
use crate::value::{Item, Node, SystemValue};

/// Items in insertion order, indexed by [`equality_hash`].
#[derive(Default)]
pub(crate) struct ItemSet<'a> {
    items: Vec<Item<'a>>,
    /// The newest item with each hash.
    heads: HashMap<u64, usize>,
    /// For each item, the previous item with the same hash.
    next: Vec<Option<usize>>,
}

impl<'a> ItemSet<'a> {
    /// An index of `items` for membership tests, duplicates included.
    pub(crate) fn index(items: &[Item<'a>]) -> ItemSet<'a> {
        let mut set = ItemSet::with_capacity(items.len());
        for item in items {
            set.push(equality_hash(item), item.clone());
        }
        set
    }

    pub(crate) fn with_capacity(capacity: usize) -> ItemSet<'a> {
        ItemSet {
            items: Vec::with_capacity(capacity),
            heads: HashMap::with_capacity(capacity),
            next: Vec::with_capacity(capacity),
        }
    }

    /// Whether an item equal (`=`) to `item` is in the set.
    pub(crate) fn contains(&self, item: &Item<'_>) -> bool {
        self.find(equality_hash(item), item)
    }

    /// Adds `item` unless an equal item is already in the set; `true` when it was added.
    pub(crate) fn insert(&mut self, item: Item<'a>) -> bool {
        let hash = equality_hash(&item);
        if self.find(hash, &item) {
            return false;
        }
        self.push(hash, item);
        true
    }

    /// The number of items.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The items, in insertion order.
    pub(crate) fn into_items(self) -> Vec<Item<'a>> {
        self.items
    }

    fn find(&self, hash: u64, item: &Item<'_>) -> bool {
        let mut candidate = self.heads.get(&hash).copied();
        while let Some(idx) = candidate {
            if items_equal(&self.items[idx], item) == Some(true) {
                return true;
            }
            candidate = self.next[idx];
        }
        false
    }

    fn push(&mut self, hash: u64, item: Item<'a>) {
        let idx = self.items.len();
        self.next.push(self.heads.insert(hash, idx));
        self.items.push(item);
    }
}

/// A hash that is equal for any two items that are equal (`=`).
pub(crate) fn equality_hash(item: &Item<'_>) -> u64 {
    let mut state = DefaultHasher::new();
    match item {
        Item::Node(node) => match borrowed_string(node) {
            Some(text) => hash_string(text, &mut state),
            None => match node.system_value() {
                Some(value) => hash_value(&value, &mut state),
                None => {
                    0u8.hash(&mut state);
                    hash_json(node.value, 1, &mut state);
                    hash_json(node.extras, 1, &mut state);
                }
            },
        },
        Item::Value(value) => hash_value(value, &mut state),
    }
    state.finish()
}

/// The text of a node whose System value is a String, without cloning it.
fn borrowed_string<'v>(node: &Node<'v>) -> Option<&'v str> {
    let Some(Value::String(text)) = node.value else { return None };
    // These types give a Decimal, Date, DateTime or Time (or nothing) rather than a String.
    (!matches!(node.type_name(), "decimal" | "date" | "dateTime" | "instant" | "time"))
        .then_some(text.as_str())
}

fn hash_string(text: &str, state: &mut DefaultHasher) {
    1u8.hash(state);
    text.hash(state);
}

fn hash_value(value: &SystemValue, state: &mut DefaultHasher) {
    match value {
        SystemValue::String(text) => hash_string(text, state),
        SystemValue::Boolean(flag) => {
            2u8.hash(state);
            flag.hash(state);
        }
        SystemValue::Integer(integer) => hash_number(Decimal::from(*integer), state),
        SystemValue::Decimal(decimal) => hash_number(*decimal, state),
        SystemValue::Date(partial)
        | SystemValue::DateTime(partial)
        | SystemValue::Time(partial) => {
            4u8.hash(state);
            partial.hash_equal(state);
        }
        SystemValue::Quantity(amount, unit) => {
            5u8.hash(state);
            let (amount, unit) = canonical_unit(*amount, unit);
            hash_decimal(amount, state);
            unit.hash(state);
        }
    }
}

fn hash_number(number: Decimal, state: &mut DefaultHasher) {
    3u8.hash(state);
    hash_decimal(number, state);
}

/// Numerically equal decimals (`1.0`, `1.00`) hash alike.
fn hash_decimal(number: Decimal, state: &mut DefaultHasher) {
    let normalized = number.normalize();
    normalized.mantissa().hash(state);
    normalized.scale().hash(state);
}

/// A digest of JSON to `depth` levels of nesting; object members combine independently of their order, as
/// JSON object equality ignores it.
fn hash_json(value: Option<&Value>, depth: u8, state: &mut DefaultHasher) {
    match value {
        None => 0u8.hash(state),
        Some(Value::Null) => 1u8.hash(state),
        Some(Value::Bool(flag)) => {
            2u8.hash(state);
            flag.hash(state);
        }
        Some(Value::Number(number)) => {
            3u8.hash(state);
            number.as_str().hash(state);
        }
        Some(Value::String(text)) => {
            4u8.hash(state);
            text.hash(state);
        }
        Some(Value::Array(values)) => {
            5u8.hash(state);
            values.len().hash(state);
            if depth > 0 {
                for value in values {
                    hash_json(Some(value), depth - 1, state);
                }
            }
        }
        Some(Value::Object(object)) => {
            6u8.hash(state);
            object.len().hash(state);
            if depth > 0 {
                let mut members = 0u64;
                for (key, value) in object {
                    let mut member = DefaultHasher::new();
                    key.hash(&mut member);
                    hash_json(Some(value), depth - 1, &mut member);
                    members = members.wrapping_add(member.finish());
                }
                members.hash(state);
            }
        }
    }
}
