//! Asynchronous submission (`Prefer: respond-async`): 202 with a status URL, the status while queued, the
//! synchronous response once a worker has run the job (transaction, batch, failure), cancellation, unknown
//! jobs, the queue cap, and jobs that outlive the application that queued them.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cdr_model::Instant;
use cdr_store::{JobCompletion, StoreError};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse, api_config};

backend_tests!(
    a_transaction_is_accepted_then_answered_as_synchronously,
    a_queued_job_is_run_by_a_worker_started_later,
    a_running_worker_is_woken_by_a_submission,
    a_failed_transaction_answers_its_synchronous_status,
    a_batch_records_every_entry,
    prefer_return_is_kept_for_the_job,
    cancelling_a_queued_job_runs_nothing,
    a_running_job_can_be_cancelled,
    a_job_of_a_dead_worker_runs_again_after_its_lease,
    a_finished_job_can_be_deleted_and_unknown_jobs_are_404,
    a_full_queue_answers_503,
    the_capability_statement_declares_asynchronous_submission
);

const MRN: &str = "http://hospital.example/mrn";
const RESPOND_ASYNC: (&str, &str) = ("prefer", "respond-async");
const FHIR_JSON: (&str, &str) = ("content-type", "application/fhir+json");

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
           "name": [{"family": "Tremblay"}]})
}

/// A transaction creating a Patient and a study of it, and reading the Patients of `mrn`.
fn transaction(mrn: &str) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f0c1d36-0b8e-4a5e-9d3c-2f1a0e9b8c01", "resource": patient(mrn),
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:6f0c1d36-0b8e-4a5e-9d3c-2f1a0e9b8c02",
         "resource": {"resourceType": "ImagingStudy", "status": "available",
                      "subject": {"reference": "urn:uuid:6f0c1d36-0b8e-4a5e-9d3c-2f1a0e9b8c01"}},
         "request": {"method": "POST", "url": "ImagingStudy"}},
        {"request": {"method": "GET", "url": format!("Patient?identifier={MRN}|{mrn}")}}
    ]})
}

/// Posts `bundle` with `Prefer: respond-async` (and `extra` headers); returns the status URL's path.
async fn submit(app: &TestApp, bundle: &Value, extra: &[(&str, &str)]) -> String {
    let mut headers = vec![RESPOND_ASYNC, FHIR_JSON];
    headers.extend_from_slice(extra);
    let response = app.request(Method::POST, "/fhir", &headers, &bundle.to_string()).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    let location = response.header("content-location").expect("a status URL").to_owned();
    let path = location.strip_prefix("http://cdr.test").expect("the status URL is under the base");
    assert!(path.starts_with("/fhir/_async/"), "{location}");
    path.to_owned()
}

async fn patients(app: &TestApp, mrn: &str) -> usize {
    let bundle = app.search(&format!("Patient?identifier={MRN}|{mrn}")).await;
    bundle["entry"].as_array().map_or(0, Vec::len)
}

/// What must agree between a synchronous and an asynchronous response (ids and times differ).
fn shape(response: &Value) -> Value {
    let entries = response["entry"].as_array().cloned().unwrap_or_default();
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "status": entry["response"]["status"],
                "resourceType": entry["resource"]["resourceType"],
                "hasLocation": entry["response"]["location"].is_string(),
                "hasEtag": entry["response"]["etag"].is_string(),
                "outcome": entry["response"]["outcome"]["issue"][0]["code"],
                "searched": entry["resource"]["entry"].as_array().map(Vec::len),
            })
        })
        .collect();
    json!({"resourceType": response["resourceType"], "type": response["type"], "entry": entries})
}

async fn a_transaction_is_accepted_then_answered_as_synchronously(app: &TestApp) {
    let status_url = submit(app, &transaction("ASYNC-1"), &[]).await;
    // Nothing runs before a worker does: the job is queued and nothing is written.
    let queued = app.get(&status_url).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text());
    assert_eq!(queued.header("x-progress"), Some("queued"));
    assert_eq!(patients(app, "ASYNC-1").await, 0);

    assert_eq!(app.job_worker().drain().await, 1);
    let done = app.get(&status_url).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.header("content-type"), Some("application/fhir+json; charset=utf-8"));
    let asynchronous = done.json();
    assert_eq!(asynchronous["type"], "transaction-response", "{asynchronous}");
    // The GET entry, answered after the commit, sees the transaction's Patient.
    let found = asynchronous["entry"][2]["resource"]["entry"].as_array().map(Vec::len);
    assert_eq!(found, Some(1), "{asynchronous}");
    assert_eq!(patients(app, "ASYNC-1").await, 1);

    let synchronous = app.post("/fhir", &transaction("SYNC-1").to_string()).await;
    assert_eq!(synchronous.status, StatusCode::OK, "{}", synchronous.text());
    assert_eq!(shape(&asynchronous), shape(&synchronous.json()));
    // Reading the status again gives the same response; the worker has nothing left to do.
    assert_eq!(app.get(&status_url).await.json(), asynchronous);
    assert_eq!(app.job_worker().drain().await, 0);
    assert_eq!(patients(app, "ASYNC-1").await, 1);
}

async fn a_queued_job_is_run_by_a_worker_started_later(app: &TestApp) {
    let status_url = submit(app, &transaction("LATER-1"), &[]).await;
    // The job is in the database: a worker of another application on it (a server started later) runs it.
    assert_eq!(app.other_job_worker().drain().await, 1);
    let done = app.get(&status_url).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(patients(app, "LATER-1").await, 1);
}

/// Polls a status URL until it answers something other than 202 (at most a minute).
async fn poll(app: &TestApp, status_url: &str) -> TestResponse {
    let started = std::time::Instant::now();
    loop {
        let response = app.get(status_url).await;
        if response.status != StatusCode::ACCEPTED {
            return response;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_running_worker_is_woken_by_a_submission(app: &TestApp) {
    // The worker's poll interval (5 s) is longer than the wait below allows for several jobs: the
    // submissions wake it.
    let worker = tokio::spawn(app.job_worker().run());
    let started = std::time::Instant::now();
    for n in 0..3 {
        let status_url = submit(app, &transaction(&format!("WOKEN-{n}")), &[]).await;
        let done = poll(app, &status_url).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    worker.abort();
    for n in 0..3 {
        assert_eq!(patients(app, &format!("WOKEN-{n}")).await, 1);
    }
}

async fn a_failed_transaction_answers_its_synchronous_status(app: &TestApp) {
    let kept = app.create("Patient", &patient("FAIL-0").to_string()).await;
    let mut outdated = patient("FAIL-0");
    outdated["id"] = json!(kept);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f0c1d36-0b8e-4a5e-9d3c-2f1a0e9b8c11", "resource": patient("FAIL-1"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": outdated, "request": {"method": "PUT", "url": format!("Patient/{kept}"), "ifMatch": "W/\"7\""}}
    ]});
    let synchronous = app.post("/fhir", &bundle.to_string()).await;
    synchronous.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");

    let status_url = submit(app, &bundle, &[]).await;
    assert_eq!(app.job_worker().drain().await, 1);
    let failed = app.get(&status_url).await;
    failed.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");
    assert_eq!(failed.json()["issue"], synchronous.json()["issue"]);
    assert_eq!(patients(app, "FAIL-1").await, 0);

    // A body that is no Bundle fails the same way as synchronously, when the job runs.
    let status_url = submit(app, &patient("FAIL-2"), &[]).await;
    assert_eq!(app.job_worker().drain().await, 1);
    app.get(&status_url).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn a_batch_records_every_entry(app: &TestApp) {
    let batch = |mrn: &str| {
        json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient(mrn), "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "birthDate": "not a date"},
             "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/unknown-id"}},
            {"request": {"method": "GET", "url": format!("Patient?identifier={MRN}|{mrn}")}},
            {"resource": patient(&format!("{mrn}-b")), "request": {"method": "POST", "url": "Patient"}}
        ]})
    };
    let status_url = submit(app, &batch("BATCH-A"), &[]).await;
    assert_eq!(app.job_worker().drain().await, 1);
    let done = app.get(&status_url).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let asynchronous = done.json();
    assert_eq!(asynchronous["type"], "batch-response");
    let synchronous = app.post("/fhir", &batch("BATCH-S").to_string()).await.json();
    assert_eq!(shape(&asynchronous), shape(&synchronous));
    let statuses: Vec<&str> = asynchronous["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201 Created", "422 Unprocessable Entity", "404 Not Found", "200 OK", "201 Created"]
    );
    assert_eq!(patients(app, "BATCH-A").await, 1);
    assert_eq!(patients(app, "BATCH-A-b").await, 1);
}

async fn prefer_return_is_kept_for_the_job(app: &TestApp) {
    let status_url =
        submit(app, &transaction("PREFER-1"), &[("prefer", "return=OperationOutcome")]).await;
    assert_eq!(app.job_worker().drain().await, 1);
    let response = app.get(&status_url).await.json();
    let first = &response["entry"][0];
    assert!(first["resource"].is_null(), "{response}");
    assert_eq!(first["response"]["outcome"]["issue"][0]["code"], "informational", "{response}");
}

async fn cancelling_a_queued_job_runs_nothing(app: &TestApp) {
    let status_url = submit(app, &transaction("CANCEL-1"), &[]).await;
    let cancelled = app.delete(&status_url).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.text());
    app.get(&status_url).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(app.job_worker().drain().await, 0);
    assert_eq!(patients(app, "CANCEL-1").await, 0);
}

/// Claims the oldest job for a worker `worker` whose lease ends `lease_ms` from now (negative: already
/// passed), as a worker of another process would; returns the job's id.
async fn claim_as(app: &TestApp, worker: &str, lease_ms: i64) -> String {
    let now = Instant::now();
    let until = Instant::from_millis(now.millis() + lease_ms);
    app.store().claim_job(worker, now, until).await.unwrap().expect("a job to claim").id
}

fn finished(job: &str, worker: &str) -> JobCompletion {
    JobCompletion::Finished {
        job: job.to_owned(),
        worker: worker.to_owned(),
        status: 200,
        response: "{}".to_owned(),
        at: Instant::now(),
    }
}

async fn a_running_job_can_be_cancelled(app: &TestApp) {
    let status_url = submit(app, &transaction("RUNNING-1"), &[]).await;
    let job = claim_as(app, "elsewhere", 60_000).await;
    let running = app.get(&status_url).await;
    assert_eq!(running.status, StatusCode::ACCEPTED);
    assert_eq!(running.header("x-progress"), Some("running"));
    let cancelled = app.delete(&status_url).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.text());
    app.get(&status_url).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // The worker running it cannot record its completion, so its writes roll back.
    let mut tx = app.store().begin().await.unwrap();
    let refused = tx.complete_job(&finished(&job, "elsewhere")).await;
    assert!(matches!(refused, Err(StoreError::JobLost(_))), "{refused:?}");
    drop(tx);
    assert_eq!(app.job_worker().drain().await, 0);
}

async fn a_job_of_a_dead_worker_runs_again_after_its_lease(app: &TestApp) {
    let status_url = submit(app, &transaction("DEAD-1"), &[]).await;
    // A worker that claimed it and died: while its lease lasts, nobody else takes the job.
    let job = claim_as(app, "dead", 60_000).await;
    assert_eq!(app.job_worker().drain().await, 0);
    // Its lease passes (here: it is claimed again with a lease that has passed).
    app.store().release_job(&job, "dead").await.unwrap();
    assert_eq!(claim_as(app, "dead", -1).await, job);
    assert_eq!(app.job_worker().drain().await, 1);
    assert_eq!(app.get(&status_url).await.status, StatusCode::OK);
    assert_eq!(patients(app, "DEAD-1").await, 1);
    // Should the first worker come back, its completion is refused.
    let mut tx = app.store().begin().await.unwrap();
    let refused = tx.complete_job(&finished(&job, "dead")).await;
    assert!(matches!(refused, Err(StoreError::JobLost(_))), "{refused:?}");
}

async fn a_finished_job_can_be_deleted_and_unknown_jobs_are_404(app: &TestApp) {
    let status_url = submit(app, &transaction("DELETE-1"), &[]).await;
    assert_eq!(app.job_worker().drain().await, 1);
    assert_eq!(app.get(&status_url).await.status, StatusCode::OK);
    let deleted = app.delete(&status_url).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text());
    app.get(&status_url).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.delete(&status_url).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.get("/fhir/_async/no-such-job").await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // The resources it wrote stay.
    assert_eq!(patients(app, "DELETE-1").await, 1);
}

async fn a_full_queue_answers_503(app: &TestApp) {
    let mut config = api_config();
    config.async_jobs.max_unfinished = 1;
    let router = app.router_with(config);
    let request = |mrn: &str| {
        crate::helpers::build_request(
            Method::POST,
            "/fhir",
            &[RESPOND_ASYNC, FHIR_JSON],
            &transaction(mrn).to_string(),
        )
    };
    let first = crate::helpers::send_to(&router, request("FULL-1")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let second = crate::helpers::send_to(&router, request("FULL-2")).await;
    second.assert_outcome(StatusCode::SERVICE_UNAVAILABLE, "transient");
    assert!(second.header("retry-after").is_some());
    // Once the first has run, there is room again.
    assert_eq!(app.job_worker().drain().await, 1);
    let third = crate::helpers::send_to(&router, request("FULL-3")).await;
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.text());
}

async fn the_capability_statement_declares_asynchronous_submission(app: &TestApp) {
    let metadata = app.get("/fhir/metadata").await.json();
    let interactions = metadata["rest"][0]["interaction"].as_array().unwrap();
    let transaction = interactions.iter().find(|interaction| interaction["code"] == "transaction");
    let documentation = transaction.unwrap()["documentation"].as_str().unwrap();
    assert!(documentation.contains("respond-async"), "{documentation}");
}
