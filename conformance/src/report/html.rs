//! The HTML rendering of a report: one self-contained page (inline style, no script, no external asset) with
//! the tree of groups and tests coloured by result; a test that did not pass is expanded with its message,
//! messages, and every request it made with the response body.

use std::fmt::Write;

use super::junit::escape;
use super::{Report, TestReport};
use crate::model::Verdict;

/// How much of a response body the page shows.
const MAX_BODY_CHARS: usize = 20_000;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}details{margin:.2em 0 .2em 1em}summary{cursor:pointer}\
.r{display:inline-block;min-width:3.5em;text-align:center;border-radius:3px;color:#fff;font-size:.85em;\
padding:0 .3em;margin-right:.4em}.pass{background:#2e7d32}.omit{background:#757575}.skip{background:#9e9d24}\
.fail{background:#c62828}.error{background:#6a1b9a}pre{background:#f5f5f5;padding:.5em;overflow:auto;\
max-height:30em;white-space:pre-wrap}table{border-collapse:collapse}td{padding:.1em .6em}.muted{color:#666}";

/// The report as an HTML page.
pub(crate) fn render(report: &Report) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n\
         <h1>{badge}{title}</h1>\n<table><tr><td>Server</td><td>{base}</td></tr><tr><td>Mode</td><td>{mode:?}</td></tr>\
         <tr><td>Run</td><td>{run} at {at} ({ms} ms)</td></tr><tr><td>Results</td><td>{summary} ({omit} omitted, {error} errors)</td></tr></table>\n",
        title = escape(&report.title),
        badge = badge(report.result),
        base = escape(&report.base),
        mode = report.mode,
        run = escape(&report.run_id),
        at = escape(&report.started_at),
        ms = report.duration_ms,
        summary = report.counts.summary_line(),
        omit = report.counts.omit,
        error = report.counts.error,
    );
    for group in &report.groups {
        let open = if group.result >= Verdict::Fail { " open" } else { "" };
        let _ = writeln!(
            html,
            "<details{open}><summary>{}<b>{} {}</b></summary>",
            badge(group.result),
            group.short_id,
            escape(&group.title)
        );
        for test in &group.tests {
            render_test(&mut html, test);
        }
        html.push_str("</details>\n");
    }
    html.push_str("</body></html>\n");
    html
}

fn render_test(html: &mut String, test: &TestReport) {
    let open = if test.result >= Verdict::Fail { " open" } else { "" };
    let optional = if test.optional { " <span class=\"muted\">(optional)</span>" } else { "" };
    let _ = writeln!(
        html,
        "<details{open}><summary>{}{} {}{optional}</summary><p class=\"muted\">{}</p>",
        badge(test.result),
        test.short_id,
        escape(&test.title),
        escape(&test.description)
    );
    if let Some(message) = &test.message {
        let _ = writeln!(html, "<p><b>{}</b></p>", escape(message));
    }
    for message in &test.messages {
        let _ = writeln!(html, "<p>{}: {}</p>", message.kind, escape(&message.message));
    }
    let expand = test.result >= Verdict::Fail;
    for request in &test.requests {
        let _ = write!(
            html,
            "<details{}><summary><code>{} {} → {}</code> <span class=\"muted\">{} ms</span></summary>",
            if expand { " open" } else { "" },
            escape(&request.verb),
            escape(&request.url),
            request.status,
            request.duration_ms
        );
        let sent: String = request
            .request_headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect();
        let _ = write!(
            html,
            "<p>Request</p><pre>{}\n{}</pre>",
            escape(&sent),
            escape(&clip(request.request_body.as_deref().unwrap_or_default()))
        );
        let headers: String =
            request.headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        let _ = writeln!(
            html,
            "<p>Response</p><pre>{}\n{}</pre></details>",
            escape(&headers),
            escape(&clip(&request.body))
        );
    }
    html.push_str("</details>\n");
}

fn badge(verdict: Verdict) -> String {
    format!("<span class=\"r {0}\">{0}</span>", verdict.code())
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_BODY_CHARS) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}
