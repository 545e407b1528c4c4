//! `imaging-cdr validate FILE...`: offline validation, reported like a compiler.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use cdr_model::{Issue, IssueType, OperationOutcome};
use cdr_server::profiles;
use cdr_validation::{ProfileSet, validate};
use serde_json::{Value, json};

use crate::config::{OutputFormat, ValidateArgs};

/// Exit status when a file has errors.
const EXIT_INVALID: u8 = 1;
/// Exit status for usage and IO errors.
const EXIT_IO: u8 = 2;

/// Runs the command; its outcome is the exit status.
pub(crate) fn run(args: &ValidateArgs) -> ExitCode {
    let set = match profiles::load(&args.conformance) {
        Ok((set, stats)) => {
            tracing::debug!(resources = stats.n_resources, elapsed = ?stats.elapsed, "profiles loaded");
            set
        }
        Err(error) => {
            // With its causes: `cannot read the package x.tgz: No such file or directory`.
            eprintln!("error: {:#}", anyhow::Error::new(error));
            return ExitCode::from(EXIT_IO);
        }
    };
    let mut outcomes = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match std::fs::read(path) {
            Ok(bytes) => outcomes.push(validate_file(&bytes, &set, &args.profiles)),
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", path.display());
                return ExitCode::from(EXIT_IO);
            }
        }
    }
    let printed = match args.format {
        OutputFormat::Text => print_text(&args.files, &outcomes),
        OutputFormat::Json => print_json(&args.files, &outcomes),
    };
    if let Err(error) = printed {
        eprintln!("error: cannot write the report: {error}");
        return ExitCode::from(EXIT_IO);
    }
    if outcomes.iter().any(OperationOutcome::has_errors) {
        return ExitCode::from(EXIT_INVALID);
    }
    ExitCode::SUCCESS
}

/// The issues of one file; a file that is not JSON has one error.
fn validate_file(bytes: &[u8], set: &ProfileSet, profiles: &[String]) -> OperationOutcome {
    let resource: Value = match serde_json::from_slice(bytes) {
        Ok(resource) => resource,
        Err(error) => {
            return OperationOutcome::single(Issue::error(
                IssueType::Structure,
                format!("not valid JSON: {error}"),
            ));
        }
    };
    let profiles: Vec<&str> = profiles.iter().map(String::as_str).collect();
    validate(&resource, set, &profiles).to_operation_outcome()
}

fn print_text(files: &[std::path::PathBuf], outcomes: &[OperationOutcome]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (path, outcome) in files.iter().zip(outcomes) {
        for issue in &outcome.issues {
            let expression = issue.expression.first().map_or("Resource", String::as_str);
            writeln!(
                out,
                "{}: {} {expression}: {}",
                path.display(),
                issue.severity.code(),
                issue.diagnostics
            )?;
        }
    }
    let n_errors = outcomes.iter().filter(|outcome| outcome.has_errors()).count();
    eprintln!("{} file(s) checked, {n_errors} with errors", files.len());
    Ok(())
}

fn print_json(files: &[std::path::PathBuf], outcomes: &[OperationOutcome]) -> std::io::Result<()> {
    let document = match outcomes {
        [outcome] => outcome.to_json(),
        _ => {
            let entries: Vec<Value> = files
                .iter()
                .zip(outcomes)
                .map(|(path, outcome)| {
                    json!({ "fullUrl": file_url(path), "resource": outcome.to_json() })
                })
                .collect();
            json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{document}")
}

/// A `file:` URL naming the validated file in a Bundle entry.
fn file_url(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", absolute.display()).replace(' ', "%20")
}
