//! The delivery state of Subscriptions and their durable outbox (`subscription`, `subscription_event`,
//! `subscription_attempt`; migration 0013).
//!
//! A Subscription's row is written in the transaction of the Subscription's own version
//! ([`StoreTx::put_subscription`]). A write that matches a subscription records its event in the same
//! transaction as the change ([`StoreTx::record_events`]): the event number comes from incrementing the
//! subscription's counter, whose row lock holds until commit, so the writers of one subscription commit in the
//! order of their numbers and a dispatcher never sees event `n + 1` committed before `n`.
//!
//! A dispatcher claims one subscription at a time under a lease ([`Store::claim_subscription`]: PostgreSQL
//! skips the rows other processes, or open write transactions, hold with `FOR UPDATE SKIP LOCKED`; SQLite has
//! one writer), sends its oldest undelivered events, and reports the attempt
//! ([`Store::subscription_delivered`], [`Store::subscription_failed`]), which also ends the claim. Both check
//! the claim: a dispatcher whose lease passed cannot move another's subscription.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};

use crate::connect::dispatch;
use crate::row::{logical_id, resource_type, version_id};
use crate::sql::{Sql, query_of};
use crate::write::Tx;
use crate::{Store, StoreError, StoreTx};

/// Most events one multi-row `INSERT` records (six bound values each).
const EVENTS_PER_INSERT: usize = 500;

/// Where a subscription stands, as the server keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Events are recorded and delivered.
    Active,
    /// Delivery gave up (or the client said so); events are still recorded, and delivered once it is active
    /// again.
    Error,
    /// Switched off: nothing is recorded or delivered.
    Off,
}

impl SubscriptionState {
    /// The column's text.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Error => "error",
            SubscriptionState::Off => "off",
        }
    }

    fn parse(text: &str) -> Result<SubscriptionState, StoreError> {
        match text {
            "active" => Ok(SubscriptionState::Active),
            "error" => Ok(SubscriptionState::Error),
            "off" => Ok(SubscriptionState::Off),
            other => Err(StoreError::Corrupt(format!("unknown subscription state '{other}'"))),
        }
    }
}

/// A Subscription's definition, as its version is written.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionDef<'a> {
    pub id: &'a LogicalId,
    /// `criteria` (R4 classic) or `topic` (Subscriptions Backport).
    pub kind: &'a str,
    /// The type whose changes it matches.
    pub res_type: ResourceType,
    /// The search criteria (a query string) a change must match.
    pub criteria: &'a str,
    /// The FHIR base URL the Subscription was written at.
    pub base: &'a str,
    pub state: SubscriptionState,
    pub heartbeat_ms: Option<i64>,
    pub now: Instant,
}

/// A subscription that matches changes of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchingSubscription {
    pub id: String,
    pub res_type: ResourceType,
    pub criteria: String,
}

/// One change a subscription is told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub number: i64,
    pub res_type: ResourceType,
    pub res_id: LogicalId,
    pub version: VersionId,
    pub recorded: Instant,
}

/// A subscription a dispatcher has claimed, with the oldest events it has not delivered.
#[derive(Debug, Clone)]
pub struct ClaimedSubscription {
    pub id: LogicalId,
    pub kind: String,
    /// The FHIR base URL the Subscription was written at.
    pub base: String,
    /// The number of the last event recorded.
    pub events_total: i64,
    pub attempts: i32,
    pub failing_since: Option<Instant>,
    pub heartbeat_ms: Option<i64>,
    pub last_sent: Instant,
    /// In event order; empty when only a heartbeat is due.
    pub events: Vec<OutboxEvent>,
}

/// What a delivery attempt came to.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub at: Instant,
    /// The events it carried (`0..0` for a heartbeat).
    pub first_event: i64,
    pub last_event: i64,
    /// The receiver's status, when it answered.
    pub http_status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A subscription's delivery state, for `$status` and the operator's view.
#[derive(Debug, Clone)]
pub struct SubscriptionStatus {
    pub kind: String,
    pub state: SubscriptionState,
    pub events_total: i64,
    pub delivered: i64,
    pub attempts: i32,
    pub failing_since: Option<Instant>,
    pub next_attempt: Instant,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    kind: String,
    state: String,
    events: i64,
    delivered: i64,
    attempts: i32,
    failing_since: Option<i64>,
    next_attempt: i64,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    kind: String,
    base: String,
    events: i64,
    delivered: i64,
    attempts: i32,
    failing_since: Option<i64>,
    heartbeat_ms: Option<i64>,
    last_sent: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_no: i64,
    res_type: String,
    res_id: String,
    version: i64,
    recorded: i64,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt_at: i64,
    first_event: i64,
    last_event: i64,
    http_status: Option<i32>,
    error: Option<String>,
}

impl EventRow {
    fn decode(self) -> Result<OutboxEvent, StoreError> {
        Ok(OutboxEvent {
            number: self.event_no,
            res_type: resource_type(&self.res_type)?,
            res_id: logical_id(&self.res_id)?,
            version: version_id(self.version)?,
            recorded: Instant::from_millis(self.recorded),
        })
    }
}

impl StoreTx {
    /// Writes a Subscription's row as its new version defines it. A subscription that becomes active again
    /// starts its retry schedule afresh and is due at once; its counters are kept.
    ///
    /// # Errors
    /// On database failure.
    pub async fn put_subscription(&mut self, def: &SubscriptionDef<'_>) -> Result<(), StoreError> {
        dispatch!(Tx, &mut self.tx, tx => sqlx::query(
            "INSERT INTO subscription (id, kind, res_type, criteria, base, state, next_attempt, heartbeat_ms, \
             last_sent) VALUES ($1, $2, $3, $4, $8, $5, $6, $7, $6) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, res_type = excluded.res_type, \
             criteria = excluded.criteria, base = excluded.base, heartbeat_ms = excluded.heartbeat_ms, \
             attempts = CASE WHEN excluded.state = 'active' AND subscription.state <> 'active' \
                 THEN 0 ELSE subscription.attempts END, \
             failing_since = CASE WHEN excluded.state = 'active' AND subscription.state <> 'active' \
                 THEN NULL ELSE subscription.failing_since END, \
             next_attempt = CASE WHEN excluded.state = 'active' AND subscription.state <> 'active' \
                 THEN excluded.next_attempt ELSE subscription.next_attempt END, \
             error = CASE WHEN excluded.state = 'error' THEN subscription.error ELSE NULL END, \
             state = excluded.state",
        )
        .bind(def.id.as_str())
        .bind(def.kind)
        .bind(def.res_type.as_str())
        .bind(def.criteria)
        .bind(def.state.as_str())
        .bind(def.now.millis())
        .bind(def.heartbeat_ms)
        .bind(def.base)
        .execute(&mut **tx)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Forgets a deleted Subscription: its row, events and attempts.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_subscription(&mut self, id: &LogicalId) -> Result<(), StoreError> {
        for statement in [
            "DELETE FROM subscription_event WHERE sub_id = $1",
            "DELETE FROM subscription_attempt WHERE sub_id = $1",
            "DELETE FROM subscription WHERE id = $1",
        ] {
            dispatch!(Tx, &mut self.tx, tx => sqlx::query(statement)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await
                .map(drop))?;
        }
        Ok(())
    }

    /// The subscriptions that record events of `types` (active, or in error: an errored subscription keeps
    /// its events for when it is active again), in id order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn matching_subscriptions(
        &mut self,
        types: &[ResourceType],
    ) -> Result<Vec<MatchingSubscription>, StoreError> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT id, res_type, criteria FROM subscription WHERE state IN ('active', 'error') AND res_type IN ",
        );
        sql.bind_text_list(types.iter().map(|t| t.as_str()));
        sql.push(" ORDER BY id");
        let rows = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
        .fetch_all(&mut **tx)
        .await
        .and_then(|rows| {
            use sqlx::Row;
            rows.iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?,
                    row.try_get::<String, _>(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        }))?;
        rows.into_iter()
            .map(|(id, res_type, criteria)| {
                Ok(MatchingSubscription { id, res_type: resource_type(&res_type)?, criteria })
            })
            .collect()
    }

    /// Records the events of one subscription, numbered after its last, in the given order. Call it for the
    /// subscriptions of one transaction in id order (two writers then lock their counters in the same
    /// order).
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_events(
        &mut self,
        subscription: &str,
        changes: &[(ResourceType, &LogicalId, VersionId)],
        now: Instant,
    ) -> Result<(), StoreError> {
        let Ok(count) = i64::try_from(changes.len()) else {
            return Err(StoreError::LimitExceeded(format!("{} events", changes.len())));
        };
        if count == 0 {
            return Ok(());
        }
        let last: Option<i64> = dispatch!(Tx, &mut self.tx, tx => sqlx::query_scalar(
            "UPDATE subscription SET events = events + $2 WHERE id = $1 RETURNING events",
        )
        .bind(subscription)
        .bind(count)
        .fetch_optional(&mut **tx)
        .await)?;
        let Some(last) = last else { return Ok(()) };
        self.recorded_events = true;
        let mut number = last - count;
        for chunk in changes.chunks(EVENTS_PER_INSERT) {
            let mut sql = Sql::new(
                "INSERT INTO subscription_event (sub_id, event_no, res_type, res_id, version, recorded) VALUES ",
            );
            for (position, (res_type, res_id, version)) in chunk.iter().enumerate() {
                number += 1;
                sql.push(if position == 0 { "(" } else { ", (" })
                    .bind_text(subscription)
                    .push(", ")
                    .bind_int(number)
                    .push(", ")
                    .bind_text(res_type.as_str())
                    .push(", ")
                    .bind_text(res_id.as_str())
                    .push(", ")
                    .bind_int(version.get())
                    .push(", ")
                    .bind_int(now.millis())
                    .push(")");
            }
            self.execute(&sql).await?;
        }
        Ok(())
    }

    /// Marks a claimed subscription `error` with `error` (delivery gave up); `Ok(false)` when the claim is no
    /// longer `worker`'s. Written with the Subscription's new version that says so.
    ///
    /// # Errors
    /// On database failure.
    pub async fn give_up_subscription(
        &mut self,
        id: &str,
        worker: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, StoreError> {
        let updated = dispatch!(Tx, &mut self.tx, tx => sqlx::query(
            "UPDATE subscription SET state = 'error', error = $3, claimed_by = NULL, lease_until = NULL \
             WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(attempt.error.as_deref())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 1 {
            insert_attempt(&mut self.tx, id, attempt).await?;
        }
        Ok(updated == 1)
    }
}

async fn insert_attempt(
    tx: &mut Tx,
    id: &str,
    attempt: &DeliveryAttempt,
) -> Result<(), StoreError> {
    dispatch!(Tx, tx, tx => sqlx::query(
        "INSERT INTO subscription_attempt (sub_id, attempt_at, first_event, last_event, http_status, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(attempt.at.millis())
    .bind(attempt.first_event)
    .bind(attempt.last_event)
    .bind(attempt.http_status.map(i32::from))
    .bind(attempt.error.as_deref())
    .execute(&mut **tx)
    .await
    .map(drop))?;
    Ok(())
}

/// The subscriptions by state, and the events recorded for active ones and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionCounts {
    pub active: u64,
    pub error: u64,
    pub off: u64,
    pub undelivered: u64,
}

impl Store {
    /// How many subscriptions are in each state, and how many events active ones have yet to deliver (all
    /// processes together).
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_counts(&self) -> Result<SubscriptionCounts, StoreError> {
        let (active, error, off, undelivered) = dispatch!(&self.pool, pool => sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT COALESCE(SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN state = 'error' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN state = 'off' THEN 1 ELSE 0 END), 0), \
             CAST(COALESCE(SUM(CASE WHEN state = 'active' THEN events - delivered ELSE 0 END), 0) AS BIGINT) \
             FROM subscription",
        )
        .fetch_one(pool)
        .await)?;
        let count = |count: i64| {
            u64::try_from(count)
                .map_err(|_| StoreError::Corrupt(format!("subscription count {count}")))
        };
        Ok(SubscriptionCounts {
            active: count(active)?,
            error: count(error)?,
            off: count(off)?,
            undelivered: count(undelivered)?,
        })
    }

    /// Told whenever a transaction of this process that recorded subscription events has committed.
    #[must_use]
    pub fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.outbox_signal)
    }

    /// Claims the active subscription that has waited longest with undelivered events (or a heartbeat due)
    /// and no live claim, for `worker` until `lease_until`, with at most `batch` of its oldest undelivered
    /// events.
    ///
    /// # Errors
    /// On database failure.
    pub async fn claim_subscription(
        &self,
        worker: &str,
        now: Instant,
        lease_until: Instant,
        batch: i64,
    ) -> Result<Option<ClaimedSubscription>, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        macro_rules! claim {
            ($lock:literal) => {
                concat!(
                    "UPDATE subscription SET claimed_by = $1, lease_until = $2 WHERE id = (SELECT id FROM ",
                    "subscription WHERE state = 'active' AND next_attempt <= $3 ",
                    "AND (claimed_by IS NULL OR lease_until < $3) ",
                    "AND (delivered < events OR (heartbeat_ms IS NOT NULL AND last_sent + heartbeat_ms <= $3)) ",
                    "ORDER BY next_attempt, id LIMIT 1",
                    $lock,
                    ") RETURNING id, kind, base, events, delivered, attempts, failing_since, heartbeat_ms, last_sent"
                )
            };
        }
        let row: Option<ClaimRow> = match &mut tx.tx {
            Tx::Postgres(tx) => {
                sqlx::query_as(claim!(" FOR UPDATE SKIP LOCKED"))
                    .bind(worker)
                    .bind(lease_until.millis())
                    .bind(now.millis())
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as(claim!(""))
                    .bind(worker)
                    .bind(lease_until.millis())
                    .bind(now.millis())
                    .fetch_optional(&mut **tx)
                    .await?
            }
        };
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let events: Vec<EventRow> = dispatch!(Tx, &mut tx.tx, tx => sqlx::query_as(
            "SELECT event_no, res_type, res_id, version, recorded FROM subscription_event \
             WHERE sub_id = $1 AND event_no > $2 ORDER BY event_no LIMIT $3",
        )
        .bind(&row.id)
        .bind(row.delivered)
        .bind(batch)
        .fetch_all(&mut **tx)
        .await)?;
        tx.commit().await?;
        Ok(Some(ClaimedSubscription {
            id: logical_id(&row.id)?,
            kind: row.kind,
            base: row.base,
            events_total: row.events,
            attempts: row.attempts,
            failing_since: row.failing_since.map(Instant::from_millis),
            heartbeat_ms: row.heartbeat_ms,
            last_sent: Instant::from_millis(row.last_sent),
            events: events.into_iter().map(EventRow::decode).collect::<Result<_, _>>()?,
        }))
    }

    /// Extends `worker`'s claim while a delivery is under way; `Ok(false)` when it is no longer its.
    ///
    /// # Errors
    /// On database failure.
    pub async fn renew_subscription(
        &self,
        id: &str,
        worker: &str,
        lease_until: Instant,
    ) -> Result<bool, StoreError> {
        let updated = dispatch!(&self.pool, pool => sqlx::query(
            "UPDATE subscription SET lease_until = $3 WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(lease_until.millis())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Records a successful delivery (events through `attempt.last_event` acknowledged, or a heartbeat) and
    /// ends the claim: the retry schedule starts afresh; `Ok(false)` when the claim was no longer `worker`'s.
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_delivered(
        &self,
        id: &str,
        worker: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        let updated = dispatch!(Tx, &mut tx.tx, tx => sqlx::query(
            "UPDATE subscription SET delivered = CASE WHEN delivered < $3 THEN $3 ELSE delivered END, \
             attempts = 0, failing_since = NULL, error = NULL, next_attempt = $4, last_sent = $4, \
             claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(attempt.last_event)
        .bind(attempt.at.millis())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 1 {
            insert_attempt(&mut tx.tx, id, attempt).await?;
        }
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Records a failed delivery and ends the claim; the subscription is due again at `next_attempt`;
    /// `Ok(false)` when the claim was no longer `worker`'s.
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_failed(
        &self,
        id: &str,
        worker: &str,
        attempt: &DeliveryAttempt,
        next_attempt: Instant,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        let updated = dispatch!(Tx, &mut tx.tx, tx => sqlx::query(
            "UPDATE subscription SET attempts = attempts + 1, \
             failing_since = COALESCE(failing_since, $3), error = $4, next_attempt = $5, \
             claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(attempt.at.millis())
        .bind(attempt.error.as_deref())
        .bind(next_attempt.millis())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 1 {
            insert_attempt(&mut tx.tx, id, attempt).await?;
        }
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// A subscription's delivery state; `None` when the server keeps none for `id`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_status(
        &self,
        id: &LogicalId,
    ) -> Result<Option<SubscriptionStatus>, StoreError> {
        let row: Option<StatusRow> = dispatch!(&self.pool, pool => sqlx::query_as(
            "SELECT kind, state, events, delivered, attempts, failing_since, next_attempt, error \
             FROM subscription WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(pool)
        .await)?;
        row.map(|row| {
            Ok(SubscriptionStatus {
                kind: row.kind,
                state: SubscriptionState::parse(&row.state)?,
                events_total: row.events,
                delivered: row.delivered,
                attempts: row.attempts,
                failing_since: row.failing_since.map(Instant::from_millis),
                next_attempt: Instant::from_millis(row.next_attempt),
                error: row.error,
            })
        })
        .transpose()
    }

    /// The events of a subscription numbered `first..=last`, at most `limit`, in order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_events(
        &self,
        id: &LogicalId,
        first: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows: Vec<EventRow> = dispatch!(&self.pool, pool => sqlx::query_as(
            "SELECT event_no, res_type, res_id, version, recorded FROM subscription_event \
             WHERE sub_id = $1 AND event_no >= $2 AND event_no <= $3 ORDER BY event_no LIMIT $4",
        )
        .bind(id.as_str())
        .bind(first)
        .bind(last)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    /// The latest delivery attempts of a subscription, newest first, at most `limit`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn subscription_attempts(
        &self,
        id: &LogicalId,
        limit: i64,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows: Vec<AttemptRow> = dispatch!(&self.pool, pool => sqlx::query_as(
            "SELECT attempt_at, first_event, last_event, http_status, error FROM subscription_attempt \
             WHERE sub_id = $1 ORDER BY attempt_at DESC, first_event DESC LIMIT $2",
        )
        .bind(id.as_str())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|row| DeliveryAttempt {
                at: Instant::from_millis(row.attempt_at),
                first_event: row.first_event,
                last_event: row.last_event,
                http_status: row.http_status.and_then(|status| u16::try_from(status).ok()),
                error: row.error,
            })
            .collect())
    }

    /// Queues the events from `from` on again (a resend): they are delivered once more, in order, from the
    /// next attempt on, which is due now. `Ok(false)` when the server keeps no such subscription.
    ///
    /// # Errors
    /// On database failure.
    pub async fn resend_subscription(
        &self,
        id: &LogicalId,
        from: i64,
        now: Instant,
    ) -> Result<bool, StoreError> {
        let updated = dispatch!(&self.pool, pool => sqlx::query(
            "UPDATE subscription SET delivered = CASE WHEN delivered >= $2 THEN $2 - 1 ELSE delivered END, \
             next_attempt = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(from.max(1))
        .bind(now.millis())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(updated == 1)
    }
}
