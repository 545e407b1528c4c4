//! End to end: the server in-process on a temporary SQLite file, then generate, load (twice), run and
//! direct (reads and searches) with tiny numbers.

use std::sync::Arc;
use std::time::Duration;

use cdr_api::{ApiConfig, AppState};
use cdr_bench::run::{QueryKind, RunConfig};
use cdr_bench::stats::QueryStats;
use cdr_bench::{Budget, GenerateConfig};
use cdr_interactions::{Engine, EngineConfig, PageLimits, Profiles, ValidationMode};
use cdr_search::SearchParamRegistry;
use cdr_server::profiles::ProfileArgs;
use cdr_store::{Store, StoreConfig};
use cdr_validation::ProfileSet;

fn row<'a>(rows: &'a [QueryStats], name: &str) -> &'a QueryStats {
    rows.iter().find(|row| row.name == name).unwrap_or_else(|| panic!("no row {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_load_run_and_direct_on_sqlite() {
    let folder = std::env::temp_dir().join(format!("cdr-bench-test-{}", uuid::Uuid::new_v4()));
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
