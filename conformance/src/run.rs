//! Running a suite: the selected tests in order, each to one result with its requests and messages, rolled up
//! into the groups' and the suite's results.

use std::collections::BTreeSet;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Ctx;
use crate::model::{SuiteDef, Verdict, group_short_id, roll_up, test_short_id};
use crate::report::{Counts, GroupReport, Report, TestReport};

/// Which tests run: all, or those whose short id (or whose group's short id) is listed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection(Option<BTreeSet<String>>);

impl Selection {
    /// `1,2.03`: group 1 and test 2.03.
    ///
    /// # Errors
    /// An id that names no group or test of the suite.
    pub(crate) fn parse(text: Option<&str>, suite: &SuiteDef) -> Result<Selection, String> {
        let Some(text) = text else {
            return Ok(Selection(None));
        };
        let mut known = BTreeSet::new();
        for (g, group) in suite.groups.iter().enumerate() {
            known.insert(group_short_id(g));
            known.extend((0..group.tests.len()).map(|t| test_short_id(g, t)));
        }
        let mut ids = BTreeSet::new();
        for id in text.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if !known.contains(id) {
                return Err(format!(
                    "--select {id}: no group or test has that id (see `conformance list`)"
                ));
            }
            ids.insert(id.to_owned());
        }
        if ids.is_empty() {
            return Err("--select names no test".to_owned());
        }
        Ok(Selection(Some(ids)))
    }

    fn includes(&self, g: usize, t: usize) -> bool {
        self.0.as_ref().is_none_or(|ids| {
            ids.contains(&group_short_id(g)) || ids.contains(&test_short_id(g, t))
        })
    }

    /// How many tests are selected.
    pub(crate) fn count(&self, suite: &SuiteDef) -> usize {
        suite
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| (0..group.tests.len()).filter(|t| self.includes(g, *t)).count())
            .sum()
    }
}

/// Runs the selected tests of `suite`; the report has every selected test's result.
pub(crate) async fn run_suite(
    suite: &SuiteDef,
    selection: &Selection,
    ctx: &mut Ctx,
    kit: &str,
) -> Report {
    let started_at = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let bar = ProgressBar::new(u64::try_from(selection.count(suite)).unwrap_or(0));
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
    {
        bar.set_style(style);
    }
    let mut groups = Vec::new();
    for (g, group) in suite.groups.iter().enumerate() {
        let mut tests = Vec::new();
        for (t, test) in group.tests.iter().enumerate() {
            if !selection.includes(g, t) {
                continue;
            }
            let short_id = test_short_id(g, t);
            bar.set_message(format!("{short_id} {}", test.title));
            let test_started = Instant::now();
            let outcome = (test.run)(ctx).await;
            let (exchanges, messages) = ctx.take_record();
            let (result, message) = match outcome {
                Ok(()) => (Verdict::Pass, None),
                Err(stop) => (stop.verdict, Some(stop.message)),
            };
            tests.push(TestReport {
                id: format!("{}-{}-{}", suite.id, group.id, test.id),
                short_id,
                title: test.title.to_owned(),
                description: test.description.to_owned(),
                result,
                optional: test.optional,
                message,
                messages,
                duration_ms: u64::try_from(test_started.elapsed().as_millis()).unwrap_or(u64::MAX),
                requests: exchanges,
            });
            bar.inc(1);
        }
        if let Some(result) = roll_up(tests.iter().map(|test| (test.result, test.optional))) {
            groups.push(GroupReport {
                id: format!("{}-{}", suite.id, group.id),
                short_id: group_short_id(g),
                title: group.title.to_owned(),
                result,
                tests,
            });
        }
    }
    bar.finish_and_clear();
    let result = roll_up(groups.iter().map(|group| (group.result, false))).unwrap_or(Verdict::Omit);
    let mut counts = Counts::default();
    for test in groups.iter().flat_map(|group| &group.tests) {
        counts.add(test.result);
    }
    Report {
        kit: kit.to_owned(),
        suite_id: suite.id.to_owned(),
        title: suite.title.to_owned(),
        base: ctx.base().to_owned(),
        mode: ctx.mode,
        run_id: ctx.run_id.clone(),
        started_at: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        result,
        counts,
        inputs: ctx.inputs.clone(),
        groups,
    }
}
