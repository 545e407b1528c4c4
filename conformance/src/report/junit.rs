//! The JUnit XML rendering of a report: one `testsuite` per group, one `testcase` per test; a failed test is
//! a `failure`, an errored one an `error`, a skipped or omitted one `skipped`.

use std::fmt::Write;

use super::Report;
use crate::model::Verdict;

/// The report as JUnit XML.
pub(crate) fn render(report: &Report) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let c = &report.counts;
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(&report.title),
        c.pass + c.omit + c.skip + c.fail + c.error,
        c.fail,
        c.error,
        c.skip + c.omit,
        seconds(report.duration_ms)
    );
    for group in &report.groups {
        let count = |verdicts: &[Verdict]| {
            group.tests.iter().filter(|test| verdicts.contains(&test.result)).count()
        };
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            group.short_id,
            escape(&group.title),
            group.tests.len(),
            count(&[Verdict::Fail]),
            count(&[Verdict::Error]),
            count(&[Verdict::Skip, Verdict::Omit])
        );
        for test in &group.tests {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{} {}\" time=\"{:.3}\"",
                escape(&group.id),
                test.short_id,
                escape(&test.title),
                seconds(test.duration_ms)
            );
            let message = escape(test.message.as_deref().unwrap_or_default());
            match test.result {
                Verdict::Pass => xml.push_str("/>\n"),
                Verdict::Omit | Verdict::Skip => {
                    let _ = writeln!(
                        xml,
                        ">\n      <skipped message=\"{}: {message}\"/>\n    </testcase>",
                        test.result.code()
                    );
                }
                Verdict::Fail | Verdict::Error => {
                    let element = if test.result == Verdict::Fail { "failure" } else { "error" };
                    let requests: String = test
                        .requests
                        .iter()
                        .map(|request| {
                            format!("{} {} → {}\n", request.verb, request.url, request.status)
                        })
                        .collect();
                    let _ = writeln!(
                        xml,
                        ">\n      <{element} message=\"{message}\">{}</{element}>\n    </testcase>",
                        escape(&requests)
                    );
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[allow(clippy::cast_precision_loss, reason = "durations far below 2^52 ms")]
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Text escaped for XML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
}
