//! Asynchronous submissions (`Prefer: respond-async`): a posted transaction or batch Bundle queued in the
//! database, then run by a worker through the same path as a synchronous request.
//!
//! Exactly once: a transaction's completion (its rendered response) is written by the transaction's own
//! apply step, in the database transaction of its writes ([`Record`]), so a process killed at any moment
//! leaves either both committed or neither (and the job runs again). A failed transaction wrote nothing, so
//! its failure is recorded afterwards in a transaction of its own; that record is refused when the job is
//! already done, so a commit whose answer was lost cannot be recorded twice. A batch records each entry's
//! response entry with that entry's writes and skips the recorded entries when it resumes; when all are
//! recorded they are assembled into the batch-response.
//!
//! Rendering needs HTTP statuses, which this crate does not know: the caller supplies a [`JobRenderer`].
//! A GET or HEAD entry of a transaction is answered after the commit, as synchronously; the record written
//! with the commit holds it as [`InteractionError::ReadAfterCommit`] and is replaced once it is read.

use std::collections::HashSet;
use std::time::Duration;

use cdr_model::Instant;
use cdr_store::{ClaimedJob, JobCompletion, JobRecord, JobState, NewJob, RemovedJob, StoreError};
use serde_json::Value;

use super::entry::{Entry, Method, PostedBundle};
use super::{BundleKind, EntryOutcome};
use crate::{AuditRequest, Engine, InteractionError};

/// Renders outcomes as the HTTP API would answer them (supplied by `cdr-api`).
pub trait JobRenderer: Send + Sync {
    /// One `Bundle.entry` of the transaction-response or batch-response.
    fn entry(&self, outcome: &EntryOutcome, job: &JobRequest) -> Value;
    /// The transaction-response or batch-response made of rendered entries.
    fn bundle(&self, kind: BundleKind, entries: Vec<Value>) -> Value;
    /// The HTTP status and OperationOutcome of a request that failed as a whole.
    fn failure(&self, error: &InteractionError) -> (u16, Value);
}

/// What a job was submitted with, besides its body.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub id: String,
    /// The FHIR base URL the Bundle was posted to.
    pub base: String,
    /// The `Prefer: return` preference, as the API layer wrote it.
    pub prefer: String,
}

/// Where a job is, for its status URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    /// What it is doing (`running`, `running, 3 of 40 entries done`).
    Running(String),
    /// The response the synchronous request would have had: status and body.
    Done {
        status: u16,
        response: String,
    },
}

/// What [`Engine::remove_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRemoval {
    /// The job was waiting (now gone) or running (now cancelled: its work rolls back or stops).
    Cancelled,
    /// The job had finished; its record is gone.
    Deleted,
}

/// What [`Engine::run_next_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRun {
    /// No job was waiting.
    Idle,
    /// A job ran to its end (or was found cancelled or taken over by another worker).
    Ran,
    /// A job met a transient failure (a busy database) and went back to the queue.
    Retry,
}

/// Whether a caller may see a job: jobs queued without an owner (no authorization) are everyone's, and a
/// caller without an identity (no authorization) sees every job.
fn same_owner(submitter: Option<&str>, caller: Option<&str>) -> bool {
    match (submitter, caller) {
        (Some(submitter), Some(caller)) => submitter == caller,
        _ => true,
    }
}

impl Engine {
    /// Queues a Bundle for asynchronous processing and returns the job's id; the job is committed when this
    /// returns. `owner` names the caller that submits it (`None` without authorization): only that caller
    /// may read or cancel it.
    ///
    /// # Errors
    /// [`InteractionError::QueueFull`] when `max_unfinished` jobs are already waiting or running;
    /// [`InteractionError::Forbidden`] under patient confinement (the job runs outside the request, without
    /// it); on storage failure.
    pub async fn enqueue_bundle(
        &self,
        body: &[u8],
        base: &str,
        prefer: &str,
        max_unfinished: u64,
        owner: Option<&str>,
    ) -> Result<String, InteractionError> {
        if let Some(compartment) = &self.confinement {
            return Err(InteractionError::Forbidden(format!(
                "asynchronous requests are not offered to a caller confined to the compartment of Patient/{}: \
                 send the Bundle without Prefer: respond-async",
                compartment.patient_id()
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        // The submitter as the trail names them, for the events of the entries the worker runs later.
        let audit = self.audit.as_ref().map(|request| request.to_stored());
        let job = NewJob {
            id: &id,
            body,
            base,
            prefer,
            now: Instant::now(),
            owner,
            audit: audit.as_deref(),
        };
        if !self.store.enqueue_job(&job, max_unfinished).await? {
            return Err(InteractionError::QueueFull(max_unfinished));
        }
        Ok(id)
    }

    /// The status of a job, for the caller `owner` (as given to [`Engine::enqueue_bundle`]); a confined
    /// engine's caller, who cannot queue jobs, has none.
    ///
    /// # Errors
    /// [`InteractionError::NotFound`] for an unknown, purged or cancelled job, or another caller's; on
    /// storage failure.
    pub async fn job_status(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<JobStatus, InteractionError> {
        let not_found = || InteractionError::NotFound(format!("asynchronous request {id}"));
        let Some(JobRecord { state, progress, status, response, owner: submitter }) =
            self.store.job(id).await?
        else {
            return Err(not_found());
        };
        if !same_owner(submitter.as_deref(), owner) || self.confinement.is_some() {
            return Err(not_found());
        }
        match (state, status, response) {
            (JobState::Queued, ..) => Ok(JobStatus::Queued),
            (JobState::Running, ..) => {
                Ok(JobStatus::Running(progress.unwrap_or_else(|| "running".to_owned())))
            }
            (JobState::Done, Some(status), Some(response)) => {
                Ok(JobStatus::Done { status, response })
            }
            (JobState::Done, ..) => Err(InteractionError::Internal(StoreError::Corrupt(format!(
                "job {id} is done without a response"
            )))),
            (JobState::Cancelled, ..) => Err(not_found()),
        }
    }

    /// Cancels a queued or running job (a running transaction rolls back; a running batch stops before its
    /// next entry), or deletes a finished job's record.
    ///
    /// # Errors
    /// [`InteractionError::NotFound`] for an unknown job, or another caller's (`owner` as for
    /// [`Engine::job_status`]); on storage failure.
    pub async fn remove_job(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<JobRemoval, InteractionError> {
        let not_found = || InteractionError::NotFound(format!("asynchronous request {id}"));
        // A job's owner never changes, so checking it before the removal is checking it at the removal.
        match self.store.job(id).await? {
            Some(record)
                if same_owner(record.owner.as_deref(), owner) && self.confinement.is_none() => {}
            _ => return Err(not_found()),
        }
        match self.store.remove_job(id, Instant::now()).await? {
            RemovedJob::NotFound => Err(not_found()),
            RemovedJob::Cancelled => Ok(JobRemoval::Cancelled),
            RemovedJob::Deleted => Ok(JobRemoval::Deleted),
        }
    }

    /// Deletes the records of jobs finished more than `retention` ago; returns how many.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn purge_jobs(&self, retention: Duration) -> Result<u64, InteractionError> {
        let before = Instant::from_millis(Instant::now().millis() - millis(retention));
        Ok(self.store.purge_jobs(before).await?)
    }

    /// Claims the oldest waiting job (or one whose worker's lease has passed) for `worker` and runs it,
    /// renewing the lease every third of `lease` while it runs.
    ///
    /// # Errors
    /// On storage failure while claiming.
    pub async fn run_next_job(
        &self,
        worker: &str,
        lease: Duration,
        renderer: &dyn JobRenderer,
    ) -> Result<JobRun, InteractionError> {
        let now = Instant::now();
        let until = Instant::from_millis(now.millis() + millis(lease));
        let Some(job) = self.store.claim_job(worker, now, until).await? else {
            return Ok(JobRun::Idle);
        };
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = Instant::from_millis(Instant::now().millis() + millis(lease));
                match self.store.renew_job(&job.id, worker, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(%error, job = job.id, "cannot renew a job's lease");
                    }
                }
            }
        };
        // A job submitted under the audit trail records its entries' events with its submitter's agents.
        let engine = match job.audit.as_deref().and_then(AuditRequest::from_stored) {
            Some(request) => self.audited(std::sync::Arc::new(request)),
            None => self.clone(),
        };
        tokio::select! {
            run = engine.run_job(&job, worker, renderer) => Ok(run),
            () = heartbeat => {
                tracing::warn!(job = job.id, "the job was cancelled or claimed by another worker");
                Ok(JobRun::Ran)
            }
        }
    }

    async fn run_job(&self, job: &ClaimedJob, worker: &str, renderer: &dyn JobRenderer) -> JobRun {
        let request =
            JobRequest { id: job.id.clone(), base: job.base.clone(), prefer: job.prefer.clone() };
        let result = match self.parse_bundle(&job.body, &job.base) {
            Ok(posted) if posted.kind == BundleKind::Transaction => {
                self.transaction_job(posted, &request, worker, renderer).await
            }
            Ok(posted) => self.batch_job(posted, &request, worker, renderer).await,
            Err(error) => Err(error),
        };
        let error = match result {
            Ok(()) => return JobRun::Ran,
            Err(error) if is_lost(&error) => {
                tracing::info!(job = job.id, "the job was cancelled or claimed by another worker");
                return JobRun::Ran;
            }
            Err(error @ (InteractionError::Busy(_) | InteractionError::TimedOut(_))) => {
                tracing::warn!(%error, job = job.id, "a job met a busy database; it will run again");
                if let Err(error) = self.store.release_job(&job.id, worker).await {
                    tracing::warn!(%error, job = job.id, "cannot release a job");
                }
                return JobRun::Retry;
            }
            Err(error) => error,
        };
        let (status, outcome) = renderer.failure(&error);
        let completion = JobCompletion::Finished {
            job: job.id.clone(),
            worker: worker.to_owned(),
            status,
            response: outcome.to_string(),
            at: Instant::now(),
        };
        match self.record(&completion).await {
            Ok(()) | Err(StoreError::JobLost(_)) => {}
            Err(error) => tracing::warn!(%error, job = job.id, "cannot record a job's failure"),
        }
        JobRun::Ran
    }

    /// A transaction job: its completion is written with its writes.
    async fn transaction_job(
        &self,
        posted: PostedBundle,
        request: &JobRequest,
        worker: &str,
        renderer: &dyn JobRenderer,
    ) -> Result<(), InteractionError> {
        let entries = posted.entries.into_iter().collect::<Result<Vec<Entry>, _>>()?;
        let reads_after =
            entries.iter().any(|entry| matches!(entry.method, Method::Get | Method::Head));
        let render = |outcomes: &[EntryOutcome]| {
            let entries = outcomes.iter().map(|outcome| renderer.entry(outcome, request)).collect();
            renderer.bundle(BundleKind::Transaction, entries).to_string()
        };
        let record = |outcomes: &[EntryOutcome]| JobCompletion::Finished {
            job: request.id.clone(),
            worker: worker.to_owned(),
            status: 200,
            response: render(outcomes),
            at: Instant::now(),
        };
        let outcomes = self.transaction(entries, &request.base, true, Some(&record)).await?;
        if reads_after {
            self.store.replace_job_response(&request.id, &render(&outcomes)).await?;
        }
        Ok(())
    }

    /// A batch job: each entry's response entry is written with its writes (or, for a read or a failure,
    /// on its own), entries already recorded are skipped, and the recorded entries make the response.
    async fn batch_job(
        &self,
        posted: PostedBundle,
        request: &JobRequest,
        worker: &str,
        renderer: &dyn JobRenderer,
    ) -> Result<(), InteractionError> {
        let done: HashSet<usize> = self
            .store
            .job_entries(&request.id)
            .await?
            .into_iter()
            .map(|(entry, _)| entry)
            .collect();
        let total = posted.entries.len();
        for (index, entry) in posted.entries.into_iter().enumerate() {
            if done.contains(&index) {
                continue;
            }
            let completion = |outcome: &EntryOutcome| JobCompletion::Entry {
                job: request.id.clone(),
                worker: worker.to_owned(),
                entry: index,
                response: renderer.entry(outcome, request).to_string(),
                progress: format!("running, {} of {total} entries done", index + 1),
            };
            let record = |outcomes: &[EntryOutcome]| match outcomes {
                [outcome] => completion(outcome),
                _ => completion(&EntryOutcome {
                    full_url: None,
                    result: Err(InteractionError::invalid("the entry produced no outcome")),
                }),
            };
            let (outcome, recorded) = match entry {
                Ok(entry) => {
                    let subject = self.audit.as_ref().map(|_| super::batch_audit_subject(&entry));
                    let (outcome, recorded) =
                        self.batch_entry(entry, &request.base, Some(&record)).await;
                    // Before the entry's completion: a worker stopped in between runs the entry again and
                    // records a second event rather than none.
                    if let Some((subtype, entities)) = subject
                        && !recorded
                    {
                        self.record_batch_events(
                            super::batch_entry_event(subtype, entities, &outcome)
                                .into_iter()
                                .collect(),
                        )
                        .await?;
                    }
                    (outcome, recorded)
                }
                Err(error) => (EntryOutcome { full_url: None, result: Err(error) }, false),
            };
            if !recorded {
                match self.record(&completion(&outcome)).await {
                    // Recorded already: a commit whose acknowledgement was lost.
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        let mut entries = Vec::with_capacity(total);
        for (_, response) in self.store.job_entries(&request.id).await? {
            entries.push(serde_json::from_str(&response).map_err(|error| {
                InteractionError::Internal(StoreError::Corrupt(format!(
                    "a recorded response entry of job {}: {error}",
                    request.id
                )))
            })?);
        }
        let completion = JobCompletion::Finished {
            job: request.id.clone(),
            worker: worker.to_owned(),
            status: 200,
            response: renderer.bundle(BundleKind::Batch, entries).to_string(),
            at: Instant::now(),
        };
        Ok(self.record(&completion).await?)
    }

    /// Writes a job record in a transaction of its own.
    async fn record(&self, completion: &JobCompletion) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        tx.complete_job(completion).await?;
        tx.commit().await
    }
}

/// Whether the job's record was refused because the job is no longer this worker's.
fn is_lost(error: &InteractionError) -> bool {
    match error {
        InteractionError::Internal(StoreError::JobLost(_)) => true,
        InteractionError::Entry { source, .. } => is_lost(source),
        _ => false,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}
