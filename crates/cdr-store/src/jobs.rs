//! The queue of asynchronous Bundle submissions (`async_job`, `async_job_entry`; migration 0006).
//!
//! A job is inserted (queued) before its submitter is answered, claimed by one worker at a time under a
//! lease, and finished by [`StoreTx::complete_job`] inside the transaction of the Bundle's own writes, so the
//! writes and the record that they were made commit together or not at all. Every completion, lease renewal
//! and release checks that the job is still running under the worker's claim: a worker whose lease passed (and
//! whose job another worker claimed) or whose job was cancelled gets [`StoreError::JobLost`], and its
//! transaction rolls back.
//!
//! Claiming differs by dialect: PostgreSQL picks the oldest claimable job with `FOR UPDATE SKIP LOCKED`, so
//! several server processes on one database take different jobs without waiting on each other; SQLite has
//! one writer at a time, so a conditional `UPDATE` in a write transaction is enough.

use cdr_model::Instant;

use crate::connect::dispatch;
use crate::write::Tx;
use crate::{Store, StoreError};

/// A job to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub id: &'a str,
    /// The posted Bundle, as it was received.
    pub body: &'a [u8],
    /// The FHIR base URL the request was made to, for entry URLs and links.
    pub base: &'a str,
    /// The request's `Prefer: return` preference, as the API layer spells it.
    pub prefer: &'a str,
    pub now: Instant,
    /// The client that submitted it, when the request had one (the only client that may see or cancel it).
    pub owner: Option<&'a str>,
    /// Who submitted it, as the audit trail records them (opaque to the store), when the trail is on.
    pub audit: Option<&'a str>,
}

/// A job a worker has claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: String,
    pub body: Vec<u8>,
    pub base: String,
    pub prefer: String,
    /// [`NewJob::audit`].
    pub audit: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Done,
    /// Cancelled while it ran: the worker's completion will be refused.
    Cancelled,
}

impl JobState {
    fn parse(text: &str) -> Result<JobState, StoreError> {
        match text {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "cancelled" => Ok(JobState::Cancelled),
            other => Err(StoreError::Corrupt(format!("unknown job state '{other}'"))),
        }
    }
}

/// The asynchronous jobs not yet finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
}

/// What a status request reads of a job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub state: JobState,
    /// What the worker last said it was doing (`running, entry 3 of 40`).
    pub progress: Option<String>,
    /// Once done: the HTTP status and body of the response.
    pub status: Option<u16>,
    pub response: Option<String>,
    /// The client that submitted it ([`NewJob::owner`]).
    pub owner: Option<String>,
}

/// A job's row as a status request reads it.
#[derive(sqlx::FromRow)]
struct JobRow {
    state: String,
    progress: Option<String>,
    status: Option<i32>,
    response: Option<String>,
    owner: Option<String>,
}

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedJob {
    /// The job was queued (now deleted) or running (now cancelled: its worker cannot finish it).
    Cancelled,
    /// The job had finished; its record is deleted.
    Deleted,
    NotFound,
}

/// What a job's worker writes in the transaction of the Bundle's writes, before it commits.
#[derive(Debug, Clone)]
pub enum JobCompletion {
    /// The whole job is done: its response.
    Finished { job: String, worker: String, status: u16, response: String, at: Instant },
    /// One entry of a batch is done: its rendered response entry, and the job's progress.
    Entry { job: String, worker: String, entry: usize, response: String, progress: String },
}

impl Store {
    /// Queues a job unless `max_unfinished` jobs are already queued or running (`Ok(false)`). The count
    /// and the insert are one statement; on PostgreSQL concurrent submissions may pass the cap by a few.
    ///
    /// # Errors
    /// On database failure.
    pub async fn enqueue_job(
        &self,
        job: &NewJob<'_>,
        max_unfinished: u64,
    ) -> Result<bool, StoreError> {
        let cap = i64::try_from(max_unfinished).unwrap_or(i64::MAX);
        let result = dispatch!(&self.pool, pool => sqlx::query(
            "INSERT INTO async_job (id, state, body, base, prefer, enqueued_at, owner, audit) \
             SELECT $1, 'queued', $2, $3, $4, $5, $7, $8 \
             WHERE (SELECT COUNT(*) FROM async_job WHERE state IN ('queued', 'running')) < $6",
        )
        .bind(job.id)
        .bind(job.body)
        .bind(job.base)
        .bind(job.prefer)
        .bind(job.now.millis())
        .bind(cap)
        .bind(job.owner)
        .bind(job.audit)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(result == 1)
    }

    /// How many jobs are queued and how many running, all processes together.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        let (queued, running) = dispatch!(&self.pool, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) \
             FROM async_job WHERE state IN ('queued', 'running')",
        )
        .fetch_one(pool)
        .await)?;
        let count = |count: i64| {
            u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("job count {count}")))
        };
        Ok(JobCounts { queued: count(queued)?, running: count(running)? })
    }

    /// A job's state and, once done, its response; `None` for an unknown id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = dispatch!(&self.pool, pool => sqlx::query_as::<_, JobRow>(
            "SELECT state, progress, status, response, owner FROM async_job WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        let Some(JobRow { state, progress, status, response, owner }) = row else {
            return Ok(None);
        };
        let status = status
            .map(|status| {
                u16::try_from(status)
                    .map_err(|_| StoreError::Corrupt(format!("job status {status}")))
            })
            .transpose()?;
        Ok(Some(JobRecord { state: JobState::parse(&state)?, progress, status, response, owner }))
    }

    /// Cancels a queued or running job, or deletes a finished job's record.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_job(&self, id: &str, now: Instant) -> Result<RemovedJob, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        let cancelled = dispatch!(Tx, &mut tx.tx, tx => sqlx::query(
            "UPDATE async_job SET state = 'cancelled', finished_at = $2 WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(now.millis())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))?;
        if cancelled == 1 {
            tx.commit().await?;
            return Ok(RemovedJob::Cancelled);
        }
        let removed: Option<String> = dispatch!(Tx, &mut tx.tx, tx => sqlx::query_scalar(
            "DELETE FROM async_job WHERE id = $1 AND state IN ('queued', 'done') RETURNING state",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await)?;
        dispatch!(Tx, &mut tx.tx, tx => sqlx::query("DELETE FROM async_job_entry WHERE job_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map(drop))?;
        tx.commit().await?;
        Ok(match removed.as_deref() {
            Some("queued") => RemovedJob::Cancelled,
            Some(_) => RemovedJob::Deleted,
            None => RemovedJob::NotFound,
        })
    }

    /// Claims the oldest job that is queued, or running under a lease that has passed (its worker died),
    /// for `worker` until `lease_until`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: Instant,
        lease_until: Instant,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        // The same statement on both; PostgreSQL skips the jobs other processes are claiming right now.
        macro_rules! claim {
            ($lock:literal) => {
                concat!(
                    "UPDATE async_job SET state = 'running', claimed_by = $1, lease_until = $2, ",
                    "progress = COALESCE(progress, 'running') WHERE id = (SELECT id FROM async_job ",
                    "WHERE state = 'queued' OR (state = 'running' AND lease_until < $3) ",
                    "ORDER BY enqueued_at, id LIMIT 1",
                    $lock,
                    ") RETURNING id, body, base, prefer, audit"
                )
            };
        }
        let row: Option<ClaimedJob> = match &mut tx.tx {
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
        tx.commit().await?;
        Ok(row)
    }

    /// Extends `worker`'s lease of a running job; `Ok(false)` when the job is no longer its.
    ///
    /// # Errors
    /// On database failure.
    pub async fn renew_job(
        &self,
        id: &str,
        worker: &str,
        lease_until: Instant,
    ) -> Result<bool, StoreError> {
        let updated = dispatch!(&self.pool, pool => sqlx::query(
            "UPDATE async_job SET lease_until = $3 WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(lease_until.millis())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Puts a running job of `worker` back in the queue (after a transient failure), to run again.
    ///
    /// # Errors
    /// On database failure.
    pub async fn release_job(&self, id: &str, worker: &str) -> Result<(), StoreError> {
        dispatch!(&self.pool, pool => sqlx::query(
            "UPDATE async_job SET state = 'queued', claimed_by = NULL, lease_until = NULL \
             WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The rendered response entries a batch job has recorded, by entry index.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job_entries(&self, id: &str) -> Result<Vec<(usize, String)>, StoreError> {
        let rows: Vec<(i32, String)> = dispatch!(&self.pool, pool => sqlx::query_as(
            "SELECT entry, response FROM async_job_entry WHERE job_id = $1 ORDER BY entry",
        )
        .bind(id)
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|(entry, response)| {
                let entry = usize::try_from(entry)
                    .map_err(|_| StoreError::Corrupt(format!("job entry {entry}")))?;
                Ok((entry, response))
            })
            .collect()
    }

    /// Replaces the response of a finished job (with what was read after its transaction committed).
    ///
    /// # Errors
    /// On database failure.
    pub async fn replace_job_response(&self, id: &str, response: &str) -> Result<(), StoreError> {
        dispatch!(&self.pool, pool => sqlx::query(
            "UPDATE async_job SET response = $2 WHERE id = $1 AND state = 'done'",
        )
        .bind(id)
        .bind(response)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Deletes the jobs finished or cancelled before `before`, with their entries; returns how many.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_jobs(&self, before: Instant) -> Result<u64, StoreError> {
        let mut tx = self.begin_unregistered().await?;
        dispatch!(Tx, &mut tx.tx, tx => sqlx::query(
            "DELETE FROM async_job_entry WHERE job_id IN (SELECT id FROM async_job \
             WHERE state IN ('done', 'cancelled') AND finished_at < $1)",
        )
        .bind(before.millis())
        .execute(&mut **tx)
        .await
        .map(drop))?;
        let purged = dispatch!(Tx, &mut tx.tx, tx => sqlx::query(
            "DELETE FROM async_job WHERE state IN ('done', 'cancelled') AND finished_at < $1",
        )
        .bind(before.millis())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(purged)
    }
}

impl crate::StoreTx {
    /// Records a job's completion (or one batch entry's) in this transaction, checking that the job still
    /// runs under the worker's claim.
    ///
    /// # Errors
    /// [`StoreError::JobLost`] when it does not (the caller must roll back); [`StoreError::Conflict`] when
    /// the entry is already recorded; on database failure.
    pub async fn complete_job(&mut self, completion: &JobCompletion) -> Result<(), StoreError> {
        let (job, updated) = match completion {
            JobCompletion::Finished { job, worker, status, response, at } => {
                let updated = dispatch!(Tx, &mut self.tx, tx => sqlx::query(
                    "UPDATE async_job SET state = 'done', status = $3, response = $4, finished_at = $5, \
                     progress = NULL, lease_until = NULL \
                     WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
                )
                .bind(job)
                .bind(worker)
                .bind(i32::from(*status))
                .bind(response)
                .bind(at.millis())
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()))?;
                (job, updated)
            }
            JobCompletion::Entry { job, worker, entry, response, progress } => {
                let updated = dispatch!(Tx, &mut self.tx, tx => sqlx::query(
                    "UPDATE async_job SET progress = $3 WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
                )
                .bind(job)
                .bind(worker)
                .bind(progress)
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()))?;
                if updated == 1 {
                    let entry = i32::try_from(*entry).map_err(|_| {
                        StoreError::LimitExceeded(format!("entry index {entry} is too large"))
                    })?;
                    dispatch!(Tx, &mut self.tx, tx => sqlx::query(
                        "INSERT INTO async_job_entry (job_id, entry, response) VALUES ($1, $2, $3)",
                    )
                    .bind(job)
                    .bind(entry)
                    .bind(response)
                    .execute(&mut **tx)
                    .await
                    .map(drop))?;
                }
                (job, updated)
            }
        };
        if updated == 1 { Ok(()) } else { Err(StoreError::JobLost(job.clone())) }
    }
}
