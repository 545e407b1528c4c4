//! Index rows: the [`IndexEntry`] values of `cdr-search` as rows of the `idx_*` tables.
//!
//! Composite values are written component by component into each component's table under the code
//! `code$N` with a `grp` number shared by the components of one value; plain rows have `grp` 0.

use cdr_model::ResourceType;
use cdr_search::{IndexEntry, IndexValue};

use crate::sql::{Bind, Sql};

/// The index tables, in the order rows are deleted and inserted.
pub(crate) const INDEX_TABLES: [&str; 7] = [
    "idx_token",
    "idx_string",
    "idx_date",
    "idx_reference",
    "idx_quantity",
    "idx_number",
    "idx_uri",
];

/// Most rows per multi-row `INSERT` (keeps every statement well under both backends' bind limits).
const ROWS_PER_INSERT: usize = 400;

/// One row of one index table: the table, its value columns and their binds.
#[derive(Debug, Clone)]
struct IndexRow {
    table: usize,
    param: String,
    grp: i64,
    values: Vec<Bind>,
}

/// The value columns of each table, in [`INDEX_TABLES`] order.
const VALUE_COLUMNS: [&str; 7] = [
    "system, code, text, type_system, type_code",
    "normalized, exact",
    "low, high",
    "target_type, target_id, version, url, id_system, id_value",
    "system, code, unit, low, high, value",
    "low, high, value",
    "uri",
];

/// Longest text an index column holds, in bytes: longer values keep their first bytes (at a character
/// boundary), so that every index row stays far below PostgreSQL's B-tree entry limit (about 2.7 kB).
pub(crate) const MAX_INDEXED_BYTES: usize = 600;

/// Index text without NUL characters (PostgreSQL text cannot hold them), cut to [`MAX_INDEXED_BYTES`].
fn clean(text: &str) -> String {
    let mut cleaned: String = text.chars().filter(|character| *character != '\0').collect();
    if cleaned.len() > MAX_INDEXED_BYTES {
        let mut end = MAX_INDEXED_BYTES;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned.truncate(end);
    }
    cleaned
}

fn clean_bind(bind: Bind) -> Bind {
    match bind {
        Bind::Text(text) => Bind::Text(clean(&text)),
        Bind::OptText(text) => Bind::OptText(text.as_deref().map(clean)),
        other => other,
    }
}

/// A decimal as the `double precision` the tables hold.
pub(crate) fn decimal_to_f64(value: &impl ToString) -> f64 {
    value.to_string().parse::<f64>().unwrap_or(0.0)
}

fn text(value: Option<&str>) -> Bind {
    Bind::OptText(value.map(str::to_owned))
}

/// The table index and value binds of one non-composite index value.
fn value_row(value: &IndexValue) -> Option<(usize, Vec<Bind>)> {
    let row = match value {
        IndexValue::Token(token) => (
            0,
            vec![
                text(token.system.as_deref()),
                text(token.code.as_deref()),
                text(token.text.as_deref()),
                text(token.identifier_type.as_ref().and_then(|coding| coding.system.as_deref())),
                text(token.identifier_type.as_ref().and_then(|coding| coding.code.as_deref())),
            ],
        ),
        IndexValue::String { normalized, exact } => {
            (1, vec![Bind::Text(normalized.clone()), Bind::Text(exact.clone())])
        }
        IndexValue::Date(range) => (2, vec![Bind::Int(range.low), Bind::Int(range.high)]),
        IndexValue::Reference(reference) => (
            3,
            vec![
                text(reference.target_type.map(ResourceType::as_str)),
                text(reference.target_id.as_deref()),
                text(reference.version.as_deref()),
                text(reference.url.as_deref()),
                text(reference.identifier.as_ref().and_then(|token| token.system.as_deref())),
                text(reference.identifier.as_ref().and_then(|token| token.code.as_deref())),
            ],
        ),
        IndexValue::Quantity(quantity) => (
            4,
            vec![
                text(quantity.system.as_deref()),
                text(quantity.code.as_deref()),
                text(quantity.unit.as_deref()),
                Bind::Float(decimal_to_f64(&quantity.number.low)),
                Bind::Float(decimal_to_f64(&quantity.number.high)),
                Bind::Float(decimal_to_f64(&quantity.number.value)),
            ],
        ),
        IndexValue::Number(number) => (
            5,
            vec![
                Bind::Float(decimal_to_f64(&number.low)),
                Bind::Float(decimal_to_f64(&number.high)),
                Bind::Float(decimal_to_f64(&number.value)),
            ],
        ),
        IndexValue::Uri(uri) => (6, vec![Bind::Text(uri.clone())]),
        IndexValue::Composite(_) => return None,
    };
    Some(row)
}

fn rows_of(entries: &[IndexEntry]) -> Vec<IndexRow> {
    let mut rows = Vec::with_capacity(entries.len());
    let mut next_group = 1;
    for entry in entries {
        match &entry.value {
            IndexValue::Composite(components) => {
                let grp = next_group;
                next_group += 1;
                for (position, component) in components.iter().enumerate() {
                    if let Some((table, values)) = value_row(component) {
                        rows.push(IndexRow {
                            table,
                            param: format!("{}${position}", entry.code),
                            grp,
                            values,
                        });
                    }
                }
            }
            value => {
                if let Some((table, values)) = value_row(value) {
                    rows.push(IndexRow { table, param: entry.code.clone(), grp: 0, values });
                }
            }
        }
    }
    rows
}

/// The statements that replace the index rows of one resource: deletes (unless the resource is `fresh`, a
/// first version), then multi-row inserts.
pub(crate) fn replace_statements(
    res_type: &str,
    res_id: &str,
    entries: &[IndexEntry],
    fresh: bool,
) -> Vec<Sql> {
    let mut statements = Vec::new();
    for table in INDEX_TABLES.iter().filter(|_| !fresh) {
        let mut sql = Sql::new("DELETE FROM ");
        sql.push(table).push(" WHERE res_type = ").bind_text(res_type);
        sql.push(" AND res_id = ").bind_text(res_id);
        statements.push(sql);
    }
    let rows = rows_of(entries);
    for (table_index, table) in INDEX_TABLES.iter().enumerate() {
        let table_rows: Vec<&IndexRow> =
            rows.iter().filter(|row| row.table == table_index).collect();
        for chunk in table_rows.chunks(ROWS_PER_INSERT) {
            let mut sql = Sql::new("INSERT INTO ");
            sql.push(table)
                .push(" (res_type, res_id, param, grp, ")
                .push(VALUE_COLUMNS[table_index])
                .push(") VALUES ");
            for (row_index, row) in chunk.iter().enumerate() {
                if row_index > 0 {
                    sql.push(", ");
                }
                sql.push("(").bind_text(res_type).push(", ").bind_text(res_id).push(", ");
                sql.bind_text(&row.param).push(", ").bind_int(row.grp);
                for value in &row.values {
                    sql.push(", ").bind(clean_bind(value.clone()));
                }
                sql.push(")");
            }
            statements.push(sql);
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_text_is_cleaned_and_bounded() {
        assert_eq!(clean("a\0b"), "ab");
        let long = "é".repeat(400);
        let cleaned = clean(&long);
        assert!(cleaned.len() <= MAX_INDEXED_BYTES && cleaned.len() >= MAX_INDEXED_BYTES - 1);
        assert!(long.starts_with(&cleaned));
    }
}
