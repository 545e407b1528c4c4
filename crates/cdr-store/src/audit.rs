//! The audit trail's own table (`audit_event`, migration 0014): one row per AuditEvent, appended and never
//! changed, with the values its searches filter on as columns.
//!
//! An AuditEvent is written for every interaction, so the trail grows as fast as the server answers: as an
//! ordinary resource each event cost a current row, a version row and fourteen index rows in five tables. Here
//! it is one row in one table with five B-tree indexes (its id; its time; patient, agent and entity, each with
//! the time), inserted in statements of a few fixed sizes ([`INSERT_SIZES`]) so that their texts repeat and
//! stay prepared. [`Store::read`], [`Store::vread`], [`Store::history`] (of the type and of one event, by
//! `seq`), [`Store::search`] and
//! [`Store::count`] serve the type `AuditEvent` from this table.
//!
//! Searches: `_id`, `_lastUpdated` and `date` (both `recorded`, every prefix), `type`, `subtype`, `action`,
//! `outcome` and `altid` (tokens), `address` (string), `policy` (uri), `patient`, `agent` and `entity` (references, by `Type/id`, bare id or an
//! absolute URL ending in `Type/id`; `entity` with a version; `agent:identifier`, the client's issuer and
//! `client_id`; chains such as `patient.identifier=…`, whose inner
//! criterion runs on the resource tables), `:missing`, `:not` on tokens, `_sort` by `date` or `_lastUpdated`
//! either way (default: oldest first), keyset pages on `(recorded, id)`. Any other parameter is
//! [`StoreError::NotSupported`], as are `_has`, includes and mixing AuditEvent with other types.
//!
//! A `_lastUpdated` poll of the trail is not held to the feed horizon: events are stamped when their request
//! is answered and commit a round later, so a poller should overlap its windows by a few seconds.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_search::{
    Criterion, Modifier, ParamFilter, Prefix, ReferenceValue, SearchQuery, SearchValue,
    TokenSystem, TokenValue,
};
use sqlx::Row;

use crate::connect::dispatch;
use crate::page::{FoundResource, PageDirection, PageKey, SearchPage, SearchRequest, SortValue};
use crate::read::{HistoryEntry, HistoryQuery, StoredVersion};
use crate::row::logical_id;
use crate::sql::{Bind, Sql, query_of};
use crate::write::{StoreTx, WriteMethod};
use crate::{Store, StoreError};

/// The type whose resources live in `audit_event` rather than in the resource tables.
pub const AUDIT_EVENT: ResourceType = ResourceType::known("AuditEvent");

/// `AuditEvent.action`'s and `AuditEvent.outcome`'s code systems: the columns keep the codes alone.
const ACTION_SYSTEM: &str = "http://hl7.org/fhir/audit-event-action";
const OUTCOME_SYSTEM: &str = "http://hl7.org/fhir/audit-event-outcome";

/// The types `AuditEvent.agent.who` may reference (a bare id in `agent=` may name any of them).
const AGENT_TYPES: [&str; 6] =
    ["Device", "Organization", "Patient", "Practitioner", "PractitionerRole", "RelatedPerson"];

/// Rows per insert statement, largest first: a batch is cut into statements of these sizes only.
const INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

const INSERT: &str = "INSERT INTO audit_event (id, recorded, type_system, type_code, subtype_system, \
     subtype_code, action, outcome, patient, agent, entity, entity_version, altid, client_issuer, policy, address, \
     body) \
     VALUES ";

/// Resources moved from the resource tables into the trail's table per transaction.
const ADOPT_BATCH: i64 = 200;

/// One AuditEvent as the trail's table keeps it: its searched values, and its JSON as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: LogicalId,
    /// `AuditEvent.recorded`, also served as `meta.lastUpdated`.
    pub recorded: Instant,
    /// `AuditEvent.type`: system and code.
    pub event_type: Option<(String, String)>,
    /// The first `AuditEvent.subtype`: system and code.
    pub subtype: Option<(String, String)>,
    /// `AuditEvent.action`'s code.
    pub action: Option<String>,
    /// `AuditEvent.outcome`'s code.
    pub outcome: Option<String>,
    /// The id of the Patient the event is about.
    pub patient: Option<String>,
    /// The requesting user's reference: `Type/id` when it ends so, else as written.
    pub agent: Option<String>,
    /// The resource the event is about, as `Type/id`, and its version when named.
    pub entity: Option<(String, Option<String>)>,
    /// The client agent's `altId` (its `client_id`).
    pub altid: Option<String>,
    /// The system of the client agent's identifier (the token's issuer).
    pub client_issuer: Option<String>,
    /// The token's `jti`, as the agent's `policy` URI.
    pub policy: Option<String>,
    /// The client's network address.
    pub address: Option<String>,
    pub body: String,
}

/// The insert statements of `rows`, in sizes of [`INSERT_SIZES`].
fn insert_statements(rows: &[AuditRow]) -> Vec<Sql> {
    let mut statements = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = INSERT_SIZES.into_iter().find(|size| *size <= rest.len()).unwrap_or(1);
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let mut sql = Sql::new(INSERT);
        for (position, row) in chunk.iter().enumerate() {
            let split = |pair: &Option<(String, String)>| {
                pair.as_ref().map_or((None, None), |(system, code)| {
                    (Some(system.clone()), Some(code.clone()))
                })
            };
            let (type_system, type_code) = split(&row.event_type);
            let (subtype_system, subtype_code) = split(&row.subtype);
            let (entity, entity_version) = row
                .entity
                .as_ref()
                .map_or((None, None), |(entity, version)| (Some(entity.clone()), version.clone()));
            sql.push(if position == 0 { "(" } else { ", (" });
            sql.bind_text(row.id.as_str()).push(", ").bind_int(row.recorded.millis());
            for value in [
                type_system,
                type_code,
                subtype_system,
                subtype_code,
                row.action.clone(),
                row.outcome.clone(),
                row.patient.clone(),
                row.agent.clone(),
                entity,
                entity_version,
                row.altid.clone(),
                row.client_issuer.clone(),
                row.policy.clone(),
                row.address.clone(),
            ] {
                sql.push(", ").bind(Bind::OptText(value));
            }
            sql.push(", ").bind_text(&row.body).push(")");
        }
        statements.push(sql);
    }
    statements
}

impl StoreTx {
    /// Appends `rows` to the audit trail in this transaction (a write's own events).
    ///
    /// # Errors
    /// On database failure ([`StoreError::Conflict`] for an id already in the trail).
    pub async fn append_audit(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        for statement in insert_statements(rows) {
            self.execute(&statement).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Appends `rows` to the audit trail in a transaction of their own, returning once it committed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let mut tx = self.begin_unregistered().await?;
        tx.append_audit(rows).await?;
        tx.commit().await
    }

    /// An event of the trail by id, as the one version it has.
    pub(crate) async fn read_audit(
        &self,
        id: &LogicalId,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row: Option<(i64, String)> = dispatch!(&self.pool, pool => sqlx::query_as(
            "SELECT recorded, body FROM audit_event WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(recorded, body)| StoredVersion {
            version: VersionId::FIRST,
            last_updated: Instant::from_millis(recorded),
            deleted: false,
            body: Some(body),
        }))
    }

    /// The history of the trail (`id` `None`) or of one event: each event's one version, newest first, within
    /// `query`'s bounds; `count + 1` rows, as [`Store::history`] reads them.
    pub(crate) async fn audit_history(
        &self,
        id: Option<&LogicalId>,
        query: &HistoryQuery<'_>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut sql = Sql::new("SELECT seq, id, recorded, body FROM audit_event WHERE 1 = 1");
        if let Some(id) = id {
            sql.push(" AND id = ").bind_text(id.as_str());
        }
        if let Some(since) = query.since {
            sql.push(" AND recorded >= ").bind_int(since.millis());
        }
        if let Some(until) = query.until {
            sql.push(" AND recorded <= ").bind_int(until.millis());
        }
        if let Some(horizon) = query.horizon {
            sql.push(" AND recorded < ").bind_int(horizon.millis());
        }
        if let Some(before_seq) = query.before_seq {
            sql.push(" AND seq < ").bind_int(before_seq);
        }
        if let Some(compartment) = query.compartment {
            sql.push(" AND patient = ").bind_text(compartment.patient_id());
        }
        sql.push(" ORDER BY seq DESC").push_limit(i64::from(query.count) + 1);
        let rows: Vec<(i64, String, i64, String)> = dispatch!(&self.pool, pool => query_of!(&sql)
        .fetch_all(pool)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        }))?;
        rows.into_iter()
            .map(|(seq, id, recorded, body)| {
                Ok(HistoryEntry {
                    seq,
                    res_type: AUDIT_EVENT,
                    res_id: logical_id(&id)?,
                    method: WriteMethod::Create,
                    version: StoredVersion {
                        version: VersionId::FIRST,
                        last_updated: Instant::from_millis(recorded),
                        deleted: false,
                        body: Some(body),
                    },
                })
            })
            .collect()
    }

    /// A page of the trail's events matching `request`.
    pub(crate) async fn search_audit(
        &self,
        request: &SearchRequest<'_>,
    ) -> Result<SearchPage, StoreError> {
        let descending = sort_descending(request.query)?;
        let mut sql = Sql::new("SELECT a.id, a.recorded, a.body FROM audit_event a WHERE ");
        audit_where(&mut sql, request.query, request.now_micros)?;
        if let Some(horizon) = request.horizon {
            sql.push(" AND a.recorded < ").bind_int(horizon.millis());
        }
        // Reading a previous page walks the order backwards from the cursor.
        let backwards = matches!(request.page, Some((PageDirection::Before, _)));
        let reading_descending = descending != backwards;
        if let Some((_, key)) = request.page {
            let (recorded, id) = cursor_of(key)?;
            let after = if reading_descending { " < " } else { " > " };
            sql.push(" AND (a.recorded").push(after).bind_int(recorded);
            sql.push(" OR (a.recorded = ").bind_int(recorded);
            sql.push(" AND a.id").push(after).bind_text(id.as_str()).push("))");
        }
        let order = if reading_descending { " DESC" } else { "" };
        sql.push(" ORDER BY a.recorded").push(order).push(", a.id").push(order);
        sql.push_limit(i64::from(request.count) + 1);
        let rows: Vec<(String, i64, String)> = dispatch!(&self.pool, pool => query_of!(&sql)
        .fetch_all(pool)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| Ok((row.try_get("id")?, row.try_get("recorded")?, row.try_get("body")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        }))?;
        let mut resources = rows
            .into_iter()
            .map(|(id, recorded, body)| {
                let res_id = logical_id(&id)?;
                Ok(FoundResource {
                    res_type: AUDIT_EVENT,
                    res_id: res_id.clone(),
                    version: VersionId::FIRST,
                    last_updated: Instant::from_millis(recorded),
                    body,
                    key: PageKey {
                        values: vec![SortValue::Int(recorded)],
                        res_type: AUDIT_EVENT,
                        res_id,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = resources.len() > request.count as usize;
        resources.truncate(request.count as usize);
        if backwards {
            resources.reverse();
        }
        Ok(SearchPage { resources, more })
    }

    /// How many of the trail's events match `query`.
    pub(crate) async fn count_audit(
        &self,
        query: &SearchQuery,
        now_micros: i64,
    ) -> Result<i64, StoreError> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM audit_event a WHERE ");
        audit_where(&mut sql, query, now_micros)?;
        let count = dispatch!(&self.pool, pool => query_of!(&sql)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("n")))?;
        Ok(count)
    }

    /// Moves AuditEvents stored as ordinary resources (by an earlier version of the server) into the trail's
    /// table, each turned into its row by `convert` (given its id, `meta.lastUpdated` and body), a batch per
    /// transaction; returns how many moved. Cheap when there are none: one indexed lookup.
    ///
    /// # Errors
    /// On database failure.
    pub async fn adopt_audit_resources(
        &self,
        convert: impl Fn(LogicalId, Instant, String) -> AuditRow,
    ) -> Result<u64, StoreError> {
        let mut moved = 0;
        loop {
            let mut tx = self.begin_unregistered().await?;
            let mut select = Sql::new(
                "SELECT res_id, last_updated, body FROM resource WHERE res_type = 'AuditEvent'",
            );
            select.push_limit(ADOPT_BATCH);
            let found: Vec<(String, i64, Option<String>)> = tx.fetch_triples(&select).await?;
            if found.is_empty() {
                return Ok(moved);
            }
            let mut rows = Vec::with_capacity(found.len());
            let mut ids = Vec::with_capacity(found.len());
            for (id, last_updated, body) in found {
                let id = logical_id(&id)?;
                ids.push(id.clone());
                if let Some(body) = body {
                    rows.push(convert(id, Instant::from_millis(last_updated), body));
                }
            }
            tx.append_audit(&rows).await?;
            for id in &ids {
                tx.replace_index(AUDIT_EVENT, id, &[]).await?;
            }
            for table in ["resource_version", "resource"] {
                let mut delete = Sql::new("DELETE FROM ");
                delete.push(table).push(" WHERE res_type = 'AuditEvent' AND res_id IN ");
                delete.bind_text_list(ids.iter().map(LogicalId::as_str));
                tx.execute(&delete).await?;
            }
            tx.commit().await?;
            moved += ids.len() as u64;
        }
    }
}

impl StoreTx {
    /// Rows of three columns (text, integer, optional text) of a statement of this crate.
    async fn fetch_triples(
        &mut self,
        sql: &Sql,
    ) -> Result<Vec<(String, i64, Option<String>)>, StoreError> {
        let rows = dispatch!(crate::write::Tx, &mut self.tx, tx => query_of!(sql)
        .fetch_all(&mut **tx)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        }))?;
        Ok(rows)
    }
}

/// Whether a search of `types` is one of the trail: `AuditEvent` alone. It cannot be searched beside other
/// types, and a search of every type (no types) leaves it out.
pub(crate) fn searches_audit(types: &[ResourceType]) -> Result<bool, StoreError> {
    match types {
        [only] => Ok(*only == AUDIT_EVENT),
        several if several.contains(&AUDIT_EVENT) => {
            Err(not_supported("AuditEvent is searched on its own, not beside other types"))
        }
        _ => Ok(false),
    }
}

/// Whether the trail is read newest first: `_sort=-date` or `-_lastUpdated` (one key; others are refused).
fn sort_descending(query: &SearchQuery) -> Result<bool, StoreError> {
    match query.sort.as_slice() {
        [] => Ok(false),
        [key] if matches!(key.param.code.as_str(), "date" | "_lastUpdated") => Ok(key.descending),
        _ => Err(not_supported("AuditEvent searches sort by date (or _lastUpdated) only")),
    }
}

/// The `(recorded, id)` of a page cursor over the trail.
fn cursor_of(key: &PageKey) -> Result<(i64, &LogicalId), StoreError> {
    match (key.res_type == AUDIT_EVENT, key.values.as_slice()) {
        (true, [SortValue::Int(recorded)]) => Ok((*recorded, &key.res_id)),
        _ => Err(not_supported("this paging cursor is not one of an AuditEvent search")),
    }
}

fn not_supported(message: impl Into<String>) -> StoreError {
    StoreError::NotSupported(message.into())
}

/// Appends the conditions of `query` on the trail's alias `a`.
fn audit_where(sql: &mut Sql, query: &SearchQuery, now_micros: i64) -> Result<(), StoreError> {
    if !query.includes.is_empty() || !query.revincludes.is_empty() {
        return Err(not_supported("AuditEvent searches take no _include or _revinclude"));
    }
    sql.push("1 = 1");
    if let Some(compartment) = &query.compartment {
        sql.push(" AND a.patient = ").bind_text(compartment.patient_id());
    }
    for clause in &query.clauses {
        sql.push(" AND ");
        match &clause.criterion {
            Criterion::Param(filter) => param(sql, filter, now_micros)?,
            Criterion::Chain { reference, target_types, inner } => {
                let column = reference_column(&reference.code)?;
                chain(sql, column, target_types, inner, query, now_micros)?;
            }
            Criterion::Has { .. } => {
                return Err(not_supported("_has is not supported on AuditEvent searches"));
            }
        }
    }
    Ok(())
}

/// How a reference column names what it references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReferenceColumn {
    /// `patient`: the Patient's id alone.
    Patient,
    /// `agent`: `Type/id` (or an absolute URL as written), one of [`AGENT_TYPES`].
    Agent,
    /// `entity`: `Type/id` of any type, with `entity_version`.
    Entity,
}

impl ReferenceColumn {
    fn name(self) -> &'static str {
        match self {
            ReferenceColumn::Patient => "a.patient",
            ReferenceColumn::Agent => "a.agent",
            ReferenceColumn::Entity => "a.entity",
        }
    }
}

fn reference_column(code: &str) -> Result<ReferenceColumn, StoreError> {
    match code {
        "patient" => Ok(ReferenceColumn::Patient),
        "agent" => Ok(ReferenceColumn::Agent),
        "entity" => Ok(ReferenceColumn::Entity),
        other => Err(unsupported_parameter(other)),
    }
}

fn unsupported_parameter(code: &str) -> StoreError {
    not_supported(format!(
        "AuditEvent is not searched by '{code}': its parameters are _id, _lastUpdated, date, type, subtype, \
         action, outcome, altid, address, policy, patient, agent and entity"
    ))
}

/// A chained criterion: the resource the column references matches `inner` (run on the resource tables).
fn chain(
    sql: &mut Sql,
    column: ReferenceColumn,
    target_types: &[ResourceType],
    inner: &Criterion,
    query: &SearchQuery,
    now_micros: i64,
) -> Result<(), StoreError> {
    if target_types.is_empty() {
        return Err(not_supported(
            "a chain on AuditEvent needs its target type, as in entity:DiagnosticReport.status",
        ));
    }
    sql.push("(");
    for (position, target) in target_types.iter().enumerate() {
        if position > 0 {
            sql.push(" OR ");
        }
        let res_id = match column {
            ReferenceColumn::Patient if target.as_str() == "Patient" => "a.patient".to_owned(),
            ReferenceColumn::Patient => {
                sql.push("1 = 0");
                continue;
            }
            ReferenceColumn::Agent | ReferenceColumn::Entity => {
                let prefix = format!("{target}/");
                sql.push("(").push(column.name()).push(" LIKE ").bind_text(&format!("{prefix}%"));
                sql.push(" AND ");
                format!("substr({}, {})", column.name(), prefix.len() + 1)
            }
        };
        crate::compile::criterion_on(
            sql,
            inner,
            *target,
            &res_id,
            now_micros,
            query.compartment.as_ref(),
        )?;
        if column != ReferenceColumn::Patient {
            sql.push(")");
        }
        if column == ReferenceColumn::Entity && target.as_str() == "Patient" {
            sql.push(" OR (a.patient IS NOT NULL AND ");
            crate::compile::criterion_on(
                sql,
                inner,
                *target,
                "a.patient",
                now_micros,
                query.compartment.as_ref(),
            )?;
            sql.push(")");
        }
    }
    sql.push(")");
    Ok(())
}

/// A parameter of the trail's own columns; its values OR'd.
fn param(sql: &mut Sql, filter: &ParamFilter, now_micros: i64) -> Result<(), StoreError> {
    let code = filter.param.code.as_str();
    let nullable_column = match code {
        "type" => Some("a.type_code"),
        "subtype" => Some("a.subtype_code"),
        "action" => Some("a.action"),
        "outcome" => Some("a.outcome"),
        "altid" => Some("a.altid"),
        "policy" => Some("a.policy"),
        "address" => Some("a.address"),
        "patient" => Some("a.patient"),
        "agent" => Some("a.agent"),
        "entity" => Some("a.entity"),
        "_id" | "_lastUpdated" | "date" => None,
        other => return Err(unsupported_parameter(other)),
    };
    if filter.modifier == Some(Modifier::Missing) {
        let missing = matches!(filter.values.as_slice(), [SearchValue::Missing(true)]);
        match nullable_column {
            Some(column) => {
                sql.push(column).push(if missing { " IS NULL" } else { " IS NOT NULL" });
            }
            None => {
                sql.push(if missing { "1 = 0" } else { "1 = 1" });
            }
        }
        return Ok(());
    }
    let negated = filter.modifier == Some(Modifier::Not);
    match (filter.modifier, negated) {
        (None | Some(Modifier::Not), _) => {}
        (Some(Modifier::Type(_)), false) if matches!(code, "patient" | "agent" | "entity") => {}
        (Some(Modifier::Identifier), false) if code == "agent" => {}
        (Some(Modifier::Exact), false) if code == "address" => {}
        (Some(modifier), _) => {
            return Err(not_supported(format!(
                "the modifier {modifier:?} is not supported on AuditEvent's '{code}'"
            )));
        }
    }
    if negated {
        if !matches!(code, "type" | "subtype" | "action" | "outcome" | "altid" | "address" | "_id")
        {
            return Err(not_supported(format!(":not is for tokens, not AuditEvent's '{code}'")));
        }
        // `:not` also matches the events without a value.
        if let Some(column) = nullable_column {
            sql.push("(").push(column).push(" IS NULL OR ");
        }
        sql.push("NOT ");
    }
    sql.push("(");
    for (position, value) in filter.values.iter().enumerate() {
        if position > 0 {
            sql.push(" OR ");
        }
        match (code, value) {
            ("date" | "_lastUpdated", SearchValue::Date { prefix, date }) => {
                recorded(sql, *prefix, (date.range.low, date.range.high), now_micros);
            }
            ("_id", SearchValue::Token(token)) => match &token.code {
                Some(id) if matches!(token.system, TokenSystem::Any) => {
                    sql.push("a.id = ").bind_text(id);
                }
                _ => {
                    sql.push("1 = 0");
                }
            },
            ("type", SearchValue::Token(token)) => {
                token_columns(sql, "a.type_system", "a.type_code", token);
            }
            ("subtype", SearchValue::Token(token)) => {
                token_columns(sql, "a.subtype_system", "a.subtype_code", token);
            }
            ("action", SearchValue::Token(token)) => {
                fixed_system(sql, "a.action", ACTION_SYSTEM, token);
            }
            ("outcome", SearchValue::Token(token)) => {
                fixed_system(sql, "a.outcome", OUTCOME_SYSTEM, token);
            }
            ("altid", SearchValue::Token(token)) => match (&token.system, &token.code) {
                (TokenSystem::Any | TokenSystem::NoSystem, Some(value)) => {
                    sql.push("a.altid = ").bind_text(value);
                }
                _ => {
                    sql.push("1 = 0");
                }
            },
            // A string parameter: the address starts with the value (case and accents aside, as for every
            // string; addresses have neither), or is it with `:exact`.
            ("address", SearchValue::String { exact, normalized }) => {
                if filter.modifier == Some(Modifier::Exact) {
                    sql.push("a.address = ").bind_text(exact);
                } else {
                    let pattern = format!("{}%", crate::compile::escape_like(normalized));
                    sql.push("lower(a.address) LIKE ").bind_text(&pattern).push(" ESCAPE '\\'");
                }
            }
            ("policy", SearchValue::Uri(uri)) => {
                sql.push("a.policy = ").bind_text(uri);
            }
            // The client agent's identifier: the token's issuer and client_id.
            ("agent", SearchValue::Token(token)) => {
                token_columns(sql, "a.client_issuer", "a.altid", token);
            }
            ("patient" | "agent" | "entity", SearchValue::Reference(reference)) => {
                reference_value(sql, reference_column(code)?, reference);
            }
            _ => return Err(not_supported(format!("unexpected value for AuditEvent's '{code}'"))),
        }
    }
    sql.push(")");
    if negated && nullable_column.is_some() {
        sql.push(")");
    }
    Ok(())
}

/// A token on a system column and a code column.
fn token_columns(sql: &mut Sql, system_column: &str, code_column: &str, token: &TokenValue) {
    match (&token.system, &token.code) {
        (TokenSystem::Any, Some(code)) => {
            sql.push(code_column).push(" = ").bind_text(code);
        }
        (TokenSystem::NoSystem, Some(code)) => {
            sql.push("(").push(code_column).push(" = ").bind_text(code);
            sql.push(" AND ").push(system_column).push(" IS NULL)");
        }
        (TokenSystem::Is(system), Some(code)) => {
            sql.push("(").push(system_column).push(" = ").bind_text(system);
            sql.push(" AND ").push(code_column).push(" = ").bind_text(code).push(")");
        }
        (TokenSystem::Is(system), None) => {
            sql.push(system_column).push(" = ").bind_text(system);
        }
        (TokenSystem::Any | TokenSystem::NoSystem, None) => {
            sql.push("1 = 0");
        }
    }
}

/// A token on a code column whose code system is fixed by the element's binding.
fn fixed_system(sql: &mut Sql, column: &str, fixed: &str, token: &TokenValue) {
    let system_matches = match &token.system {
        TokenSystem::Any => true,
        TokenSystem::NoSystem => false,
        TokenSystem::Is(system) => system == fixed,
    };
    match (&token.code, system_matches) {
        (Some(code), true) => {
            sql.push(column).push(" = ").bind_text(code);
        }
        (None, true) => {
            sql.push(column).push(" IS NOT NULL");
        }
        (_, false) => {
            sql.push("1 = 0");
        }
    }
}

/// One reference value on a reference column. `entity` is every entity's `what` (R4's AuditEvent-entity), so
/// it matches the event's patient as well as its resource.
fn reference_value(sql: &mut Sql, column: ReferenceColumn, reference: &ReferenceValue) {
    let name = column.name();
    let typed = reference.resource_type.zip(reference.id.as_deref());
    match (column, typed, reference.id.as_deref()) {
        (ReferenceColumn::Patient, Some((resource_type, id)), _)
            if resource_type.as_str() == "Patient" =>
        {
            sql.push(name).push(" = ").bind_text(id);
        }
        (ReferenceColumn::Patient, None, Some(id)) => {
            sql.push(name).push(" = ").bind_text(id);
        }
        (ReferenceColumn::Agent | ReferenceColumn::Entity, Some((resource_type, id)), _) => {
            sql.push("((").push(name).push(" = ").bind_text(&format!("{resource_type}/{id}"));
            if let (ReferenceColumn::Entity, Some(version)) = (column, &reference.version) {
                sql.push(" AND a.entity_version = ").bind_text(version);
            }
            sql.push(")");
            if column == ReferenceColumn::Entity && resource_type.as_str() == "Patient" {
                sql.push(" OR a.patient = ").bind_text(id);
            }
            // An absolute URL that is no local reference matches the agent as written.
            if let (ReferenceColumn::Agent, Some(url)) = (column, &reference.url) {
                sql.push(" OR ").push(name).push(" = ").bind_text(url);
            }
            sql.push(")");
        }
        (ReferenceColumn::Agent, None, Some(id)) => {
            sql.push(name).push(" IN ");
            let candidates: Vec<String> =
                AGENT_TYPES.iter().map(|kind| format!("{kind}/{id}")).collect();
            sql.bind_text_list(candidates.iter().map(String::as_str));
        }
        (ReferenceColumn::Entity, None, Some(id)) => {
            // Ids hold no LIKE wildcards (`[A-Za-z0-9\-.]`).
            sql.push("(").push(name).push(" LIKE ").bind_text(&format!("%/{id}"));
            sql.push(" OR a.patient = ").bind_text(id).push(")");
        }
        (ReferenceColumn::Agent, None, None) if reference.url.is_some() => {
            sql.push(name).push(" = ").bind_text(reference.url.as_deref().unwrap_or_default());
        }
        _ => {
            sql.push("1 = 0");
        }
    }
}

/// A date value on `recorded`, a point in milliseconds standing for the range `[recorded, recorded + 1 ms)`
/// in microseconds, with the prefixes' meanings on ranges (as `compile.rs` has them on index rows) stated as
/// bounds of `recorded` itself, so that its index serves them.
fn recorded(sql: &mut Sql, prefix: Prefix, (low, high): (i64, i64), now_micros: i64) {
    // The event's range starts at or after `x` / before `x`; ends after `x` / at or before `x`.
    let starts_from = |x: i64| -(-x).div_euclid(1000);
    let ends_by = |x: i64| (x - 1000).div_euclid(1000);
    let column = "a.recorded";
    let compare = |sql: &mut Sql, operator: &str, value: i64| {
        sql.push(column).push(operator).bind_int(value);
    };
    match prefix {
        Prefix::Eq | Prefix::Ne => {
            if prefix == Prefix::Ne {
                sql.push("NOT ");
            }
            sql.push("(");
            compare(sql, " >= ", starts_from(low));
            sql.push(" AND ");
            compare(sql, " <= ", ends_by(high));
            sql.push(")");
        }
        Prefix::Gt => compare(sql, " > ", ends_by(high)),
        Prefix::Lt => compare(sql, " < ", starts_from(low)),
        Prefix::Ge => {
            sql.push("(");
            compare(sql, " > ", ends_by(low));
            sql.push(" AND (");
            compare(sql, " >= ", starts_from(low));
            sql.push(" OR ");
            compare(sql, " > ", ends_by(high));
            sql.push("))");
        }
        Prefix::Le => {
            sql.push("(");
            compare(sql, " < ", starts_from(high));
            sql.push(" AND (");
            compare(sql, " <= ", ends_by(high));
            sql.push(" OR ");
            compare(sql, " < ", starts_from(low));
            sql.push("))");
        }
        Prefix::Sa => compare(sql, " >= ", starts_from(high)),
        Prefix::Eb => compare(sql, " <= ", ends_by(low)),
        Prefix::Ap => {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                reason = "ap is approximate by definition"
            )]
            let widen = (((now_micros - (low / 2 + high / 2)).abs() as f64) * 0.1) as i64;
            sql.push("(");
            compare(sql, " < ", starts_from(high.saturating_add(widen)));
            sql.push(" AND ");
            compare(sql, " > ", ends_by(low.saturating_sub(widen)));
            sql.push(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_statements_of_fixed_sizes() {
        let row = |n: usize| AuditRow {
            id: LogicalId::parse(&format!("e{n}")).expect("id"),
            recorded: Instant::from_millis(1),
            event_type: None,
            subtype: None,
            action: None,
            outcome: None,
            patient: None,
            agent: None,
            entity: None,
            altid: None,
            client_issuer: None,
            policy: None,
            address: None,
            body: "{}".into(),
        };
        let rows: Vec<AuditRow> = (0..87).map(row).collect();
        let sizes: Vec<usize> =
            insert_statements(&rows).iter().map(|sql| sql.binds.len() / 17).collect();
        assert_eq!(sizes, [64, 16, 4, 1, 1, 1]);
    }

    #[test]
    fn a_point_in_time_meets_each_prefix_as_its_millisecond_range_would() {
        // Event at 2,000 ms, its range [2,000,000, 2,001,000) µs; search ranges in µs.
        let cases = [
            (Prefix::Eq, (2_000_000, 2_001_000), true),
            (Prefix::Eq, (2_000_000, 2_000_999), false),
            (Prefix::Gt, (1_000_000, 2_000_000), true),
            (Prefix::Gt, (1_000_000, 2_001_000), false),
            (Prefix::Lt, (2_001_000, 3_000_000), true),
            (Prefix::Lt, (2_000_000, 3_000_000), false),
            (Prefix::Ge, (2_000_000, 2_001_000), true),
            (Prefix::Ge, (2_000_001, 2_001_000), false),
            (Prefix::Le, (2_000_000, 2_001_000), true),
            (Prefix::Le, (1_000_000, 2_000_000), false),
            (Prefix::Sa, (1_000_000, 2_000_000), true),
            (Prefix::Sa, (1_000_000, 2_000_001), false),
            (Prefix::Eb, (2_001_000, 3_000_000), true),
            (Prefix::Eb, (2_000_999, 3_000_000), false),
        ];
        for (prefix, range, expected) in cases {
            let mut sql = Sql::new("");
            recorded(&mut sql, prefix, range, 0);
            assert_eq!(evaluate(&sql, 2_000), expected, "{prefix:?} {range:?}: {}", sql.text);
        }
    }

    /// Evaluates a condition built by [`recorded`] for one value of `a.recorded`: comparisons joined by AND,
    /// OR, NOT and parentheses, as that function writes them.
    fn evaluate(sql: &Sql, value: i64) -> bool {
        let mut text = sql.text.clone();
        for (index, bind) in sql.binds.iter().enumerate().rev() {
            let Bind::Int(bound) = bind else { panic!("an integer bind") };
            text = text.replace(&format!("${}", index + 1), &bound.to_string());
        }
        let tokens: Vec<String> = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut position = 0;
        let result = disjunction(&tokens, &mut position, value);
        assert_eq!(position, tokens.len(), "{text}");
        result
    }

    fn disjunction(tokens: &[String], position: &mut usize, value: i64) -> bool {
        let mut result = conjunction(tokens, position, value);
        while tokens.get(*position).map(String::as_str) == Some("OR") {
            *position += 1;
            result |= conjunction(tokens, position, value);
        }
        result
    }

    fn conjunction(tokens: &[String], position: &mut usize, value: i64) -> bool {
        let mut result = factor(tokens, position, value);
        while tokens.get(*position).map(String::as_str) == Some("AND") {
            *position += 1;
            result &= factor(tokens, position, value);
        }
        result
    }

    fn factor(tokens: &[String], position: &mut usize, value: i64) -> bool {
        match tokens[*position].as_str() {
            "NOT" => {
                *position += 1;
                !factor(tokens, position, value)
            }
            "(" => {
                *position += 1;
                let result = disjunction(tokens, position, value);
                assert_eq!(tokens[*position], ")");
                *position += 1;
                result
            }
            _ => {
                assert_eq!(tokens[*position], "a.recorded");
                let operator = tokens[*position + 1].as_str();
                let bound: i64 = tokens[*position + 2].parse().expect("a number");
                *position += 3;
                match operator {
                    ">=" => value >= bound,
                    "<=" => value <= bound,
                    ">" => value > bound,
                    "<" => value < bound,
                    other => panic!("operator {other}"),
                }
            }
        }
    }
}
