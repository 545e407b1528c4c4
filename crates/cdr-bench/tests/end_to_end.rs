//! End to end: the server in-process on a temporary SQLite file, then generate, load (twice), run and
//! direct (reads and searches) with tiny numbers; and ingest (twice, both shapes) and ingest-direct.

#![allow(clippy::unwrap_used, reason = "test code: a panic is the test failing")]

use std::sync::Arc;
use std::time::Duration;

use cdr_api::{ApiConfig, AppState};
use cdr_bench::dataset::read_resources;
use cdr_bench::http::HttpClient;
use cdr_bench::ingest::{IngestConfig, IngestStats};
use cdr_bench::run::{QueryKind, RunConfig};
use cdr_bench::stats::QueryStats;
use cdr_bench::submission::{Shape, SubmissionConfig, Submissions};
use cdr_bench::{Budget, DataFile, GenerateConfig};
use cdr_interactions::{Engine, EngineConfig, PageLimits, Profiles, ValidationMode};
use cdr_search::SearchParamRegistry;
use cdr_server::profiles::ProfileArgs;
use cdr_store::{Store, StoreConfig};
use cdr_validation::ProfileSet;
use serde_json::Value;

fn row<'a>(rows: &'a [QueryStats], name: &str) -> &'a QueryStats {
    rows.iter().find(|row| row.name == name).unwrap_or_else(|| panic!("no row {name}"))
}

/// The server in-process on a SQLite file in `folder`: its FHIR base, its store and its task.
async fn spawn_server(
    folder: &std::path::Path,
) -> (String, String, Store, tokio::task::JoinHandle<std::io::Result<()>>) {
    let database_url = format!("sqlite://{}/cdr.db", folder.display());
    let store_config = StoreConfig {
        url: database_url.clone(),
        max_connections: 8,
        statement_timeout: Duration::from_secs(30),
        pool_timeout: Duration::from_secs(5),
    };
    let store = Store::connect(&store_config).await.unwrap();
    store.migrate().await.unwrap();
    let engine_config = EngineConfig {
        update_create: false,
        limits: PageLimits::default(),
        validation: ValidationMode::Base,
        require_patient_identifier: false,
        contribution_rules: false,
    };
    let profiles = Arc::new(Profiles::new(ProfileSet::r4_core().unwrap()));
    let state = AppState::new(
        Engine::new(store.clone(), profiles, engine_config, SearchParamRegistry::r4().unwrap()),
        ApiConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, cdr_api::app(state)).await });
    (base, database_url, store, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_load_run_and_direct_on_sqlite() {
    let folder = std::env::temp_dir().join(format!("cdr-bench-test-{}", uuid::Uuid::new_v4()));
    let (base, database_url, store, server) = spawn_server(&folder).await;

    let data = folder.join("data");
    let counts =
        cdr_bench::dataset::write_data_set(&data, GenerateConfig { patients: 30, seed: 9 })
            .unwrap();
    let n_amendments = counts[&cdr_bench::DataFile::DiagnosticReportAmendment];
    assert!(n_amendments > 0, "the seed should give some amended reports: {counts:?}");

    let first = cdr_bench::load::load(&base, &data, 4).await.unwrap();
    assert_eq!(first.errors(), 0, "{first:?}");
    for phase in &first.phases {
        assert_eq!(phase.created + phase.updated, phase.resources, "{phase:?}");
    }
    let again = cdr_bench::load::load(&base, &data, 4).await.unwrap();
    assert_eq!(again.errors(), 0, "{again:?}");
    for phase in &again.phases {
        assert_eq!(phase.existing + phase.already_applied, phase.resources, "{phase:?}");
    }

    let config = RunConfig { concurrency: 4, budget: Budget::Requests(40), seed: 1 };
    let reads = [QueryKind::ReadPatient, QueryKind::ReadStudy];
    let rows = cdr_bench::run::run(&base, &data, &reads, config).await.unwrap();
    for name in ["read-patient", "read-study"] {
        let stats = row(&rows, name);
        assert_eq!((stats.requests, stats.errors), (40, 0), "{stats:?}");
        assert!(stats.latency.is_some());
    }
    let rows = cdr_bench::run::run(&base, &data, &QueryKind::ALL, config).await.unwrap();
    for kind in QueryKind::ALL {
        let stats = row(&rows, kind.name());
        assert!(stats.requests > 0 && stats.errors == 0, "{stats:?}");
    }

    // Direct: the reads and every search on the store, with the repository's SearchParameters as the
    // server would load them.
    let conformance = ProfileArgs {
        profiles_dir: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")),
        packages: Vec::new(),
    };
    let (set, _) = cdr_server::profiles::load(&conformance).unwrap();
    let registry = cdr_server::profiles::search_registry(&set).unwrap();
    let study = cdr_model::ResourceType::parse("ImagingStudy").unwrap();
    assert!(registry.get(study, "basedOn").is_some(), "the Ontario SearchParameters are loaded");
    let rows = cdr_bench::direct::direct(&database_url, &data, &QueryKind::ALL, config, registry)
        .await
        .unwrap();
    for kind in QueryKind::ALL {
        let stats = row(&rows, kind.name());
        assert!(stats.requests >= 40 && stats.errors == 0, "{stats:?}");
        assert!(stats.latency.is_some(), "{stats:?}");
    }
    for name in ["read-patient", "read-study"] {
        assert_eq!(row(&rows, name).requests, 40);
    }
    let next_pages = row(&rows, "studies-by-modality:next-page");
    assert_eq!(next_pages.errors, 0, "{next_pages:?}");

    server.abort();
    store.close().await;
    std::fs::remove_dir_all(&folder).unwrap();
}

/// A search's Bundle.
async fn search(client: &HttpClient, base: &str, res_type: &str, params: &[(&str, &str)]) -> Value {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let url = format!("{base}/{res_type}?{query}");
    let response = client.send(hyper::Method::GET, &url, &[], None).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.describe());
    serde_json::from_slice(&response.body).unwrap()
}

/// The number of `res_type` resources whose identifier is `identifier`'s system and value.
async fn count_by_identifier(
    client: &HttpClient,
    base: &str,
    res_type: &str,
    identifier: &Value,
) -> u64 {
    let token = format!(
        "{}|{}",
        identifier["system"].as_str().unwrap(),
        identifier["value"].as_str().unwrap()
    );
    let bundle =
        search(client, base, res_type, &[("identifier", &token), ("_summary", "count")]).await;
    bundle["total"].as_u64().unwrap()
}

fn submissions(data: &std::path::Path, shape: Shape) -> Submissions {
    let config = SubmissionConfig { shape, entries_per_bundle: 10, seed: 1 };
    Submissions::from_data_set(data, config).unwrap()
}

fn check_complete(stats: &IngestStats, n_bundles: u64, n_resources: u64) {
    assert_eq!((stats.bundles.requests, stats.bundles.errors), (n_bundles, 0), "{stats:?}");
    assert_eq!(stats.resources, n_resources, "{stats:?}");
    assert!(stats.bundles.latency.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_twice_without_duplicates_and_ingest_direct_on_sqlite() {
    let folder = std::env::temp_dir().join(format!("cdr-bench-ingest-{}", uuid::Uuid::new_v4()));
    let (base, _, store, server) = spawn_server(&folder.join("api")).await;
    let data = folder.join("data");
    cdr_bench::dataset::write_data_set(&data, GenerateConfig { patients: 8, seed: 5 }).unwrap();
    let patients = read_resources(&data, DataFile::Patient).unwrap();
    let orders = read_resources(&data, DataFile::ServiceRequest).unwrap();
    let studies = read_resources(&data, DataFile::ImagingStudy).unwrap();

    // Each imaging Bundle once, then again: the conditional PUTs find what the first run wrote.
    let config = IngestConfig { concurrency: 4, bundles: None };
    let imaging = submissions(&data, Shape::Imaging);
    let n_bundles = imaging.len() as u64;
    let n_resources: u64 = (0..imaging.len())
        .map(|index| imaging.bundle(index).unwrap()["entry"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(n_bundles, orders.len() as u64);
    for _ in 0..2 {
        let stats = cdr_bench::ingest::ingest(&base, submissions(&data, Shape::Imaging), config)
            .await
            .unwrap();
        check_complete(&stats, n_bundles, n_resources);
    }
    let small = submissions(&data, Shape::Small);
    let n_small = small.len() as u64;
    let limited = IngestConfig { concurrency: 2, bundles: Some(1) };
    let stats = cdr_bench::ingest::ingest(&base, small, limited).await.unwrap();
    assert_eq!((stats.bundles.requests, stats.bundles.errors), (1, 0), "{stats:?}");
    let stats =
        cdr_bench::ingest::ingest(&base, submissions(&data, Shape::Small), config).await.unwrap();
    check_complete(&stats, n_small, (patients.len() + orders.len()) as u64);

    let client = HttpClient::new(2);
    for patient in &patients {
        assert_eq!(
            count_by_identifier(&client, &base, "Patient", &patient["identifier"][0]).await,
            1
        );
    }
    let all_patients = search(&client, &base, "Patient", &[("_summary", "count")]).await;
    assert_eq!(all_patients["total"], patients.len());
    for study in &studies {
        assert_eq!(
            count_by_identifier(&client, &base, "ImagingStudy", &study["identifier"][0]).await,
            1
        );
    }
    server.abort();
    store.close().await;

    // The floor: plain creates straight on another database, found by the server's searches.
    let direct = folder.join("direct");
    let database_url = format!("sqlite://{}/cdr.db", direct.display());
    let stats = cdr_bench::ingest_direct::ingest_direct(
        &database_url,
        submissions(&data, Shape::Imaging),
        config,
        SearchParamRegistry::r4().unwrap(),
    )
    .await
    .unwrap();
    check_complete(&stats, n_bundles, n_resources);
    // Plain creates: a patient is written once per Bundle of theirs, that is per study.
    let (base, _, store, server) = spawn_server(&direct).await;
    for patient in &patients {
        let reference = format!("Patient/{}", patient["id"].as_str().unwrap());
        let n_studies =
            studies.iter().filter(|study| study["subject"]["reference"] == reference).count();
        let mrn = &patient["identifier"][0];
        assert_eq!(count_by_identifier(&client, &base, "Patient", mrn).await, n_studies as u64);
        let token =
            format!("{}|{}", mrn["system"].as_str().unwrap(), mrn["value"].as_str().unwrap());
        let found = search(&client, &base, "ImagingStudy", &[("patient.identifier", &token)]).await;
        assert_eq!(found["entry"].as_array().map_or(0, Vec::len), n_studies, "{found}");
    }
    for study in &studies {
        assert_eq!(
            count_by_identifier(&client, &base, "ImagingStudy", &study["identifier"][0]).await,
            1
        );
    }
    server.abort();
    store.close().await;
    std::fs::remove_dir_all(&folder).unwrap();
}
