//! The floor of a submission: the resources of the same Bundles written straight on the database, one
//! `StoreTx` per Bundle and one `StoreTx::write_all` (multi-row statements per table), without HTTP,
//! planning, conditional matching or validation.
//!
//! Each resource is a plain create: a fresh id, version 1, its `urn:uuid:` references rewritten to those
//! ids, its index rows from `cdr_search::extract` with the server's registry. Only the store transaction
//! (begin to commit) is timed per Bundle; building the Bundle, the bodies and the index rows is not (it
//! still counts in the wall time, as building the Bundle does in the HTTP run).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdr_model::{LogicalId, ResourceType, VersionId};
use cdr_search::{IndexEntry, SearchParamRegistry, extract};
use cdr_store::{NewVersion, Store, StoreConfig, WriteMethod};
use serde_json::{Value, json};

use crate::BenchError;
use crate::ingest::{IngestConfig, IngestStats, Submitted, bundle_budget, summarise};
use crate::stats::Sample;
use crate::submission::{Submissions, entries, replace_references};
use crate::workers::run_workers;

/// Writes the resources of `submissions` on the database at `database_url` (migrated first), with a
/// pool of `config.concurrency` connections and as many workers.
///
/// # Errors
/// When the database cannot be opened or migrated; failed Bundles are counted, not returned.
pub async fn ingest_direct(
    database_url: &str,
    submissions: Submissions,
    config: IngestConfig,
    registry: SearchParamRegistry,
) -> Result<IngestStats, BenchError> {
    let store_config = StoreConfig {
        url: database_url.to_owned(),
        max_connections: u32::try_from(config.concurrency).unwrap_or(u32::MAX).max(1),
        statement_timeout: Duration::from_secs(30),
        pool_timeout: Duration::from_secs(30),
    };
    let store = Store::connect(&store_config).await?;
    store.migrate().await?;
    let shape = submissions.shape().name();
    let budget = bundle_budget(&submissions, config);
    let context = Arc::new((store.clone(), submissions, registry));
    let (results, elapsed) = run_workers(config.concurrency, budget, move |item| {
        let context = Arc::clone(&context);
        async move {
            let (store, submissions, registry) = &*context;
            write_bundle(store, submissions, registry, item).await
        }
    })
    .await;
    store.close().await;
    Ok(summarise(shape, &results, elapsed))
}

/// One resource ready to write.
struct Prepared {
    res_type: ResourceType,
    res_id: LogicalId,
    body: String,
    index: Vec<IndexEntry>,
}

async fn write_bundle(
    store: &Store,
    submissions: &Submissions,
    registry: &SearchParamRegistry,
    item: u64,
) -> Submitted {
    let now = cdr_model::Instant::now();
    let prepared = usize::try_from(item)
        .map_err(|error| error.to_string())
        .and_then(|index| submissions.bundle(index))
        .and_then(|bundle| prepare(&bundle, registry, now));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            return Submitted {
                sample: Sample { label: "bundle", latency: Duration::ZERO, error: Some(error) },
                resources: 0,
            };
        }
    };
    let versions: Vec<NewVersion<'_>> = prepared
        .iter()
        .map(|resource| NewVersion {
            res_type: resource.res_type,
            res_id: &resource.res_id,
            version: VersionId::FIRST,
            last_updated: now,
            method: WriteMethod::Create,
            body: Some(&resource.body),
            index: &resource.index,
        })
        .collect();
    let started = Instant::now();
    let result = async {
        let mut tx = store.begin().await?;
        tx.write_all(&versions).await?;
        tx.commit().await
    }
    .await;
    let latency = started.elapsed();
    match result {
        Ok(()) => Submitted {
            sample: Sample { label: "bundle", latency, error: None },
            resources: prepared.len() as u64,
        },
        Err(error) => Submitted {
            sample: Sample {
                label: "bundle",
                latency,
                error: Some(format!("{error}: {:?}", std::error::Error::source(&error))),
            },
            resources: 0,
        },
    }
}

/// Fresh ids, references between entries rewritten to them, `id` and `meta` set, bodies and index rows.
fn prepare(
    bundle: &Value,
    registry: &SearchParamRegistry,
    now: cdr_model::Instant,
) -> Result<Vec<Prepared>, String> {
    let entries = entries(bundle);
    let mut targets: HashMap<String, String> = HashMap::new();
    let mut ids = Vec::with_capacity(entries.len());
    for (full_url, res_type, _) in &entries {
        let res_type = ResourceType::parse(res_type).map_err(|error| error.to_string())?;
        let res_id = LogicalId::parse(&uuid::Uuid::new_v4().to_string())
            .map_err(|error| error.to_string())?;
        targets.insert((*full_url).to_owned(), format!("{res_type}/{res_id}"));
        ids.push((res_type, res_id));
    }
    let last_updated = now.to_fhir();
    let mut prepared = Vec::with_capacity(entries.len());
    for ((_, _, resource), (res_type, res_id)) in entries.into_iter().zip(ids) {
        let mut resource = Value::Object(resource.clone());
        replace_references(&mut resource, &targets)?;
        resource["id"] = json!(res_id.as_str());
        resource["meta"] = json!({ "versionId": "1", "lastUpdated": last_updated });
        let index = extract(&resource, registry, res_type).entries;
        prepared.push(Prepared { res_type, res_id, body: resource.to_string(), index });
    }
    Ok(prepared)
}
