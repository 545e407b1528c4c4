//! Validation of FHIR R4 resources against StructureDefinitions (base R4, declared and requested
//! profiles), ValueSets and CodeSystems.
//!
//! Architecture Invariant: this crate does no IO. Conformance resources arrive as bytes or strings
//! (a package `.tgz` read by the caller, JSON files read by the caller) and reports are returned as
//! values. Validation never fails and never panics: every problem is an issue of the report (R6).
//!
//! ```
//! use cdr_validation::{ProfileSet, validate};
//!
//! let mut profiles = ProfileSet::r4_core()?; // or ProfileSet::from_package(&tgz_bytes)?
//! // profiles.add_json("my-profile.json", &text)?;  // profiles read from a folder by the caller
//! let patient = serde_json::json!({"resourceType": "Patient", "gender": "female"});
//! let report = validate(&patient, &profiles, &[]);
//! assert!(!report.has_errors());
//! # Ok::<(), cdr_validation::LoadError>(())
//! ```
//!
//! See `README.md` next to this crate for what is checked, what is not, and measured figures.

mod extensions;
mod invariants;
mod limits;
mod primitives;
mod profile_set;
mod reference;
mod report;
mod slicing;
mod snapshot;
mod structure;
mod terminology;
mod validator;
mod xhtml;

pub use crate::profile_set::{ConformanceKind, LoadError, ProfileSet, R4_CORE_PACKAGE};
pub use crate::report::{ValidationIssue, ValidationReport};
pub use crate::terminology::{
    HierarchyDirection, TerminologyError, expand_value_set, hierarchy_codes,
};
pub use crate::validator::validate;
