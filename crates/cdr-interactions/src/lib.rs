//! FHIR RESTful interactions as plain async functions on an [`Engine`]: read, vread, create, update,
//! delete (plain and conditional), history, search, `$validate` and the CapabilityStatement. Creates
//! and updates are validated against profiles (`validate.rs`) before anything is written.
//!
//! API Boundary: this crate speaks FHIR, not HTTP. It knows no status codes or headers; its errors are
//! semantic ([`InteractionError`]) and `cdr-api` maps them to HTTP in one table. Writes take a
//! `cdr_store::StoreTx` internally so that a transaction Bundle can run many of them in one database
//! transaction.

mod capabilities;
mod conditional;
mod error;
mod history;
mod read;
mod search;
mod shape;
mod summary_elements;
mod terminology;
mod validate;
mod write;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;

use cdr_model::{Instant, LogicalId, ResourceType};
use cdr_search::SearchParamRegistry;
use cdr_store::Store;

pub use crate::error::InteractionError;
pub use crate::history::HistoryParams;
pub use crate::search::Handling;
pub use crate::validate::{ONTARIO_PROFILES, Profiles, ValidationMode};
pub use crate::write::{Precondition, WriteOutcome, WriteStatus};

/// The resource types this server serves, sorted.
pub const SERVED_TYPES: [&str; 14] = [
    "AuditEvent",
    "Binary",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Endpoint",
    "ImagingStudy",
    "Location",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
    "ServiceRequest",
];

/// Behaviour switches of the interaction layer.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Whether `PUT [type]/[id]` may create a resource with a client-chosen id (`updateCreate`). Off in
    /// miCDR deployments, where the server assigns every id.
    pub update_create: bool,
    /// History and search page size when the client gives no `_count`.
    pub default_page_size: u32,
    /// Largest page size a client may ask for; larger `_count` values are capped.
    pub max_page_size: u32,
    /// How much profile validation creates and updates go through.
    pub validation: ValidationMode,
    /// The Ontario MI rule: searches on ServiceRequest, DiagnosticReport, ImagingStudy and DocumentReference
    /// must carry `patient.identifier=system|value`. Off by default.
    pub require_patient_identifier: bool,
}

/// The interaction layer: a store, the profiles writes are validated against, the search parameters it
/// indexes and serves, and the configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    profiles: Arc<Profiles>,
    config: EngineConfig,
    registry: Arc<SearchParamRegistry>,
}

/// One version of a resource as the interactions return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedResource {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub version: i64,
    pub last_updated: Instant,
    /// The JSON text to serve; `None` for a deletion.
    pub body: Option<String>,
}

impl Engine {
    /// An engine over `store`; `profiles` are what writes are validated against, `registry` holds the search
    /// parameters (R4 plus any custom ones) that writes index and searches accept.
    #[must_use]
    pub fn new(
        store: Store,
        profiles: Arc<Profiles>,
        config: EngineConfig,
        registry: SearchParamRegistry,
    ) -> Engine {
        Engine { store, profiles, config, registry: Arc::new(registry) }
    }

    /// Rebuilds every search index row from the stored resources, `batch_size` per transaction; returns how
    /// many resources were indexed.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn reindex(&self, batch_size: u32) -> Result<u64, InteractionError> {
        Ok(self.store.reindex(&self.registry, batch_size).await?)
    }

    /// Whether the database holds resources but no index rows (written before the index tables existed).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn needs_reindex(&self) -> Result<bool, InteractionError> {
        Ok(self.store.needs_reindex().await?)
    }

    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ready(&self) -> Result<(), InteractionError> {
        self.store.ping().await.map_err(InteractionError::Internal)
    }

    /// The served type of this name.
    ///
    /// # Errors
    /// [`InteractionError::UnknownType`] when the name is not a served type.
    pub fn served_type(&self, name: &str) -> Result<ResourceType, InteractionError> {
        if SERVED_TYPES.binary_search(&name).is_err() {
            return Err(InteractionError::UnknownType(name.to_owned()));
        }
        ResourceType::parse(name).map_err(|_| InteractionError::UnknownType(name.to_owned()))
    }

    fn page_size(&self, requested: Option<u32>) -> u32 {
        requested.unwrap_or(self.config.default_page_size).clamp(1, self.config.max_page_size)
    }
}

/// Parses a logical id from a URL or a reference.
///
/// # Errors
/// [`InteractionError::Invalid`] naming the bad id.
pub fn parse_id(id: &str) -> Result<LogicalId, InteractionError> {
    LogicalId::parse(id).map_err(|error| InteractionError::invalid(error.to_string()))
}
