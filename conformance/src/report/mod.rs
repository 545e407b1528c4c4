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

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of one group: a pass, and a failure whose response body holds markup.
    fn sample() -> Report {
        let exchange = Exchange {
            verb: "GET".to_owned(),
            url: "http://server/fhir/Patient?name=a&b".to_owned(),
            status: 500,
            duration_ms: 3,
            request_headers: Vec::new(),
            request_body: None,
            headers: vec![("content-type".to_owned(), "text/html".to_owned())],
            body: "<script>alert(1)</script>".to_owned(),
        };
        let test = |short_id: &str, result, message: Option<&str>, requests| TestReport {
            id: format!("kit-group-{short_id}"),
            short_id: short_id.to_owned(),
            title: "a <title>".to_owned(),
            description: "R4 \"says\"".to_owned(),
            result,
            optional: false,
            message: message.map(str::to_owned),
            messages: Vec::new(),
            duration_ms: 1500,
            requests,
        };
        let mut counts = Counts::default();
        counts.add(Verdict::Pass);
        counts.add(Verdict::Fail);
        Report {
            kit: "onmi".to_owned(),
            suite_id: "onmi".to_owned(),
            title: "Suite & co".to_owned(),
            base: "http://server/fhir".to_owned(),
            mode: Mode::Write,
            run_id: "r1".to_owned(),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            duration_ms: 2000,
            result: Verdict::Fail,
            counts,
            inputs: BTreeMap::new(),
            groups: vec![GroupReport {
                id: "onmi-group".to_owned(),
                short_id: "1".to_owned(),
                title: "Group".to_owned(),
                result: Verdict::Fail,
                tests: vec![
                    test("1.01", Verdict::Pass, None, Vec::new()),
                    test("1.02", Verdict::Fail, Some("expected 200 & got 500"), vec![exchange]),
                ],
            }],
        }
    }

    #[test]
    fn the_json_report_lists_each_test_with_its_requests() {
        let report: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let failed = &report["groups"][0]["tests"][1];
        assert_eq!(failed["result"], "fail");
        assert_eq!(failed["message"], "expected 200 & got 500");
        assert_eq!(
            failed["requests"][0],
            serde_json::json!({"verb": "GET", "url": "http://server/fhir/Patient?name=a&b", "status": 500, "duration_ms": 3})
        );
        assert_eq!(
            report["counts"],
            serde_json::json!({"pass": 1, "omit": 0, "skip": 0, "fail": 1, "error": 0})
        );
        assert_eq!(sample().counts.summary_line(), "1 passed, 1 failed, 0 skipped");
    }

    #[test]
    fn the_html_report_escapes_bodies_and_expands_failures() {
        let page = html::render(&sample());
        assert!(!page.contains("<script>"), "a response body is text, never markup");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<details open><summary><span class=\"r fail\">fail</span>1.02"));
        assert!(page.contains("<details><summary><span class=\"r pass\">pass</span>1.01"));
        assert!(!page.contains("http-equiv") && !page.contains("<link") && !page.contains(" src="));
    }

    #[test]
    fn junit_marks_failures_and_escapes_attributes() {
        let xml = junit::render(&sample());
        assert!(xml.contains("<testsuites name=\"Suite &amp; co\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"2.000\">"));
        assert!(xml.contains(
            "<testcase classname=\"onmi-group\" name=\"1.01 a &lt;title&gt;\" time=\"1.500\"/>"
        ));
        assert!(xml.contains("<failure message=\"expected 200 &amp; got 500\">GET http://server/fhir/Patient?name=a&amp;b → 500\n</failure>"));
    }
}
