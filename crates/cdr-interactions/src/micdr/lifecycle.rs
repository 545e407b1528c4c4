//! The report lifecycle of the miCDR (Ontario MI guide §8 items 17 and 18): which `DiagnosticReport.status`
//! an update may move a report to, and the addendum extension.
//!
//! Allowed: `registered`/`partial`/`preliminary` → any of those or `final`; `final` →
//! `amended`/`corrected`/`appended`; `amended`/`corrected`/`appended` → any of those; anything →
//! `entered-in-error` or `cancelled`; a status to itself. Anything else (`final` → `preliminary`, or out of
//! `cancelled`) is refused with 422 `business-rule` at `DiagnosticReport.status`: the request is well-formed and
//! no concurrent change is involved (which 409 would say), it breaks a rule of the content.
//!
//! Corrections are updates of the same report (each version stays readable with `_history`); an addendum
//! is a new DiagnosticReport whose extension [`ADDENDUM_OF`] references the original, which must resolve to
//! a DiagnosticReport (`contribution.rs` and `single.rs` check that it does).

use cdr_model::{Issue, IssueType, OperationOutcome};
use serde_json::Value;

use crate::InteractionError;

/// The extension of an addendum: a Reference(DiagnosticReport) to the report it adds to.
pub(crate) const ADDENDUM_OF: &str =
    "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of";

/// Whether a report may go from `from` to `to`.
fn allowed(from: &str, to: &str) -> bool {
    const OPEN: [&str; 3] = ["registered", "partial", "preliminary"];
    const REVISED: [&str; 3] = ["amended", "corrected", "appended"];
    from == to
        || matches!(to, "entered-in-error" | "cancelled")
        || (OPEN.contains(&from) && (OPEN.contains(&to) || to == "final"))
        || ((from == "final" || REVISED.contains(&from)) && REVISED.contains(&to))
}

/// Checks the status change of a DiagnosticReport update from the stored body `current` to `new`.
pub(crate) fn check_transition(current: &Value, new: &Value) -> Result<(), InteractionError> {
    let status = |report: &Value| {
        report.get("status").and_then(Value::as_str).unwrap_or_default().to_owned()
    };
    let (from, to) = (status(current), status(new));
    if allowed(&from, &to) {
        return Ok(());
    }
    Err(InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(
            IssueType::BusinessRule,
            format!(
                "a report's status cannot go from '{from}' to '{to}': registered, partial and preliminary reports become final; final reports are amended, corrected or appended; any report may be entered-in-error or cancelled"
            ),
        )
        .at("DiagnosticReport.status"),
    )))
}

/// The addendum references of a resource: each `ext-di-addendum-of` extension's reference text and its
/// element relative to the resource (`extension[1].valueReference`).
pub(crate) fn addenda(resource: &Value) -> Vec<(String, String)> {
    let Some(extensions) = resource.get("extension").and_then(Value::as_array) else {
        return Vec::new();
    };
    extensions
        .iter()
        .enumerate()
        .filter(|(_, extension)| extension.get("url").and_then(Value::as_str) == Some(ADDENDUM_OF))
        .map(|(position, extension)| {
            let reference = extension
                .pointer("/valueReference/reference")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (reference.to_owned(), format!("extension[{position}].valueReference"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn the_allowed_transitions() {
        for (from, to) in [
            ("registered", "partial"),
            ("partial", "preliminary"),
            ("preliminary", "registered"),
            ("preliminary", "final"),
            ("final", "amended"),
            ("final", "corrected"),
            ("final", "appended"),
            ("amended", "corrected"),
            ("appended", "amended"),
            ("final", "final"),
            ("cancelled", "cancelled"),
            ("final", "entered-in-error"),
            ("amended", "cancelled"),
            ("registered", "entered-in-error"),
        ] {
            assert!(allowed(from, to), "{from} → {to}");
        }
        for (from, to) in [
            ("final", "preliminary"),
            ("amended", "final"),
            ("preliminary", "amended"),
            ("cancelled", "final"),
            ("entered-in-error", "final"),
            ("final", "unknown"),
        ] {
            assert!(!allowed(from, to), "{from} → {to}");
        }
    }
}
