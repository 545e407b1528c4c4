//! `imaging-cdr`: the FHIR R4 imaging repository server.
//!
//! Architecture Invariant: this binary is the only place that reads the environment and command-line
//! configuration; it hands typed sub-configurations to the library crates.

mod config;

use std::time::Duration;

use anyhow::Context;
use cdr_api::{ApiConfig, AppState};
use cdr_interactions::{Engine, EngineConfig};
use cdr_search::SearchParamRegistry;
use cdr_store::{Store, StoreConfig};
use clap::Parser;

use crate::config::{Cli, Command, DatabaseArgs, LogFormat, ReindexArgs, SearchArgs, ServeArgs};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(&args).await,
        Command::Reindex(args) => reindex(&args).await,
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
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
    };
    let store = Store::connect(&config).await.context("cannot open the database")?;
    store.migrate().await.context("cannot migrate the database")?;
    Ok(store)
}

async fn migrate(args: &DatabaseArgs) -> anyhow::Result<()> {
    let store = open_store(args).await?;
    tracing::info!(backend = ?store.backend(), "database schema is up to date");
    store.close().await;
    Ok(())
}

/// The R4 search parameters plus the custom `SearchParameter-*.json` files of the profiles folder.
fn load_search_params(args: &SearchArgs) -> anyhow::Result<SearchParamRegistry> {
    let mut texts = Vec::new();
    if args.profiles_dir.is_dir() {
        let entries = std::fs::read_dir(&args.profiles_dir)
            .with_context(|| format!("cannot list {}", args.profiles_dir.display()))?;
        let mut paths: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
                name.starts_with("SearchParameter-") && name.ends_with(".json")
            })
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            texts.push(text);
        }
    } else {
        tracing::warn!(folder = %args.profiles_dir.display(), "no profiles folder: R4 search parameters only");
    }
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let registry = SearchParamRegistry::with_extra(&borrowed).context("invalid SearchParameter")?;
    tracing::info!(custom = texts.len(), "search parameters loaded");
    Ok(registry)
}

fn engine_config(args: Option<&ServeArgs>) -> EngineConfig {
    EngineConfig {
        update_create: args.is_some_and(|args| args.update_create),
        default_page_size: args.map_or(20, |args| args.default_page_size),
        max_page_size: args.map_or(500, |args| args.max_page_size),
        require_patient_identifier: args.is_some_and(|args| args.require_patient_identifier),
    }
}

async fn reindex(args: &ReindexArgs) -> anyhow::Result<()> {
    let registry = load_search_params(&args.search)?;
    let store = open_store(&args.database).await?;
    let engine = Engine::new(store.clone(), engine_config(None), registry);
    let started = std::time::Instant::now();
    let n_indexed = engine.reindex(args.batch_size).await.context("reindex failed")?;
    tracing::info!(resources = n_indexed, seconds = started.elapsed().as_secs_f64(), "reindexed");
    store.close().await;
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let registry = load_search_params(&args.search)?;
    let store = open_store(&args.database).await?;
    let engine = Engine::new(store.clone(), engine_config(Some(&args)), registry);
    if engine.needs_reindex().await.context("cannot inspect the search index")? {
        tracing::info!("the database has resources but no search index rows: reindexing once");
        let n_indexed = engine.reindex(500).await.context("reindex failed")?;
        tracing::info!(resources = n_indexed, "reindexed");
    }
    let state = AppState::new(
        engine,
        ApiConfig { max_body_bytes: args.max_body_bytes, base_url: args.base_url },
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, backend = ?store.backend(), "imaging-cdr serving FHIR R4 at /fhir");
    axum::serve(listener, cdr_api::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    store.close().await;
    Ok(())
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
