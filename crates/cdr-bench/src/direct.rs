//! The same work straight on the store, bypassing HTTP and the interaction layer: the floor that the
//! server's overhead is measured against.
//!
//! Only reads by id are measured: the store has no search API yet. A query without a store operation is
//! reported as "not measured"; adding one is one arm in [`store_operation`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdr_store::{Store, StoreConfig};

use crate::BenchError;
use crate::dataset::IdMap;
use crate::rng::Rng;
use crate::run::{Operation, QueryKind, QueryValues, RunConfig, measure};
use crate::stats::{QueryStats, Sample};

/// Times `queries` through `cdr_store::Store` on the database at `database_url`, which must hold the
/// data set loaded from `data_dir`.
///
/// # Errors
/// When the database cannot be opened or the data set and its id map cannot be read.
pub async fn direct(
    database_url: &str,
    data_dir: &Path,
    queries: &[QueryKind],
    config: RunConfig,
) -> Result<Vec<QueryStats>, BenchError> {
    let ids = IdMap::load(data_dir)?;
    let values = Arc::new(QueryValues::from_data_set(data_dir, &ids)?);
    let store_config = StoreConfig {
        url: database_url.to_owned(),
        max_connections: u32::try_from(config.concurrency).unwrap_or(u32::MAX).max(1),
        statement_timeout: Duration::from_secs(30),
    };
    let store = Store::connect(&store_config).await?;
    let operations: Vec<(QueryKind, Option<Operation>)> = queries
        .iter()
        .map(|kind| (*kind, store_operation(*kind, &store, &values, config.seed)))
        .collect();
    let rows = measure(&operations, config, "the store has no search API yet").await;
    store.close().await;
    Ok(rows)
}

/// The store call that does the work of `kind`, or `None` when the store cannot do it yet.
fn store_operation(
    kind: QueryKind,
    store: &Store,
    values: &Arc<QueryValues>,
    seed: u64,
) -> Option<Operation> {
    let res_type = match kind {
        QueryKind::ReadPatient => "Patient",
        QueryKind::ReadStudy => "ImagingStudy",
        QueryKind::StudiesByPatientIdentifier
        | QueryKind::ReportsByPatient
        | QueryKind::StudiesByModality
        | QueryKind::OrderByAccession
        | QueryKind::PatientByMrn
        | QueryKind::PatientByName => return None,
    };
    let store = store.clone();
    let values = Arc::clone(values);
    Some(Arc::new(move |item| {
        let store = store.clone();
        let values = Arc::clone(&values);
        Box::pin(async move {
            // The same choice of id as the HTTP run for the same item and seed.
            let mut rng = Rng::for_item(seed, item);
            let res_id = match kind {
                QueryKind::ReadPatient => rng.pick(&values.patients).server_id.clone(),
                _ => rng.pick(&values.study_ids).clone(),
            };
            let started = Instant::now();
            let result = store.read(res_type, &res_id).await;
            let latency = started.elapsed();
            let error = match result {
                Ok(Some(version)) if version.body.is_some() => None,
                Ok(_) => Some(format!("{res_type}/{res_id} is missing or deleted")),
                Err(error) => Some(format!("{error}: {:?}", std::error::Error::source(&error))),
            };
            vec![Sample { label: kind.name(), latency, error }]
        })
    }))
}
