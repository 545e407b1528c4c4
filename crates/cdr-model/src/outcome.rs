//! OperationOutcome: the one shape every error and every validation report takes on the wire.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `OperationOutcome.issue.severity` (required binding to `issue-severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    /// The FHIR code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            IssueSeverity::Fatal => "fatal",
            IssueSeverity::Error => "error",
            IssueSeverity::Warning => "warning",
            IssueSeverity::Information => "information",
        }
    }

    /// Whether an issue of this severity makes the checked content unacceptable.
    #[must_use]
    pub fn is_error(self) -> bool {
        matches!(self, IssueSeverity::Fatal | IssueSeverity::Error)
    }
}

/// `OperationOutcome.issue.code` (required binding to `issue-type`); the codes this server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Extension,
    TooCostly,
    BusinessRule,
    Conflict,
    Transient,
    Exception,
    Timeout,
    Incomplete,
    Throttled,
    Informational,
}

impl IssueType {
    /// The FHIR code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::Processing => "processing",
            IssueType::NotSupported => "not-supported",
            IssueType::Duplicate => "duplicate",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::TooLong => "too-long",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Extension => "extension",
            IssueType::TooCostly => "too-costly",
            IssueType::BusinessRule => "business-rule",
            IssueType::Conflict => "conflict",
            IssueType::Transient => "transient",
            IssueType::Exception => "exception",
            IssueType::Timeout => "timeout",
            IssueType::Incomplete => "incomplete",
            IssueType::Throttled => "throttled",
            IssueType::Informational => "informational",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    /// Human-readable text (`diagnostics`).
    pub diagnostics: String,
    /// FHIRPath expressions locating the issue (`expression`); empty when it concerns the whole input.
    pub expression: Vec<String>,
}

impl Issue {
    #[must_use]
    pub fn new(severity: IssueSeverity, code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue { severity, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    #[must_use]
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue::new(IssueSeverity::Error, code, diagnostics)
    }

    #[must_use]
    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }
}

/// An OperationOutcome resource: a list of issues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    #[must_use]
    pub fn new(issues: Vec<Issue>) -> OperationOutcome {
        OperationOutcome { issues }
    }

    #[must_use]
    pub fn single(issue: Issue) -> OperationOutcome {
        OperationOutcome { issues: vec![issue] }
    }

    /// Whether any issue is an error or fatal.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|issue| issue.severity.is_error())
    }

    /// The resource JSON. An outcome with no issues carries one `informational` issue, since
    /// `OperationOutcome.issue` has cardinality 1..*.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![
                json!({"severity": "information", "code": "informational", "diagnostics": "no issues detected"}),
            ]
        } else {
            self.issues.iter().map(issue_json).collect()
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

fn issue_json(issue: &Issue) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("severity".into(), Value::from(issue.severity.code()));
    object.insert("code".into(), Value::from(issue.code.code()));
    if !issue.diagnostics.is_empty() {
        object.insert("diagnostics".into(), Value::from(issue.diagnostics.as_str()));
    }
    if !issue.expression.is_empty() {
        object.insert("expression".into(), Value::from(issue.expression.clone()));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_outcome_still_has_an_issue() {
        let json = OperationOutcome::default().to_json();
        assert_eq!(json["issue"][0]["code"], "informational");
    }

    #[test]
    fn issue_serializes_with_expression() {
        let outcome = OperationOutcome::single(
            Issue::error(IssueType::Required, "missing subject").at("ImagingStudy.subject"),
        );
        assert_eq!(
            outcome.to_json().to_string(),
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required","diagnostics":"missing subject","expression":["ImagingStudy.subject"]}]}"#
        );
        assert!(outcome.has_errors());
    }
}
