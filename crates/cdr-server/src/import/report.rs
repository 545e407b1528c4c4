//! What an import did: one [`Tally`] per entry, whichever the target, counted and printed by [`Report`]
//! (failures on stderr past the progress bar, the summary on stdout).

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdr_interactions::WriteStatus;
use cdr_model::OperationOutcome;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde_json::Value;

use crate::import::input::{Job, Kind, Method, Place, Rule, Source};

/// What one entry did: the one vocabulary both targets report in.
#[derive(Debug)]
pub(crate) enum Tally {
    /// A new resource was written (or a deleted one brought back).
    Created,
    /// A new version of an existing resource was written (a deletion included).
    Updated,
    /// Nothing was written: a conditional create found its match, or the entry was a read.
    Unchanged,
    /// The entry failed.
    Failed(Problem),
}

/// What a target says of one submitted Bundle.
#[derive(Debug)]
pub(crate) enum Reply {
    /// One tally per entry, in entry order.
    Entries(Vec<Tally>),
    /// The Bundle failed as a whole (a transaction rolled back, or the request itself failed): nothing of
    /// it was written.
    Failed(Problem),
}

/// Why an entry or a Bundle failed: the HTTP status it had (or would have had over HTTP) and the issues of
/// its OperationOutcome.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) status: Option<u16>,
    pub(crate) issues: Vec<ProblemIssue>,
}

/// One issue of a [`Problem`].
#[derive(Debug)]
pub(crate) struct ProblemIssue {
    pub(crate) severity: String,
    pub(crate) diagnostics: String,
    /// Where, relative to the submitted Bundle (`Bundle.entry[3].resource.subject`).
    pub(crate) expression: Vec<String>,
}

impl Tally {
    /// The tally of a write done in process.
    pub(crate) fn of_write(status: WriteStatus) -> Tally {
        match status {
            WriteStatus::Created => Tally::Created,
            WriteStatus::Updated | WriteStatus::Deleted => Tally::Updated,
            WriteStatus::Existing | WriteStatus::Unchanged | WriteStatus::NothingToDelete => {
                Tally::Unchanged
            }
        }
    }

    /// The tally of an entry of a `transaction-response` or `batch-response`, from its `response.status`
    /// and the method of the request entry. A 200 means "updated" for a PUT (unless its outcome says
    /// [`cdr_api::UNCHANGED`]) but "a match exists, nothing was created" for a conditional POST; a DELETE's 204 does not say whether anything was deleted, so it
    /// counts as updated.
    pub(crate) fn of_response(
        method: Option<Method>,
        status: u16,
        outcome: Option<&Value>,
    ) -> Tally {
        let diagnostics = outcome
            .and_then(|outcome| outcome.pointer("/issue/0/diagnostics"))
            .and_then(Value::as_str);
        match status {
            201 => Tally::Created,
            200 if diagnostics == Some(cdr_api::UNCHANGED) => Tally::Unchanged,
            200..400 => match method {
                Some(Method::Put | Method::Delete | Method::Patch) => Tally::Updated,
                Some(Method::Post | Method::Get | Method::Head) | None => Tally::Unchanged,
            },
            _ => Tally::Failed(Problem::of_json(Some(status), outcome)),
        }
    }
}

impl Problem {
    /// A problem with one error issue and no location.
    pub(crate) fn message(status: Option<u16>, diagnostics: String) -> Problem {
        let issue =
            ProblemIssue { severity: "error".to_owned(), diagnostics, expression: Vec::new() };
        Problem { status, issues: vec![issue] }
    }

    pub(crate) fn of_outcome(status: u16, outcome: &OperationOutcome) -> Problem {
        let issues = outcome
            .issues
            .iter()
            .map(|issue| ProblemIssue {
                severity: issue.severity.code().to_owned(),
                diagnostics: issue.diagnostics.clone(),
                expression: issue.expression.clone(),
            })
            .collect();
        Problem { status: Some(status), issues }
    }

    /// The problem an OperationOutcome in JSON describes; without one (or without issues), the status alone.
    pub(crate) fn of_json(status: Option<u16>, outcome: Option<&Value>) -> Problem {
        let text = |value: &Value, name: &str| {
            value.get(name).and_then(Value::as_str).unwrap_or_default().to_owned()
        };
        let issues: Vec<ProblemIssue> = outcome
            .and_then(|outcome| outcome.get("issue"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|issue| ProblemIssue {
                severity: text(issue, "severity"),
                diagnostics: text(issue, "diagnostics"),
                expression: issue
                    .get("expression")
                    .or_else(|| issue.get("location"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            })
            .collect();
        if issues.is_empty() {
            return Problem::message(status, "the server gave no OperationOutcome".to_owned());
        }
        Problem { status, issues }
    }
}

/// The counts of an import, its progress bar and its failure lines.
#[derive(Debug)]
pub(crate) struct Report {
    files: Vec<String>,
    /// Per file: Bundles submitted and not yet answered, and whether the file has been read to its end.
    pending: Vec<(usize, bool)>,
    n_files_done: usize,
    n_created: u64,
    n_updated: u64,
    n_unchanged: u64,
    n_failed: u64,
    warned_plain_post: bool,
    bar: ProgressBar,
    started: Instant,
}

impl Report {
    pub(crate) fn new(files: &[PathBuf]) -> Report {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {human_pos} resources ({rate} resources/s), {msg}",
        ) {
            bar.set_style(style.with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn fmt::Write| {
                    let _ = write!(out, "{:.0}", state.per_sec());
                },
            ));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        let report = Report {
            files: files.iter().map(|path| path.display().to_string()).collect(),
            pending: vec![(0, false); files.len()],
            n_files_done: 0,
            n_created: 0,
            n_updated: 0,
            n_unchanged: 0,
            n_failed: 0,
            warned_plain_post: false,
            bar,
            started: Instant::now(),
        };
        report.update_message();
        report
    }

    /// Whether anything failed.
    pub(crate) fn failed(&self) -> bool {
        self.n_failed > 0
    }

    /// `job` is about to be submitted; the first resource written by a plain POST is warned about.
    pub(crate) fn submitting(&mut self, job: &Job) {
        self.pending[job.file].0 += 1;
        if self.warned_plain_post {
            return;
        }
        let plain = job.entries.iter().find_map(|source| match &source.loose {
            Some(loose) if loose.rule == Rule::Plain => Some((source, loose.resource_type)),
            _ => None,
        });
        if let Some((source, resource_type)) = plain {
            self.warned_plain_post = true;
            let place = self.place(job.file, source);
            self.print(&format!(
                "{place}: warning: a {resource_type} with neither an identifier (system and value) nor an id is created with a plain POST, so a rerun stores it again (not repeated for further such resources)"
            ));
        }
    }

    /// A line or a file that could not be turned into an entry: one failure.
    pub(crate) fn unreadable(&mut self, file: usize, place: &Place, message: &str) {
        self.n_failed += 1;
        self.bar.inc(1);
        let place = self.place_text(file, place);
        self.print(&format!("{place}: error: {message}"));
        self.update_message();
    }

    /// The file has been read to its end (its last Bundles may still be in flight).
    pub(crate) fn file_read(&mut self, file: usize) {
        self.pending[file].1 = true;
        self.file_progress(file);
    }

    /// Counts what the entries of `job` did and prints each failure.
    pub(crate) fn finished(&mut self, job: &Job, reply: Reply) {
        let n_entries = job.entries.len();
        match reply {
            Reply::Failed(problem) => {
                self.n_failed += n_entries.max(1) as u64;
                self.print_bundle_failure(job, &problem);
            }
            Reply::Entries(tallies) if tallies.len() != n_entries => {
                self.n_failed += n_entries.max(1) as u64;
                let problem = Problem::message(
                    None,
                    format!("the answer has {} entries for the {n_entries} sent", tallies.len()),
                );
                self.print_bundle_failure(job, &problem);
            }
            Reply::Entries(tallies) => {
                for (position, (tally, source)) in tallies.into_iter().zip(&job.entries).enumerate()
                {
                    match tally {
                        Tally::Created => self.n_created += 1,
                        Tally::Updated => self.n_updated += 1,
                        Tally::Unchanged => self.n_unchanged += 1,
                        Tally::Failed(problem) => {
                            self.n_failed += 1;
                            self.print_entry_failure(job, position, source, &problem);
                        }
                    }
                }
            }
        }
        self.bar.inc(n_entries as u64);
        self.pending[job.file].0 -= 1;
        self.file_progress(job.file);
    }

    /// Clears the progress bar and prints the summary on stdout.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
        let elapsed = self.started.elapsed().as_secs_f64();
        let n_resources = self.n_created + self.n_updated + self.n_unchanged + self.n_failed;
        let rate = if elapsed > 0.0 { n_resources as f64 / elapsed } else { 0.0 };
        let summary = format!(
            "{n_resources} resources from {} files: {} created, {} updated, {} unchanged, {} failed in {elapsed:.2} s ({rate:.0} resources/s)",
            self.files.len(),
            self.n_created,
            self.n_updated,
            self.n_unchanged,
            self.n_failed,
        );
        if let Err(error) = writeln!(std::io::stdout().lock(), "{summary}") {
            eprintln!("error: cannot write the summary ({error}): {summary}");
        }
    }

    fn file_progress(&mut self, file: usize) {
        if self.pending[file] == (0, true) {
            self.n_files_done += 1;
        }
        self.update_message();
    }

    fn update_message(&self) {
        self.bar.set_message(format!(
            "{}/{} files, {} errors",
            self.n_files_done,
            self.files.len(),
            self.n_failed
        ));
    }

    /// Prints a line on stderr without tearing the progress bar (which is hidden when stderr is not a
    /// terminal; the line is printed all the same).
    fn print(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn print_entry_failure(&self, job: &Job, position: usize, source: &Source, problem: &Problem) {
        let place = self.place(job.file, source);
        self.print_issues(&place, problem, |text| relocate(text, position, source));
        let Some(loose) = &source.loose else { return };
        if loose.rule == Rule::AtId && problem.status == Some(405) {
            self.print(&format!(
                "{place}: note: a {} without an identifier (system and value) is written with PUT at its id, which needs update-as-create: --update-create on the server (or on this command, with --database-url)",
                loose.resource_type
            ));
        }
    }

    fn print_bundle_failure(&self, job: &Job, problem: &Problem) {
        let file = &self.files[job.file];
        let first = job.entries.first();
        let is_loose = first.is_some_and(|source| source.loose.is_some());
        if !is_loose {
            self.print_issues(file, problem, str::to_owned);
            if job.kind == Kind::Transaction {
                self.print(&format!(
                    "{file}: the transaction was rolled back: nothing of it was written"
                ));
            }
            return;
        }
        let last = job.entries.last();
        let place = match (first.map(|source| &source.place), last.map(|source| &source.place)) {
            (Some(Place::Line(first)), Some(Place::Line(last))) => format!("{file}:{first}-{last}"),
            (Some(Place::Entry(first)), Some(Place::Entry(last))) => {
                format!("{file}: Bundle.entry[{first}] to Bundle.entry[{last}]")
            }
            _ => file.clone(),
        };
        self.print_issues(&place, problem, str::to_owned);
    }

    /// One line per issue, `place: status severity expressions: diagnostics`; only the errors when there
    /// are any.
    fn print_issues(&self, place: &str, problem: &Problem, relocate: impl Fn(&str) -> String) {
        let is_error = |issue: &&ProblemIssue| matches!(issue.severity.as_str(), "error" | "fatal");
        let has_errors = problem.issues.iter().any(|issue| is_error(&issue));
        let status = problem.status.map(|status| format!("{status} ")).unwrap_or_default();
        for issue in problem.issues.iter().filter(|issue| !has_errors || is_error(issue)) {
            let at: Vec<String> =
                issue.expression.iter().map(|expression| relocate(expression)).collect();
            let at = if at.is_empty() { String::new() } else { format!(" {}", at.join(", ")) };
            // An error without an outcome of its own repeats its location (`Bundle.entry[2]: …`).
            let diagnostics = issue
                .expression
                .first()
                .and_then(|expression| issue.diagnostics.strip_prefix(expression.as_str()))
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(&issue.diagnostics);
            self.print(&format!("{place}: {status}{}{at}: {diagnostics}", issue.severity));
        }
    }

    fn place(&self, file: usize, source: &Source) -> String {
        self.place_text(file, &source.place)
    }

    fn place_text(&self, file: usize, place: &Place) -> String {
        let file = &self.files[file];
        match place {
            Place::Line(line) => format!("{file}:{line}"),
            Place::Entry(_) | Place::File => file.clone(),
        }
    }
}

/// An expression of the outcome of the batch entry at `position` (`Bundle.entry[7].resource.gender`), as a
/// location in the input: the entry of the file's own Bundle (`Bundle.entry[12].resource.gender`), or, for
/// an NDJSON line or a file of one resource, in the resource (`Patient.gender`).
fn relocate(expression: &str, position: usize, source: &Source) -> String {
    let Some(loose) = &source.loose else { return expression.to_owned() };
    let prefix = format!("Bundle.entry[{position}]");
    let Some(rest) = expression.strip_prefix(&prefix) else { return expression.to_owned() };
    match source.place {
        Place::Entry(index) => format!("Bundle.entry[{index}]{rest}"),
        Place::Line(_) | Place::File => match rest.strip_prefix(".resource") {
            Some(path) => format!("{}{path}", loose.resource_type),
            None if rest.is_empty() => loose.resource_type.to_string(),
            None => rest.trim_start_matches('.').to_owned(),
        },
    }
}
