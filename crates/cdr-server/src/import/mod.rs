//! `imaging-cdr import FILE|DIR…`: loads transaction, batch and collection Bundles and NDJSON files through
//! the Bundle path of the FHIR API (`Engine::bundle`), in process on `--database-url` (the engine opened as
//! `serve` opens it) or over HTTP to `--base`.
//!
//! `input.rs` lists the files (sorted) and turns each into Bundles: a transaction or batch as it is, loose
//! resources as batches of conditional creates, so that a rerun writes nothing new. Up to `--concurrency`
//! Bundles are in flight at once; each is independent of the others, so the order in which they finish does
//! not matter (references between the loose resources of different batches are not resolved). `target.rs`
//! submits a Bundle and reads what each entry did, as one `Tally` per entry in both modes; `report.rs`
//! counts them, prints the failures past the progress bar and the summary.

mod http;
mod input;
mod report;
mod target;

use std::process::ExitCode;

use anyhow::Context;
use tokio::task::JoinSet;

use crate::config::ImportArgs;
use crate::import::http::HttpClient;
use crate::import::input::{Item, Job};
use crate::import::report::{Reply, Report};
use crate::import::target::Target;

/// Exit status when an entry, a line or a file failed.
const EXIT_FAILED: u8 = 1;
/// Exit status for usage and setup errors: an input that does not exist, a database or server that cannot
/// be reached, profiles that do not load.
const EXIT_SETUP: u8 = 2;

/// Runs the command; its outcome is the exit status.
pub(crate) async fn run(args: ImportArgs) -> ExitCode {
    match import(&args).await {
        Ok(report) if report.failed() => ExitCode::from(EXIT_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

async fn import(args: &ImportArgs) -> anyhow::Result<Report> {
    let files = input::files(&args.inputs)?;
    let concurrency = args.concurrency as usize;
    let (target, store) = match &args.base {
        Some(base) => (Target::Http(HttpClient::connect(base, concurrency).await?), None),
        None => {
            let (store, engine) = crate::open_engine(&args.engine).await?;
            (Target::InProcess(engine), Some(store))
        }
    };
    let mut report = Report::new(&files);
    let mut in_flight: JoinSet<(Job, Reply)> = JoinSet::new();
    for (file, path) in files.iter().enumerate() {
        for item in input::read(path, file, args.batch_size as usize) {
            let job = match item {
                Item::Job(job) => job,
                Item::Unreadable { file, place, message } => {
                    report.unreadable(file, &place, &message);
                    continue;
                }
            };
            while in_flight.len() >= concurrency {
                let Some(done) = in_flight.join_next().await else { break };
                let (job, reply) = done.context("an import task failed")?;
                report.finished(&job, reply);
            }
            report.submitting(&job);
            let target = target.clone();
            in_flight.spawn(async move {
                let reply = target.submit(&job).await;
                (job, reply)
            });
        }
        report.file_read(file);
    }
    while let Some(done) = in_flight.join_next().await {
        let (job, reply) = done.context("an import task failed")?;
        report.finished(&job, reply);
    }
    report.finish();
    if let Some(store) = store {
        store.close().await;
    }
    Ok(report)
}
