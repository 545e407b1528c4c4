//! `imaging-cdr conformance list | run`: the arguments, the printed tree and summary, the report files and the
//! exit status (0 pass, 3 a required test failed, 4 bad input, 5 server unreachable).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cdr_validation::ProfileSet;

use crate::client::{Call, Http};
use crate::context::{Ctx, Mode};
use crate::kit;
use crate::model::{group_short_id, test_short_id};
use crate::report::{Report, html, junit};
use crate::run::{Selection, run_suite};

/// Exit status when a required test failed or errored.
const EXIT_FAILED: u8 = 3;
/// Exit status for bad arguments, inputs or an unwritable report.
const EXIT_BAD_INPUT: u8 = 4;
/// Exit status when the server cannot be reached.
const EXIT_UNREACHABLE: u8 = 5;

/// `conformance list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The kit to list.
    #[arg(long, default_value = "onmi")]
    pub kit: String,
}

/// `conformance run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The FHIR base URL of the server under test (`http://host:port/fhir`).
    #[arg(long, value_name = "URL")]
    pub base: String,
    /// The kit to run.
    #[arg(long, default_value = "onmi")]
    pub kit: String,
    /// Comma-separated short ids of the groups and tests to run (`1,3.02`; see `conformance list`).
    #[arg(long, value_name = "IDS")]
    pub select: Option<String>,
    /// An input of the kit (repeatable); `conformance list` names them.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// `write` submits the kit's own fixtures (tagged with the run id); `read-only` only reads, and the data to
    /// look for comes from `--input`.
    #[arg(long, value_enum, default_value_t = Mode::Write)]
    pub mode: Mode,
    /// A bearer token sent with every request.
    #[arg(long, value_name = "TOKEN")]
    pub bearer: Option<String>,
    /// Write the JSON report (Inferno-shaped) here.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Delete the resources the run created, at the end (write mode).
    #[arg(long)]
    pub cleanup: bool,
}

/// Prints the kit's suite, groups and tests with their short ids, and its inputs.
pub fn list(args: &ListArgs) -> ExitCode {
    let Some(suite) = kit::suite(&args.kit) else {
        eprintln!("error: no kit named {} (kits: {})", args.kit, kit::NAMES.join(", "));
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let mut text = format!("{} ({})\n{}\n", suite.title, suite.id, suite.description);
    for (g, group) in suite.groups.iter().enumerate() {
        text.push_str(&format!("{} {}: {}\n", group_short_id(g), group.title, group.description));
        for (t, test) in group.tests.iter().enumerate() {
            let optional = if test.optional { " (optional)" } else { "" };
            text.push_str(&format!("  {} {}{optional}\n", test_short_id(g, t), test.title));
        }
    }
    text.push_str("inputs:\n");
    for input in &suite.inputs {
        text.push_str(&format!("  {}: {}\n", input.name, input.description));
    }
    if std::io::stdout().lock().write_all(text.as_bytes()).is_err() {
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    ExitCode::SUCCESS
}

/// Runs the kit against the server; `profiles` are the conformance resources returned resources are validated
/// against.
pub async fn run(args: &RunArgs, profiles: ProfileSet) -> ExitCode {
    let Some(suite) = kit::suite(&args.kit) else {
        eprintln!("error: no kit named {} (kits: {})", args.kit, kit::NAMES.join(", "));
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let selection = match Selection::parse(args.select.as_deref(), &suite) {
        Ok(selection) => selection,
        Err(message) => return bad_input(&message),
    };
    let mut inputs = BTreeMap::new();
    for input in &args.inputs {
        let Some((name, value)) = input.split_once('=') else {
            return bad_input(&format!("--input {input}: expected NAME=VALUE"));
        };
        if !suite.inputs.iter().any(|known| known.name == name) {
            return bad_input(&format!(
                "--input {name}: the kit takes no such input (see `conformance list`)"
            ));
        }
        inputs.insert(name.to_owned(), value.to_owned());
    }
    if !args.base.starts_with("http://") {
        return bad_input(&format!(
            "--base {}: an http:// URL is needed (https is not supported)",
            args.base
        ));
    }
    let http = Http::new(&args.base, args.bearer.clone());
    if let (_, Some(unreachable)) = http.send(Call::get("metadata")).await {
        eprintln!("error: the server is unreachable: {}", unreachable.0);
        return ExitCode::from(EXIT_UNREACHABLE);
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut ctx = Ctx::new(http, args.mode, run_id, inputs, profiles);
    let report = run_suite(&suite, &selection, &mut ctx, &args.kit).await;
    if args.cleanup {
        let (deleted, failed) = kit::cleanup(&mut ctx).await;
        eprintln!("cleanup: {deleted} resources deleted, {failed} could not be");
    }
    if let Err(message) = write_reports(args, &report) {
        return bad_input(&message);
    }
    if print_summary(&report).is_err() {
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    if report.failed() { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}

fn bad_input(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}

fn write_reports(args: &RunArgs, report: &Report) -> Result<(), String> {
    let outputs = [
        (&args.out, report.to_json()),
        (&args.html, html::render(report)),
        (&args.junit, junit::render(report)),
    ];
    for (path, text) in outputs {
        if let Some(path) = path {
            std::fs::write(path, text)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        }
    }
    Ok(())
}

/// One line a test (its result, short id, title and message), then the counts, last.
fn print_summary(report: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for group in &report.groups {
        writeln!(out, "{:5} {} {}", group.result.code(), group.short_id, group.title)?;
        for test in &group.tests {
            let message =
                test.message.as_deref().map(|message| format!(": {message}")).unwrap_or_default();
            writeln!(out, "  {:5} {} {}{message}", test.result.code(), test.short_id, test.title)?;
        }
    }
    let c = &report.counts;
    writeln!(out, "result {} ({} omitted, {} errors)", report.result.code(), c.omit, c.error)?;
    writeln!(out, "{}", c.summary_line())
}
