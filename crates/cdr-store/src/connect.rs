//! Connecting, migrating and checking the database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::index::IndexTable;
use crate::{Backend, Store, StoreConfig, StoreError};

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same code on whichever pool or connection a value holds; the code is written once and
/// compiled for each backend.
macro_rules! dispatch {
    ($value:expr, $inner:ident => $body:expr) => {
        dispatch!($crate::connect::Pool, $value, $inner => $body)
    };
    ($enum:path, $value:expr, $inner:ident => $body:expr) => {{
        use $enum as Backends;
        match $value {
            Backends::Postgres($inner) => $body,
            Backends::Sqlite($inner) => $body,
        }
    }};
}
pub(crate) use dispatch;

/// How much of a SQLite database file is read through a memory map (address space, not memory: pages are
/// the operating system's cache).
const SQLITE_MMAP_BYTES: u64 = 16 << 30;

/// The store's PostgreSQL tables besides the index tables ([`IndexTable`]), each with the statement that
/// refreshes its statistics.
const ANALYZE_STATEMENTS: [(&str, &str); 2] =
    [("resource", "ANALYZE resource"), ("resource_version", "ANALYZE resource_version")];

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

impl Store {
    /// Opens a pool. Does not migrate: call [`Store::migrate`].
    ///
    /// # Errors
    /// When the URL is not supported or the database cannot be reached.
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        let url = config.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let timeout_ms = config.statement_timeout.as_millis().to_string();
            // JIT compilation starts when a plan's estimated cost passes 100,000 (a count over a large type
            // can); it costs tens of milliseconds per query, and these short queries gain nothing from it.
            // Generic plans: the statements are prepared once per connection, and their SQL already fixes
            // the plan's shape (see `plan::Drive`), so planning each execution for its bound values
            // (3 ms for a patient's reports, twice the execution) buys nothing.
            let options = PgConnectOptions::from_str(url)?.options([
                ("statement_timeout", timeout_ms.as_str()),
                ("jit", "off"),
                ("plan_cache_mode", "force_generic_plan"),
            ]);
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .connect_with(options)
                .await?;
            return Ok(Store {
                pool: Pool::Postgres(pool),
                writer_gate: std::sync::Arc::default(),
            });
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            create_parent_folder(path)?;
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(config.statement_timeout)
                // Reads through a shared memory map instead of a read() into each connection's own 2 MB page
                // cache: searches touch many index pages, and sixteen connections would otherwise each copy
                // them. Writes still go through the WAL.
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string());
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .connect_with(options)
                .await?;
            return Ok(Store { pool: Pool::Sqlite(pool), writer_gate: std::sync::Arc::default() });
        }
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }

    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the pending schema migrations of this backend.
    ///
    /// # Errors
    /// When a migration fails or the applied ones differ from those this binary embeds.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// Checks that the database answers (readiness).
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(&self.pool, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Refreshes the query planner's statistics where they are missing or stale; the server calls this at
    /// start and every minute. Both planners need them to prefer a selective value index to a per-resource
    /// one. SQLite has no automatic statistics: `PRAGMA optimize` analyses the tables that need it.
    /// PostgreSQL's autovacuum normally keeps them, but it can be switched off (it is on some managed and
    /// test servers), and a bulk load outruns it: without statistics a conditional create by identifier walked
    /// every identifier row of the type. So the store analyses each of its tables changed by more than
    /// autovacuum's own threshold (50 rows + 10%) since it was last analysed, by anyone.
    ///
    /// # Errors
    /// On database failure.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                // Keep the per-index row counts (sqlite_stat1), drop the value samples (sqlite_stat4): with
                // samples, SQLite re-prepares every statement whose bound values it consulted while planning,
                // on every execution (with the bound LIMIT, two thirds of the work of an identifier search),
                // and the store makes the value-dependent choice itself (`Drive`). One transaction, so that
                // no connection reloads the statistics in between.
                let mut tx = pool.begin().await?;
                sqlx::query("PRAGMA optimize=0x10002").execute(&mut *tx).await?;
                let samples: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat4'")
                        .fetch_optional(&mut *tx)
                        .await?;
                if samples.is_some() {
                    sqlx::query("DELETE FROM sqlite_stat4").execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let stale: Vec<String> = sqlx::query_scalar(
                    "SELECT relname::text FROM pg_stat_user_tables \
                     WHERE schemaname = current_schema() \
                     AND n_mod_since_analyze > 50 + 0.1 * n_live_tup",
                )
                .fetch_all(pool)
                .await?;
                let index_tables = IndexTable::ALL.map(|table| (table.name(), table.analyze()));
                for (table, statement) in ANALYZE_STATEMENTS.into_iter().chain(index_tables) {
                    if stale.iter().any(|name| name == table) {
                        sqlx::query(statement).execute(pool).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        dispatch!(&self.pool, pool => pool.close().await);
    }
}

fn create_parent_folder(path: &str) -> Result<(), StoreError> {
    let path = path.split('?').next().unwrap_or(path);
    let Some(parent) = std::path::Path::new(path).parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || path.starts_with(':') {
        return Ok(());
    }
    std::fs::create_dir_all(parent)
        .map_err(|source| StoreError::CreateFolder { path: parent.display().to_string(), source })
}
