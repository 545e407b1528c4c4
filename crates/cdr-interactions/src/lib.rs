//! FHIR RESTful interactions as plain async functions on an [`Engine`]: read, vread, create, update,
//! patch, delete (plain and conditional), history, search, `$validate` and the CapabilityStatement.
//! Creates, updates and patched resources are validated against profiles (`validate.rs`) before anything
//! is written.
//!
//! API Boundary: this crate speaks FHIR, not HTTP. It knows no status codes or headers; its errors are
//! semantic ([`InteractionError`]) and `cdr-api` maps them to HTTP in one table. Writes take a
//! `cdr_store::StoreTx` internally so that a transaction Bundle can run many of them in one database
//! transaction.

mod audit;
mod budget;
mod bundle;
mod capabilities;
mod conditional;
mod error;
mod history;
mod metrics;
mod micdr;
mod patch;
mod read;
mod routing;
mod search;
mod shape;
mod subscriptions;
mod summary_elements;
mod terminology;
mod validate;
mod validate_operation;
mod write;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;

use cdr_model::{Instant, LogicalId, Resource, ResourceType, VersionId};
use cdr_search::{QueryLimits, SearchParamRegistry};

pub use cdr_search::Compartment;
use cdr_store::{Store, StoredVersion};

use crate::budget::CpuPool;

pub use crate::audit::{
    AUDIT_EVENT, AuditAgents, AuditEntities, AuditEvent, AuditOutcome, AuditRequest, AuditSubtype,
    adopt_audit_resources, audit_event, patient_of, patient_reference,
};
pub use crate::budget::ResourceLimits;
pub use crate::bundle::{
    BundleKind, BundleOutcome, EntryOutcome, EntryResult, JobRemoval, JobRenderer, JobRequest,
    JobRun, JobStatus,
};
pub use crate::error::InteractionError;
pub use crate::history::{HistoryCursor, HistoryParams};
pub use crate::metrics::{HISTOGRAM_BUCKETS, Histogram, HistogramSnapshot};
pub use crate::micdr::{
    AcceptAll, INDEX_ENTRY_SYSTEM, LocalRegistry, PersonIdentifier, PersonRegistry, RegistryFuture,
    Verdict,
};
pub use crate::patch::{FhirPathPatch, Patch, PatchFormat};
pub use crate::search::Handling;
pub use crate::subscriptions::{
    Channel, Definition, Delivery, EventsQuery, IMAGING_REPORT_TOPIC, Notification, Payload,
    RetryPolicy, SubscriptionKind, TOPICS, Topic,
};
pub use crate::validate::{ONTARIO_PROFILES, Profiles, ValidationMode};
pub use crate::write::{Precondition, WriteOutcome, WriteStatus, reindex};
pub use cdr_store::{JobCounts, PoolUsage, SubscriptionCounts};

/// The resource types this server serves, sorted.
pub const SERVED_TYPES: [ResourceType; 15] = [
    ResourceType::known("AuditEvent"),
    ResourceType::known("Binary"),
    ResourceType::known("DiagnosticReport"),
    ResourceType::known("DocumentReference"),
    ResourceType::known("Encounter"),
    ResourceType::known("Endpoint"),
    ResourceType::known("ImagingStudy"),
    ResourceType::known("Location"),
    ResourceType::known("Organization"),
    ResourceType::known("Patient"),
    ResourceType::known("Practitioner"),
    ResourceType::known("PractitionerRole"),
    ResourceType::known("Provenance"),
    ResourceType::known("ServiceRequest"),
    ResourceType::known("Subscription"),
];

/// Behaviour switches of the interaction layer.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Whether `PUT [type]/[id]` may create a resource with a client-chosen id (`updateCreate`). Off in
    /// miCDR deployments, where the server assigns every id.
    pub update_create: bool,
    /// How large history and search pages are, and how much `_include` may add to one.
    pub limits: PageLimits,
    /// How much profile validation creates and updates go through.
    pub validation: ValidationMode,
    /// The Ontario MI rule: searches on ServiceRequest, DiagnosticReport, ImagingStudy and DocumentReference
    /// must carry `patient.identifier=system|value`. Off by default.
    pub require_patient_identifier: bool,
    /// The miCDR contribution rules (`bundle/contribution.rs`, `micdr/`): conditional PUTs of resources
    /// without ids, a Patient, Practitioner and Organization in every Bundle, references to those and to
    /// ServiceRequests that resolve, the registry check, the report lifecycle and the DocumentReference
    /// index entries; single writes follow them where they apply. Off by default.
    pub contribution_rules: bool,
}

/// The sizes of history and search pages. [`PageLimits::default`] holds the server's defaults, the one place
/// each number is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// History and search page size when the client gives no `_count`.
    pub default_page_size: u32,
    /// Largest page size a client may ask for; larger `_count` values are capped.
    pub max_page_size: u32,
    /// Most resources `_include` and `_revinclude` add to one search page (all rounds of `:iterate`
    /// together).
    pub max_included: u32,
}

impl Default for PageLimits {
    fn default() -> PageLimits {
        PageLimits { default_page_size: 20, max_page_size: 500, max_included: 1_000 }
    }
}

/// The interaction layer: a store, the profiles writes are validated against, the search parameters it
/// indexes and serves, and the configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    profiles: Arc<Profiles>,
    config: EngineConfig,
    registry: Arc<SearchParamRegistry>,
    limits: ResourceLimits,
    query_limits: QueryLimits,
    cpu: CpuPool,
    /// The patient and provider registry of the contribution rules ([`AcceptAll`] unless one is set).
    person_registry: Arc<dyn PersonRegistry>,
    /// How long profile validation took, shared by the clones of this engine.
    validation_times: Arc<Histogram>,
    /// The URL prefixes Subscription endpoints must start with; empty: any `http` URL.
    subscription_endpoints: Arc<[String]>,
    /// The patient compartment this engine's interactions are confined to ([`Engine::confined`]); `None`
    /// for an unconfined engine.
    confinement: Option<Compartment>,
    /// The group commit of audit events, shared by the clones of this engine.
    audit_log: Arc<audit::AuditLog>,
    /// The request this engine records the writes of ([`Engine::audited`]); `None`: no audit.
    audit: Option<Arc<AuditRequest>>,
}

/// One version of a resource as the interactions return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedResource {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub version: VersionId,
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
        let cpu = CpuPool::new(std::thread::available_parallelism().map_or(1, usize::from));
        let limits = ResourceLimits::default();
        let query_limits = QueryLimits::default();
        Engine {
            store,
            profiles,
            config,
            registry: Arc::new(registry),
            limits,
            query_limits,
            cpu,
            person_registry: Arc::new(AcceptAll),
            validation_times: Arc::default(),
            subscription_endpoints: Arc::from(Vec::new()),
            confinement: None,
            audit_log: Arc::default(),
            audit: None,
        }
    }

    /// This engine with every interaction confined to `compartment` (`None`: unconfined), for the requests of
    /// one caller (a SMART token with `patient/` scopes and a patient context). Confined, reads, vreads and
    /// instance histories of a resource outside the compartment are not found; searches (their chains,
    /// `_has`, `_include` and `_revinclude`, `_total`), histories and conditional matching see only the
    /// compartment; writes must leave their resource in it (else [`InteractionError::Forbidden`]) and
    /// may only change or delete resources in it; paging cursors are bound to the compartment; asynchronous
    /// submissions are refused.
    #[must_use]
    pub fn confined(&self, compartment: Option<Compartment>) -> Engine {
        let mut engine = self.clone();
        engine.confinement = compartment;
        engine
    }

    /// Whether a stored body of `resource_type/id` is visible under this engine's confinement (always, when
    /// unconfined).
    pub(crate) fn visible(&self, resource_type: ResourceType, id: &LogicalId, body: &str) -> bool {
        let Some(compartment) = &self.confinement else { return true };
        serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|json| compartment.holds(&json, &self.registry, resource_type, id.as_str()))
    }

    /// Refuses, under confinement, a resource about to be written as `resource_type/id` outside the
    /// compartment.
    pub(crate) fn confine_write(
        &self,
        resource_type: ResourceType,
        id: &LogicalId,
        resource: &Resource,
    ) -> Result<(), InteractionError> {
        let Some(compartment) = &self.confinement else { return Ok(()) };
        let json = serde_json::Value::Object(resource.json().clone());
        if compartment.holds(&json, &self.registry, resource_type, id.as_str()) {
            return Ok(());
        }
        Err(outside_compartment(compartment, resource_type))
    }

    /// Under confinement, a live current version outside the compartment is not found: a write may only
    /// change or delete the caller's own resources, and a refusal must not reveal another patient's.
    pub(crate) fn confine_existing(
        &self,
        resource_type: ResourceType,
        id: &LogicalId,
        current: Option<&StoredVersion>,
    ) -> Result<(), InteractionError> {
        match current {
            Some(stored) if !stored.deleted && !self.shows(resource_type, id, stored) => {
                Err(InteractionError::NotFound(format!("{resource_type}/{id}")))
            }
            _ => Ok(()),
        }
    }

    /// This engine accepting only Subscriptions whose endpoint starts with one of `prefixes` (and delivering
    /// only to those); an empty list allows any `http` endpoint.
    #[must_use]
    pub fn with_subscription_endpoints(mut self, prefixes: Vec<String>) -> Engine {
        self.subscription_endpoints = Arc::from(prefixes);
        self
    }

    /// Told whenever this process commits a write that recorded subscription events (a dispatcher's wake-up;
    /// it still looks from time to time for other processes' events).
    #[must_use]
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.store.outbox_signal()
    }

    /// This engine checking submitted Patients and Practitioners with `registry` (under the contribution
    /// rules; the default, [`AcceptAll`], checks nothing).
    #[must_use]
    pub fn with_person_registry(mut self, registry: Arc<dyn PersonRegistry>) -> Engine {
        self.person_registry = registry;
        self
    }

    /// This engine holding searches and conditional criteria to other bounds than
    /// [`QueryLimits::default`].
    #[must_use]
    pub fn with_query_limits(mut self, limits: QueryLimits) -> Engine {
        self.query_limits = limits;
        self
    }

    /// This engine with other bounds on resource bodies than [`ResourceLimits::default`].
    #[must_use]
    pub fn with_resource_limits(mut self, limits: ResourceLimits) -> Engine {
        self.limits = limits;
        self
    }

    /// This engine running at most `permits` validations at once (default: one per core), on the
    /// blocking pool.
    #[must_use]
    pub fn with_cpu_concurrency(mut self, permits: usize) -> Engine {
        self.cpu = CpuPool::new(permits);
        self
    }

    /// Rebuilds every search index row from the stored resources, `batch_size` per transaction; returns how
    /// many resources were indexed.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn reindex(&self, batch_size: u32) -> Result<u64, InteractionError> {
        reindex(&self.store, &self.registry, batch_size).await
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
        match ResourceType::parse(name) {
            Ok(resource_type) if SERVED_TYPES.binary_search(&resource_type).is_ok() => {
                Ok(resource_type)
            }
            _ => Err(InteractionError::UnknownType(name.to_owned())),
        }
    }

    /// The requested page size (else the default), at most the maximum and at least 1, whatever the
    /// configuration (a maximum of 0 pages by 1 rather than panicking in `clamp`).
    fn page_size(&self, requested: Option<u32>) -> u32 {
        let limits = self.config.limits;
        requested.unwrap_or(limits.default_page_size).min(limits.max_page_size).max(1)
    }
}

/// The refusal of a write whose resource would be outside the caller's compartment.
pub(crate) fn outside_compartment(
    compartment: &Compartment,
    resource_type: ResourceType,
) -> InteractionError {
    let patient = compartment.patient_id();
    let params = Compartment::params(resource_type);
    let rule = if params.is_empty() {
        format!("{resource_type} is in no patient's compartment")
    } else {
        format!("its {} must reference Patient/{patient}", params.join(" or "))
    };
    InteractionError::Forbidden(format!(
        "this request is confined to the compartment of Patient/{patient}, and the {resource_type} written \
         would not be in it: {rule}"
    ))
}

/// Parses a logical id from a URL or a reference.
///
/// # Errors
/// [`InteractionError::Invalid`] naming the bad id.
pub fn parse_id(id: &str) -> Result<LogicalId, InteractionError> {
    LogicalId::parse(id).map_err(|error| InteractionError::invalid(error.to_string()))
}
