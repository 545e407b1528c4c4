//! What a run produced, and its three renderings: the Inferno-shaped JSON report (this module), the
//! self-contained HTML report ([`html`]) and JUnit XML ([`junit`]).

pub(crate) mod html;
pub(crate) mod junit;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::client::Exchange;
use crate::context::{Message, Mode};
use crate::model::Verdict;

/// A run's results.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) kit: String,
    pub(crate) suite_id: String,
    pub(crate) title: String,
    pub(crate) base: String,
    pub(crate) mode: Mode,
    pub(crate) run_id: String,
    /// RFC 3339.
    pub(crate) started_at: String,
    pub(crate) duration_ms: u64,
    pub(crate) result: Verdict,
    pub(crate) counts: Counts,
    /// The `--input` values (the bearer token is never one).
    pub(crate) inputs: BTreeMap<String, String>,
    pub(crate) groups: Vec<GroupReport>,
}

/// How many tests ended with each result.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Counts {
    pub(crate) pass: usize,
    pub(crate) omit: usize,
    pub(crate) skip: usize,
    pub(crate) fail: usize,
    pub(crate) error: usize,
}

impl Counts {
    pub(crate) fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Omit => self.omit += 1,
            Verdict::Skip => self.skip += 1,
            Verdict::Fail => self.fail += 1,
            Verdict::Error => self.error += 1,
        }
    }

    /// `N passed, N failed, N skipped`: errors count as failed, omitted tests as skipped.
    pub(crate) fn summary_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.pass,
            self.fail + self.error,
            self.skip + self.omit
        )
    }
}

/// A group's results.
#[derive(Debug, Serialize)]
pub(crate) struct GroupReport {
    pub(crate) id: String,
    pub(crate) short_id: String,
    pub(crate) title: String,
    pub(crate) result: Verdict,
    pub(crate) tests: Vec<TestReport>,
}

/// A test's result, with the requests it made.
#[derive(Debug, Serialize)]
pub(crate) struct TestReport {
    pub(crate) id: String,
    pub(crate) short_id: String,
    pub(crate) title: String,
    #[serde(skip)]
    pub(crate) description: String,
    pub(crate) result: Verdict,
    pub(crate) optional: bool,
    /// Why it did not pass.
    pub(crate) message: Option<String>,
    pub(crate) messages: Vec<Message>,
    pub(crate) duration_ms: u64,
    pub(crate) requests: Vec<Exchange>,
}

impl Report {
    /// Whether a required test failed or errored.
    pub(crate) fn failed(&self) -> bool {
        self.groups
            .iter()
            .flat_map(|group| &group.tests)
            .any(|test| !test.optional && test.result >= Verdict::Fail)
    }

    /// The JSON report.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
