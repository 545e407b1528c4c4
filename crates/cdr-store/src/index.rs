//! The index tables ([`IndexTable`]: names, value and sort columns, which parameter types they hold), and the
//! [`IndexEntry`] values of `cdr-search` as their rows.
//!
//! Composite values are written component by component into each component's table under the code
//! `code$N` with a `grp` number shared by the components of one value; plain rows have `grp` 0.

use std::collections::HashMap;

use cdr_model::{LogicalId, ResourceType};
use cdr_search::{IndexEntry, IndexValue, SearchParamType};

use crate::StoreError;
use crate::sql::{Bind, Sql};

/// One of the index tables: where the rows of the search parameters of one type live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IndexTable {
    Token,
    String,
    Date,
    Reference,
    Quantity,
    Number,
    Uri,
    Position,
}

/// The kind of value a sort on an index table's sort column yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortKind {
    Int,
    Float,
    Text,
}

impl IndexTable {
    /// Every index table, in the order rows are deleted and inserted.
    pub(crate) const ALL: [IndexTable; 8] = [
        IndexTable::Token,
        IndexTable::String,
        IndexTable::Date,
        IndexTable::Reference,
        IndexTable::Quantity,
        IndexTable::Number,
        IndexTable::Uri,
        IndexTable::Position,
    ];

    /// The table that holds the rows of a parameter type.
    pub(crate) fn of(param_type: SearchParamType) -> Result<IndexTable, StoreError> {
        Ok(match param_type {
            SearchParamType::Token => IndexTable::Token,
            SearchParamType::String => IndexTable::String,
            SearchParamType::Date => IndexTable::Date,
            SearchParamType::Reference => IndexTable::Reference,
            SearchParamType::Quantity => IndexTable::Quantity,
            SearchParamType::Number => IndexTable::Number,
            SearchParamType::Uri => IndexTable::Uri,
            // The one special parameter searched, `near`, indexes positions.
            SearchParamType::Special => IndexTable::Position,
            SearchParamType::Composite => {
                return Err(StoreError::NotSupported(format!(
                    "{} parameters cannot be used here",
                    param_type.as_str()
                )));
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            IndexTable::Token => "idx_token",
            IndexTable::String => "idx_string",
            IndexTable::Date => "idx_date",
            IndexTable::Reference => "idx_reference",
            IndexTable::Quantity => "idx_quantity",
            IndexTable::Number => "idx_number",
            IndexTable::Uri => "idx_uri",
            IndexTable::Position => "idx_position",
        }
    }

    /// The statement that refreshes the table's PostgreSQL planner statistics.
    pub(crate) fn analyze(self) -> &'static str {
        match self {
            IndexTable::Token => "ANALYZE idx_token",
            IndexTable::String => "ANALYZE idx_string",
            IndexTable::Date => "ANALYZE idx_date",
            IndexTable::Reference => "ANALYZE idx_reference",
            IndexTable::Quantity => "ANALYZE idx_quantity",
            IndexTable::Number => "ANALYZE idx_number",
            IndexTable::Uri => "ANALYZE idx_uri",
            IndexTable::Position => "ANALYZE idx_position",
        }
    }

    /// The value columns, in the order [`value_row`] binds them.
    fn value_columns(self) -> &'static str {
        match self {
            IndexTable::Token => "system, code, text, type_system, type_code",
            IndexTable::String => "normalized, exact",
            IndexTable::Date => "low, high",
            IndexTable::Reference => "target_type, target_id, version, url, id_system, id_value",
            IndexTable::Quantity => "system, code, unit, value",
            IndexTable::Number => "value",
            IndexTable::Uri => "uri",
            IndexTable::Position => "latitude, longitude, x, y, z",
        }
    }

    /// The value column a sort on a parameter of this table reads: its position among the value columns,
    /// its name, and the kind of value it yields.
    fn sort(self) -> (usize, &'static str, SortKind) {
        match self {
            IndexTable::Token => (1, "code", SortKind::Text),
            IndexTable::String => (0, "normalized", SortKind::Text),
            IndexTable::Date => (0, "low", SortKind::Int),
            IndexTable::Reference => (1, "target_id", SortKind::Text),
            IndexTable::Quantity => (3, "value", SortKind::Float),
            IndexTable::Number => (0, "value", SortKind::Float),
            IndexTable::Uri => (0, "uri", SortKind::Text),
            // Never read: `_sort` refuses special parameters (a distance sort would need the centre).
            IndexTable::Position => (0, "latitude", SortKind::Float),
        }
    }

    /// The name and kind of the sort column (see [`IndexTable::sort`]).
    pub(crate) fn sort_column(self) -> (&'static str, SortKind) {
        let (_, column, kind) = self.sort();
        (column, kind)
    }
}

/// Most rows per multi-row `INSERT` (keeps every statement well under both backends' bind limits).
const ROWS_PER_INSERT: usize = 400;

/// One row of one index table: the table, its value columns and their binds.
#[derive(Debug, Clone)]
struct IndexRow {
    table: IndexTable,
    param: String,
    grp: i64,
    values: Vec<Bind>,
    /// 1 = the lowest sort value of its resource and parameter, 2 = the highest, 3 = both, 0 = neither
    /// (migration 0004 defines the roles).
    sort_role: i64,
}

/// Longest text an index column holds, in bytes: longer values keep their first bytes (at a character
/// boundary), so that every index row stays far below PostgreSQL's B-tree entry limit (about 2.7 kB).
pub const MAX_INDEXED_BYTES: usize = 600;

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
fn value_row(value: &IndexValue) -> Option<(IndexTable, Vec<Bind>)> {
    let row = match value {
        IndexValue::Token(token) => (
            IndexTable::Token,
            vec![
                text(token.system.as_deref()),
                text(token.code.as_deref()),
                text(token.text.as_deref()),
                text(token.identifier_type.as_ref().and_then(|coding| coding.system.as_deref())),
                text(token.identifier_type.as_ref().and_then(|coding| coding.code.as_deref())),
            ],
        ),
        IndexValue::String { normalized, exact } => {
            (IndexTable::String, vec![Bind::Text(normalized.clone()), Bind::Text(exact.clone())])
        }
        IndexValue::Date(range) => {
            (IndexTable::Date, vec![Bind::Int(range.low), Bind::Int(range.high)])
        }
        IndexValue::Reference(reference) => (
            IndexTable::Reference,
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
            IndexTable::Quantity,
            vec![
                text(quantity.system.as_deref()),
                text(quantity.code.as_deref()),
                text(quantity.unit.as_deref()),
                Bind::Float(decimal_to_f64(&quantity.number.value)),
            ],
        ),
        IndexValue::Number(number) => {
            (IndexTable::Number, vec![Bind::Float(decimal_to_f64(&number.value))])
        }
        IndexValue::Uri(uri) => (IndexTable::Uri, vec![Bind::Text(uri.clone())]),
        IndexValue::Position(point) => {
            let [x, y, z] = point.unit_vector();
            let coordinates = [point.latitude(), point.longitude(), x, y, z];
            (IndexTable::Position, coordinates.into_iter().map(Bind::Float).collect())
        }
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
    let mut extremes: HashMap<(IndexTable, &str), (usize, usize)> = HashMap::new();
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
    match &row.values[row.table.sort().0] {
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

/// One resource's index rows to write: its address, its rows (from `cdr_search::extract`), and whether it
/// is new, so that it has no old rows to delete.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexedResource<'a> {
    pub(crate) res_type: ResourceType,
    pub(crate) res_id: &'a LogicalId,
    pub(crate) entries: &'a [IndexEntry],
    pub(crate) fresh: bool,
}

/// Most resources one `DELETE` of old index rows names.
const RESOURCES_PER_DELETE: usize = 200;

/// The statements that replace the index rows of `resources` (each at most once): per table, one `DELETE` of
/// the old rows of the resources that are not fresh, then multi-row `INSERT`s of every resource's rows
/// together, so that a Bundle's writes cost a few statements per table, not a few per resource.
pub(crate) fn replace_statements(resources: &[IndexedResource<'_>]) -> Vec<Sql> {
    let mut statements = Vec::new();
    let stale: Vec<&IndexedResource<'_>> =
        resources.iter().filter(|resource| !resource.fresh).collect();
    for chunk in stale.chunks(RESOURCES_PER_DELETE) {
        for table in IndexTable::ALL {
            let mut sql = Sql::new("DELETE FROM ");
            sql.push(table.name());
            if let [only] = chunk {
                sql.push(" WHERE res_type = ").bind_text(only.res_type.as_str());
                sql.push(" AND res_id = ").bind_text(only.res_id.as_str());
            } else {
                sql.push(" WHERE (res_type, res_id) IN (VALUES ");
                for (position, resource) in chunk.iter().enumerate() {
                    sql.push(if position == 0 { "(" } else { ", (" });
                    sql.bind_text(resource.res_type.as_str())
                        .push(", ")
                        .bind_text(resource.res_id.as_str())
                        .push(")");
                }
                sql.push(")");
            }
            statements.push(sql);
        }
    }
    statements.extend(insert_statements(resources));
    statements
}

/// The statements that replace the rows of one parameter of `resources` (each at most once), those of the
/// code `param` in `table`, with their `entries` (all of that parameter): what a parameter whose values come
/// from other resources is rewritten with when those change.
pub(crate) fn replace_param_statements(
    table: IndexTable,
    param: &str,
    resources: &[IndexedResource<'_>],
) -> Vec<Sql> {
    let mut statements = Vec::new();
    for chunk in resources.chunks(RESOURCES_PER_DELETE) {
        let mut sql = Sql::new("DELETE FROM ");
        sql.push(table.name()).push(" WHERE param = ").bind_text(param);
        sql.push(" AND (res_type, res_id) IN (VALUES ");
        for (position, resource) in chunk.iter().enumerate() {
            sql.push(if position == 0 { "(" } else { ", (" });
            sql.bind_text(resource.res_type.as_str())
                .push(", ")
                .bind_text(resource.res_id.as_str())
                .push(")");
        }
        sql.push(")");
        statements.push(sql);
    }
    statements.extend(insert_statements(resources));
    statements
}

/// Multi-row `INSERT`s of the index rows of `resources`, per table.
fn insert_statements(resources: &[IndexedResource<'_>]) -> Vec<Sql> {
    let mut statements = Vec::new();
    let rows: Vec<(&IndexedResource<'_>, IndexRow)> = resources
        .iter()
        .flat_map(|resource| rows_of(resource.entries).into_iter().map(move |row| (resource, row)))
        .collect();
    for table in IndexTable::ALL {
        let table_rows: Vec<&(&IndexedResource<'_>, IndexRow)> =
            rows.iter().filter(|(_, row)| row.table == table).collect();
        for chunk in table_rows.chunks(ROWS_PER_INSERT) {
            let mut sql = Sql::new("INSERT INTO ");
            sql.push(table.name())
                .push(" (res_type, res_id, param, grp, ")
                .push(table.value_columns())
                .push(", sort_role) VALUES ");
            for (row_index, (resource, row)) in chunk.iter().enumerate() {
                if row_index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind_text(resource.res_type.as_str())
                    .push(", ")
                    .bind_text(resource.res_id.as_str())
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

    /// Each table's sort column is the value column at its stated position.
    #[test]
    fn sort_columns_are_value_columns() {
        for table in IndexTable::ALL {
            let (position, column, _) = table.sort();
            let columns: Vec<&str> = table.value_columns().split(", ").collect();
            assert_eq!(columns[position], column, "{}", table.name());
            assert_eq!(table.analyze(), format!("ANALYZE {}", table.name()));
        }
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
