//! `cdr-bench`: generate a synthetic Ontario imaging data set, load it into imaging-cdr, and measure the
//! viewer queries over HTTP (`run`) or straight on the store (`direct`), and submit transaction Bundles
//! over HTTP (`ingest`) or write their resources straight on the store (`ingest-direct`). See
//! `bench/README.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cdr_bench::ingest::{IngestConfig, IngestStats};
use cdr_bench::run::{QueryKind, RunConfig};
use cdr_bench::stats::{QueryStats, write_table};
use cdr_bench::submission::{Shape, SubmissionConfig, Submissions};
use cdr_bench::{BenchError, Budget, GenerateConfig};
use cdr_server::profiles::ProfileArgs;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "cdr-bench", about = "Data set generator, loader and load test for imaging-cdr")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a deterministic synthetic data set (one ndjson file per resource type).
    Generate {
        #[arg(long)]
        patients: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Loads a data set into a running server with conditional creates, then applies the amendments.
    Load {
        /// The FHIR base, e.g. http://127.0.0.1:8080/fhir.
        #[arg(long)]
        base: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Measures the viewer queries against a running server.
    Run {
        /// The FHIR base the data set was loaded into.
        #[arg(long)]
        base: String,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Measures the same reads and searches straight on the database through the store crate.
    Direct {
        /// The server's database: sqlite://PATH or postgres://USER@HOST:PORT/DB.
        #[arg(long)]
        database_url: String,
        /// The server's conformance resources: their SearchParameters are added to the R4 ones, as the
        /// server does.
        #[command(flatten)]
        conformance: ProfileArgs,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Posts transaction Bundles built from the data set (conditional PUTs by business identifier) to a
    /// running server, each once.
    Ingest {
        /// The FHIR base, e.g. http://127.0.0.1:8080/fhir.
        #[arg(long)]
        base: String,
        #[command(flatten)]
        submit: IngestArgs,
    },
    /// Measures Subscription delivery: topic subscriptions to a receiver of its own, then final reports
    /// posted concurrently; notifications per second and commit-to-receipt latency.
    Notify {
        /// The FHIR base, e.g. http://127.0.0.1:8080/fhir.
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 4)]
        subscriptions: usize,
        #[arg(long, default_value_t = 500)]
        reports: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds to wait for the last notifications once every report is posted.
        #[arg(long, default_value_t = 120)]
        drain_timeout: u64,
    },
    /// Writes the resources of the same Bundles straight on the database (plain creates, one store
    /// transaction per Bundle): the floor of `ingest`.
    IngestDirect {
        /// The database: sqlite://PATH or postgres://USER@HOST:PORT/DB (migrated first).
        #[arg(long)]
        database_url: String,
        /// The server's conformance resources: their SearchParameters are indexed too, as the server
        /// does.
        #[command(flatten)]
        conformance: ProfileArgs,
        #[command(flatten)]
        submit: IngestArgs,
    },
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// The data set (the output of `generate`).
    #[arg(long)]
    data: PathBuf,
    /// imaging: one Bundle per order (patient, practitioners, hospital, order, study of about 100
    /// instances, report with a 100 KB PDF); small: patients with their orders, --entries a Bundle.
    #[arg(long, value_enum, default_value_t = Shape::Imaging)]
    shape: Shape,
    /// The most entries of a small Bundle.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    entries: u16,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Send only the first this many Bundles (all by default).
    #[arg(long)]
    bundles: Option<u64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seeds what the data set does not hold: extra series and instances, PDFs, urn:uuid fullUrls.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl IngestArgs {
    fn submissions(&self) -> Result<Submissions, BenchError> {
        let config = SubmissionConfig {
            shape: self.shape,
            entries_per_bundle: usize::from(self.entries),
            seed: self.seed,
        };
        Submissions::from_data_set(&self.data, config)
    }

    fn config(&self) -> IngestConfig {
        IngestConfig { concurrency: self.concurrency, bundles: self.bundles }
    }
}

#[derive(Debug, Args)]
struct MeasureArgs {
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per query (the default is 10 unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<u64>,
    /// Requests per query, instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Comma-separated query names (all when absent): read-patient, read-study,
    /// study-by-patient-identifier, reports-by-patient, studies-by-modality, order-by-accession,
    /// patient-by-mrn, patient-by-name.
    #[arg(long, default_value = "")]
    queries: String,
    /// Seeds the choice of parameter values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl MeasureArgs {
    fn config(&self) -> RunConfig {
        let budget = match (self.requests, self.duration) {
            (Some(requests), _) => Budget::Requests(requests),
            (None, duration) => Budget::Duration(Duration::from_secs(duration.unwrap_or(10))),
        };
        RunConfig { concurrency: self.concurrency, budget, seed: self.seed }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<ExitCode, BenchError> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Generate { patients, seed, out: dir } => {
            let counts =
                cdr_bench::dataset::write_data_set(&dir, GenerateConfig { patients, seed })?;
            for (file, count) in counts {
                writeln!(out, "{:<36} {count:>9}", file.file_name()).map_err(stdout_error)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Load { base, data, concurrency } => {
            let report = cdr_bench::load::load(&base, &data, concurrency).await?;
            report.write_table(&mut out).map_err(stdout_error)?;
            match report.errors() {
                0 => Ok(ExitCode::SUCCESS),
                _ => Ok(ExitCode::FAILURE),
            }
        }
        Command::Run { base, measure } => {
            let queries = QueryKind::parse_list(&measure.queries)?;
            let rows =
                cdr_bench::run::run(&base, &measure.data, &queries, measure.config()).await?;
            report(&mut out, &rows, &measure, json!({ "mode": "http", "base": base }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Direct { database_url, conformance, measure } => {
            let queries = QueryKind::parse_list(&measure.queries)?;
            let (set, _) = cdr_server::profiles::load(&conformance)?;
            let registry = cdr_server::profiles::search_registry(&set)?;
            let rows = cdr_bench::direct::direct(
                &database_url,
                &measure.data,
                &queries,
                measure.config(),
                registry,
            )
            .await?;
            report(&mut out, &rows, &measure, json!({ "mode": "direct" }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { base, submit } => {
            let stats =
                cdr_bench::ingest::ingest(&base, submit.submissions()?, submit.config()).await?;
            ingest_report(&mut out, &stats, &submit, json!({ "mode": "http", "base": base }))
        }
        Command::Notify { base, subscriptions, reports, concurrency, drain_timeout } => {
            let config = cdr_bench::notify::NotifyConfig {
                subscriptions,
                reports,
                concurrency,
                drain_timeout: Duration::from_secs(drain_timeout),
            };
            let stats = cdr_bench::notify::notify(&base, config).await?;
            let report = json!({"base": base, "subscriptions": subscriptions, "reports": reports,
                                "concurrency": concurrency, "result": stats.to_json()});
            writeln!(out, "{report:#}").map_err(stdout_error)?;
            Ok(if stats.duplicates == 0 && stats.out_of_order == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::IngestDirect { database_url, conformance, submit } => {
            let (set, _) = cdr_server::profiles::load(&conformance)?;
            let registry = cdr_server::profiles::search_registry(&set)?;
            let stats = cdr_bench::ingest_direct::ingest_direct(
                &database_url,
                submit.submissions()?,
                submit.config(),
                registry,
            )
            .await?;
            ingest_report(&mut out, &stats, &submit, json!({ "mode": "direct" }))
        }
    }
}

/// Prints the table and writes the JSON (to `--json`, or after the table); fails when a Bundle failed.
fn ingest_report(
    out: &mut dyn Write,
    stats: &IngestStats,
    submit: &IngestArgs,
    mut header: serde_json::Value,
) -> Result<ExitCode, BenchError> {
    stats.write_table(out).map_err(stdout_error)?;
    header["concurrency"] = json!(submit.concurrency);
    if submit.shape == Shape::Small {
        header["entries_per_bundle"] = json!(submit.entries);
    }
    let text = format!("{:#}\n", stats.to_json(header));
    match &submit.json {
        Some(path) => std::fs::write(path, text).map_err(|source| file_error(path, source))?,
        None => out.write_all(text.as_bytes()).map_err(stdout_error)?,
    }
    match stats.bundles.errors {
        0 => Ok(ExitCode::SUCCESS),
        _ => Ok(ExitCode::FAILURE),
    }
}

/// Prints the table, then writes the JSON to `--json` or, without it, prints it after the table.
fn report(
    out: &mut dyn Write,
    rows: &[QueryStats],
    measure: &MeasureArgs,
    mut header: serde_json::Value,
) -> Result<(), BenchError> {
    write_table(out, rows).map_err(stdout_error)?;
    header["concurrency"] = json!(measure.concurrency);
    header["budget"] = match measure.config().budget {
        Budget::Duration(duration) => json!({ "seconds": duration.as_secs() }),
        Budget::Requests(requests) => json!({ "requests": requests }),
    };
    header["queries"] = rows.iter().map(QueryStats::to_json).collect();
    let text = format!("{header:#}\n");
    match &measure.json {
        Some(path) => std::fs::write(path, text).map_err(|source| file_error(path, source)),
        None => out.write_all(text.as_bytes()).map_err(stdout_error),
    }
}

fn stdout_error(source: std::io::Error) -> BenchError {
    BenchError::Io { action: "write to", path: PathBuf::from("standard output"), source }
}

fn file_error(path: &Path, source: std::io::Error) -> BenchError {
    BenchError::Io { action: "write", path: path.to_owned(), source }
}
