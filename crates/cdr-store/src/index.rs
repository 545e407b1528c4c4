//! Index rows: the [`IndexEntry`] values of `cdr-search` as rows of the `idx_*` tables.
//!
//! Composite values are written component by component into each component's table under the code
//! `code$N` with a `grp` number shared by the components of one value; plain rows have `grp` 0.

use std::collections::HashMap;

use cdr_model::{LogicalId, ResourceType};
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
    /// 1 = the lowest sort value of its resource and parameter, 2 = the highest, 3 = both, 0 = neither
    /// (migration 0004 defines the roles).
    sort_role: i64,
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

/// Which of each table's value columns a sort on the parameter reads.
pub(crate) const SORT_COLUMNS: [usize; 7] = [1, 0, 0, 1, 5, 2, 0];

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
                            values: values.into_iter().map(clean_bind).collect(),
                            sort_role: 0,
                        });
                    }
                }
            }
            value => {
                if let Some((table, values)) = value_row(value) {
                    let values = values.into_iter().map(clean_bind).collect();
                    rows.push(IndexRow {
                        table,
                        param: entry.code.clone(),
                        grp: 0,
                        values,
                        sort_role: 0,
                    });
                }
            }
        }
    }
    assign_sort_roles(&mut rows);
    rows
}

/// Marks, per table and parameter, the first row with the lowest sort value (role 1) and the first with the
/// highest (role 2; 3 when one row is both). Rows without a sort value (a token without a code) take no role.
fn assign_sort_roles(rows: &mut [IndexRow]) {
    // (table, parameter) → positions of its lowest and highest rows so far.
    let mut extremes: HashMap<(usize, &str), (usize, usize)> = HashMap::new();
    for (position, row) in rows.iter().enumerate() {
        let Some(value) = sort_value(row).filter(|_| row.grp == 0) else { continue };
        let (lowest, highest) =
            extremes.entry((row.table, row.param.as_str())).or_insert((position, position));
        if sort_value(&rows[*lowest]).is_some_and(|low| compare(value, low).is_lt()) {
            *lowest = position;
        }
        if sort_value(&rows[*highest]).is_some_and(|high| compare(value, high).is_gt()) {
            *highest = position;
        }
    }
    let marks: Vec<(usize, usize)> = extremes.into_values().collect();
    for (lowest, highest) in marks {
        rows[lowest].sort_role |= 1;
        rows[highest].sort_role |= 2;
    }
}

/// The value a sort on the row's parameter reads, if it has one.
fn sort_value(row: &IndexRow) -> Option<&Bind> {
    match &row.values[SORT_COLUMNS[row.table]] {
        Bind::OptText(None) => None,
        value => Some(value),
    }
}

/// The databases' order of two sort values of one column (texts byte-wise, as the "C" collation and
/// SQLite's BINARY do).
fn compare(left: &Bind, right: &Bind) -> std::cmp::Ordering {
    match (left, right) {
        (Bind::Int(left), Bind::Int(right)) => left.cmp(right),
        (Bind::Float(left), Bind::Float(right)) => left.total_cmp(right),
        (
            Bind::Text(left) | Bind::OptText(Some(left)),
            Bind::Text(right) | Bind::OptText(Some(right)),
        ) => left.as_bytes().cmp(right.as_bytes()),
        _ => std::cmp::Ordering::Equal,
    }
}

/// The statements that replace the index rows of one resource: deletes (unless the resource is `fresh`, a
/// first version), then multi-row inserts.
pub(crate) fn replace_statements(
    res_type: ResourceType,
    res_id: &LogicalId,
    entries: &[IndexEntry],
    fresh: bool,
) -> Vec<Sql> {
    let mut statements = Vec::new();
    for table in INDEX_TABLES.iter().filter(|_| !fresh) {
        let mut sql = Sql::new("DELETE FROM ");
        sql.push(table).push(" WHERE res_type = ").bind_text(res_type.as_str());
        sql.push(" AND res_id = ").bind_text(res_id.as_str());
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
                .push(", sort_role) VALUES ");
            for (row_index, row) in chunk.iter().enumerate() {
                if row_index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind_text(res_type.as_str())
                    .push(", ")
                    .bind_text(res_id.as_str())
                    .push(", ");
                sql.bind_text(&row.param).push(", ").bind_int(row.grp);
                for value in &row.values {
                    sql.push(", ").bind(value.clone());
                }
                sql.push(", ").bind_int(row.sort_role).push(")");
            }
            statements.push(sql);
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: &str, value: IndexValue) -> IndexEntry {
        let param_type = match value {
            IndexValue::Date(_) => cdr_search::SearchParamType::Date,
            IndexValue::String { .. } => cdr_search::SearchParamType::String,
            _ => cdr_search::SearchParamType::Token,
        };
        IndexEntry { code: code.to_owned(), param_type, value }
    }

    fn date(low: i64) -> IndexValue {
        IndexValue::Date(cdr_search::DateRange { low, high: low + 1 })
    }

    fn name(text: &str) -> IndexValue {
        IndexValue::String { normalized: text.to_owned(), exact: text.to_owned() }
    }

    /// One row per parameter holds the lowest value (role 1) and one the highest (role 2): the first of
    /// equal values, both on a single value, none on a row without a sort value.
    #[test]
    fn sort_roles_mark_the_lowest_and_highest_value_of_each_parameter() {
        let entries = [
            entry("date", date(30)),
            entry("name", name("smith")),
            entry("date", date(10)),
            entry("date", date(30)),
            entry("name", name("adams")),
            entry("date", date(20)),
            entry("birthdate", date(5)),
            entry("name", name("adams")),
        ];
        let roles: Vec<(String, i64)> =
            rows_of(&entries).into_iter().map(|row| (row.param, row.sort_role)).collect();
        let expected = [
            ("date", 2),
            ("name", 2),
            ("date", 1),
            ("date", 0),
            ("name", 1),
            ("date", 0),
            ("birthdate", 3),
            ("name", 0),
        ];
        let expected: Vec<(String, i64)> =
            expected.iter().map(|(code, role)| ((*code).to_owned(), *role)).collect();
        assert_eq!(roles, expected);
    }

    #[test]
    fn index_text_is_cleaned_and_bounded() {
        assert_eq!(clean("a\0b"), "ab");
        let long = "é".repeat(400);
        let cleaned = clean(&long);
        assert!(cleaned.len() <= MAX_INDEXED_BYTES && cleaned.len() >= MAX_INDEXED_BYTES - 1);
        assert!(long.starts_with(&cleaned));
    }
}
