//! The poll feed's horizon: an instant before which every version is committed and visible, and after which
//! every version not yet visible will be stamped. History pages and `_lastUpdated` search pages read only
//! versions stamped before it, so a poller that asks for "what changed since the last horizon" never skips a
//! version that an older transaction commits late.
//!
//! Every write transaction registers, when it begins, the instant it began at (before the engine stamps any
//! `lastUpdated`, so every stamp it writes is at or after the registered instant), and stays registered until
//! it commits or rolls back. The horizon is the earlier of now and the oldest registered instant, read before
//! the page's own statement, whose snapshot then holds every transaction that left the registry.
//!
//! - PostgreSQL: the registry is the lock table. A write transaction takes a shared transaction-scoped
//!   advisory lock on the two-key form `(hashtext(current_schema()), seconds since 2020)`, which PostgreSQL
//!   releases only after the commit is visible to new snapshots; [`Store::feed_horizon`] reads the oldest
//!   such key from `pg_locks`. The two-key form is a namespace of its own (`objsubid = 2`): the store's
//!   other advisory locks use the one-key form, so nothing else ever waits on these keys. The instant is
//!   floored to the second, which only makes the horizon earlier. Every server process on the database
//!   registers alike, so the horizon holds across processes (with clocks kept in step).
//! - SQLite: one writer at a time per store (the writer gate and `BEGIN IMMEDIATE`); its start is kept in the
//!   store until it ends.
//!
//! Reads only need this to pick their horizon; it costs a write transaction one small statement.

use std::sync::{Arc, Mutex, PoisonError};

use cdr_model::Instant;

use crate::connect::Pool;
use crate::{Store, StoreError};

/// The registered second is counted from 2020-01-01T00:00:00Z, so that it fits PostgreSQL's `int4` lock key
/// until 2088.
const REGISTRY_EPOCH_SECONDS: i64 = 1_577_836_800;

/// The statement that registers a PostgreSQL write transaction (the second is bound).
pub(crate) const REGISTER_POSTGRES: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtext(current_schema()), $1)";

/// The oldest registered second of this database and schema, or NULL.
const OLDEST_POSTGRES: &str = "SELECT min(objid::bigint) FROM pg_locks \
     WHERE locktype = 'advisory' AND objsubid = 2 \
     AND classid = hashtext(current_schema())::oid \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The registry key of a transaction that began at `began`: its second since [`REGISTRY_EPOCH_SECONDS`]
/// (0 for an instant outside the key's range, which only makes horizons earlier while it runs).
pub(crate) fn registry_second(began: Instant) -> i32 {
    i32::try_from(began.millis().div_euclid(1_000) - REGISTRY_EPOCH_SECONDS).unwrap_or(0)
}

/// The start of the SQLite write transaction in flight, if one is.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<Option<Instant>>>);

impl InFlight {
    /// Registers a transaction that began at `began` until the returned guard drops.
    pub(crate) fn register(&self, began: Instant) -> Registration {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(began);
        Registration(self.clone())
    }

    fn oldest(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A SQLite write transaction's registration; dropped after its commit or rollback.
#[derive(Debug)]
pub(crate) struct Registration(InFlight);

impl Drop for Registration {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Store {
    /// The feed horizon: every version stamped before it is committed (and visible to any statement that
    /// starts after this call returns), and every version written later is stamped at or after it. History
    /// and `_lastUpdated` pages read the versions stamped before it; the next poll starts there.
    ///
    /// # Errors
    /// On database failure.
    pub async fn feed_horizon(&self) -> Result<Instant, StoreError> {
        // Now first: a transaction that registers after the registry is read stamps after now.
        let now = Instant::now();
        let oldest = match &self.pool {
            Pool::Postgres(pool) => {
                let second: Option<i64> =
                    sqlx::query_scalar(OLDEST_POSTGRES).fetch_one(pool).await?;
                second.map(|second| {
                    Instant::from_millis((second + REGISTRY_EPOCH_SECONDS).saturating_mul(1_000))
                })
            }
            Pool::Sqlite(_) => self.in_flight.oldest(),
        };
        Ok(oldest.map_or(now, |oldest| oldest.min(now)))
    }
}
