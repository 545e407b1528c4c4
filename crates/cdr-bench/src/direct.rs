//! The same work straight on the store, bypassing HTTP and the interaction layer: the floor that the
//! server's overhead is measured against.
//!
//! Reads go through `Store::read`. Searches are parsed with `cdr_search::parse_query` (against the R4 search
//! parameters plus any custom SearchParameters, as the server loads them), then run with `Store::search` with
//! the server's default page size, then `Store::include` for each `_include`/`_revinclude` (one round, like
//! the server without `:iterate`); the paged query follows `next` pages with the last match's key. Only the
//! store calls are timed: parsing is part of the overhead the comparison measures.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdr_interactions::PageLimits;
use cdr_model::{LogicalId, ResourceType};
use cdr_search::{SearchParamRegistry, SearchQuery, parse_query};
use cdr_store::{FoundResource, PageDirection, SearchRequest, Store, StoreConfig, StoreError};

use crate::BenchError;
use crate::dataset::IdMap;
use crate::rng::Rng;
use crate::run::{Operation, QueryKind, QueryValues, RunConfig, Samples, SearchSpec, measure};
use crate::stats::{QueryStats, Sample};

/// Times `queries` through `cdr_store::Store` on the database at `database_url`, which must hold the
/// data set loaded from `data_dir`. `registry` holds the search parameters the server was started with
/// (`cdr_server::profiles::search_registry` of its conformance resources).
///
/// # Errors
/// When the database cannot be opened, or the data set and its id map cannot be read.
pub async fn direct(
    database_url: &str,
    data_dir: &Path,
    queries: &[QueryKind],
    config: RunConfig,
    registry: SearchParamRegistry,
) -> Result<Vec<QueryStats>, BenchError> {
    let ids = IdMap::load(data_dir)?;
    let values = QueryValues::from_data_set(data_dir, &ids)?;
    let store_config = StoreConfig {
        url: database_url.to_owned(),
        max_connections: u32::try_from(config.concurrency).unwrap_or(u32::MAX).max(1),
        statement_timeout: Duration::from_secs(30),
        pool_timeout: Duration::from_secs(5),
    };
    let store = Store::connect(&store_config).await?;
    let context = Arc::new(DirectContext {
        store: store.clone(),
        registry,
        values,
        seed: config.seed,
        limits: PageLimits::default(),
    });
    let operations: Vec<(QueryKind, Option<Operation>)> = queries
        .iter()
        .map(|kind| {
            let context = Arc::clone(&context);
            let kind = *kind;
            let operation: Operation = Arc::new(move |item| {
                let context = Arc::clone(&context);
                Box::pin(async move { context.execute(kind, item).await })
            });
            (kind, Some(operation))
        })
        .collect();
    let rows = measure(&operations, config, "").await;
    store.close().await;
    Ok(rows)
}

struct DirectContext {
    store: Store,
    registry: SearchParamRegistry,
    values: QueryValues,
    seed: u64,
    /// The server's default page sizes and include cap.
    limits: PageLimits,
}

impl DirectContext {
    async fn execute(&self, kind: QueryKind, item: u64) -> Samples {
        // The same values as the HTTP run for the same item and seed.
        let mut rng = Rng::for_item(self.seed, item);
        let label = kind.name();
        let (res_type, res_id) = match kind {
            QueryKind::ReadPatient => {
                (ResourceType::known("Patient"), rng.pick(&self.values.patients).server_id.as_str())
            }
            QueryKind::ReadStudy => {
                (ResourceType::known("ImagingStudy"), rng.pick(&self.values.study_ids).as_str())
            }
            _ => {
                let Some(search) = SearchSpec::for_kind(kind, &mut rng, &self.values) else {
                    return Vec::new();
                };
                return self.search(kind, &search).await;
            }
        };
        let res_id = match LogicalId::parse(res_id) {
            Ok(res_id) => res_id,
            Err(error) => {
                return vec![Sample {
                    label,
                    latency: Duration::ZERO,
                    error: Some(error.to_string()),
                }];
            }
        };
        let started = Instant::now();
        let result = self.store.read(res_type, &res_id).await;
        let latency = started.elapsed();
        let error = match result {
            Ok(Some(version)) if version.body.is_some() => None,
            Ok(_) => Some(format!("{res_type}/{res_id} is missing or deleted")),
            Err(error) => Some(describe(&error)),
        };
        vec![Sample { label, latency, error }]
    }

    /// The first page (and for the paged query up to five more), each timed with its includes.
    async fn search(&self, kind: QueryKind, search: &SearchSpec) -> Samples {
        let labels = kind.labels();
        let failed = |error: String| {
            vec![Sample { label: labels[0], latency: Duration::ZERO, error: Some(error) }]
        };
        let resource_type = match ResourceType::parse(search.res_type) {
            Ok(resource_type) => resource_type,
            Err(error) => return failed(error.to_string()),
        };
        let parsed = parse_query(Some(resource_type), &search.params, &self.registry);
        if let Some(error) = parsed.errors.first() {
            return failed(format!("the query does not parse: {error}"));
        }
        let query = parsed.query;
        let types = [resource_type];
        let mut samples = Vec::new();
        let mut after: Option<cdr_store::PageKey> = None;
        let n_pages = if search.paged { 6 } else { 1 };
        for page_number in 0..n_pages {
            let label = labels[usize::from(page_number > 0).min(labels.len() - 1)];
            let started = Instant::now();
            let result = self.page(&query, &types, after.as_ref()).await;
            let latency = started.elapsed();
            let (error, next) = match result {
                Err(error) => (Some(describe(&error)), None),
                Ok((matches, _))
                    if matches.is_empty() && search.expect_match && page_number == 0 =>
                {
                    (Some("no match, yet the data set has one".to_owned()), None)
                }
                Ok((matches, more)) => {
                    (None, matches.last().filter(|_| more).map(|last| last.key.clone()))
                }
            };
            samples.push(Sample { label, latency, error });
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        samples
    }

    /// One page of matches and its included resources; whether more pages follow.
    async fn page(
        &self,
        query: &SearchQuery,
        types: &[ResourceType],
        after: Option<&cdr_store::PageKey>,
    ) -> Result<(Vec<FoundResource>, bool), StoreError> {
        let now_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX));
        let request = SearchRequest {
            query,
            types,
            count: query
                .count
                .unwrap_or(self.limits.default_page_size)
                .clamp(1, self.limits.max_page_size),
            page: after.map(|key| (PageDirection::After, key)),
            now_micros,
            horizon: None,
        };
        let page = self.store.search(&request).await?;
        let sources: Vec<(ResourceType, LogicalId)> = page
            .resources
            .iter()
            .map(|resource| (resource.res_type, resource.res_id.clone()))
            .collect();
        let directives = query
            .includes
            .iter()
            .map(|include| (include, false))
            .chain(query.revincludes.iter().map(|include| (include, true)));
        let max_included = i64::from(self.limits.max_included);
        let mut n_included = 0;
        for (include, reverse) in directives {
            if sources.is_empty() || n_included >= max_included {
                break;
            }
            let included = self
                .store
                .include(&sources, include, reverse, max_included - n_included, None)
                .await?;
            n_included += i64::try_from(included.len()).unwrap_or(0);
        }
        Ok((page.resources, page.more))
    }
}

fn describe(error: &StoreError) -> String {
    format!("{error}: {:?}", std::error::Error::source(error))
}
