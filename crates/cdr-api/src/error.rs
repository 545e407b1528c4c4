//! `ApiError` and the one table that maps every error to an HTTP status and an OperationOutcome.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr_interactions::InteractionError;
use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome};

use crate::audit::AuditReason;
use crate::bounds::RETRY_AFTER_SECONDS;
use crate::respond::FHIR_JSON;

/// Every way a request can fail at the HTTP surface.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The interaction layer refused or failed.
    #[error(transparent)]
    Interaction(#[from] InteractionError),
    /// A header or the URL is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No route matches the path.
    #[error("no FHIR endpoint at {0}")]
    NoRoute(String),
    /// The route exists but not for this HTTP method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The client accepts no format this server produces.
    #[error("{0}")]
    NotAcceptable(String),
    /// The body's media type is not FHIR JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the configured limit.
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// Too many requests are in flight; the client may retry after `Retry-After`.
    #[error("the server is busy: too many requests in flight; retry shortly")]
    Overloaded,
    /// The request took longer than the request timeout.
    #[error("the request took longer than the limit of {} s", .0.as_secs_f64())]
    RequestTimeout(Duration),
    /// The client sent nothing of the body for longer than the body-read timeout.
    #[error("no part of the request body arrived within {} s", .0.as_secs_f64())]
    BodyTimeout(Duration),
    /// No bearer token came with a request that needs one (`--auth smart`).
    #[error("this server needs a bearer token: send Authorization: Bearer <access token>")]
    MissingToken,
    /// The bearer token is malformed, expired, not yet valid, for another audience or issuer, or its
    /// signature does not verify.
    #[error("the bearer token is refused: {0}")]
    InvalidToken(String),
    /// The token is valid but its scopes do not allow the interaction.
    #[error("{0}")]
    Forbidden(String),
    /// The handler panicked; caught so the client still gets an OperationOutcome.
    #[error("the request handler panicked: {0}")]
    Panic(String),
}

/// Seconds a client is asked to wait (`Retry-After`) before retrying any other 503 (a busy or slow
/// database, a request past its deadline).
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 3;

/// What a failed response is made of.
struct Mapping {
    status: StatusCode,
    code: IssueType,
    severity: IssueSeverity,
}

/// A failure of the server itself.
const INTERNAL: Mapping = Mapping {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    code: IssueType::Exception,
    severity: IssueSeverity::Fatal,
};

const fn map(status: StatusCode, code: IssueType) -> Mapping {
    Mapping { status, code, severity: IssueSeverity::Error }
}

impl ApiError {
    /// The mapping table: the only place where errors meet status codes.
    fn mapping(&self) -> Mapping {
        match self {
            ApiError::Interaction(error) => interaction_mapping(error),
            ApiError::BadRequest(_) => map(StatusCode::BAD_REQUEST, IssueType::Invalid),
            ApiError::NoRoute(_) => map(StatusCode::NOT_FOUND, IssueType::NotFound),
            ApiError::MethodNotAllowed(_) => {
                map(StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported)
            }
            ApiError::NotAcceptable(_) => map(StatusCode::NOT_ACCEPTABLE, IssueType::NotSupported),
            ApiError::UnsupportedMediaType(_) => {
                map(StatusCode::UNSUPPORTED_MEDIA_TYPE, IssueType::NotSupported)
            }
            ApiError::PayloadTooLarge(_) => map(StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooLong),
            ApiError::Overloaded => map(StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient),
            ApiError::RequestTimeout(_) => map(StatusCode::SERVICE_UNAVAILABLE, IssueType::Timeout),
            ApiError::BodyTimeout(_) => map(StatusCode::REQUEST_TIMEOUT, IssueType::Timeout),
            ApiError::MissingToken | ApiError::InvalidToken(_) => {
                map(StatusCode::UNAUTHORIZED, IssueType::Login)
            }
            ApiError::Forbidden(_) => map(StatusCode::FORBIDDEN, IssueType::Forbidden),
            ApiError::Panic(_) => INTERNAL,
        }
    }

    fn is_internal(&self) -> bool {
        match self {
            ApiError::Interaction(error) => is_internal(error),
            ApiError::Panic(_) => true,
            _ => false,
        }
    }

    /// The status and OperationOutcome this error is answered with.
    pub(crate) fn status_and_outcome(&self) -> (StatusCode, OperationOutcome) {
        match self {
            ApiError::Interaction(error) => interaction_response(error),
            other => {
                let mapping = other.mapping();
                let issue = Issue::new(mapping.severity, mapping.code, other.to_string());
                (mapping.status, OperationOutcome::single(issue))
            }
        }
    }
}

/// The status and OperationOutcome of an interaction error: the response to a request, or the
/// `response` of a failed Bundle entry. Internal errors say nothing of their cause.
pub(crate) fn interaction_response(error: &InteractionError) -> (StatusCode, OperationOutcome) {
    let mapping = interaction_mapping(error);
    let outcome = match entry_source(error) {
        (_, InteractionError::Invalid(outcome) | InteractionError::Unprocessable(outcome)) => {
            outcome.clone()
        }
        (index, _) if is_internal(error) => {
            located(Issue::new(mapping.severity, mapping.code, INTERNAL_DIAGNOSTICS), index)
        }
        (index, _) => located(Issue::new(mapping.severity, mapping.code, error.to_string()), index),
    };
    (mapping.status, outcome)
}

/// The status (as a number) and the OperationOutcome the API answers `error` with, as a response or as a
/// failed Bundle entry's `response`: for code that runs the engine in process and reports its failures as
/// the API would (`imaging-cdr import`). Internal errors say nothing of their cause here either.
#[must_use]
pub fn interaction_outcome(error: &InteractionError) -> (u16, OperationOutcome) {
    let (status, outcome) = interaction_response(error);
    (status.as_u16(), outcome)
}

/// The mapping of the interaction layer's errors; an entry of a Bundle maps as its cause does.
fn interaction_mapping(error: &InteractionError) -> Mapping {
    match error {
        InteractionError::UnknownType(_) => map(StatusCode::NOT_FOUND, IssueType::NotSupported),
        InteractionError::NotFound(_) => map(StatusCode::NOT_FOUND, IssueType::NotFound),
        InteractionError::Gone { .. } => map(StatusCode::GONE, IssueType::Deleted),
        InteractionError::Invalid(_) => map(StatusCode::BAD_REQUEST, IssueType::Invalid),
        InteractionError::Unprocessable(_) => {
            map(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Processing)
        }
        InteractionError::NotSupported(_) => map(StatusCode::BAD_REQUEST, IssueType::NotSupported),
        InteractionError::ResourceTooCostly(_) => {
            map(StatusCode::UNPROCESSABLE_ENTITY, IssueType::TooCostly)
        }
        InteractionError::NotAllowed(_) => {
            map(StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported)
        }
        InteractionError::Forbidden(_) => map(StatusCode::FORBIDDEN, IssueType::Forbidden),
        InteractionError::PreconditionFailed(_) => {
            map(StatusCode::PRECONDITION_FAILED, IssueType::Conflict)
        }
        InteractionError::MultipleMatches(_) => {
            map(StatusCode::PRECONDITION_FAILED, IssueType::MultipleMatches)
        }
        InteractionError::Conflict(_) => map(StatusCode::CONFLICT, IssueType::Conflict),
        InteractionError::TooCostly(_) => map(StatusCode::BAD_REQUEST, IssueType::TooCostly),
        InteractionError::Busy(_) => map(StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient),
        InteractionError::TimedOut(_) => map(StatusCode::SERVICE_UNAVAILABLE, IssueType::Timeout),
        InteractionError::QueueFull(_)
        | InteractionError::ReadAfterCommit
        | InteractionError::AuditUnavailable(_) => {
            map(StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient)
        }
        InteractionError::Entry { source, .. } => interaction_mapping(source),
        InteractionError::Internal(_) => INTERNAL,
    }
}

fn is_internal(error: &InteractionError) -> bool {
    match error {
        InteractionError::Internal(_) => true,
        InteractionError::Entry { source, .. } => is_internal(source),
        _ => false,
    }
}

/// The entry an error belongs to, if any, and its cause.
fn entry_source(error: &InteractionError) -> (Option<usize>, &InteractionError) {
    match error {
        InteractionError::Entry { index, source } => (Some(*index), entry_source(source).1),
        other => (None, other),
    }
}

/// A one-issue outcome, located at its Bundle entry when it has one.
fn located(issue: Issue, index: Option<usize>) -> OperationOutcome {
    OperationOutcome::single(match index {
        Some(index) => issue.at(format!("Bundle.entry[{index}]")),
        None => issue,
    })
}

/// Marks a response made from an internal error; the logging middleware logs the cause with the
/// request id and puts the id in the diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct InternalErrorCause(pub(crate) String);

/// Marks a 503 response with its cause; the logging middleware logs it at warn level with the request id,
/// so that an operator sees overload (pool exhaustion, slow statements, the in-flight cap) in the log.
#[derive(Debug, Clone)]
pub(crate) struct UnavailableCause(pub(crate) String);

/// The diagnostics of internal errors: the cause is logged, never sent.
pub(crate) const INTERNAL_DIAGNOSTICS: &str = "internal server error";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, outcome) = self.status_and_outcome();
        let reason =
            outcome.issues.iter().map(|issue| issue.diagnostics.as_str()).collect::<Vec<_>>();
        let reason = AuditReason(reason.join("; "));
        let mut response = (status, outcome.to_json().to_string()).into_response();
        response.extensions_mut().insert(reason);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        if let ApiError::Interaction(InteractionError::Gone { version, last_updated, .. }) = &self
            && let Ok(etag) = HeaderValue::from_str(&version.etag().to_string())
        {
            response.headers_mut().insert(header::ETAG, etag);
            if let Ok(date) = HeaderValue::from_str(&last_updated.to_http_date()) {
                response.headers_mut().insert(header::LAST_MODIFIED, date);
            }
        }
        // RFC 6750 §3: the challenge; `error` only when a token was sent (§3.1).
        let challenge = match &self {
            ApiError::MissingToken => Some(r#"Bearer realm="imaging-cdr""#.to_owned()),
            ApiError::InvalidToken(reason) => Some(format!(
                r#"Bearer realm="imaging-cdr", error="invalid_token", error_description="{}""#,
                reason.replace(['"', '\\'], "'")
            )),
            _ => None,
        };
        if let Some(challenge) = challenge.and_then(|text| HeaderValue::from_str(&text).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            response.extensions_mut().insert(crate::caller::Refusal { reason: self.to_string() });
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let seconds = if matches!(self, ApiError::Overloaded) {
                RETRY_AFTER_SECONDS
            } else {
                UNAVAILABLE_RETRY_AFTER_SECONDS
            };
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response.extensions_mut().insert(UnavailableCause(error_chain(&self)));
        }
        if self.is_internal() {
            response.extensions_mut().insert(InternalErrorCause(error_chain(&self)));
        }
        response
    }
}

/// The error and all its sources, for the log.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak() {
        let error = ApiError::Panic("index out of bounds at src/secret.rs".into());
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions().get::<InternalErrorCause>().unwrap();
        assert!(cause.0.contains("secret.rs"));
    }

    #[test]
    fn refusals_carry_their_reason_for_the_audit() {
        for error in [
            ApiError::MissingToken,
            ApiError::InvalidToken("expired".to_owned()),
            ApiError::Forbidden("forbidden: not eligible".to_owned()),
            ApiError::Interaction(InteractionError::Forbidden("outside".to_owned())),
        ] {
            let text = error.to_string();
            let response = error.into_response();
            assert_eq!(response.extensions().get::<crate::caller::Refusal>().unwrap().reason, text);
        }
        let response = ApiError::BadRequest("no".to_owned()).into_response();
        assert!(response.extensions().get::<crate::caller::Refusal>().is_none());
    }

    #[test]
    fn unavailable_answers_carry_their_cause_for_the_log() {
        let response = ApiError::Overloaded.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let cause = response.extensions().get::<UnavailableCause>().unwrap();
        assert!(cause.0.contains("too many requests in flight"), "{}", cause.0);
    }
}
