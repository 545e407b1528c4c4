//! `TestApp`: the application on a fresh database, and small request helpers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use cdr_api::{ApiConfig, AppState, JobWorker, LinkConfig};
use cdr_interactions::{Engine, EngineConfig, PageLimits, Profiles, ValidationMode};
use cdr_search::SearchParamRegistry;
use cdr_server::profiles::ProfileArgs;
use cdr_store::{Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The application on its own database, which goes when the `TestApp` is dropped, also when the test
/// panics.
pub(crate) struct TestApp {
    router: Router,
    state: AppState,
    engine: Engine,
    store: Store,
    // Last, so that it is dropped after the pool.
    database: TestDatabase,
}

/// The test's own database: a SQLite file in a temporary folder, or a PostgreSQL schema whose connections
/// carry the schema's name as their `application_name`. Dropping it removes the folder or drops the schema.
enum TestDatabase {
    Folder(PathBuf),
    Schema { admin_url: String, schema: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            TestDatabase::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
            }
            TestDatabase::Schema { admin_url, schema } => {
                // Drop may run on a runtime worker (or while a panic unwinds one), which cannot block on a
                // future; a thread of its own with its own runtime can, on a fresh connection.
                let (admin_url, schema) = (admin_url.clone(), schema.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(drop_schema(&admin_url, &schema))
                })
                .join();
                match dropped {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("cannot drop the test schema: {error}"),
                    Err(_) => eprintln!("cannot drop the test schema: the cleanup thread panicked"),
                }
            }
        }
    }
}

/// Ends the connections still open on `schema` (a panicking test leaves its pool open) and drops it.
async fn drop_schema(
    admin_url: &str,
    schema: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    end_connections(&mut admin, schema).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// Terminates the PostgreSQL connections of the test schema `schema` and waits until each has exited.
///
/// # Errors
/// On database failure, or when one has not exited after ten seconds.
pub(crate) async fn end_connections(
    admin: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(schema)
    .fetch_all(&mut *admin)
    .await?;
    if ended.contains(&false) {
        return Err(sqlx::Error::Protocol(format!("a connection of {schema} did not exit")));
    }
    Ok(())
}

/// A response, with its body read.
#[derive(Debug)]
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl TestResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("body is not JSON ({error}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Asserts the status and that the body is an OperationOutcome whose first issue has `code`.
    pub(crate) fn assert_outcome(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/fhir+json; charset=utf-8"));
        let outcome = self.json();
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
        assert_eq!(outcome["issue"][0]["code"], code, "{outcome}");
    }
}

/// A test-only SearchParameter: no served type has a `number` parameter in R4, so the tests add one to cover
/// that parameter type end to end.
const NUMBER_OF_SERIES: &str = r#"{"resourceType":"SearchParameter","url":"http://imaging-cdr.test/SearchParameter/ImagingStudy-number-of-series",
  "name":"number_of_series","status":"active","code":"number-of-series","base":["ImagingStudy"],"type":"number",
  "expression":"ImagingStudy.numberOfSeries"}"#;

/// The R4 search parameters plus the Ontario ones of `profiles/` (and [`NUMBER_OF_SERIES`]), built once per
/// test binary.
pub(crate) fn search_params() -> &'static SearchParamRegistry {
    &conformance().1
}

pub(crate) fn engine_config() -> EngineConfig {
    EngineConfig {
        update_create: false,
        limits: PageLimits::default(),
        validation: ValidationMode::Base,
        require_patient_identifier: false,
        contribution_rules: false,
    }
}

/// R4 core plus the repository's `profiles/` (Ontario MI and CA Baseline), loaded once per test run.
pub(crate) fn profiles() -> Arc<Profiles> {
    Arc::clone(&conformance().0)
}

/// The repository's `profiles/` loaded as the server loads its `--profiles-dir`, with the test-only
/// SearchParameters added as if they were files of that folder; the profiles and the search registry made
/// of them.
fn conformance() -> &'static (Arc<Profiles>, SearchParamRegistry) {
    static CONFORMANCE: OnceLock<(Arc<Profiles>, SearchParamRegistry)> = OnceLock::new();
    CONFORMANCE.get_or_init(|| {
        let args = ProfileArgs {
            profiles_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles")),
            packages: Vec::new(),
        };
        let (mut set, _) =
            cdr_server::profiles::load(&args).expect("the repository's profiles load");
        set.add_json("number-of-series", NUMBER_OF_SERIES).expect("a test SearchParameter loads");
        let registry =
            cdr_server::profiles::search_registry(&set).expect("the search parameters load");
        let loaded = Profiles::new(set);
        assert!(loaded.missing().is_empty(), "{:?}", loaded.missing());
        (Arc::new(loaded), registry)
    })
}

impl TestApp {
    pub(crate) async fn spawn_with(backend: Backend, engine_config: EngineConfig) -> TestApp {
        let (url, database) = match backend {
            Backend::Sqlite => {
                let folder =
                    std::env::temp_dir().join(format!("imaging-cdr-test-{}", uuid::Uuid::new_v4()));
                let url = format!("sqlite://{}/cdr.db", folder.display());
                (url, TestDatabase::Folder(folder))
            }
            Backend::Postgres => {
                // `TEST_DATABASE_URL`, the default address, or a throwaway cluster (see cdr-test-postgres).
                let admin_url = cdr_test_postgres::admin_url().to_owned();
                let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = connect_admin(&admin_url).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test schema");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{admin_url}{separator}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                (url, TestDatabase::Schema { admin_url, schema })
            }
        };
        let config = StoreConfig {
            url,
            max_connections: 8,
            statement_timeout: Duration::from_secs(30),
            pool_timeout: Duration::from_secs(5),
        };
        let store = Store::connect(&config).await.expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        let engine = Engine::new(store.clone(), profiles(), engine_config, search_params().clone());
        let state = AppState::new(engine.clone(), api_config());
        let router = cdr_api::app(state.clone());
        TestApp { router, state, engine, store, database }
    }

    /// A worker for the asynchronous requests of the application (woken when it queues one).
    pub(crate) fn job_worker(&self) -> JobWorker {
        self.state.job_worker()
    }

    /// A worker of another application on the same database, as a server process started later has: it
    /// shares nothing with this one but the database.
    pub(crate) fn other_job_worker(&self) -> JobWorker {
        AppState::new(self.engine.clone(), api_config()).job_worker()
    }

    /// A Subscription dispatcher of the application, delivering as `config` says.
    pub(crate) fn dispatcher(
        &self,
        config: cdr_api::DeliveryConfig,
    ) -> cdr_api::SubscriptionDispatcher {
        self.dispatcher_with_engine(config, |engine| engine)
    }

    /// A Subscription dispatcher of the application with its engine changed by `change`.
    pub(crate) fn dispatcher_with_engine(
        &self,
        config: cdr_api::DeliveryConfig,
        change: impl FnOnce(Engine) -> Engine,
    ) -> cdr_api::SubscriptionDispatcher {
        AppState::new(
            change(self.engine.clone()),
            ApiConfig { subscriptions: config, ..api_config() },
        )
        .subscription_dispatcher()
    }

    /// The application on the same database with other HTTP settings.
    pub(crate) fn router_with(&self, config: ApiConfig) -> Router {
        cdr_api::app(AppState::new(self.engine.clone(), config))
    }

    /// The application on the same database with its engine changed by `change`.
    pub(crate) fn router_with_engine(&self, change: impl FnOnce(Engine) -> Engine) -> Router {
        cdr_api::app(AppState::new(change(self.engine.clone()), api_config()))
    }

    /// The application on the same database with its engine checking Patients and Practitioners with
    /// `registry`.
    pub(crate) fn router_with_registry(
        &self,
        registry: Arc<dyn cdr_interactions::PersonRegistry>,
    ) -> Router {
        let engine = self.engine.clone().with_person_registry(registry);
        cdr_api::app(AppState::new(engine, api_config()))
    }

    /// Closes the database pool under the running application, as a lost database would.
    pub(crate) async fn close_database(&self) {
        self.store.close().await;
    }

    /// The store under the application, for tests that inspect or reindex it.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The administrative connection URL and the schema of a PostgreSQL test database.
    pub(crate) fn postgres_schema(&self) -> Option<(&str, &str)> {
        match &self.database {
            TestDatabase::Schema { admin_url, schema } => Some((admin_url, schema)),
            TestDatabase::Folder(_) => None,
        }
    }

    /// The folder of a SQLite test database.
    pub(crate) fn sqlite_folder(&self) -> Option<&Path> {
        match &self.database {
            TestDatabase::Folder(folder) => Some(folder),
            TestDatabase::Schema { .. } => None,
        }
    }

    /// The application's router, for tasks that send requests of their own.
    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub(crate) async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        self.send(build_request(method, uri, headers, body)).await
    }

    /// Sends every request at once, each from a task of its own (so that they race on the runtime's threads,
    /// not only in the database), and returns the responses in the order of the requests.
    pub(crate) async fn race(&self, requests: Vec<Request<Body>>) -> Vec<TestResponse> {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let router = self.router.clone();
                tokio::spawn(async move { send_to(&router, request).await })
            })
            .collect();
        let mut responses = Vec::with_capacity(tasks.len());
        for task in tasks {
            responses.push(task.await.expect("a racing request completes"));
        }
        responses
    }

    /// Searches with `GET /fhir/{query}` under strict handling (so a misspelt parameter fails the test rather
    /// than being ignored) and returns the Bundle, asserting 200.
    pub(crate) async fn search(&self, query: &str) -> Value {
        let response = self
            .request(Method::GET, &format!("/fhir/{query}"), &[("prefer", "handling=strict")], "")
            .await;
        assert_eq!(response.status, StatusCode::OK, "{query}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/fhir+json; charset=utf-8"));
        let bundle = response.json();
        assert_eq!(bundle["type"], "searchset", "{bundle}");
        bundle
    }

    pub(crate) async fn get(&self, uri: &str) -> TestResponse {
        self.request(Method::GET, uri, &[], "").await
    }

    pub(crate) async fn post(&self, uri: &str, body: &str) -> TestResponse {
        self.request(Method::POST, uri, &[("content-type", "application/fhir+json")], body).await
    }

    pub(crate) async fn put(&self, uri: &str, body: &str) -> TestResponse {
        self.request(Method::PUT, uri, &[("content-type", "application/fhir+json")], body).await
    }

    pub(crate) async fn delete(&self, uri: &str) -> TestResponse {
        self.request(Method::DELETE, uri, &[], "").await
    }

    /// Creates a resource and returns its server-assigned id.
    pub(crate) async fn create(&self, resource_type: &str, body: &str) -> String {
        let response = self.post(&format!("/fhir/{resource_type}"), body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        response.json()["id"].as_str().expect("created resource has an id").to_owned()
    }
}

/// The HTTP settings of [`TestApp`]: small bodies, links under `http://cdr.test/fhir`.
pub(crate) fn api_config() -> ApiConfig {
    ApiConfig {
        max_body_bytes: 64 * 1024,
        links: LinkConfig {
            base_url: Some("http://cdr.test/fhir".parse().expect("a valid base URL")),
            ..LinkConfig::default()
        },
        ..ApiConfig::default()
    }
}

/// A request to the application.
pub(crate) fn build_request(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_owned())).expect("a valid request")
}

/// Sends a request to `router` and reads the whole response.
pub(crate) async fn send_to(router: &Router, request: Request<Body>) -> TestResponse {
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read the response body").to_bytes().to_vec();
    TestResponse { status: parts.status, headers: parts.headers, body }
}

async fn connect_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL tests cannot connect to {url} (TEST_DATABASE_URL when set, else the default address \
             or the tests' throwaway cluster): {error}"
        )
    })
}

/// Declares async test bodies `async fn name(app: &TestApp)` and runs each on both backends.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!(with $crate::helpers::engine_config(); $($name),*);
    };
    (with $config:expr; $($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = $crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Sqlite, $config).await;
                    super::$name(&app).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = $crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Postgres, $config).await;
                    super::$name(&app).await;
                }
            )*
        }
    };
}

/// A test that panics still leaves no database behind: its `TestApp` drops the SQLite folder or the
/// PostgreSQL schema (with the pool still open) while the panic unwinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_no_database() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (sender, receiver) = std::sync::mpsc::channel();
        let failing = tokio::spawn(async move {
            let app = TestApp::spawn_with(backend, engine_config()).await;
            app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
            let database = (
                app.sqlite_folder().map(Path::to_path_buf),
                app.postgres_schema().map(|(url, schema)| (url.to_owned(), schema.to_owned())),
            );
            sender.send(database).unwrap();
            panic!("the test fails");
        });
        assert!(failing.await.unwrap_err().is_panic());
        match receiver.recv().unwrap() {
            (Some(folder), None) => assert!(!folder.exists(), "{} is left", folder.display()),
            (None, Some((admin_url, schema))) => {
                let mut admin = connect_admin(&admin_url).await;
                let left: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
                        .bind(&schema)
                        .fetch_one(&mut admin)
                        .await
                        .unwrap();
                assert_eq!(left, 0, "schema {schema} is left");
            }
            other => panic!("a test database is a folder or a schema: {other:?}"),
        }
    }
}
