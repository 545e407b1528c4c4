//! Where an import writes: the engine in this process, or a FHIR server over HTTP. Either way a Bundle goes
//! through the same Bundle path (`Engine::bundle`), and the answer becomes one [`Tally`] per entry.

use cdr_interactions::{Engine, EntryResult, InteractionError};
use serde_json::Value;

use crate::import::http::HttpClient;
use crate::import::input::Job;
use crate::import::report::{Problem, ProblemIssue, Reply, Tally};
use cdr_api::error_chain;

/// The FHIR base of the engine in process: what absolute entry URLs of a submitted Bundle are taken to be
/// relative to, and the base of the links of search entries.
const IN_PROCESS_BASE: &str = "http://localhost/fhir";

/// Where the Bundles go; clones share the engine or the connection pool.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The engine on the database, opened as `serve` opens it.
    InProcess(Engine),
    /// A running server.
    Http(HttpClient),
}

impl Target {
    /// Submits `job` and reads what each entry did.
    pub(crate) async fn submit(&self, job: &Job) -> Reply {
        match self {
            Target::InProcess(engine) => match engine.bundle(&job.body, IN_PROCESS_BASE).await {
                Ok(outcome) => Reply::Entries(
                    outcome
                        .entries
                        .iter()
                        .map(|entry| match &entry.result {
                            Ok(EntryResult::Write(write)) => Tally::of_write(write.status),
                            Ok(
                                EntryResult::Read { .. }
                                | EntryResult::NotModified(_)
                                | EntryResult::Search { .. },
                            ) => Tally::Unchanged,
                            Err(error) => Tally::Failed(problem_of(error)),
                        })
                        .collect(),
                ),
                Err(error) => Reply::Failed(problem_of(&error)),
            },
            Target::Http(client) => match client.post_bundle(job.body.clone()).await {
                Ok((status, body)) => reply_of_response(job, status, &body),
                Err(error) => Reply::Failed(Problem::message(None, error)),
            },
        }
    }
}

/// What a `transaction-response` or `batch-response` says of each entry; any other answer is the failure of
/// the whole Bundle. The report checks that there is one entry per entry sent.
fn reply_of_response(job: &Job, status: u16, body: &[u8]) -> Reply {
    let response: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        return Reply::Failed(Problem::of_json(Some(status), response.as_ref()));
    }
    let Some(bundle) = response.filter(|response| response["resourceType"] == "Bundle") else {
        let message = "the server answered 200 without a Bundle".to_owned();
        return Reply::Failed(Problem::message(Some(status), message));
    };
    let entries = bundle.get("entry").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let tallies = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let response = entry.get("response");
            let status = response
                .and_then(|response| response.get("status"))
                .and_then(Value::as_str)
                .and_then(|status| status.split(' ').next())
                .and_then(|code| code.parse::<u16>().ok());
            let Some(status) = status else {
                let message = "the answer's entry has no response.status".to_owned();
                return Tally::Failed(Problem::message(None, message));
            };
            let method = job.entries.get(index).and_then(|source| source.method);
            let outcome = response.and_then(|response| response.get("outcome"));
            Tally::of_response(method, status, outcome)
        })
        .collect();
    Reply::Entries(tallies)
}

/// The problem of an error in process: the status and OperationOutcome the API would answer, and, for an
/// internal error (which the API does not explain to clients), its causes, since the operator is the one
/// reading.
fn problem_of(error: &InteractionError) -> Problem {
    let (status, outcome) = cdr_api::interaction_outcome(error);
    let mut problem = Problem::of_outcome(status, &outcome);
    if status == 500 {
        problem.issues.push(ProblemIssue {
            severity: "fatal".to_owned(),
            diagnostics: error_chain(error),
            expression: Vec::new(),
        });
    }
    problem
}
