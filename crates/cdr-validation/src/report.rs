//! `ValidationReport`: every problem found in one resource, each located by a FHIRPath expression.

use std::collections::HashSet;
use std::fmt;

use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

/// One problem (or note) about the validated resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidationIssue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    /// FHIRPath expression locating the element, e.g. `Patient.identifier[0].system`.
    pub expression: String,
    pub message: String,
}

/// The outcome of validating one resource: a list of issues, never a `Result` (R6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub issues: Vec<ValidationIssue>,
}

impl ValidationReport {
    /// Whether any issue is an error or fatal.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|issue| issue.severity.is_error())
    }

    /// The error and fatal issues.
    pub fn errors(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues.iter().filter(|issue| issue.severity.is_error())
    }

    /// The report as an OperationOutcome.
    #[must_use]
    pub fn to_operation_outcome(&self) -> OperationOutcome {
        let issues = self
            .issues
            .iter()
            .map(|issue| {
                Issue::new(issue.severity, issue.code, issue.message.clone())
                    .at(issue.expression.clone())
            })
            .collect();
        OperationOutcome::new(issues)
    }

    /// Drops exact duplicates (the same check reached through two profiles), keeping the first.
    pub(crate) fn dedup(&mut self) {
        let mut seen = HashSet::new();
        self.issues.retain(|issue| seen.insert(issue.clone()));
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} @ {}: {}",
            self.severity.code(),
            self.code.code(),
            self.expression,
            self.message
        )
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in &self.issues {
            writeln!(f, "{issue}")?;
        }
        Ok(())
    }
}
