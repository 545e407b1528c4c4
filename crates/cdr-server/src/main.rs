//! `imaging-cdr`: the FHIR R4 imaging repository server.
//!
//! Architecture Invariant: this binary is the only place that reads the environment and command-line
//! configuration; it hands typed sub-configurations to the library crates.

mod auth;
mod config;
mod config_file;
mod http;
mod import;
mod validate;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cdr_api::{ApiConfig, AppState, AsyncConfig, DeliveryConfig, LinkConfig};
use cdr_interactions::RetryPolicy;
use cdr_interactions::{Engine, EngineConfig, LocalRegistry, PageLimits, Profiles, ValidationMode};
use cdr_search::SearchParamRegistry;
use cdr_server::profiles::{self, search_registry};
use cdr_store::{Store, StoreConfig};

use crate::config::{
    AuthMode, Cli, Command, ConformanceCommand, ConformanceRunArgs, DatabaseArgs, EngineArgs,
    LogFormat, Mode, ReindexArgs, ServeArgs, Validation,
};

/// How often the store looks for tables whose planner statistics are stale (and refreshes those only):
/// often enough that the first minutes of a load into an empty database run on statistics of what it
/// already holds, not on the planner's guesses for empty tables.
const STATISTICS_REFRESH: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_command_line();
    // The import shows a progress bar and a summary instead of progress logs.
    let default_filter = match cli.command {
        Command::Import(_) | Command::Conformance(_) => "warn,sqlx=error",
        _ => "info,sqlx=warn",
    };
    init_tracing(cli.log_format, default_filter);
    let result = match cli.command {
        Command::Serve(args) => {
            let auth = match args.auth_mode() {
                Ok(mode) => mode,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            serve(*args, auth).await
        }
        Command::Migrate(args) => migrate(&args).await,
        Command::Validate(args) => return validate::run(&args),
        Command::Reindex(args) => reindex(&args).await,
        Command::Import(args) => return import::run(*args).await,
        Command::Conformance(ConformanceCommand::List(args)) => {
            return cdr_conformance::list(&args);
        }
        Command::Conformance(ConformanceCommand::Run(args)) => return conformance_run(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG`, else by `default_filter`.
fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn open_store(args: &DatabaseArgs) -> anyhow::Result<Store> {
    let config = StoreConfig {
        url: args.database_url.clone(),
        max_connections: args.max_connections,
        statement_timeout: Duration::from_secs(args.statement_timeout_seconds),
        pool_timeout: Duration::from_secs(args.pool_timeout_seconds),
    };
    let store = Store::connect(&config).await.context("cannot open the database")?;
    store.migrate().await.context("cannot migrate the database")?;
    let adopted = cdr_interactions::adopt_audit_resources(&store)
        .await
        .context("cannot move the audit trail into its table")?;
    if adopted > 0 {
        tracing::info!(
            events = adopted,
            "audit events moved from the resource tables into the audit trail's table"
        );
    }
    store.optimize().await.context("cannot refresh the planner statistics")?;
    Ok(store)
}

async fn migrate(args: &DatabaseArgs) -> anyhow::Result<()> {
    let store = open_store(args).await?;
    tracing::info!(backend = ?store.backend(), "database schema is up to date");
    store.close().await;
    Ok(())
}

async fn reindex(args: &ReindexArgs) -> anyhow::Result<()> {
    let (set, _) = profiles::load(&args.conformance)?;
    let registry = search_registry(&set)?;
    let store = open_store(&args.database).await?;
    let config = EngineConfig {
        update_create: false,
        limits: PageLimits::default(),
        validation: ValidationMode::Off,
        require_patient_identifier: false,
        contribution_rules: false,
    };
    let engine = Engine::new(store.clone(), Arc::new(Profiles::new(set)), config, registry);
    let started = std::time::Instant::now();
    let n_indexed = engine.reindex(args.batch_size).await.context("reindex failed")?;
    tracing::info!(resources = n_indexed, seconds = started.elapsed().as_secs_f64(), "reindexed");
    store.close().await;
    Ok(())
}

/// The store and the engine as `serve` runs them, from the shared flags: the conformance resources checked
/// against the validation mode, the database opened and migrated (and reindexed once if it has resources but no
/// index rows), and the cost bounds. `import --database-url` opens them the same way.
pub(crate) async fn open_engine(args: &EngineArgs) -> anyhow::Result<(Store, Engine)> {
    if args.default_page_size > args.max_page_size {
        anyhow::bail!(
            "--default-page-size {} is larger than --max-page-size {}",
            args.default_page_size,
            args.max_page_size
        );
    }
    let (profiles, registry) = load_conformance(args)?;
    let micdr = args.mode == Mode::Micdr;
    if micdr && args.update_create {
        anyhow::bail!(
            "--mode micdr assigns every id itself: it cannot be combined with --update-create"
        );
    }
    if micdr && args.validation == Validation::Off {
        anyhow::bail!(
            "--mode micdr validates strictly: it cannot be combined with --validation off"
        );
    }
    let validation = match args.effective_validation() {
        Validation::Strict => ValidationMode::Strict,
        Validation::Base => ValidationMode::Base,
        Validation::Off => ValidationMode::Off,
    };
    let person_registry = args.registry_file.as_deref().map(read_registry).transpose()?;
    if person_registry.is_some() && !micdr {
        anyhow::bail!("--registry-file is a rule of --mode micdr");
    }
    let store = open_store(&args.database).await?;
    let config = EngineConfig {
        update_create: args.update_create,
        limits: PageLimits {
            default_page_size: args.default_page_size,
            max_page_size: args.max_page_size,
            ..PageLimits::default()
        },
        validation,
        require_patient_identifier: args.require_patient_identifier || micdr,
        contribution_rules: micdr,
    };
    let mut engine = Engine::new(store.clone(), Arc::new(profiles), config, registry)
        .with_resource_limits(args.cost.resource_limits())
        .with_query_limits(args.cost.query_limits());
    if let Some(permits) = args.cost.cpu_concurrency {
        engine = engine.with_cpu_concurrency(permits as usize);
    }
    if let Some(registry) = person_registry {
        engine = engine.with_person_registry(Arc::new(registry));
    }
    if engine.needs_reindex().await.context("cannot inspect the search index")? {
        tracing::info!("the database has resources but no search index rows: reindexing once");
        let n_indexed = engine.reindex(500).await.context("reindex failed")?;
        tracing::info!(resources = n_indexed, "reindexed");
    }
    Ok((store, engine))
}

/// `conformance run`: the profiles loaded as `serve` loads them (a failure is bad input, 4), then the kit.
async fn conformance_run(args: &ConformanceRunArgs) -> ExitCode {
    match profiles::load(&args.conformance) {
        Ok((set, _)) => cdr_conformance::run(&args.run, set).await,
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::new(error));
            ExitCode::from(4)
        }
    }
}

/// The patient and provider registry of `--registry-file`.
fn read_registry(path: &std::path::Path) -> anyhow::Result<LocalRegistry> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the registry file {}", path.display()))?;
    LocalRegistry::from_ndjson(&text)
        .map_err(|error| anyhow::anyhow!("the registry file {}: {error}", path.display()))
}

async fn serve(args: ServeArgs, auth: AuthMode) -> anyhow::Result<()> {
    let smart = match (auth, &args.auth.auth_config) {
        (AuthMode::Smart, Some(path)) => Some(crate::auth::load(
            path,
            &args.auth.auth_key,
            args.auth.access_policy.as_deref(),
            args.base_url.as_ref().map(cdr_api::PublicBaseUrl::as_str),
        )?),
        _ => None,
    };
    let (store, engine) = open_engine(&args.engine).await?;
    let engine = engine
        .with_subscription_endpoints(args.subscriptions.subscription_allowed_endpoints.clone());
    let http = &args.http;
    let api_config = ApiConfig {
        max_body_bytes: args.max_body_bytes,
        links: LinkConfig {
            base_url: args.base_url,
            allowed_hosts: args.allowed_hosts,
            trusted_proxies: args.trusted_proxies,
        },
        max_in_flight_requests: usize::try_from(http.max_in_flight_requests)?,
        request_timeout: Duration::from_secs(http.request_timeout_seconds),
        body_read_timeout: Duration::from_secs(http.body_read_timeout_seconds),
        async_jobs: AsyncConfig {
            max_unfinished: args.async_jobs.async_max_unfinished,
            retention: Duration::from_secs(args.async_jobs.async_retention_seconds),
            lease: Duration::from_secs(args.async_jobs.async_lease_seconds),
            poll_interval: Duration::from_secs(args.async_jobs.async_poll_seconds),
        },
        auth: smart,
        cors_allowed_origins: http.cors_allowed_origins.clone(),
        compression_min_bytes: http.compression_min_bytes,
        metrics: http.metrics,
        subscriptions: delivery_config(&args.subscriptions),
        audit: args.audit.config(),
    };
    let limits = http::ConnectionLimits {
        header_read_timeout: Duration::from_secs(http.header_read_timeout_seconds),
        max_connections: usize::try_from(http.max_http_connections)?,
        shutdown_timeout: Duration::from_secs(http.shutdown_timeout_seconds),
    };
    let state = AppState::new(engine, api_config);
    // Dropped (aborted) at shutdown: a job it is running rolls back and runs again after its lease.
    let worker = tokio::spawn(state.job_worker().run());
    // Aborted at shutdown too: a notification in flight is sent again once its claim has passed.
    let dispatchers: Vec<_> = (0..args.subscriptions.subscription_dispatchers)
        .map(|_| tokio::spawn(state.subscription_dispatcher().run()))
        .collect();
    let statistics = store.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(STATISTICS_REFRESH);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(error) = statistics.optimize().await {
                tracing::warn!(%error, "cannot refresh the planner statistics");
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, backend = ?store.backend(), "imaging-cdr serving FHIR R4 at /fhir");
    let shutdown_timeout = limits.shutdown_timeout;
    http::serve(listener, cdr_api::app(state), limits, shutdown_signal()).await;
    worker.abort();
    // Waits until the aborted task is dropped, so its transaction has rolled back before the pool closes.
    let _ = worker.await;
    for dispatcher in dispatchers {
        dispatcher.abort();
        let _ = dispatcher.await;
    }
    // Requests cut off at the shutdown deadline may still hold connections: closing the pool waits for
    // them, so it is bounded by the same deadline.
    if tokio::time::timeout(shutdown_timeout, store.close()).await.is_err() {
        tracing::warn!(
            "database connections still in use at the shutdown deadline; exiting without closing them"
        );
    }
    Ok(())
}

fn delivery_config(args: &crate::config::SubscriptionArgs) -> DeliveryConfig {
    DeliveryConfig {
        retry: RetryPolicy {
            first_delay: Duration::from_secs(args.subscription_first_retry_seconds),
            max_delay: Duration::from_secs(args.subscription_max_retry_seconds),
            horizon: Duration::from_secs(args.subscription_retry_horizon_seconds),
            timeout: Duration::from_secs(args.subscription_timeout_seconds),
        },
        lease: Duration::from_secs(args.subscription_lease_seconds),
        poll_interval: Duration::from_millis(args.subscription_poll_milliseconds),
    }
}

/// The conformance resources and the search parameters among them, checked against the validation mode: strict mode needs every per-type
/// profile, or it would reject every write of that type.
fn load_conformance(args: &EngineArgs) -> anyhow::Result<(Profiles, SearchParamRegistry)> {
    let (set, stats) = profiles::load(&args.conformance)?;
    let registry = search_registry(&set)?;
    let profiles = Profiles::new(set);
    tracing::info!(
        resources = stats.n_resources,
        files = stats.n_files,
        packages = stats.n_packages,
        profiles_dir = ?stats.profiles_dir,
        elapsed_ms = stats.elapsed.as_millis(),
        validation = ?args.effective_validation(),
        mode = ?args.mode,
        "conformance resources loaded"
    );
    let missing = profiles.missing();
    match args.effective_validation() {
        Validation::Strict if !missing.is_empty() => anyhow::bail!(
            "--validation strict (or --mode micdr) needs these profiles, which are not loaded (see --profiles-dir): {}",
            missing.join(", ")
        ),
        _ if !missing.is_empty() => {
            tracing::warn!(?missing, "per-type profiles not loaded; not declared in /metadata");
        }
        _ => {}
    }
    Ok((profiles, registry))
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
