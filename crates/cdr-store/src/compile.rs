//! The query compiler: a `cdr-search` [`SearchQuery`] to SQL over the `idx_*` tables, with bind parameters
//! only.
//!
//! Each clause becomes one `EXISTS` (or `NOT EXISTS`) subquery on the index table of its parameter type,
//! correlated with an *anchor*: the `(res_type, res_id)` column pair of the resource being tested. The top
//! level anchors on `resource r`; a chain anchors its inner criterion on the reference row's
//! `(target_type, target_id)`, and `_has` on the pointing row's `(res_type, res_id)`, so chains and `_has`
//! nest to any depth the parser allows. Alternatives (comma) are ORed inside one subquery; clauses are ANDed.
//!
//! Prefixes follow the semantics documented in `cdr_search::ast`: a stored date is a range (microseconds)
//! compared with the search range; a stored number or quantity is its exact value, a point compared with the
//! search value's precision range (`eq ne sa eb`) or with the search value itself (`gt lt ge le`). `ap` widens
//! the search range by 10% of its distance from now (dates) or of its value (numbers), at least the range
//! itself.

use cdr_search::{
    Compartment, Criterion, DecimalValue, Modifier, NearValue, ParamFilter, Prefix, ReferenceValue,
    SearchParamType, SearchQuery, SearchValue, TokenSystem, TokenValue,
};

use cdr_model::ResourceType;

use crate::StoreError;
use crate::index::{IndexTable, decimal_to_f64};
use crate::plan::Drive;
use crate::sql::{Bind, Sql};

/// The largest character, appended to a prefix to bound a range scan of the strings that start with it.
pub(crate) const MAX_CHAR: char = '\u{10FFFF}';

/// The `(type, id)` SQL expressions of the resource a criterion is tested against, and the types it may have
/// when they are known only as a list (chain targets): repeating them as constants lets the planner use the
/// index tables' `(res_type, param, …)` indexes.
#[derive(Debug, Clone)]
struct Anchor {
    res_type: String,
    res_id: String,
    types: Vec<ResourceType>,
    /// Whether a correlated test on this anchor must stay a test of each resource (see [`FENCE`]).
    fence: bool,
}

impl Anchor {
    /// The text that closes a correlated `[NOT] EXISTS (SELECT …` on this anchor.
    fn exists_end(&self) -> &'static str {
        if self.fence { FENCE } else { ")" }
    }
}

/// Ends a correlated `EXISTS` subquery that must be evaluated for each resource reached, never turned into a
/// join. PostgreSQL turns a plain `EXISTS` into a semi-join and, misjudging how many rows the index tables'
/// (type, parameter, value) combinations hold, may then enumerate every match of a common value (all CT
/// studies) and sort them instead of walking the page order and stopping at a page; it never pulls up a
/// subquery with an `OFFSET`. SQLite evaluates correlated subqueries per row anyway, and accepts the same text.
const FENCE: &str = " LIMIT 1 OFFSET 0)";

/// Appends the WHERE conditions of `query` (after `WHERE`, starting with the type filter) for the alias `r`
/// of the `resource` table, in the form `drive` asks for; `fenced` keeps the other clauses tests of each
/// resource (for pages; a count leaves PostgreSQL free to join).
pub(crate) fn where_clause(
    sql: &mut Sql,
    query: &SearchQuery,
    types: &[ResourceType],
    now_micros: i64,
    drive: Drive,
    fenced: bool,
) -> Result<(), StoreError> {
    match types {
        [] => sql.push("1 = 1"),
        [only] => sql.push("r.res_type = ").bind_text(only.as_str()),
        many => sql.push("r.res_type IN ").bind_text_list(many.iter().map(|only| only.as_str())),
    };
    sql.push(" AND NOT r.deleted");
    if let Some(compartment) = &query.compartment {
        sql.push(" AND ");
        confine(sql, compartment, "r.res_type", "r.res_id", types);
    }
    let compartment = query.compartment.as_ref();
    let mut compiler = Compiler { sql, next_alias: 0, now_micros, compartment };
    for (index, clause) in query.clauses.iter().enumerate() {
        // Knowing the anchor's types is what lets `open_match` use the uncorrelated form; without them a
        // clause is a correlated test of each resource.
        let driving = drive == Drive::Clause(index);
        let anchor = Anchor {
            res_type: "r.res_type".to_owned(),
            res_id: "r.res_id".to_owned(),
            types: if driving { types.to_vec() } else { Vec::new() },
            fence: fenced && !driving,
        };
        compiler.sql.push(" AND ");
        compiler.criterion(&clause.criterion, &anchor)?;
    }
    Ok(())
}

/// The `SELECT r.res_id` of the live resources of `types` matching `query`, for conditional matching
/// (`StoreTx::find`, `find_all`), unordered. When the clause that drives it ([`usual_drive`]) is a value
/// match on one type's index rows (`identifier=system|value`, the usual criteria), the statement starts
/// from those rows, `DISTINCT` (which PostgreSQL never flattens into the outer query), and joins each
/// match's current row by key; the other clauses are tests of each match. PostgreSQL then has no other
/// plan to choose: planned on a new database's nearly empty tables (and kept as a generic plan), the form
/// with `r.res_id IN (…)` was once a walk of every resource of the type, testing each against every index
/// row of the type, which grew quadratically during the first minute of a bulk load.
///
/// [`usual_drive`]: crate::plan::usual_drive
pub(crate) fn match_sql(
    sql: &mut Sql,
    query: &SearchQuery,
    types: &[ResourceType],
    now_micros: i64,
) -> Result<(), StoreError> {
    let drive = crate::plan::usual_drive(query);
    let driving = match (drive, types) {
        (Drive::Clause(index), [only_type]) => match &query.clauses[index].criterion {
            Criterion::Param(filter) if drives_a_match(filter) => Some((index, filter, *only_type)),
            _ => None,
        },
        _ => None,
    };
    let Some((index, filter, only_type)) = driving else {
        sql.push("SELECT r.res_id FROM resource r WHERE ");
        return where_clause(sql, query, types, now_micros, drive, true);
    };
    let table = table_of(filter.param.param_type)?;
    sql.push("SELECT r.res_id FROM (SELECT DISTINCT d.res_id FROM ").push(table);
    sql.push(" d WHERE d.res_type = ").bind_text(only_type.as_str());
    sql.push(" AND d.param = ").bind_text(&filter.param.code).push(" AND (");
    let mut compiler = Compiler { sql, next_alias: 0, now_micros, compartment: None };
    for (position, value) in filter.values.iter().enumerate() {
        if position > 0 {
            compiler.sql.push(" OR ");
        }
        compiler.value("d", filter.modifier, value)?;
    }
    sql.push(")) m JOIN resource r ON r.res_id = m.res_id WHERE ");
    let mut rest = query.clone();
    rest.clauses.remove(index);
    where_clause(sql, &rest, types, now_micros, Drive::Order, true)
}

/// Whether `filter` is a plain value match that [`match_sql`] can start from: one index table, values
/// compared by [`Compiler::value`], no negation or absence.
fn drives_a_match(filter: &ParamFilter) -> bool {
    filter.param.code != "_id"
        && !matches!(filter.param.param_type, SearchParamType::Composite)
        && matches!(
            filter.modifier,
            None | Some(Modifier::Exact | Modifier::Identifier | Modifier::Text)
        )
        && !filter.values.iter().any(|value| matches!(value, SearchValue::Missing(_)))
}

/// The query that counts the index rows of `filter` on `res_type`, up to `cap`, as `n`.
pub(crate) fn probe_sql(
    filter: &ParamFilter,
    res_type: ResourceType,
    now_micros: i64,
    cap: i64,
) -> Result<Sql, StoreError> {
    let table = table_of(filter.param.param_type)?;
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 FROM ");
    sql.push(table).push(" t WHERE t.res_type = ").bind_text(res_type.as_str());
    sql.push(" AND t.param = ").bind_text(&filter.param.code).push(" AND (");
    let mut compiler = Compiler { sql: &mut sql, next_alias: 0, now_micros, compartment: None };
    for (index, value) in filter.values.iter().enumerate() {
        if index > 0 {
            compiler.sql.push(" OR ");
        }
        compiler.value("t", filter.modifier, value)?;
    }
    sql.push(")").push_limit(cap).push(") x");
    Ok(sql)
}

/// Appends the condition "the resource of type `res_type` whose id is the SQL expression `res_id` matches
/// `criterion`": the inner criterion of a chain from a table outside the resource tables (the audit trail's),
/// tested on the resource tables; under `compartment` the resource must be in it too.
pub(crate) fn criterion_on(
    sql: &mut Sql,
    criterion: &Criterion,
    res_type: ResourceType,
    res_id: &str,
    now_micros: i64,
    compartment: Option<&Compartment>,
) -> Result<(), StoreError> {
    // A type name is an identifier of the registry's (letters only), never a client's text.
    let anchor = Anchor {
        res_type: format!("'{res_type}'"),
        res_id: res_id.to_owned(),
        types: vec![res_type],
        fence: false,
    };
    let mut compiler = Compiler { sql, next_alias: 0, now_micros, compartment };
    compiler.sql.push("(");
    compiler.criterion(criterion, &anchor)?;
    if let Some(compartment) = compartment {
        compiler.sql.push(" AND ");
        confine(compiler.sql, compartment, &anchor.res_type, &anchor.res_id, &anchor.types);
    }
    compiler.sql.push(")");
    Ok(())
}

struct Compiler<'a> {
    sql: &'a mut Sql,
    next_alias: usize,
    now_micros: i64,
    /// The compartment every resource a chain or `_has` walks over must be in.
    compartment: Option<&'a Compartment>,
}

/// Appends the condition "the resource `(res_type, res_id)` (SQL expressions) is in `compartment`": it is the
/// patient itself, or one of its type's compartment parameters has a reference row to the patient. `types`,
/// when not empty, are the types the resource may have, so only their parameters are listed (none of them in
/// the compartment: a condition that is never true). The reference rows are found from the patient, by the
/// `(target_type, target_id, res_type, param)` index, in an uncorrelated subquery.
pub(crate) fn confine(
    sql: &mut Sql,
    compartment: &Compartment,
    res_type: &str,
    res_id: &str,
    types: &[ResourceType],
) {
    let patient_type = ResourceType::known("Patient");
    let members: Vec<(ResourceType, &[&str])> = Compartment::types()
        .filter(|(member, _)| types.is_empty() || types.contains(member))
        .collect();
    let patient_possible = types.is_empty() || types.contains(&patient_type);
    if members.is_empty() && !patient_possible {
        sql.push("1 = 0");
        return;
    }
    sql.push("(");
    if patient_possible {
        sql.push("(").push(res_type).push(" = ").bind_text(patient_type.as_str());
        sql.push(" AND ").push(res_id).push(" = ").bind_text(compartment.patient_id());
        sql.push(")");
        if !members.is_empty() {
            sql.push(" OR ");
        }
    }
    if !members.is_empty() {
        sql.push("(").push(res_type).push(", ").push(res_id);
        sql.push(") IN (SELECT k.res_type, k.res_id FROM idx_reference k WHERE k.target_type = ");
        sql.bind_text(patient_type.as_str());
        sql.push(" AND k.target_id = ").bind_text(compartment.patient_id()).push(" AND (");
        for (index, (member, params)) in members.iter().enumerate() {
            if index > 0 {
                sql.push(" OR ");
            }
            sql.push("(k.res_type = ").bind_text(member.as_str()).push(" AND k.param IN ");
            sql.bind_text_list(params.iter().copied()).push(")");
        }
        sql.push("))");
    }
    sql.push(")");
}

fn not_supported(message: impl Into<String>) -> StoreError {
    StoreError::NotSupported(message.into())
}

/// The index table of a parameter type, by name.
pub(crate) fn table_of(param_type: SearchParamType) -> Result<&'static str, StoreError> {
    Ok(IndexTable::of(param_type)?.name())
}

/// The index table of a composite component, from the type of its search value.
fn component_table(value: &SearchValue) -> Result<&'static str, StoreError> {
    let param_type = match value {
        SearchValue::Token(_) | SearchValue::OfType { .. } => SearchParamType::Token,
        SearchValue::String { .. } => SearchParamType::String,
        SearchValue::Date { .. } => SearchParamType::Date,
        SearchValue::Reference(_) => SearchParamType::Reference,
        SearchValue::Quantity { .. } => SearchParamType::Quantity,
        SearchValue::Number { .. } => SearchParamType::Number,
        SearchValue::Uri(_) => SearchParamType::Uri,
        SearchValue::Missing(_)
        | SearchValue::Composite(_)
        | SearchValue::Near(_)
        | SearchValue::Special(_) => {
            return Err(not_supported("this composite component cannot be searched"));
        }
    };
    table_of(param_type)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

impl Compiler<'_> {
    fn alias(&mut self, stem: &str) -> String {
        self.next_alias += 1;
        format!("{stem}{}", self.next_alias)
    }

    fn criterion(&mut self, criterion: &Criterion, anchor: &Anchor) -> Result<(), StoreError> {
        match criterion {
            Criterion::Param(filter) => self.param(filter, anchor),
            Criterion::Chain { reference, target_types, inner } => {
                let alias = self.alias("c");
                let close =
                    self.open_match(&alias, "idx_reference", anchor, &reference.code, false);
                if !target_types.is_empty() {
                    self.sql
                        .push(" AND ")
                        .push(&alias)
                        .push(".target_type IN ")
                        .bind_text_list(target_types.iter().map(|target| target.as_str()));
                }
                self.sql.push(" AND ");
                let inner_anchor = Anchor {
                    res_type: format!("{alias}.target_type"),
                    res_id: format!("{alias}.target_id"),
                    types: target_types.clone(),
                    fence: false,
                };
                self.criterion(inner, &inner_anchor)?;
                if let Some(compartment) = self.compartment {
                    self.sql.push(" AND ");
                    confine(
                        self.sql,
                        compartment,
                        &inner_anchor.res_type,
                        &inner_anchor.res_id,
                        target_types,
                    );
                }
                self.sql.push(close);
                Ok(())
            }
            Criterion::Has { source_type, .. } if *source_type == crate::audit::AUDIT_EVENT => {
                Err(not_supported(
                    "_has:AuditEvent is not supported: search AuditEvent by patient, agent or entity instead",
                ))
            }
            Criterion::Has { source_type, reference, inner } => {
                let alias = self.alias("h");
                self.sql.push("EXISTS (SELECT 1 FROM idx_reference ").push(&alias);
                self.sql
                    .push(" WHERE ")
                    .push(&alias)
                    .push(".res_type = ")
                    .bind_text(source_type.as_str());
                self.sql.push(" AND ").push(&alias).push(".param = ").bind_text(&reference.code);
                self.sql.push(" AND ").push(&alias).push(".target_type = ").push(&anchor.res_type);
                self.sql.push(" AND ").push(&alias).push(".target_id = ").push(&anchor.res_id);
                self.sql.push(" AND ");
                let inner_anchor = Anchor {
                    res_type: format!("{alias}.res_type"),
                    res_id: format!("{alias}.res_id"),
                    types: Vec::new(),
                    fence: false,
                };
                self.criterion(inner, &inner_anchor)?;
                if let Some(compartment) = self.compartment {
                    self.sql.push(" AND ");
                    confine(
                        self.sql,
                        compartment,
                        &inner_anchor.res_type,
                        &inner_anchor.res_id,
                        &[*source_type],
                    );
                }
                self.sql.push(anchor.exists_end());
                Ok(())
            }
        }
    }

    /// Opens the test "the anchor has a row in `table` for `code` that …" and returns the text that closes
    /// it; the caller appends ` AND <conditions on alias>` in between.
    ///
    /// When the anchor's type is one known constant (and the test is not negated) it is an uncorrelated
    /// `anchor.id IN (SELECT alias.res_id …)`: the planner starts from the index table's
    /// `(res_type, param, value)` index and looks the matches up by key. Otherwise it is a correlated
    /// `[NOT] EXISTS`, which SQLite would evaluate by scanning every resource of the anchor's type.
    fn open_match(
        &mut self,
        alias: &str,
        table: &str,
        anchor: &Anchor,
        code: &str,
        negated: bool,
    ) -> &'static str {
        match (negated, anchor.types.as_slice()) {
            (false, [only_type]) => {
                self.sql.push("(").push(&anchor.res_type).push(" = ").bind_text(only_type.as_str());
                self.sql.push(" AND ").push(&anchor.res_id).push(" IN (SELECT ").push(alias);
                self.sql.push(".res_id FROM ").push(table).push(" ").push(alias);
                self.sql
                    .push(" WHERE ")
                    .push(alias)
                    .push(".res_type = ")
                    .bind_text(only_type.as_str());
                self.sql.push(" AND ").push(alias).push(".param = ").bind_text(code);
                return "))";
            }
            (false, [_, _, ..]) => {
                // Several known types (a chain to Patient or Group): the same, on (type, id) row values.
                self.sql.push("(").push(&anchor.res_type).push(", ").push(&anchor.res_id);
                self.sql.push(") IN (SELECT ").push(alias).push(".res_type, ").push(alias);
                self.sql.push(".res_id FROM ").push(table).push(" ").push(alias);
                self.sql.push(" WHERE ").push(alias).push(".res_type IN ");
                self.sql.bind_text_list(anchor.types.iter().map(|only| only.as_str()));
                self.sql.push(" AND ").push(alias).push(".param = ").bind_text(code);
                return ")";
            }
            _ => {}
        }
        self.sql.push(if negated {
            "NOT EXISTS (SELECT 1 FROM "
        } else {
            "EXISTS (SELECT 1 FROM "
        });
        self.sql.push(table).push(" ").push(alias);
        self.correlate(alias, anchor, code);
        anchor.exists_end()
    }

    /// ` WHERE alias.res_type = anchor.type AND alias.res_id = anchor.id AND alias.param = $code`.
    fn correlate(&mut self, alias: &str, anchor: &Anchor, code: &str) {
        self.sql.push(" WHERE ").push(alias).push(".res_type = ").push(&anchor.res_type);
        if !anchor.types.is_empty() {
            self.sql.push(" AND ").push(alias).push(".res_type IN ");
            self.sql.bind_text_list(anchor.types.iter().map(|only| only.as_str()));
        }
        self.sql.push(" AND ").push(alias).push(".res_id = ").push(&anchor.res_id);
        self.sql.push(" AND ").push(alias).push(".param = ").bind_text(code);
    }

    fn param(&mut self, filter: &ParamFilter, anchor: &Anchor) -> Result<(), StoreError> {
        let code = filter.param.code.as_str();
        if code == "_id" {
            return self.id_param(filter, anchor);
        }
        if let [SearchValue::Missing(missing)] = filter.values.as_slice() {
            if filter.param.param_type == SearchParamType::Composite {
                return self.composite_missing(code, *missing, anchor);
            }
            let table = table_of(filter.param.param_type)?;
            let alias = self.alias("m");
            self.sql.push(if *missing {
                "NOT EXISTS (SELECT 1 FROM "
            } else {
                "EXISTS (SELECT 1 FROM "
            });
            self.sql.push(table).push(" ").push(&alias);
            self.correlate(&alias, anchor, code);
            self.sql.push(anchor.exists_end());
            return Ok(());
        }
        match filter.modifier {
            Some(Modifier::In | Modifier::NotIn) => {
                return Err(not_supported(format!(
                    "':{}' needs terminology services, which this server does not have",
                    filter.modifier.map_or("", Modifier::as_str)
                )));
            }
            Some(Modifier::Above | Modifier::Below)
                if filter.param.param_type != SearchParamType::Uri =>
            {
                return Err(not_supported(format!(
                    "':above' and ':below' are supported on uri parameters only, not on '{code}'"
                )));
            }
            _ => {}
        }
        if filter.param.param_type == SearchParamType::Composite {
            self.sql.push("(");
            for (index, value) in filter.values.iter().enumerate() {
                if index > 0 {
                    self.sql.push(" OR ");
                }
                let SearchValue::Composite(components) = value else {
                    return Err(not_supported("a composite parameter needs a composite value"));
                };
                self.composite(code, components, anchor)?;
            }
            self.sql.push(")");
            return Ok(());
        }
        let table = table_of(filter.param.param_type)?;
        let alias = self.alias("t");
        let negated = filter.modifier == Some(Modifier::Not);
        let close = self.open_match(&alias, table, anchor, code, negated);
        self.sql.push(" AND (");
        for (index, value) in filter.values.iter().enumerate() {
            if index > 0 {
                self.sql.push(" OR ");
            }
            self.value(&alias, filter.modifier, value)?;
        }
        self.sql.push(")").push(close);
        Ok(())
    }

    /// `:missing` on a composite: whether the resource has a first component row (`code$0`), in whichever
    /// table that component's type keeps it (the store does not know the component types, so it asks all).
    fn composite_missing(
        &mut self,
        code: &str,
        missing: bool,
        anchor: &Anchor,
    ) -> Result<(), StoreError> {
        let component_code = format!("{code}$0");
        self.sql.push(if missing { "(" } else { "NOT (" });
        for (index, table) in IndexTable::ALL.iter().enumerate() {
            if index > 0 {
                self.sql.push(" AND ");
            }
            let alias = self.alias("m");
            self.sql.push("NOT EXISTS (SELECT 1 FROM ").push(table.name()).push(" ").push(&alias);
            self.correlate(&alias, anchor, &component_code);
            self.sql.push(anchor.exists_end());
        }
        self.sql.push(")");
        Ok(())
    }

    /// `_id` compares the anchor's id itself.
    fn id_param(&mut self, filter: &ParamFilter, anchor: &Anchor) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        for value in &filter.values {
            match value {
                SearchValue::Missing(missing) => {
                    self.sql.push(if *missing { "1 = 0" } else { "1 = 1" });
                    return Ok(());
                }
                SearchValue::Token(TokenValue { system: TokenSystem::Any, code: Some(id) }) => {
                    ids.push(id.as_str());
                }
                _ => return Err(not_supported("_id takes plain ids")),
            }
        }
        self.sql.push(&anchor.res_id);
        self.sql.push(if filter.modifier == Some(Modifier::Not) { " NOT IN " } else { " IN " });
        self.sql.bind_text_list(ids);
        Ok(())
    }

    fn composite(
        &mut self,
        code: &str,
        components: &[SearchValue],
        anchor: &Anchor,
    ) -> Result<(), StoreError> {
        let mut previous: Option<String> = None;
        for (position, component) in components.iter().enumerate() {
            let table = component_table(component)?;
            let alias = self.alias("k");
            self.sql.push("EXISTS (SELECT 1 FROM ").push(table).push(" ").push(&alias);
            let component_code = format!("{code}${position}");
            match &previous {
                None => self.correlate(&alias, anchor, &component_code),
                Some(first) => {
                    let group_anchor = Anchor {
                        res_type: format!("{first}.res_type"),
                        res_id: format!("{first}.res_id"),
                        types: Vec::new(),
                        fence: false,
                    };
                    self.correlate(&alias, &group_anchor, &component_code);
                    self.sql.push(" AND ").push(&alias).push(".grp = ").push(first).push(".grp");
                }
            }
            self.sql.push(" AND ");
            self.value(&alias, None, component)?;
            self.sql.push(" AND ");
            previous.get_or_insert(alias);
        }
        self.sql.push("1 = 1");
        // The first component's subquery, the one on the anchor, closes last.
        for position in (0..components.len()).rev() {
            self.sql.push(if position == 0 { anchor.exists_end() } else { ")" });
        }
        Ok(())
    }

    /// One alternative, tested on the index row `alias`.
    fn value(
        &mut self,
        alias: &str,
        modifier: Option<Modifier>,
        value: &SearchValue,
    ) -> Result<(), StoreError> {
        let column = |name: &str| format!("{alias}.{name}");
        match value {
            SearchValue::Token(token) if modifier == Some(Modifier::Identifier) => {
                self.token(&column("id_system"), &column("id_value"), token);
            }
            SearchValue::Token(token) => self.token(&column("system"), &column("code"), token),
            SearchValue::OfType { type_system, type_code, value } => {
                self.sql.push("(").push(&column("type_system")).push(" = ").bind_text(type_system);
                self.sql.push(" AND ").push(&column("type_code")).push(" = ").bind_text(type_code);
                self.sql.push(" AND ").push(&column("code")).push(" = ").bind_text(value).push(")");
            }
            SearchValue::String { exact, normalized } => match modifier {
                Some(Modifier::Exact) => {
                    self.sql.push(&column("exact")).push(" = ").bind_text(exact);
                }
                Some(Modifier::Contains) => {
                    let pattern = format!("%{}%", escape_like(normalized));
                    self.sql.push(&column("normalized")).push(" LIKE ").bind_text(&pattern);
                    self.sql.push(" ESCAPE '\\'");
                }
                Some(Modifier::Text) => self.starts_with(&column("text"), normalized),
                _ => self.starts_with(&column("normalized"), normalized),
            },
            SearchValue::Date { prefix, date } => {
                let (low, high) = (date.range.low, date.range.high);
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    reason = "ap is approximate by definition"
                )]
                let widen = {
                    let middle = low / 2 + high / 2;
                    (((self.now_micros - middle).abs() as f64) * 0.1) as i64
                };
                let widened = (low.saturating_sub(widen), high.saturating_add(widen));
                self.range(
                    alias,
                    *prefix,
                    (Bind::Int(low), Bind::Int(high)),
                    (Bind::Int(widened.0), Bind::Int(widened.1)),
                );
            }
            SearchValue::Number { prefix, number } => self.point(alias, *prefix, number),
            SearchValue::Quantity { prefix, number, system, code } => {
                self.sql.push("(");
                self.point(alias, *prefix, number);
                match (system, code) {
                    (Some(system), Some(code)) => {
                        self.sql
                            .push(" AND ")
                            .push(&column("system"))
                            .push(" = ")
                            .bind_text(system);
                        self.sql.push(" AND ").push(&column("code")).push(" = ").bind_text(code);
                    }
                    (Some(system), None) => {
                        self.sql
                            .push(" AND ")
                            .push(&column("system"))
                            .push(" = ")
                            .bind_text(system);
                    }
                    (None, Some(code)) => {
                        self.sql.push(" AND (").push(&column("code")).push(" = ").bind_text(code);
                        self.sql.push(" OR ").push(&column("unit")).push(" = ").bind_text(code);
                        self.sql.push(")");
                    }
                    (None, None) => {}
                }
                self.sql.push(")");
            }
            SearchValue::Uri(uri) => match modifier {
                Some(Modifier::Below) => self.starts_with(&column("uri"), uri),
                Some(Modifier::Above) => {
                    self.sql.push("substr(").bind_text(uri).push(", 1, length(");
                    self.sql.push(&column("uri")).push(")) = ").push(&column("uri"));
                }
                _ => {
                    self.sql.push(&column("uri")).push(" = ").bind_text(uri);
                }
            },
            SearchValue::Reference(reference) => self.reference(alias, reference),
            SearchValue::Near(near) => self.near(alias, near),
            SearchValue::Missing(_) | SearchValue::Composite(_) | SearchValue::Special(_) => {
                return Err(not_supported("this value cannot be searched here"));
            }
        }
        Ok(())
    }

    fn token(&mut self, system_column: &str, code_column: &str, token: &TokenValue) {
        self.sql.push("(");
        match (&token.system, &token.code) {
            (TokenSystem::Any, Some(code)) => {
                self.sql.push(code_column).push(" = ").bind_text(code);
            }
            (TokenSystem::NoSystem, Some(code)) => {
                self.sql.push(code_column).push(" = ").bind_text(code);
                self.sql.push(" AND ").push(system_column).push(" IS NULL");
            }
            (TokenSystem::Is(system), Some(code)) => {
                self.sql.push(system_column).push(" = ").bind_text(system);
                self.sql.push(" AND ").push(code_column).push(" = ").bind_text(code);
            }
            (TokenSystem::Is(system), None) => {
                self.sql.push(system_column).push(" = ").bind_text(system);
            }
            (TokenSystem::Any | TokenSystem::NoSystem, None) => {
                self.sql.push("1 = 0");
            }
        }
        self.sql.push(")");
    }

    /// A position row within the distance of a `near` value: in its latitude band (a range of the
    /// `(res_type, param, latitude)` index) and within its squared chord of the centre's unit vector, the test
    /// `cdr_search::NearValue::contains` makes with the same operations in the same order.
    fn near(&mut self, alias: &str, near: &NearValue) {
        let (low, high) = near.latitude_band();
        let latitude = format!("{alias}.latitude");
        self.sql.push("(").push(&latitude).push(" >= ").bind(Bind::Float(low));
        self.sql.push(" AND ").push(&latitude).push(" <= ").bind(Bind::Float(high)).push(" AND ");
        for (index, (axis, center)) in
            ["x", "y", "z"].into_iter().zip(near.center.unit_vector()).enumerate()
        {
            if index > 0 {
                self.sql.push(" + ");
            }
            let difference = |sql: &mut Sql| {
                sql.push("(")
                    .push(alias)
                    .push(".")
                    .push(axis)
                    .push(" - ")
                    .bind(Bind::Float(center));
                sql.push(")");
            };
            difference(self.sql);
            self.sql.push(" * ");
            difference(self.sql);
        }
        self.sql.push(" <= ").bind(Bind::Float(near.max_chord_squared())).push(")");
    }

    /// `column` starts with `prefix`, as a range scan: `[prefix, prefix + U+10FFFF)`.
    fn starts_with(&mut self, column: &str, prefix: &str) {
        let mut upper = prefix.to_owned();
        upper.push(MAX_CHAR);
        self.sql.push("(").push(column).push(" >= ").bind_text(prefix);
        self.sql.push(" AND ").push(column).push(" < ").bind_text(&upper).push(")");
    }

    fn reference(&mut self, alias: &str, reference: &ReferenceValue) {
        let column = |name: &str| format!("{alias}.{name}");
        self.sql.push("(");
        if let Some(url) = &reference.url {
            self.sql.push(&column("url")).push(" = ").bind_text(url);
            if reference.id.is_some() {
                self.sql.push(" OR ");
            }
        }
        if let Some(id) = &reference.id {
            self.sql.push("(").push(&column("target_id")).push(" = ").bind_text(id);
            if let Some(resource_type) = reference.resource_type {
                self.sql.push(" AND ").push(&column("target_type")).push(" = ");
                self.sql.bind_text(resource_type.as_str());
            }
            if let Some(version) = &reference.version {
                self.sql.push(" AND ").push(&column("version")).push(" = ").bind_text(version);
            }
            self.sql.push(")");
        }
        if reference.url.is_none() && reference.id.is_none() {
            self.sql.push("1 = 0");
        }
        self.sql.push(")");
    }

    /// A prefix comparison of a number or quantity row's exact `value` (a point: R4 compares the stored value
    /// as is) with the search value's precision range, for `eq ne sa eb`, and with the value itself, for
    /// `gt lt ge le` (`lt100` is "less than exactly 100"); `ap` is within the widened range. Every form is a
    /// range condition on `value`, which one index range scan serves.
    fn point(&mut self, alias: &str, prefix: Prefix, number: &DecimalValue) {
        let value = format!("{alias}.value");
        let bounds = NumberBounds::of(number);
        let sql = &mut *self.sql;
        let within = |sql: &mut Sql, (low, high): (f64, f64)| {
            sql.push("(").push(&value).push(" >= ").bind(Bind::Float(low));
            sql.push(" AND ").push(&value).push(" < ").bind(Bind::Float(high)).push(")");
        };
        let compare = |sql: &mut Sql, operator: &str, bound: f64| {
            sql.push(&value).push(operator).bind(Bind::Float(bound));
        };
        match prefix {
            Prefix::Eq => within(sql, (bounds.low, bounds.high)),
            Prefix::Ne => {
                sql.push("NOT ");
                within(sql, (bounds.low, bounds.high));
            }
            Prefix::Gt => compare(sql, " > ", bounds.exact),
            Prefix::Lt => compare(sql, " < ", bounds.exact),
            Prefix::Ge => compare(sql, " >= ", bounds.exact),
            Prefix::Le => compare(sql, " <= ", bounds.exact),
            Prefix::Sa => compare(sql, " >= ", bounds.high),
            Prefix::Eb => compare(sql, " < ", bounds.low),
            Prefix::Ap => within(sql, bounds.widened),
        }
    }

    /// A prefix comparison of a date row's `[low, high)` with the search range and its `ap` widening.
    fn range(&mut self, alias: &str, prefix: Prefix, bounds: (Bind, Bind), widened: (Bind, Bind)) {
        let low = format!("{alias}.low");
        let high = format!("{alias}.high");
        let (search_low, search_high) = bounds;
        let sql = &mut *self.sql;
        let contained = |sql: &mut Sql| {
            sql.push("(").push(&low).push(" >= ").bind(search_low.clone());
            sql.push(" AND ").push(&high).push(" <= ").bind(search_high.clone()).push(")");
        };
        match prefix {
            Prefix::Eq => contained(sql),
            Prefix::Ne => {
                sql.push("NOT ");
                contained(sql);
            }
            Prefix::Gt => {
                sql.push(&high).push(" > ").bind(search_high.clone());
            }
            Prefix::Lt => {
                sql.push(&low).push(" < ").bind(search_low.clone());
            }
            // `gt or eq`: a row starting at or after the search range is either inside it or ends after it.
            // Either way it ends after the search range starts (every range is non-empty), which the first
            // conjunct states so that one index range scan (on `high`) bounds the rows read, and a LIMIT can
            // stop it early; alone, the disjunction reads two whole index ranges.
            Prefix::Ge => {
                sql.push("(").push(&high).push(" > ").bind(search_low.clone());
                sql.push(" AND (").push(&low).push(" >= ").bind(search_low.clone());
                sql.push(" OR ").push(&high).push(" > ").bind(search_high.clone()).push("))");
            }
            // `lt or eq`, likewise: it starts before the search range ends.
            Prefix::Le => {
                sql.push("(").push(&low).push(" < ").bind(search_high.clone());
                sql.push(" AND (").push(&high).push(" <= ").bind(search_high.clone());
                sql.push(" OR ").push(&low).push(" < ").bind(search_low.clone()).push("))");
            }
            Prefix::Sa => {
                sql.push(&low).push(" >= ").bind(search_high.clone());
            }
            Prefix::Eb => {
                sql.push(&high).push(" <= ").bind(search_low.clone());
            }
            Prefix::Ap => {
                sql.push("(").push(&low).push(" < ").bind(widened.1);
                sql.push(" AND ").push(&high).push(" > ").bind(widened.0).push(")");
            }
        }
    }
}

/// What a number search compares a stored value with: the search value's precision range `[low, high)`,
/// its exact value and, for `ap`, the range widened by 10% of the value on each side.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NumberBounds {
    low: f64,
    high: f64,
    exact: f64,
    widened: (f64, f64),
}

impl NumberBounds {
    fn of(number: &DecimalValue) -> NumberBounds {
        let low = decimal_to_f64(&number.low);
        let high = decimal_to_f64(&number.high);
        let exact = decimal_to_f64(&number.value);
        let widen = (exact * 0.1).abs();
        NumberBounds { low, high, exact, widened: (low - widen, high + widen) }
    }
}

#[cfg(test)]
mod tests {
    use cdr_search::{SearchParamRegistry, parse_query};

    use super::*;

    /// The condition a `RiskAssessment?probability=…` value compiles to, and its bound values (after
    /// the type and the parameter).
    fn number_condition(value: &str) -> (String, Vec<Bind>) {
        let registry = SearchParamRegistry::r4().unwrap();
        let res_type = ResourceType::parse("RiskAssessment").unwrap();
        let pairs = [("probability".to_owned(), value.to_owned())];
        let parsed = parse_query(Some(res_type), &pairs, &registry);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Criterion::Param(filter) = &parsed.query.clauses[0].criterion else {
            panic!("not a parameter criterion: {value}");
        };
        let sql = probe_sql(filter, res_type, 0, 1).unwrap();
        let start = sql.text.find("AND (").unwrap() + "AND (".len();
        let end = sql.text.rfind(") LIMIT").unwrap();
        (sql.text[start..end].to_owned(), sql.binds[2..].to_vec())
    }

    /// `near` is a latitude band (the index range) and the squared chord to the centre's unit vector, every
    /// value a bind: the numbers `cdr_search::NearValue` computes.
    #[test]
    fn a_near_value_is_a_latitude_band_and_a_chord() {
        let registry = SearchParamRegistry::r4().unwrap();
        let location = ResourceType::parse("Location").unwrap();
        let pairs = [("near".to_owned(), "43.6532|-79.3832|10|km".to_owned())];
        let parsed = parse_query(Some(location), &pairs, &registry);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Criterion::Param(filter) = &parsed.query.clauses[0].criterion else {
            panic!("not a parameter")
        };
        let SearchValue::Near(near) = filter.values[0] else { panic!("not a near value") };
        let sql = probe_sql(filter, location, 0, 1).unwrap();
        assert!(sql.text.contains(
            "FROM idx_position t WHERE t.res_type = $1 AND t.param = $2 AND ((t.latitude >= $3 AND \
             t.latitude <= $4 AND (t.x - $5) * (t.x - $6) + (t.y - $7) * (t.y - $8) + (t.z - $9) * (t.z - $10) \
             <= $11))"
        ), "{}", sql.text);
        let (low, high) = near.latitude_band();
        let [x, y, z] = near.center.unit_vector();
        let expected: Vec<Bind> = [low, high, x, x, y, y, z, z, near.max_chord_squared()]
            .into_iter()
            .map(Bind::Float)
            .collect();
        assert_eq!(sql.binds[2..11], expected[..]);
        assert!(
            (high - low - 2.0 * (10.0 / cdr_search::EARTH_RADIUS_KM).to_degrees()).abs() < 1e-6
        );
    }

    /// A stored number is a point: `eq ne sa eb ap` compare it with the search value's precision range (R4:
    /// `100` is [99.5, 100.5), `100.00` is [99.995, 100.005), `1e2` is [50, 150)), `gt lt ge le` with the
    /// search value exactly.
    #[test]
    fn a_stored_number_is_compared_as_a_point() {
        let within = "(t.value >= $3 AND t.value < $4)";
        let cases: [(&str, &str, &[f64]); 13] = [
            ("100", within, &[99.5, 100.5]),
            ("100.00", within, &[99.995, 100.005]),
            ("1e2", within, &[50.0, 150.0]),
            ("eq45.0", within, &[44.95, 45.05]),
            ("ne100", "NOT (t.value >= $3 AND t.value < $4)", &[99.5, 100.5]),
            ("gt100", "t.value > $3", &[100.0]),
            ("lt100", "t.value < $3", &[100.0]),
            ("ge100.0", "t.value >= $3", &[100.0]),
            ("le100", "t.value <= $3", &[100.0]),
            ("sa100", "t.value >= $3", &[100.5]),
            ("eb100", "t.value < $3", &[99.5]),
            ("ap100", within, &[89.5, 110.5]),
            ("gt0.8", "t.value > $3", &[0.8]),
        ];
        for (value, condition, bounds) in cases {
            let expected: Vec<Bind> = bounds.iter().map(|bound| Bind::Float(*bound)).collect();
            assert_eq!(number_condition(value), (condition.to_owned(), expected), "{value}");
        }
    }
}
