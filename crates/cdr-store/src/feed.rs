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
//!   advisory lock on the two-key form, whose 64 bits hold 16 bits of `hashtext(current_schema())` and the 48-bit
//!   millisecond it began at (counted from 2020), which PostgreSQL releases only after the commit is visible to
//!   new snapshots; [`Store::feed_horizon`] reads the oldest such millisecond of this database and schema from
//!   `pg_locks`. The two-key form is a namespace of its own (`objsubid = 2`): the store's other advisory locks use
//!   the one-key form, so nothing else ever waits on these keys, and a schema whose 16 bits collide only makes
//!   another's horizons earlier. Every server process on the database registers alike, so the horizon holds across
//!   processes (with clocks kept in step).
//! - SQLite: one writer at a time per store (the writer gate and `BEGIN IMMEDIATE`); its start is kept in the
//!   store until it ends.
//!
//! Only transactions that write versions register ([`Store::begin`]); the job queue's own transactions, which
//! stamp nothing, do not ([`Store::begin_unregistered`]).
//!
//! Reads only need this to pick their horizon; it costs a write transaction one small statement.

use std::sync::{Arc, Mutex, PoisonError};

use cdr_model::Instant;

use crate::connect::Pool;
use crate::{Store, StoreError};

/// The registered millisecond is counted from 2020-01-01T00:00:00Z, so that it fits 48 bits.
const REGISTRY_EPOCH_MILLIS: i64 = 1_577_836_800_000;

/// The statement that registers a PostgreSQL write transaction: the high 16 bits of the millisecond (`$1`) go
/// under the schema's 16 bits in the first key, the low 32 bits (`$2`, as a signed `int4`) are the second key.
pub(crate) const REGISTER_POSTGRES: &str =
    "SELECT pg_advisory_xact_lock_shared((hashtext(current_schema()) & -65536) | $1, $2)";

/// The oldest registered millisecond of this database and schema, or NULL.
const OLDEST_POSTGRES: &str = "SELECT min(((classid::bigint & 65535) << 32) | objid::bigint) FROM pg_locks \
     WHERE locktype = 'advisory' AND objsubid = 2 \
     AND classid::bigint >> 16 = (hashtext(current_schema())::bigint & 4294967295) >> 16 \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The registry keys of a transaction that began at `began`: the high 16 and the low 32 bits of its millisecond
/// since [`REGISTRY_EPOCH_MILLIS`] (0 for an instant before it, which only makes horizons earlier while it runs).
pub(crate) fn registry_keys(began: Instant) -> (i32, i32) {
    let millis = (began.millis() - REGISTRY_EPOCH_MILLIS).clamp(0, (1 << 48) - 1);
    let high = i32::try_from(millis >> 32).unwrap_or(0);
    // The low 32 bits, as the `int4` PostgreSQL takes (the reader reads them back as an unsigned `oid`).
    let low = i32::from_ne_bytes(u32::try_from(millis & 0xFFFF_FFFF).unwrap_or(0).to_ne_bytes());
    (high, low)
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
                let millis: Option<i64> =
                    sqlx::query_scalar(OLDEST_POSTGRES).fetch_one(pool).await?;
                millis.map(|millis| Instant::from_millis(millis + REGISTRY_EPOCH_MILLIS))
            }
            Pool::Sqlite(_) => self.in_flight.oldest(),
        };
        Ok(oldest.map_or(now, |oldest| oldest.min(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys hold the millisecond as the reader reassembles it: `(high << 32) | low` as unsigned.
    #[test]
    fn registry_keys_round_trip() {
        for millis in [0, 1, 0xFFFF_FFFF, 0x1_0000_0000, 1_764_800_000_123 - REGISTRY_EPOCH_MILLIS]
        {
            let (high, low) = registry_keys(Instant::from_millis(millis + REGISTRY_EPOCH_MILLIS));
            let low = i64::from(u32::from_ne_bytes(low.to_ne_bytes()));
            assert_eq!((i64::from(high) << 32) | low, millis);
            assert!((0..1 << 16).contains(&high));
        }
        assert_eq!(registry_keys(Instant::from_millis(0)), (0, 0));
    }
}
