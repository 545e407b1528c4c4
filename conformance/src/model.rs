//! The test model, after Inferno's: a suite holds groups, a group holds tests; each test runs to one result,
//! and a group's (and the suite's) result is rolled up from its tests' by priority.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::context::Ctx;

/// The result of a test, in Inferno's order of priority for the roll-up: a group is the highest result of its
/// required tests (`pass < omit < skip < fail < error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every assertion held.
    Pass,
    /// The capability is neither claimed by the server nor required by the guide: not applicable.
    Omit,
    /// The test could not run: an input or an earlier step it needs is missing.
    Skip,
    /// The server broke an assertion.
    Fail,
    /// The test could not complete: the server could not be reached, or answered what cannot be read.
    Error,
}

impl Verdict {
    /// The lowercase name used in every report.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Omit => "omit",
            Verdict::Skip => "skip",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// Why a test stopped before passing: its verdict and the message saying why.
#[derive(Debug)]
pub(crate) struct Stop {
    pub(crate) verdict: Verdict,
    pub(crate) message: String,
}

impl Stop {
    pub(crate) fn fail(message: impl Into<String>) -> Stop {
        Stop { verdict: Verdict::Fail, message: message.into() }
    }

    pub(crate) fn skip(message: impl Into<String>) -> Stop {
        Stop { verdict: Verdict::Skip, message: message.into() }
    }

    pub(crate) fn omit(message: impl Into<String>) -> Stop {
        Stop { verdict: Verdict::Omit, message: message.into() }
    }

    pub(crate) fn error(message: impl Into<String>) -> Stop {
        Stop { verdict: Verdict::Error, message: message.into() }
    }
}

/// What a test body returns: `Ok` is a pass.
pub(crate) type Outcome = Result<(), Stop>;

/// A test body: an async function of the run's context.
pub(crate) type TestFn = for<'a> fn(&'a mut Ctx) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// Fails the test with a formatted message unless the condition holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::model::Stop::fail(format!($($message)+)));
        }
    };
}
pub(crate) use ensure;

/// Turns `async fn name(ctx: &mut Ctx) -> Outcome` into a [`TestFn`].
macro_rules! body {
    ($function:path) => {{
        fn run(
            ctx: &mut $crate::context::Ctx,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = $crate::model::Outcome> + '_>>
        {
            Box::pin($function(ctx))
        }
        run as $crate::model::TestFn
    }};
}
pub(crate) use body;

/// One test.
#[derive(Debug)]
pub(crate) struct TestDef {
    /// A stable id, unique in its suite (`cs-format`).
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// What the test checks and where the rule comes from.
    pub(crate) description: &'static str,
    /// An optional test (a SHOULD) does not count in its group's result while a required one exists.
    pub(crate) optional: bool,
    pub(crate) run: TestFn,
}

impl TestDef {
    pub(crate) fn new(
        id: &'static str,
        title: &'static str,
        description: &'static str,
        run: TestFn,
    ) -> TestDef {
        TestDef { id, title, description, optional: false, run }
    }

    pub(crate) fn optional(mut self) -> TestDef {
        self.optional = true;
        self
    }
}

/// A group of tests, run in order.
#[derive(Debug)]
pub(crate) struct GroupDef {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) description: &'static str,
    pub(crate) tests: Vec<TestDef>,
}

/// An input a suite takes (`--input name=value`).
#[derive(Debug)]
pub(crate) struct InputDef {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
}

/// A suite: the kit's groups, in order, and the inputs they read.
#[derive(Debug)]
pub(crate) struct SuiteDef {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) description: &'static str,
    pub(crate) inputs: Vec<InputDef>,
    pub(crate) groups: Vec<GroupDef>,
}

/// The short id of group `g` (0-based): `1`, `2`, …
pub(crate) fn group_short_id(g: usize) -> String {
    (g + 1).to_string()
}

/// The short id of test `t` of group `g` (both 0-based): `1.01`, `1.02`, …
pub(crate) fn test_short_id(g: usize, t: usize) -> String {
    format!("{}.{:02}", g + 1, t + 1)
}

/// Inferno's roll-up: the highest result of the required results, or of all of them when every one is
/// optional; `None` for no results.
pub(crate) fn roll_up(results: impl IntoIterator<Item = (Verdict, bool)>) -> Option<Verdict> {
    let results: Vec<(Verdict, bool)> = results.into_iter().collect();
    let required =
        results.iter().filter(|(_, optional)| !optional).map(|(verdict, _)| *verdict).max();
    required.or_else(|| results.iter().map(|(verdict, _)| *verdict).max())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roll_up_takes_the_highest_required_result() {
        use Verdict::{Error, Fail, Omit, Pass, Skip};
        assert_eq!(roll_up([(Pass, false), (Omit, false)]), Some(Omit));
        assert_eq!(roll_up([(Pass, false), (Skip, false), (Omit, false)]), Some(Skip));
        assert_eq!(roll_up([(Fail, false), (Skip, false)]), Some(Fail));
        assert_eq!(roll_up([(Fail, false), (Error, false)]), Some(Error));
        // An optional failure does not fail a group that has required tests…
        assert_eq!(roll_up([(Pass, false), (Fail, true)]), Some(Pass));
        // …but counts when every test is optional.
        assert_eq!(roll_up([(Pass, true), (Fail, true)]), Some(Fail));
        assert_eq!(roll_up([]), None);
    }

    #[test]
    fn short_ids_are_numbered_from_one() {
        assert_eq!(group_short_id(0), "1");
        assert_eq!(test_short_id(0, 1), "1.02");
        assert_eq!(test_short_id(11, 9), "12.10");
    }
}
