//! Search planning: whether a search is driven by its most selective clause or by its page order.
//!
//! The compiler (`compile.rs`) writes one clause in one of two forms. The *driving* clause is an uncorrelated
//! `r.res_id IN (SELECT res_id FROM idx_… WHERE res_type = $t AND param = $p AND …)` (a `(type, id) IN (…)` row
//! value for several types): the database enumerates its matches from the `(res_type, param, value)` index and
//! tests the rest on each. Every other clause is a correlated `EXISTS` on the `(res_type, res_id, param, …)`
//! index, a point lookup per resource tested. With no driving clause (`Drive::Order`) the database walks the page
//! order itself: the resource ids, `_lastUpdated`, or, for one `_sort` key on an indexed parameter, that
//! parameter's value index (`page.rs`), testing every clause on each resource until the page is full. Which is right
//! depends on the data: `patient=…` or an identifier matches a handful of resources (enumerate them, sort, done:
//! walking would test every resource of the type); `modality=CT` matches a third of all studies (enumerating
//! 33,000 and sorting them to keep 20 is what made `ImagingStudy?modality=CT&started=ge…&_sort=-started` take 0.9
//! s on SQLite and 3.8 s on PostgreSQL; walking `started` backwards finds a page after about 60 studies).
//!
//! Neither planner can make this choice: SQLite plans before it sees the bound values and does not turn a
//! correlated `EXISTS` into an index lookup (a token search on 10,000 resources: 260 ms as `EXISTS`, 0.2 ms as
//! `IN`); PostgreSQL multiplies the selectivities of `res_type`, `param` and `code` as if independent (it
//! estimated 581 CT studies for 33,303) and then prefers enumerating and sorting.
//!
//! So the store decides, the same way on both (`Store::drive`): a clause that is few by nature (an id, an
//! identifier, a reference to one resource, a chain or `_has`) drives; else each clause that can enumerate its
//! matches counts its index rows up to 1,000 (`PROBE_CAP`, where the two plans cost about the same; one bounded
//! index range count, 0.3–2 ms), the smallest drives when under the cap, and otherwise the page order drives.
//!
//! The SQL then leaves the planners no other choice: the walk is a `CROSS JOIN` from the sort index (which fixes
//! SQLite's join order), and every non-driving `EXISTS` ends in `LIMIT 1 OFFSET 0`, which PostgreSQL never turns
//! into a join (so it cannot enumerate a common value's matches behind our back) and SQLite evaluates per row
//! anyway. `_total` counts drive from the smallest clause without that fence, leaving PostgreSQL free to
//! hash-join.
//!
//! Each statement is prepared once per connection and reused: SQLite would re-prepare a statement on every
//! execution if its plan had consulted a bound value, so `LIMIT` is written out (`Sql::push_limit`; the counts
//! are the server's own) and `sqlite_stat4` value samples are dropped after each analysis (the value-dependent
//! choices are the store's); PostgreSQL connections use generic plans (`plan_cache_mode`), since the SQL already
//! fixes the plan's shape.
//!
//! Pages sort and cut on keys and sort values alone, then fetch the page's bodies.
//!
//! Both databases' planner statistics are refreshed at start and every ten seconds (`Store::optimize`: `PRAGMA
//! optimize` on SQLite when a version was written since the last run; on PostgreSQL `ANALYZE` of each store table changed past autovacuum's threshold, since
//! autovacuum may be off or behind a bulk load: without statistics a conditional create by identifier walked
//! every identifier row of its type, and a 370,000-resource load ran at 81 resources/s).
//!
//! Measured plans and figures at 100,000 ImagingStudy are in bench/README.md.

use cdr_model::ResourceType;
use cdr_search::{Criterion, Modifier, ParamFilter, SearchParamType, SearchQuery, SearchValue};
use sqlx::Row;

use crate::compile::probe_sql;
use crate::connect::dispatch;
use crate::sql::query_of;
use crate::{Store, StoreError};

/// How the database is to find the matches of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drive {
    /// Walk the resources in page order (the sort parameter's index, or the ids) and test every clause on
    /// each (correlated `EXISTS`): the right plan when matches are plentiful, as the walk stops at the page
    /// size.
    Order,
    /// Enumerate the matches of this top-level clause (an uncorrelated `IN`), test the others on each, and
    /// sort: the right plan when that clause matches few resources.
    Clause(usize),
}

/// Where planning stops counting a clause's index rows: past this many matches the walk in page order
/// drives. Walking finds a page of n after testing about (n + 1) × T / c resources of the type (T resources, c
/// matches); enumerating tests each of the c matches. When each enumerated match costs about what a walked
/// resource does (its sort value, the other clauses: a few index lookups each), the two cross near
/// c = √((n + 1) T): 460 for pages of 20 among 10,000 resources, 1,450 among 100,000.
pub(crate) const PROBE_CAP: i64 = 1_000;

/// The cap for a lone unsorted clause, whose enumerated matches only need their ids sorted: a tenth of a
/// walked resource's cost or less, which moves the crossing up by √10 (measured at 50,000 patients: a family
/// name with 1,200 matches ran at 430 searches/s walked, 830 enumerated).
const LONE_PROBE_CAP: i64 = 4_000;

/// How many resources a top-level clause may match, as far as planning needs to know.
#[derive(Debug)]
pub(crate) enum Selectivity<'a> {
    /// Few by its nature: an id, an identifier, a reference to one resource, a chain or `_has` (whose inner
    /// criteria name a patient or an order in practice).
    Few,
    /// Count its index rows, up to a cap ([`probe_sql`]).
    Probe(&'a ParamFilter),
    /// It cannot enumerate its matches (a negation, `:missing`, `:contains`, a composite).
    Unusable,
}

/// The drive chosen without asking the data: the first clause that is few by nature, else the first that
/// can enumerate its matches, else the page order. Conditional writes use it (their criteria are business
/// identifiers), and so do searches of several types.
pub(crate) fn usual_drive(query: &SearchQuery) -> Drive {
    let mut usable = None;
    for (index, clause) in query.clauses.iter().enumerate() {
        match selectivity(&clause.criterion) {
            Selectivity::Few => return Drive::Clause(index),
            Selectivity::Probe(_) => {
                usable.get_or_insert(index);
            }
            Selectivity::Unusable => {}
        }
    }
    usable.map_or(Drive::Order, Drive::Clause)
}

/// The [`Selectivity`] of one top-level clause.
pub(crate) fn selectivity(criterion: &Criterion) -> Selectivity<'_> {
    let filter = match criterion {
        Criterion::Chain { .. } | Criterion::Has { .. } => return Selectivity::Few,
        Criterion::Param(filter) => filter,
    };
    if filter.param.code == "_id" && filter.modifier != Some(Modifier::Not) {
        return Selectivity::Few;
    }
    let unusable = matches!(
        filter.modifier,
        Some(Modifier::Not | Modifier::NotIn | Modifier::Contains | Modifier::Missing)
    ) || filter.param.param_type == SearchParamType::Composite
        || filter.values.iter().any(|value| matches!(value, SearchValue::Missing(_)));
    if unusable {
        return Selectivity::Unusable;
    }
    let identifies = filter.param.code == "identifier"
        && filter.values.iter().all(|value| match value {
            SearchValue::Token(token) => token.code.is_some(),
            SearchValue::OfType { .. } => true,
            _ => false,
        });
    if identifies {
        return Selectivity::Few;
    }
    let one_target = filter.values.iter().all(|value| {
        matches!(value, SearchValue::Reference(reference) if reference.id.is_some() || reference.url.is_some())
    });
    if filter.param.param_type == SearchParamType::Reference && one_target {
        return Selectivity::Few;
    }
    Selectivity::Probe(filter)
}

impl Store {
    /// The [`Drive`] of a search of one type. Neither planner can tell a common value from a rare one in the
    /// index tables (SQLite plans before it sees the bound values; PostgreSQL's statistics see a column's
    /// common values, not those of one parameter), so the store asks the data: a clause that is few by
    /// nature drives; else each clause that can enumerate its matches counts its index rows up to
    /// [`PROBE_CAP`] (or [`LONE_PROBE_CAP`]), and the one with the fewest drives if that is under the cap
    /// (or always, for `counting`, which needs every match anyway); else the walk in page order does.
    pub(crate) async fn drive(
        &self,
        query: &SearchQuery,
        types: &[ResourceType],
        now_micros: i64,
        counting: bool,
    ) -> Result<Drive, StoreError> {
        let [res_type] = types else { return Ok(usual_drive(query)) };
        let cap = if query.clauses.len() == 1 && query.sort.is_empty() {
            LONE_PROBE_CAP
        } else {
            PROBE_CAP
        };
        let mut probes = Vec::new();
        for (index, clause) in query.clauses.iter().enumerate() {
            match selectivity(&clause.criterion) {
                Selectivity::Few => return Ok(Drive::Clause(index)),
                Selectivity::Unusable => {}
                Selectivity::Probe(filter) => {
                    probes.push((index, probe_sql(filter, *res_type, now_micros, cap)?));
                }
            }
        }
        let mut fewest: Option<(i64, usize)> = None;
        for (index, sql) in probes {
            let count = dispatch!(&self.pool, pool => query_of!(&sql)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<i64, _>("n")))?;
            if fewest.is_none_or(|(least, _)| count < least) {
                fewest = Some((count, index));
            }
        }
        Ok(match fewest {
            Some((count, index)) if counting || count < cap => Drive::Clause(index),
            _ => Drive::Order,
        })
    }
}
