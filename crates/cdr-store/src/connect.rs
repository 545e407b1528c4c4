//! Connecting, migrating and checking the database.

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::index::IndexTable;
use crate::{Backend, PoolUsage, Store, StoreConfig, StoreError};

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
                .acquire_timeout(config.pool_timeout)
                .connect_with(options)
                .await?;
            return Ok(Store {
                pool: Pool::Postgres(pool),
                writer_gate: std::sync::Arc::default(),
                pool_timeout: config.pool_timeout,
                in_flight: crate::feed::InFlight::default(),
                analysed_through: std::sync::Arc::new(AtomicI64::new(NEVER_ANALYSED)),
                outbox_signal: std::sync::Arc::default(),
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
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
                // A commit that finds the WAL past this many pages copies it into the database file before it
                // returns, inside the one writer's turn: 16,384 pages (64 MiB) rather than SQLite's 1,000 makes
                // those copies (and their syncs) sixteen times rarer; imaging Bundle ingest 1.11-1.17x.
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
            let timeout = config.statement_timeout;
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.pool_timeout)
                // Arming the deadline takes the connection's worker thread, which proves it alive as well as
                // the default ping did; a local file has no other end to lose.
                .test_before_acquire(false)
                .after_connect(move |connection, _| Box::pin(arm_deadline(connection, timeout)))
                .before_acquire(move |connection, _| {
                    Box::pin(async move { arm_deadline(connection, timeout).await.map(|()| true) })
                })
                .connect_with(options)
                .await?;
            return Ok(Store {
                pool: Pool::Sqlite(pool),
                writer_gate: std::sync::Arc::default(),
                pool_timeout: config.pool_timeout,
                in_flight: crate::feed::InFlight::default(),
                analysed_through: std::sync::Arc::new(AtomicI64::new(NEVER_ANALYSED)),
                outbox_signal: std::sync::Arc::default(),
            });
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

    /// The connections of the pool now: open, idle among them, and the most it opens.
    #[must_use]
    pub fn pool_usage(&self) -> PoolUsage {
        dispatch!(&self.pool, pool => PoolUsage {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
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
    /// start and every ten seconds. Both planners need them to prefer a selective value index to a per-resource
    /// one. SQLite has no automatic statistics: `PRAGMA optimize` analyses the tables that need it.
    /// PostgreSQL's autovacuum normally keeps them, but it can be switched off (it is on some managed and
    /// test servers), and a bulk load outruns it: without statistics a conditional create by identifier walked
    /// every identifier row of the type. So the store analyses each of its tables changed by more than
    /// autovacuum's own threshold (50 rows + 10%) since it was last analysed, by anyone.
    ///
    /// Returns whether it analysed anything.
    ///
    /// # Errors
    /// On database failure.
    pub async fn optimize(&self) -> Result<bool, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                // PRAGMA optimize=0x10002 rescans whole tables whenever it finds them changed (its row
                // estimate of a table with large rows such as the resource bodies differs enough from
                // sqlite_stat1 that it rescans them every time: 105,000 index rows every ten seconds on an
                // unchanged database of 5,000 patients), so it runs only after writes. Its bounded form
                // (0x10, ~2,000 rows an index) makes cheaper statistics that made imaging Bundle ingest
                // slower (0.79-0.90 of the throughput in alternating runs), so the scans stay whole.
                let through: Option<i64> =
                    sqlx::query_scalar("SELECT max(seq) FROM resource_version")
                        .fetch_one(pool)
                        .await?;
                let through = through.unwrap_or(0);
                if self.analysed_through.load(Ordering::Relaxed) == through {
                    return Ok(false);
                }
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
                self.analysed_through.store(through, Ordering::Relaxed);
                Ok(true)
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
                let mut analysed = false;
                for (table, statement) in ANALYZE_STATEMENTS.into_iter().chain(index_tables) {
                    if stale.iter().any(|name| name == table) {
                        sqlx::query(statement).execute(pool).await?;
                        analysed = true;
                    }
                }
                Ok(analysed)
            }
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        dispatch!(&self.pool, pool => pool.close().await);
    }
}

/// Pages of WAL after which a SQLite commit checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// `Store::analysed_through` before the first refresh of the planner statistics.
const NEVER_ANALYSED: i64 = -1;

/// How many SQLite virtual machine instructions run between two checks of the deadline (a check reads the
/// clock, some 25 ns; ten thousand instructions take tens of microseconds).
const DEADLINE_CHECK_INSTRUCTIONS: i32 = 10_000;

/// SQLite has no statement timeout (`busy_timeout` only bounds waiting for a lock), so each connection gets a
/// deadline whenever it leaves the pool: a progress handler interrupts any statement still running after
/// it, which then fails with `SQLITE_INTERRUPT` ([`StoreError::Timeout`]), and a transaction rolls back.
/// A statement run on the pool is bounded by `timeout`; so are all the statements of one transaction
/// together.
async fn arm_deadline(
    connection: &mut sqlx::SqliteConnection,
    timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let deadline = std::time::Instant::now() + timeout;
    connection.lock_handle().await?.set_progress_handler(DEADLINE_CHECK_INSTRUCTIONS, move || {
        std::time::Instant::now() < deadline
    });
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sql::{MAX_BINDS, Sql, query_of};

    /// A query that never ends on its own: counting an unbounded recursive sequence.
    const ENDLESS: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";

    /// A store on one in-memory SQLite connection.
    async fn sqlite(statement_timeout: Duration, pool_timeout: Duration) -> (Store, SqlitePool) {
        let config = StoreConfig {
            url: "sqlite://:memory:".to_owned(),
            max_connections: 1,
            statement_timeout,
            pool_timeout,
        };
        let store = Store::connect(&config).await.unwrap();
        let Pool::Sqlite(pool) = &store.pool else { panic!("a sqlite:// URL opens SQLite") };
        let pool = pool.clone();
        (store, pool)
    }

    async fn run(pool: &SqlitePool, sql: &Sql) -> Result<(), StoreError> {
        query_of!(sql).execute(pool).await?;
        Ok(())
    }

    #[tokio::test]
    async fn sqlite_statements_stop_at_the_statement_timeout() {
        let (store, pool) = sqlite(Duration::from_millis(200), Duration::from_secs(5)).await;
        let started = std::time::Instant::now();
        let error = run(&pool, &Sql::new(ENDLESS)).await.unwrap_err();
        assert!(matches!(error, StoreError::Timeout(_)), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // The same (only) connection is usable afterwards, with a new deadline.
        store.ping().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 42);

        // A transaction is bounded as a whole, and rolled back.
        let mut tx = store.begin().await.unwrap();
        tx.execute(&Sql::new("CREATE TABLE t (x INTEGER)")).await.unwrap();
        let error = tx.execute(&Sql::new(ENDLESS)).await.unwrap_err();
        assert!(matches!(error, StoreError::Timeout(_)), "{error:?}");
        drop(tx);
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE name = 't'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[tokio::test]
    async fn a_pool_without_a_free_connection_is_busy() {
        let (store, pool) = sqlite(Duration::from_secs(30), Duration::from_millis(100)).await;
        let held = pool.acquire().await.unwrap();
        let error = store.ping().await.unwrap_err();
        assert!(matches!(error, StoreError::Busy(_)), "{error:?}");
        drop(held);
        store.ping().await.unwrap();

        // A writer waiting for its turn behind another is busy after the same time.
        let writer = store.begin().await.unwrap();
        let error = store.begin().await.unwrap_err();
        assert!(matches!(error, StoreError::Busy(_)), "{error:?}");
        drop(writer);
        store.begin().await.unwrap();
    }

    #[tokio::test]
    async fn statements_past_the_database_limits_are_client_errors() {
        let (_store, pool) = sqlite(Duration::from_secs(30), Duration::from_secs(5)).await;
        // Refused before they run.
        let mut many_binds = Sql::new("SELECT 1 WHERE 1 IN ");
        many_binds.bind_text_list(std::iter::repeat_n("x", MAX_BINDS + 1));
        let error = run(&pool, &many_binds).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::LimitExceeded(text) if text.contains("32766")),
            "{error:?}"
        );
        let deep = format!("SELECT 1 WHERE {}", vec!["1 = 1"; 1_100].join(" AND "));
        let error = run(&pool, &Sql::new(&deep)).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::LimitExceeded(text) if text.contains("levels deep")),
            "{error:?}"
        );
        let mut within = Sql::new("SELECT 1 WHERE 'x' IN ");
        within.bind_text_list(std::iter::repeat_n("x", MAX_BINDS));
        run(&pool, &within).await.unwrap();

        // What SQLite itself refuses (run past the check) maps to the same error, naming the limit.
        let deep = sqlx::query(sqlx::AssertSqlSafe(deep)).execute(&pool).await.unwrap_err();
        let error = StoreError::from(deep);
        assert!(
            matches!(&error, StoreError::LimitExceeded(text) if text.contains("expression depth")),
            "{error:?}"
        );
        let placeholders = vec!["?"; MAX_BINDS + 1].join(", ");
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 WHERE 1 IN ({placeholders})")));
        for _ in 0..=MAX_BINDS {
            query = query.bind(1_i64);
        }
        let error = StoreError::from(query.execute(&pool).await.unwrap_err());
        assert!(
            matches!(&error, StoreError::LimitExceeded(text) if text.contains("bound values")),
            "{error:?}"
        );
    }
}
