//! A page of matches in sort order, with keyset paging: the page query, and the walk along a sort
//! parameter's index.
//!
//! Paging is by keyset: every page is ordered by the `_sort` keys, then `(res_type, res_id)` as the
//! tiebreaker (in the direction of the last key), and the next page starts strictly after the last row's key
//! (the previous page strictly before the first row's). A resource without a value for a sort key sorts last
//! in either direction.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_search::{SearchParamType, SearchQuery, SortKey};
use sqlx::{FromRow, Row};

use crate::compile::{MAX_CHAR, where_clause};
use crate::connect::dispatch;
use crate::index::{IndexTable, SortKind};
use crate::plan::Drive;
use crate::row::{ResourceRow, logical_id, resource_type, version_id};
use crate::sql::{Bind, Sql, query_of};
use crate::{Store, StoreError};

/// The value of one sort key of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Int(i64),
    Float(f64),
    Text(String),
}

/// Where a resource sits in the order of a search: its sort values, then its type and id.
#[derive(Debug, Clone, PartialEq)]
pub struct PageKey {
    pub values: Vec<SortValue>,
    pub res_type: ResourceType,
    pub res_id: LogicalId,
}

/// Which side of a [`PageKey`] a page lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDirection {
    /// The rows strictly after the key (a next page).
    After,
    /// The rows strictly before the key (a previous page).
    Before,
}

/// One page request.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    pub query: &'a SearchQuery,
    /// The resource types searched; empty means every type.
    pub types: &'a [ResourceType],
    /// Page size.
    pub count: u32,
    /// Where the page starts; `None` for the first page.
    pub page: Option<(PageDirection, &'a PageKey)>,
    /// Now, in microseconds since the Unix epoch (for `ap` on dates).
    pub now_micros: i64,
    /// Only resources whose current version was stamped before this instant: the feed horizon
    /// ([`Store::feed_horizon`]) of a `_lastUpdated` walk.
    pub horizon: Option<Instant>,
}

/// A current resource version found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundResource {
    pub res_type: ResourceType,
    pub res_id: LogicalId,
    pub version: VersionId,
    pub last_updated: Instant,
    pub body: String,
    /// The resource's place in the search order (empty values for included resources).
    pub key: PageKey,
}

/// A page of matches, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub resources: Vec<FoundResource>,
    /// Whether more matches lie beyond the page, in the direction it was read.
    pub more: bool,
}

/// The index table and column a sort on an indexed parameter reads, and the kind of value it yields.
fn sort_column(key: &SortKey) -> Result<(&'static str, &'static str, SortKind), StoreError> {
    if matches!(key.param.param_type, SearchParamType::Composite | SearchParamType::Special) {
        return Err(StoreError::NotSupported(format!("cannot sort by '{}'", key.param.code)));
    }
    let table = IndexTable::of(key.param.param_type)?;
    let (column, kind) = table.sort_column();
    Ok((table.name(), column, kind))
}

/// The value standing for "no value" in a sort key: it sorts after every real value in the key's direction.
fn missing_value(kind: SortKind, descending: bool) -> Bind {
    match (kind, descending) {
        (SortKind::Int, false) => Bind::Int(i64::MAX),
        (SortKind::Int, true) => Bind::Int(i64::MIN),
        (SortKind::Float, false) => Bind::Float(f64::MAX),
        (SortKind::Float, true) => Bind::Float(f64::MIN),
        (SortKind::Text, false) => Bind::Text(MAX_CHAR.to_string()),
        (SortKind::Text, true) => Bind::Text(String::new()),
    }
}

/// The `sort_role` values of the rows that represent a resource in a sort (migration 0004).
fn sort_roles(descending: bool) -> &'static str {
    if descending { "(2, 3)" } else { "(1, 3)" }
}

/// The SQL expression of a sort key on `resource r`, and the kind of value it yields.
fn sort_expression(sql: &mut Sql, key: &SortKey) -> Result<SortKind, StoreError> {
    match key.param.code.as_str() {
        "_id" => {
            sql.push("r.res_id");
            return Ok(SortKind::Text);
        }
        "_lastUpdated" => {
            sql.push("r.last_updated");
            return Ok(SortKind::Int);
        }
        _ => {}
    }
    let (table, column, kind) = sort_column(key)?;
    sql.push("COALESCE((SELECT s.").push(column).push(" FROM ").push(table);
    sql.push(" s WHERE s.res_type = r.res_type AND s.res_id = r.res_id AND s.param = ");
    sql.bind_text(&key.param.code).push(" AND s.sort_role IN ").push(sort_roles(key.descending));
    sql.push("), ").bind(missing_value(kind, key.descending)).push(")");
    Ok(kind)
}

fn same_kind(value: &SortValue, kind: SortKind) -> bool {
    matches!(
        (value, kind),
        (SortValue::Int(_), SortKind::Int)
            | (SortValue::Float(_), SortKind::Float)
            | (SortValue::Text(_), SortKind::Text)
    )
}

fn sort_bind(value: &SortValue) -> Bind {
    match value {
        SortValue::Int(value) => Bind::Int(*value),
        SortValue::Float(value) => Bind::Float(*value),
        SortValue::Text(value) => Bind::Text(value.clone()),
    }
}

/// Most `_sort` keys a page query takes: each is a column of the result and a term of its `ORDER BY`, and
/// the databases allow some 2,000 (SQLite) and 1,664 (PostgreSQL) of those.
const MAX_SORT_KEYS: usize = 1_000;

/// The page query: matches with their sort values, after or before a key, in (reversed) order.
fn page_sql(request: &SearchRequest<'_>, drive: Drive) -> Result<(Sql, Vec<SortKind>), StoreError> {
    let query = request.query;
    if query.sort.len() > MAX_SORT_KEYS {
        return Err(StoreError::LimitExceeded(format!(
            "the search has {} sort keys, more than the limit of {MAX_SORT_KEYS}",
            query.sort.len()
        )));
    }
    // The matches are ordered and cut to the page on their keys alone; only the page's rows then fetch their
    // bodies, so sorting thousands of matches never carries thousands of bodies.
    let mut sql = Sql::new(
        "SELECT p.*, b.version, b.last_updated, b.body FROM (SELECT q.* FROM (SELECT r.res_type, r.res_id",
    );
    let mut kinds = Vec::with_capacity(query.sort.len());
    for (index, key) in query.sort.iter().enumerate() {
        sql.push(", ");
        kinds.push(sort_expression(&mut sql, key)?);
        sql.push(&format!(" AS s{index}"));
    }
    sql.push(" FROM resource r WHERE ");
    where_clause(&mut sql, query, request.types, request.now_micros, drive, true)?;
    push_horizon(&mut sql, request);
    sql.push(") q");
    let backwards = matches!(request.page, Some((PageDirection::Before, _)));
    // Every ordering column with its direction (true = descending) as read for this page.
    let mut columns: Vec<(String, bool)> = query
        .sort
        .iter()
        .enumerate()
        .map(|(index, key)| (format!("q.s{index}"), key.descending != backwards))
        .collect();
    // The tiebreaker runs in the direction of the last sort key, so that a sort on `_lastUpdated` alone is one
    // scan of the (res_type, last_updated, res_id) index, forwards or backwards.
    let tiebreak_descending = query.sort.last().is_some_and(|key| key.descending) != backwards;
    columns.push(("q.res_type".to_owned(), tiebreak_descending));
    columns.push(("q.res_id".to_owned(), tiebreak_descending));
    if let Some((_, key)) = request.page {
        let same_kinds = key.values.len() == kinds.len()
            && key.values.iter().zip(&kinds).all(|(value, kind)| same_kind(value, *kind));
        if !same_kinds {
            return Err(StoreError::NotSupported(
                "the paging cursor does not belong to this search".to_owned(),
            ));
        }
        let mut values: Vec<Bind> = key.values.iter().map(sort_bind).collect();
        values.push(Bind::Text(key.res_type.as_str().to_owned()));
        values.push(Bind::Text(key.res_id.as_str().to_owned()));
        sql.push(" WHERE (");
        for position in 0..columns.len() {
            if position > 0 {
                sql.push(" OR ");
            }
            sql.push("(");
            for (column, value) in columns.iter().zip(&values).take(position) {
                sql.push(&column.0).push(" = ").bind(value.clone()).push(" AND ");
            }
            let (column, descending) = &columns[position];
            sql.push(column).push(if *descending { " < " } else { " > " });
            sql.bind(values[position].clone()).push(")");
        }
        sql.push(")");
    }
    sql.push(" ORDER BY ");
    for (index, (column, descending)) in columns.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.push(column).push(if *descending { " DESC" } else { " ASC" });
    }
    sql.push_limit(i64::from(request.count) + 1);
    sql.push(") p JOIN resource b ON b.res_type = p.res_type AND b.res_id = p.res_id ORDER BY ");
    for (index, (column, descending)) in columns.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        let column = column.replacen("q.", "p.", 1);
        sql.push(&column).push(if *descending { " DESC" } else { " ASC" });
    }
    Ok((sql, kinds))
}

/// Appends the feed horizon's bound on `resource r`, when the request has one.
fn push_horizon(sql: &mut Sql, request: &SearchRequest<'_>) {
    if let Some(horizon) = request.horizon {
        sql.push(" AND r.last_updated < ").bind_int(horizon.millis());
    }
}

/// A search of one type sorted on one indexed parameter, read by walking that parameter's index in order:
/// first the resources that have a value (their representative rows, `sort_role`), then those without one
/// (the tail, in id order), which sort last in either direction.
#[derive(Debug, Clone, Copy)]
struct SortWalk<'a> {
    key: &'a SortKey,
    table: &'static str,
    column: &'static str,
    kind: SortKind,
}

/// The two stretches of a [`SortWalk`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stretch {
    Valued,
    Tail,
}

/// The [`SortWalk`] of a request, when it is one.
fn sort_walk<'a>(request: &SearchRequest<'a>) -> Result<Option<SortWalk<'a>>, StoreError> {
    let ([key], [_]) = (request.query.sort.as_slice(), request.types) else { return Ok(None) };
    if matches!(key.param.code.as_str(), "_id" | "_lastUpdated") {
        return Ok(None);
    }
    let (table, column, kind) = sort_column(key)?;
    Ok(Some(SortWalk { key, table, column, kind }))
}

/// The query of one stretch of a [`SortWalk`]: at most `limit` rows strictly after `cursor` (or from the
/// start) in the reading direction (`backwards` reverses the order).
fn walk_sql(
    request: &SearchRequest<'_>,
    walk: &SortWalk<'_>,
    stretch: Stretch,
    cursor: Option<&PageKey>,
    backwards: bool,
    limit: i64,
) -> Result<Sql, StoreError> {
    let descending = walk.key.descending != backwards;
    let (order, after) = if descending { (" DESC", " < ") } else { (" ASC", " > ") };
    let code = walk.key.param.code.as_str();
    let roles = sort_roles(walk.key.descending);
    let mut sql = Sql::new("SELECT p.*, b.version, b.last_updated, b.body FROM (");
    match stretch {
        // CROSS JOIN keeps SQLite's join order (index walk outside); PostgreSQL plans it freely.
        Stretch::Valued => {
            sql.push("SELECT z.res_type, z.res_id, z.").push(walk.column).push(" AS s0 FROM ");
            sql.push(walk.table).push(" z CROSS JOIN resource r WHERE z.res_type = ");
            sql.bind_text(request.types[0].as_str()).push(" AND z.param = ").bind_text(code);
            sql.push(" AND z.sort_role IN ").push(roles);
            sql.push(" AND r.res_type = z.res_type AND r.res_id = z.res_id AND ");
            where_clause(
                &mut sql,
                request.query,
                request.types,
                request.now_micros,
                Drive::Order,
                true,
            )?;
            push_horizon(&mut sql, request);
            // A row-value comparison, which both databases turn into an index range bound.
            if let Some(cursor) = cursor {
                sql.push(" AND (z.").push(walk.column).push(", z.res_id)").push(after).push("(");
                sql.bind(sort_bind(&cursor.values[0])).push(", ").bind_text(cursor.res_id.as_str());
                sql.push(")");
            }
            sql.push(" ORDER BY z.").push(walk.column).push(order);
            sql.push(", z.res_id").push(order);
        }
        Stretch::Tail => {
            sql.push("SELECT r.res_type, r.res_id, ");
            sql.bind(missing_value(walk.kind, walk.key.descending))
                .push(" AS s0 FROM resource r WHERE ");
            where_clause(
                &mut sql,
                request.query,
                request.types,
                request.now_micros,
                Drive::Order,
                true,
            )?;
            push_horizon(&mut sql, request);
            sql.push(" AND NOT EXISTS (SELECT 1 FROM ").push(walk.table);
            sql.push(" z WHERE z.res_type = r.res_type AND z.res_id = r.res_id AND z.param = ");
            sql.bind_text(code).push(" AND z.sort_role IN ").push(roles).push(")");
            if let Some(cursor) = cursor {
                sql.push(" AND r.res_id").push(after).bind_text(cursor.res_id.as_str());
            }
            sql.push(" ORDER BY r.res_type").push(order).push(", r.res_id").push(order);
        }
    }
    sql.push_limit(limit);
    sql.push(
        ") p JOIN resource b ON b.res_type = p.res_type AND b.res_id = p.res_id ORDER BY p.s0",
    );
    sql.push(order).push(", p.res_id").push(order);
    Ok(sql)
}

/// A row of a page: the resource, and its sort values.
type RawRow = (ResourceRow, Vec<SortValue>);

/// Reads the rows of a page query (`sqlx::Row` of either backend): the resource columns, then the sort
/// value columns `s0, s1, …` of `$kinds`. A macro because the row type differs by backend.
macro_rules! read_rows {
    ($rows:expr, $kinds:expr) => {
        $rows
            .iter()
            .map(|row| {
                let mut values = Vec::with_capacity($kinds.len());
                for (index, kind) in $kinds.iter().enumerate() {
                    let column = format!("s{index}");
                    values.push(match kind {
                        SortKind::Int => SortValue::Int(row.try_get::<i64, _>(column.as_str())?),
                        SortKind::Float => {
                            SortValue::Float(row.try_get::<f64, _>(column.as_str())?)
                        }
                        SortKind::Text => {
                            SortValue::Text(row.try_get::<String, _>(column.as_str())?)
                        }
                    });
                }
                Ok::<RawRow, sqlx::Error>((ResourceRow::from_row(row)?, values))
            })
            .collect::<Result<Vec<RawRow>, sqlx::Error>>()
    };
}

pub(crate) fn found(rows: Vec<RawRow>) -> Result<Vec<FoundResource>, StoreError> {
    rows.into_iter()
        .map(|(row, values)| {
            let res_type = resource_type(&row.res_type)?;
            let res_id = logical_id(&row.res_id)?;
            let body = row.body.ok_or_else(|| {
                StoreError::Corrupt(format!("{res_type}/{res_id} is live but has no body"))
            })?;
            Ok(FoundResource {
                key: PageKey { values, res_type, res_id: res_id.clone() },
                res_type,
                res_id,
                version: version_id(row.version)?,
                last_updated: Instant::from_millis(row.last_updated),
                body,
            })
        })
        .collect()
}

impl Store {
    /// One page of matches, in search order.
    ///
    /// # Errors
    /// [`StoreError::NotSupported`] for a criterion the compiler cannot serve; database failures.
    pub async fn search(&self, request: &SearchRequest<'_>) -> Result<SearchPage, StoreError> {
        if crate::audit::searches_audit(request.types)? {
            return self.search_audit(request).await;
        }
        let drive = self.drive(request.query, request.types, request.now_micros, false).await?;
        let rows = match (drive, sort_walk(request)?) {
            (Drive::Order, Some(walk)) => self.walk(request, &walk).await?,
            _ => {
                let (sql, kinds) = page_sql(request, drive)?;
                dispatch!(&self.pool, pool => query_of!(&sql)
                    .fetch_all(pool)
                    .await
                    .and_then(|rows| read_rows!(rows, kinds)))?
            }
        };
        let mut resources = found(rows)?;
        let more = resources.len() > request.count as usize;
        resources.truncate(request.count as usize);
        if matches!(request.page, Some((PageDirection::Before, _))) {
            resources.reverse();
        }
        Ok(SearchPage { resources, more })
    }

    /// The rows of a page read by a [`SortWalk`], in reading order: the stretch of the cursor from the
    /// cursor, then the other stretch from its start when the page is not yet full.
    async fn walk(
        &self,
        request: &SearchRequest<'_>,
        walk: &SortWalk<'_>,
    ) -> Result<Vec<RawRow>, StoreError> {
        let backwards = matches!(request.page, Some((PageDirection::Before, _)));
        let cursor = request.page.map(|(_, key)| key);
        let missing = match missing_value(walk.kind, walk.key.descending) {
            Bind::Int(value) => SortValue::Int(value),
            Bind::Float(value) => SortValue::Float(value),
            Bind::Text(value) | Bind::OptText(Some(value)) => SortValue::Text(value),
            Bind::OptText(None) => SortValue::Text(String::new()),
        };
        let cursor_stretch = match cursor {
            Some(key) if key.values.len() != 1 || !same_kind(&key.values[0], walk.kind) => {
                return Err(StoreError::NotSupported(
                    "the paging cursor does not belong to this search".to_owned(),
                ));
            }
            Some(key) if key.values[0] == missing => Stretch::Tail,
            _ => Stretch::Valued,
        };
        let stretches: &[Stretch] = match (backwards, cursor_stretch) {
            (false, Stretch::Valued) => &[Stretch::Valued, Stretch::Tail],
            (false, Stretch::Tail) => &[Stretch::Tail],
            (true, Stretch::Valued) => &[Stretch::Valued],
            (true, Stretch::Tail) => &[Stretch::Tail, Stretch::Valued],
        };
        let wanted = i64::from(request.count) + 1;
        let kinds = [walk.kind];
        let mut rows: Vec<RawRow> = Vec::new();
        for &stretch in stretches {
            let remaining = wanted - i64::try_from(rows.len()).unwrap_or(wanted);
            if remaining <= 0 {
                break;
            }
            let from = cursor.filter(|_| stretch == cursor_stretch);
            let sql = walk_sql(request, walk, stretch, from, backwards, remaining)?;
            let mut stretch_rows = dispatch!(&self.pool, pool => query_of!(&sql)
                .fetch_all(pool)
                .await
                .and_then(|rows| read_rows!(rows, kinds)))?;
            rows.append(&mut stretch_rows);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use cdr_model::ResourceType;
    use cdr_search::{QueryLimits, SearchParamRegistry, parse_query, parse_query_with_limits};

    use super::*;
    use crate::compile::probe_sql;
    use crate::plan::{PROBE_CAP, Selectivity, selectivity};

    /// Every SQL text a search may run: the page query in both drives, the stretches of a sort walk, and
    /// the probes of planning.
    fn compiled(type_name: &str, query: &str) -> Vec<Sql> {
        let registry = SearchParamRegistry::r4().unwrap();
        let pairs: Vec<(String, String)> = form_urlencoded_pairs(query);
        let parsed = parse_query(Some(ResourceType::parse(type_name).unwrap()), &pairs, &registry);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let res_type = ResourceType::parse(type_name).unwrap();
        let types = [res_type];
        let key = PageKey {
            values: parsed.query.sort.iter().map(|_| SortValue::Text("x".to_owned())).collect(),
            res_type,
            res_id: LogicalId::parse("id").unwrap(),
        };
        let request = SearchRequest {
            query: &parsed.query,
            types: &types,
            count: 10,
            page: None,
            now_micros: 0,
            horizon: None,
        };
        let mut texts = vec![
            page_sql(&request, Drive::Clause(0)).unwrap().0,
            page_sql(&request, Drive::Order).unwrap().0,
        ];
        if let Some(walk) = sort_walk(&request).unwrap() {
            for stretch in [Stretch::Valued, Stretch::Tail] {
                texts.push(walk_sql(&request, &walk, stretch, None, false, 5).unwrap());
                texts.push(walk_sql(&request, &walk, stretch, Some(&key), true, 5).unwrap());
            }
        }
        for clause in &parsed.query.clauses {
            if let Selectivity::Probe(filter) = selectivity(&clause.criterion) {
                texts.push(probe_sql(filter, res_type, 0, PROBE_CAP).unwrap());
            }
        }
        texts
    }

    fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    /// Client values reach the database only as binds: none appears in the SQL text, and there is one
    /// placeholder per bind; row limits are the server's own and written out.
    #[test]
    fn values_are_bound_never_spliced() {
        let cases = [
            ("Patient", "name='; DROP TABLE resource; --&_sort=-birthdate,family", "DROP"),
            ("Patient", "identifier=evil'system|code'x&gender:not=o'clock", "evil"),
            ("Patient", "birthdate=ge1970&_has:ImagingStudy:patient:modality=X'Y", "X'Y"),
            ("ImagingStudy", "patient.name=Robert'); --&started=ap2020", "Robert"),
            ("ServiceRequest", "instantiates-uri:below=http://x/'&code:text=a%b", "http://x"),
            ("ImagingStudy", "modality=C'T&started=ge2020&_sort=-started", "C'T"),
            ("Patient", "family=O'Brien&_sort=given", "O'Brien"),
        ];
        for (type_name, query, value) in cases {
            for sql in compiled(type_name, query) {
                assert!(!sql.text.contains(value), "{} in {}", value, sql.text);
                assert!(sql.text.matches('\'').count().is_multiple_of(2), "{}", sql.text);
                let placeholders = sql.text.matches('$').count();
                assert_eq!(placeholders, sql.binds.len(), "{}", sql.text);
                // A bound LIMIT makes SQLite re-prepare the statement on every execution.
                assert!(!sql.text.contains("LIMIT $"), "{}", sql.text);
            }
        }
    }

    /// A compartment's patient is a bind too, at the top level and in every chain and `_has` step.
    #[test]
    fn the_compartment_is_bound_at_every_step() {
        let registry = SearchParamRegistry::r4().unwrap();
        for (type_name, query) in [
            ("DiagnosticReport", "based-on:ServiceRequest.code=x|y&_sort=-date"),
            ("ServiceRequest", "_has:DiagnosticReport:based-on:code=x|y"),
            ("Practitioner", "name=x"),
        ] {
            let res_type = ResourceType::parse(type_name).unwrap();
            let pairs = form_urlencoded_pairs(query);
            let mut parsed = parse_query(Some(res_type), &pairs, &registry);
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            parsed.query.compartment = Some(cdr_search::Compartment::patient("p'1"));
            let types = [res_type];
            let request = SearchRequest {
                query: &parsed.query,
                types: &types,
                count: 10,
                page: None,
                now_micros: 0,
                horizon: None,
            };
            for drive in [Drive::Clause(0), Drive::Order] {
                let sql = page_sql(&request, drive).unwrap().0;
                assert!(!sql.text.contains("p'1"), "{}", sql.text);
                assert_eq!(sql.text.matches('$').count(), sql.binds.len(), "{}", sql.text);
                let patients = sql
                    .binds
                    .iter()
                    .filter(|bind| matches!(bind, Bind::Text(text) if text == "p'1"))
                    .count();
                // The matches, and the resource a chain or `_has` steps to (Practitioner is in no
                // compartment: never true, with no bind).
                let expected = if type_name == "Practitioner" { 0 } else { 2 };
                assert_eq!(patients, expected, "{}", sql.text);
            }
        }
    }

    /// Searches too large for one database statement are refused when compiled, naming the limit; an
    /// ordinary one is far inside both limits.
    #[test]
    fn oversized_searches_are_refused_before_they_run() {
        let registry = SearchParamRegistry::r4().unwrap();
        let patient = || ResourceType::parse("Patient").unwrap();
        // What the parser's own budget would refuse first, with that budget lifted: the store must hold
        // whatever a caller with other limits hands it.
        let unbounded = QueryLimits {
            max_parameters: usize::MAX,
            max_clauses: usize::MAX,
            max_values: usize::MAX,
            max_sort_keys: usize::MAX,
            ..QueryLimits::default()
        };
        let hundred = (0..100).map(|n| format!("id{n}")).collect::<Vec<_>>().join(",");
        let many_values = vec![format!("_id={hundred}"); 400].join("&");
        let many_clauses = vec!["name=a"; 1_000].join("&");
        let many_sort_keys = format!("_sort={}", vec!["birthdate"; 2_100].join(","));
        for (query, limit) in
            [(many_values, "32766"), (many_clauses, "levels deep"), (many_sort_keys, "sort keys")]
        {
            let pairs = form_urlencoded_pairs(&query);
            let parsed = parse_query_with_limits(Some(patient()), &pairs, &registry, &unbounded);
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            let types = [patient()];
            let request = SearchRequest {
                query: &parsed.query,
                types: &types,
                count: 10,
                page: None,
                now_micros: 0,
                horizon: None,
            };
            let error = page_sql(&request, Drive::Order)
                .and_then(|(sql, _)| sql.check_limits())
                .unwrap_err();
            assert!(
                matches!(&error, StoreError::LimitExceeded(text) if text.contains(limit)),
                "{error:?}"
            );
        }
        for sql in
            compiled("ImagingStudy", "patient.name=a&modality=CT&started=ge2020&_sort=-started")
        {
            sql.check_limits().unwrap();
        }
    }

    #[test]
    fn sorted_pages_order_by_keys_then_id() {
        let sql = compiled("Patient", "_sort=-birthdate,family").remove(0);
        assert!(
            sql.text
                .contains("ORDER BY q.s0 DESC, q.s1 ASC, q.res_type ASC, q.res_id ASC LIMIT 11)"),
            "{}",
            sql.text
        );
        assert!(
            sql.text.ends_with("ORDER BY p.s0 DESC, p.s1 ASC, p.res_type ASC, p.res_id ASC"),
            "{}",
            sql.text
        );
    }
}
