//! FHIR R4 model pieces that the server interprets: identifier newtypes, the lossless resource JSON
//! wrapper, and the OperationOutcome and Bundle envelopes.
//!
//! Architecture Invariant: this crate does no IO, has no async, and knows nothing of HTTP or SQL.
//! Resources cross the wire as their own JSON; only what the server reads or writes is typed here.

mod bundle;
pub mod calendar;
mod id;
mod instant;
mod outcome;
mod resource;
mod resource_type;

pub use crate::bundle::{Bundle, BundleEntry, BundleLink, BundleType};
pub use crate::id::{ETag, IdError, LogicalId, VersionId};
pub use crate::instant::{Instant, InstantError};
pub use crate::outcome::{Issue, IssueSeverity, IssueType, OperationOutcome};
pub use crate::resource::{Resource, ResourceError};
pub use crate::resource_type::{ALL_RESOURCE_TYPES, ResourceType};
