//! Asynchronous submission of transaction and batch Bundles (R4 async.html, `Prefer: respond-async`).
//!
//! `POST [base]` (or `[base]/Bundle`) with `Prefer: respond-async` queues the Bundle in the database and
//! answers `202 Accepted` with `Content-Location: [base]/_async/{id}`, the status URL. `GET` on it answers
//! `202` with `X-Progress` (`queued`, `running`, `running, 3 of 40 entries done`) until the job has run,
//! then exactly what the synchronous request would have answered: `200` with the transaction-response or
//! batch-response, or, for a transaction that failed, its status (400, 404, 409, 412, 422, …) with its
//! OperationOutcome. (R4 async.html describes the status URL of a bulk export; we answer with the
//! request's own response so a client handles both modes alike. An unknown job is also a 404: its
//! OperationOutcome names the request, a failed entry's names `Bundle.entry[n]`.) `DELETE` on it answers
//! `202`: a queued job is cancelled, a running transaction is cancelled (its writes roll back), a running
//! batch stops before its next entry, and a finished job's record is deleted. The status URL is then 404.
//!
//! A [`JobWorker`] (started by the server) runs the jobs through the same engine path, and renders their
//! responses here with the same functions as the synchronous answer (`bundle.rs`, `error.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use cdr_interactions::{
    BundleKind, Engine, EntryOutcome, InteractionError, JobRemoval, JobRenderer, JobRequest,
    JobRun, JobStatus,
};
use serde_json::Value;
use tokio::sync::Notify;

use crate::AppState;
use crate::auth::Scoped;
use crate::bundle::{response_bundle, response_entry};
use crate::caller::Caller;
use crate::error::{ApiError, interaction_response};
use crate::extract::{FhirPath, PreferReturn};
use crate::respond::{fhir_json, informational};

/// The bounds and timing of asynchronous submissions.
#[derive(Debug, Clone, Copy)]
pub struct AsyncConfig {
    /// Most jobs waiting or running at once; past it a submission gets 503 with `Retry-After`.
    pub max_unfinished: u64,
    /// How long a finished job's response stays readable before it is purged.
    pub retention: Duration,
    /// How long a worker's claim of a job lasts unless renewed (every third of it, while it runs); a job of
    /// a process that died is run again by another once this has passed.
    pub lease: Duration,
    /// How often an idle worker looks for jobs queued by other processes (its own wake it at once).
    pub poll_interval: Duration,
}

impl Default for AsyncConfig {
    /// 1,000 unfinished jobs, responses kept 24 hours, 30 s leases, a look every 5 s.
    fn default() -> AsyncConfig {
        AsyncConfig {
            max_unfinished: 1_000,
            retention: Duration::from_secs(24 * 60 * 60),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// How often finished jobs past their retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Wakes this process's worker when a job is queued.
#[derive(Debug, Default)]
pub(crate) struct Wake(Notify);

/// Who owns a job a caller submits: its token's issuer, client and `fhirUser` (several users of one client
/// do not see one another's jobs). Another caller's job is answered 404, as an unknown one.
fn owner(caller: &Caller) -> String {
    let user = caller.fhir_user.as_deref().unwrap_or_default();
    format!("{} {} {user}", caller.issuer, caller.client_id)
}

/// Queues a posted Bundle: `202 Accepted` with the status URL once the job is committed.
pub(crate) async fn accept(
    state: &AppState,
    engine: &cdr_interactions::Engine,
    base: &str,
    prefer: PreferReturn,
    body: &[u8],
    caller: Option<&Caller>,
) -> Result<Response, ApiError> {
    let max_unfinished = state.config.async_jobs.max_unfinished;
    let owner = caller.map(owner);
    // The audited engine, so that the job keeps its submitter for the events of its entries.
    let id = engine
        .enqueue_bundle(body, base, prefer.as_str(), max_unfinished, owner.as_deref())
        .await?;
    state.wake.0.notify_one();
    let mut response = fhir_json(
        StatusCode::ACCEPTED,
        informational(&format!("the Bundle is queued as asynchronous request {id}")),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/_async/{id}")) {
        response.headers_mut().insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

/// `GET [base]/_async/{id}`.
pub(crate) async fn status(
    Scoped(state): Scoped,
    FhirPath(id): FhirPath<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let owner = caller.map(|Extension(caller)| owner(&caller));
    let progress = match state.engine.job_status(&id, owner.as_deref()).await? {
        JobStatus::Queued => "queued".to_owned(),
        JobStatus::Running(progress) => progress,
        JobStatus::Done { status, response } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(fhir_json(status, response));
        }
    };
    let mut response = fhir_json(
        StatusCode::ACCEPTED,
        informational(&format!("asynchronous request {id}: {progress}")),
    );
    if let Ok(progress) = HeaderValue::from_str(&progress) {
        response.headers_mut().insert("x-progress", progress);
    }
    Ok(response)
}

/// `DELETE [base]/_async/{id}`.
pub(crate) async fn cancel(
    Scoped(state): Scoped,
    FhirPath(id): FhirPath<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let owner = caller.map(|Extension(caller)| owner(&caller));
    let message = match state.engine.remove_job(&id, owner.as_deref()).await? {
        JobRemoval::Cancelled => format!("asynchronous request {id} is cancelled"),
        JobRemoval::Deleted => format!("the response of asynchronous request {id} is deleted"),
    };
    Ok(fhir_json(StatusCode::ACCEPTED, informational(&message)))
}

/// Renders a job's outcomes as the synchronous request is answered.
struct Rendering;

impl JobRenderer for Rendering {
    fn entry(&self, outcome: &EntryOutcome, job: &JobRequest) -> Value {
        response_entry(outcome, &job.base, PreferReturn::parse(&job.prefer)).to_json()
    }

    fn bundle(&self, kind: BundleKind, entries: Vec<Value>) -> Value {
        response_bundle(kind, entries)
    }

    fn failure(&self, error: &InteractionError) -> (u16, Value) {
        let (status, outcome) = interaction_response(error);
        (status.as_u16(), outcome.to_json())
    }
}

/// Runs the queued jobs of the database: woken when this process queues one, and every poll interval.
#[derive(Debug, Clone)]
pub struct JobWorker {
    engine: Engine,
    config: AsyncConfig,
    wake: Arc<Wake>,
    /// This worker's claim on the jobs it runs.
    id: String,
}

impl AppState {
    /// A worker for the jobs this application queues (and any other process's on the same database).
    #[must_use]
    pub fn job_worker(&self) -> JobWorker {
        JobWorker {
            engine: self.engine.clone(),
            config: self.config.async_jobs,
            wake: Arc::clone(&self.wake),
            id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl JobWorker {
    /// Runs jobs until the task is dropped; purges finished jobs past their retention once a minute.
    pub async fn run(self) {
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            self.drain().await;
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
                last_purge = Some(tokio::time::Instant::now());
                match self.engine.purge_jobs(self.config.retention).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged finished asynchronous requests"),
                    Err(error) => tracing::warn!(%error, "cannot purge asynchronous requests"),
                }
            }
            tokio::select! {
                () = self.wake.0.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Runs jobs until none is waiting (or one must wait for a busy database); returns how many ran.
    pub async fn drain(&self) -> usize {
        let mut ran = 0;
        loop {
            match self.engine.run_next_job(&self.id, self.config.lease, &Rendering).await {
                Ok(JobRun::Ran) => ran += 1,
                Ok(JobRun::Idle | JobRun::Retry) => return ran,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim an asynchronous request");
                    return ran;
                }
            }
        }
    }
}
