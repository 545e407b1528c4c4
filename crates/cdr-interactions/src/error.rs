//! The semantic errors of interactions.

use cdr_model::{Instant, Issue, IssueType, OperationOutcome, VersionId};
use cdr_store::StoreError;

/// Why an interaction did not happen. Each variant has one HTTP meaning, assigned in `cdr-api`.
#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    /// The request names a resource type this server does not serve.
    #[error("resource type '{0}' is not supported by this server")]
    UnknownType(String),
    /// No resource (or version) exists at the address.
    #[error("{0} is not known")]
    NotFound(String),
    /// The resource exists but its current version is a deletion.
    #[error("{address} was deleted")]
    Gone { address: String, version: VersionId, last_updated: Instant },
    /// The input is malformed or breaks a rule of the FHIR REST API; the outcome says where.
    #[error("invalid request")]
    Invalid(OperationOutcome),
    /// The resource is well-formed but breaks a profile it must conform to; the outcome lists every
    /// error (and warning).
    #[error("the resource does not conform to its profiles")]
    Unprocessable(OperationOutcome),
    /// The request asks for something this server does not do (e.g. an unsupported search parameter).
    #[error("{0}")]
    NotSupported(String),
    /// A resource body within the size limit holds more than a bound of the server allows (elements,
    /// contained resources or distinct profiles); the message names the bound.
    #[error("{0}")]
    ResourceTooCostly(String),
    /// The interaction is not allowed on this resource, e.g. update-as-create when it is switched off.
    #[error("{0}")]
    NotAllowed(String),
    /// The caller may not do this: under patient confinement, a write whose resource would be outside the
    /// compartment, or an interaction confined callers are not offered.
    #[error("{0}")]
    Forbidden(String),
    /// A precondition (`If-Match`) does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Conditional criteria matched more than one resource.
    #[error("{0}")]
    MultipleMatches(String),
    /// A concurrent request changed the resource first.
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but asks for more than the database can do in one statement (too many
    /// values or parameters); the text names the limit.
    #[error("{0}")]
    TooCostly(String),
    /// The database is overloaded for now (no free connection, or its lock stayed taken); retrying later
    /// may succeed.
    #[error("the server is busy; retry in a few seconds")]
    Busy(#[source] StoreError),
    /// The database cancelled a statement that ran past the statement timeout.
    #[error("the request took longer than the server's time limit for one database statement")]
    TimedOut(#[source] StoreError),
    /// The queue of asynchronous submissions holds its maximum of unfinished jobs.
    #[error("the server has {0} asynchronous submissions waiting or running; retry later")]
    QueueFull(u64),
    /// A GET or HEAD entry of an asynchronous transaction that is answered after the transaction commits,
    /// as its job's record says until it is: the server stopped in between, so the entry was not read.
    #[error(
        "this entry was to be read after the transaction committed, and the server stopped before; read it again"
    )]
    ReadAfterCommit,
    /// The audit trail could not be written, so the interaction is not answered (a read) or not done.
    #[error("the audit trail could not be written, so the request is not answered; retry shortly")]
    AuditUnavailable(String),
    /// An entry of a transaction or batch Bundle failed with `source`; the locations of its outcome (if
    /// it has one) are already within `Bundle.entry[index]`.
    #[error("Bundle.entry[{index}]: {source}")]
    Entry { index: usize, source: Box<InteractionError> },
    /// A failure of the server itself; the client is told nothing of its cause.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl InteractionError {
    /// Whether this is the server's failure (a 5xx: busy, timed out, the audit trail unwritable, internal)
    /// rather than the client's.
    #[must_use]
    pub fn is_server_error(&self) -> bool {
        match self {
            InteractionError::Busy(_)
            | InteractionError::TimedOut(_)
            | InteractionError::QueueFull(_)
            | InteractionError::ReadAfterCommit
            | InteractionError::AuditUnavailable(_)
            | InteractionError::Internal(_) => true,
            InteractionError::Entry { source, .. } => source.is_server_error(),
            _ => false,
        }
    }

    /// An [`InteractionError::Invalid`] with one issue.
    #[must_use]
    pub fn invalid(diagnostics: impl Into<String>) -> InteractionError {
        InteractionError::Invalid(OperationOutcome::single(Issue::error(
            IssueType::Invalid,
            diagnostics,
        )))
    }
}

impl From<StoreError> for InteractionError {
    fn from(error: StoreError) -> InteractionError {
        match error {
            StoreError::Conflict => InteractionError::Conflict(
                "the resource was changed by a concurrent request; retry".to_owned(),
            ),
            StoreError::NotSupported(message) => InteractionError::NotSupported(message),
            StoreError::LimitExceeded(message) => InteractionError::TooCostly(message),
            busy @ StoreError::Busy(_) => InteractionError::Busy(busy),
            timeout @ StoreError::Timeout(_) => InteractionError::TimedOut(timeout),
            other => InteractionError::Internal(other),
        }
    }
}
