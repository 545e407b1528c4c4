//! create, update and delete, plain and conditional, and [`reindex`]. Each public method runs in one store
//! transaction; the `*_in` steps take that transaction so a Bundle can chain them in a single one.
//!
//! Index rows are computed here and only here (`cdr_search::extract`), for every written version and for a
//! reindex of the stored bodies; the store writes the rows it is given.

use cdr_model::{
    Instant, Issue, IssueType, LogicalId, OperationOutcome, Resource, ResourceError, ResourceType,
    VersionId,
};
use cdr_search::{IndexEntry, SearchParamRegistry, extract};
use cdr_store::{LiveBody, NewVersion, Store, StoreError, StoreTx, StoredVersion, WriteMethod};
use serde_json::Value;

use crate::audit::{AuditEntities, AuditSubtype};
use crate::bundle::{conditional, rewrite};
use crate::conditional::parse_criteria;
use crate::routing::route;
use crate::terminology::expand_terminology;
use crate::{Engine, InteractionError, VersionedResource, parse_id};

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// A new resource (or a deleted one brought back) now exists.
    Created,
    /// A new version of an existing resource was written.
    Updated,
    /// An update whose content equals the current version's wrote nothing; the current version stands.
    Unchanged,
    /// A conditional create found the resource already there and wrote nothing.
    Existing,
    /// A deletion version was written.
    Deleted,
    /// The resource was already deleted, or no resource matched a conditional delete; nothing was written.
    NothingToDelete,
}

/// The result of a write: what happened and the version concerned (none when nothing matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub status: WriteStatus,
    pub resource: Option<VersionedResource>,
}

/// A version precondition of an update (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// The current version must be this one.
    IfMatch(VersionId),
}

impl Precondition {
    /// Whether an update may apply to `current`, the current version.
    #[must_use]
    pub fn allows(self, current: VersionId) -> bool {
        match self {
            Precondition::None => true,
            Precondition::IfMatch(expected) => expected == current,
        }
    }
}

/// Whether `resource`, updating `id` to `stored`, changes nothing: `stored` is live and has the same
/// content but for its version stamp ([`Resource::same_content`]). An update that changes nothing writes no
/// new version (as HAPI and the Microsoft FHIR server do): resubmitting the same Bundle, or naming the same
/// hospital and practitioners in every Bundle, then leaves no history and no dead index rows behind.
pub(crate) fn unchanged(resource: &Resource, id: &LogicalId, stored: &StoredVersion) -> bool {
    let Some(body) = stored.body.as_deref().filter(|_| !stored.deleted) else { return false };
    let Ok(stored) = Resource::from_slice(body.as_bytes()) else { return false };
    if resource.id().is_some_and(|own| own != id.as_str()) {
        return false;
    }
    let mut resource = resource.clone();
    resource.set_id(id);
    resource.same_content(&stored)
}

impl Engine {
    /// create, or conditional create when `if_none_exist` holds criteria. `base` is this server's FHIR
    /// base URL (for the index entry of the contribution rules).
    ///
    /// # Errors
    /// Unknown type, invalid body or criteria, several matches, a broken contribution rule, or a storage
    /// failure.
    pub async fn create(
        &self,
        type_name: &str,
        body: &[u8],
        if_none_exist: Option<&str>,
        base: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let resource = parse_body(resource_type, body)?;
        refuse_outside_bundle(&resource)?;
        self.check_submission(&resource, true, if_none_exist.is_some()).await?;
        let resource = self.check_for_write(resource).await?;
        let mut tx = self.store.begin().await?;
        if let Some(query) = if_none_exist {
            let matches = self.conditional_matches(&mut tx, resource_type, query).await?;
            match matches.as_slice() {
                [] => {}
                [id] => {
                    drop(tx);
                    let existing = self.read(resource_type.as_str(), id.as_str()).await?;
                    return Ok(WriteOutcome {
                        status: WriteStatus::Existing,
                        resource: Some(existing),
                    });
                }
                _ => return Err(multiple_matches(resource_type, query)),
            }
        }
        let id = new_id();
        self.confine_write(resource_type, &id, &resource)?;
        let created = write_version(
            &mut tx,
            &self.registry,
            resource_type,
            &id,
            resource,
            VersionId::FIRST,
            WriteMethod::Create,
        )
        .await?;
        self.after_single_write(&mut tx, &created, base).await?;
        self.commit_audited(tx, &[(None, AuditEntities::of_version(&created))]).await?;
        Ok(WriteOutcome { status: WriteStatus::Created, resource: Some(created) })
    }

    /// update of `type/id`; `base` as for [`Engine::create`].
    ///
    /// # Errors
    /// Unknown type, invalid id or body, failed precondition, update-as-create when switched off, a
    /// concurrent change, a broken contribution rule, or a storage failure.
    pub async fn update(
        &self,
        type_name: &str,
        id: &str,
        body: &[u8],
        precondition: Precondition,
        base: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let id = parse_id(id)?;
        let resource = parse_body(resource_type, body)?;
        check_update_id(&resource, &id)?;
        refuse_outside_bundle(&resource)?;
        self.check_submission(&resource, false, true).await?;
        let resource = self.check_for_write(resource).await?;
        let mut tx = self.store.begin().await?;
        let outcome =
            self.update_in(&mut tx, resource_type, &id, resource, precondition, base).await?;
        self.commit_audited(tx, &audit_entities(&outcome)).await?;
        Ok(outcome)
    }

    /// Conditional update: `PUT type?criteria`; `base` as for [`Engine::create`].
    ///
    /// # Errors
    /// Unknown type, invalid body or criteria, several matches, an id in the body that is not the
    /// matched one, or (with no match) the id of an existing resource, update-as-create when switched off,
    /// failed precondition, a broken contribution rule, or a storage failure.
    pub async fn conditional_update(
        &self,
        type_name: &str,
        query: &str,
        body: &[u8],
        precondition: Precondition,
        base: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let resource = parse_body(resource_type, body)?;
        refuse_outside_bundle(&resource)?;
        self.check_submission(&resource, true, true).await?;
        let resource = self.check_for_write(resource).await?;
        let mut tx = self.store.begin().await?;
        let matches = self.conditional_matches(&mut tx, resource_type, query).await?;
        let outcome = match (matches.as_slice(), resource.id()) {
            ([], None) => {
                let id = new_id();
                let created = write_version(
                    &mut tx,
                    &self.registry,
                    resource_type,
                    &id,
                    resource,
                    VersionId::FIRST,
                    WriteMethod::Create,
                )
                .await?;
                self.after_single_write(&mut tx, &created, base).await?;
                WriteOutcome { status: WriteStatus::Created, resource: Some(created) }
            }
            ([], Some(body_id)) => {
                // Nothing matches: an id that exists is another resource, which the criteria did not
                // select (409); a new one is an update-as-create, refused when that is off (R5 3.1.0.4.3).
                let id = parse_id(body_id)?;
                if tx.current(resource_type, &id).await?.is_some() {
                    return Err(InteractionError::Conflict(format!(
                        "no {resource_type} matches '{query}', and {resource_type}/{id} named by the resource's id exists: a conditional update only changes the resource its criteria match"
                    )));
                }
                self.update_in(&mut tx, resource_type, &id, resource, precondition, base).await?
            }
            ([found], body_id) => {
                if let Some(body_id) = body_id.filter(|body_id| *body_id != found.as_str()) {
                    return Err(invalid_at(
                        format!(
                            "the resource id '{body_id}' is not the id '{found}' of the resource matching '{query}'"
                        ),
                        "id",
                    ));
                }
                self.update_in(&mut tx, resource_type, found, resource, precondition, base).await?
            }
            _ => return Err(multiple_matches(resource_type, query)),
        };
        self.commit_audited(tx, &audit_entities(&outcome)).await?;
        Ok(outcome)
    }

    /// Parses conditional criteria, takes the lock of their canonical form and returns the ids of at most
    /// two matches.
    pub(crate) async fn conditional_matches(
        &self,
        tx: &mut StoreTx,
        resource_type: ResourceType,
        query: &str,
    ) -> Result<Vec<LogicalId>, InteractionError> {
        let mut criteria =
            parse_criteria(&self.registry, &self.query_limits, resource_type, query)?;
        criteria.query.compartment.clone_from(&self.confinement);
        expand_terminology(&mut criteria.query, self.profiles.set())?;
        tx.lock(&criteria.lock_key).await?;
        let types = [resource_type];
        let now_micros = Instant::now().millis() * 1_000;
        Ok(tx.find(&criteria.query, &types, now_micros, 2).await?)
    }

    async fn update_in(
        &self,
        tx: &mut StoreTx,
        resource_type: ResourceType,
        id: &LogicalId,
        resource: Resource,
        precondition: Precondition,
        base: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let stored = tx.current_version(resource_type, id).await?;
        self.confine_existing(resource_type, id, stored.as_ref())?;
        let stored_body = stored
            .as_ref()
            .filter(|stored| !stored.deleted)
            .and_then(|stored| stored.body.as_deref());
        if let Some(body) = stored_body {
            self.check_report_update(&resource, id, body)?;
        }
        if let Some(stored) = stored.as_ref().filter(|stored| {
            precondition.allows(stored.version) && unchanged(&resource, id, stored)
        }) {
            // Nothing changes: no new version; the answer is the current one.
            return Ok(WriteOutcome {
                status: WriteStatus::Unchanged,
                resource: Some(VersionedResource {
                    resource_type,
                    id: id.clone(),
                    version: stored.version,
                    last_updated: stored.last_updated,
                    body: stored.body.clone(),
                }),
            });
        }
        let current = stored.map(|stored| (stored.version, stored.deleted));
        let (version, status) = match (current, precondition) {
            (Some((current, _)), Precondition::IfMatch(expected)) if current != expected => {
                return Err(InteractionError::PreconditionFailed(format!(
                    "If-Match expects version {expected} of {resource_type}/{id}, but the current version is {current}"
                )));
            }
            (Some((current, deleted)), _) => {
                (current.next(), if deleted { WriteStatus::Created } else { WriteStatus::Updated })
            }
            (None, Precondition::IfMatch(expected)) => {
                return Err(InteractionError::PreconditionFailed(format!(
                    "If-Match expects version {expected} of {resource_type}/{id}, which does not exist"
                )));
            }
            (None, Precondition::None) if !self.config.update_create => {
                return Err(InteractionError::NotAllowed(format!(
                    "{resource_type}/{id} does not exist and this server assigns ids itself (update as create is off); use POST to create"
                )));
            }
            (None, Precondition::None) => (VersionId::FIRST, WriteStatus::Created),
        };
        let method =
            if version == VersionId::FIRST { WriteMethod::Create } else { WriteMethod::Update };
        self.confine_write(resource_type, id, &resource)?;
        let written =
            write_version(tx, &self.registry, resource_type, id, resource, version, method).await?;
        self.after_single_write(tx, &written, base).await?;
        Ok(WriteOutcome { status, resource: Some(written) })
    }

    /// delete of `type/id`. Deleting a deleted resource succeeds and writes nothing.
    ///
    /// # Errors
    /// Unknown type, invalid id, a resource that never existed, or a storage failure.
    pub async fn delete(
        &self,
        type_name: &str,
        id: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let id = parse_id(id)?;
        let mut tx = self.store.begin().await?;
        if self.confinement.is_some() {
            let current = tx.current_version(resource_type, &id).await?;
            self.confine_existing(resource_type, &id, current.as_ref())?;
        }
        let Some(outcome) = delete_in(&mut tx, resource_type, &id).await? else {
            return Err(InteractionError::NotFound(format!("{resource_type}/{id}")));
        };
        self.after_delete(&mut tx, &outcome).await?;
        self.commit_audited(tx, &audit_entities(&outcome)).await?;
        Ok(outcome)
    }

    /// Conditional delete: `DELETE type?criteria`; no match is not an error.
    ///
    /// # Errors
    /// Unknown type, invalid criteria, several matches, or a storage failure.
    pub async fn conditional_delete(
        &self,
        type_name: &str,
        query: &str,
    ) -> Result<WriteOutcome, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let mut tx = self.store.begin().await?;
        let matches = self.conditional_matches(&mut tx, resource_type, query).await?;
        let outcome = match matches.as_slice() {
            [] => WriteOutcome { status: WriteStatus::NothingToDelete, resource: None },
            [found] => delete_in(&mut tx, resource_type, found)
                .await?
                .unwrap_or(WriteOutcome { status: WriteStatus::NothingToDelete, resource: None }),
            _ => return Err(multiple_matches(resource_type, query)),
        };
        self.after_delete(&mut tx, &outcome).await?;
        self.commit_audited(tx, &audit_entities(&outcome)).await?;
        Ok(outcome)
    }

    /// A deletion's index entry is marked (contribution rules); a deletion has no base to link to.
    async fn after_delete(
        &self,
        tx: &mut StoreTx,
        outcome: &WriteOutcome,
    ) -> Result<(), InteractionError> {
        match &outcome.resource {
            Some(deletion) => self.after_single_write(tx, deletion, "").await,
            None => Ok(()),
        }
    }
}

impl Engine {
    /// Commits a write transaction after the steps that derive writes from its versions
    /// ([`StoreTx::written`]): the `recipient` rows of the reports it wrote or whose orders it wrote
    /// (`routing.rs`), then the events of the subscriptions its versions match (`subscriptions/`, last, so
    /// criteria see the routing). Every write interaction commits through here.
    pub(crate) async fn commit(&self, mut tx: StoreTx) -> Result<(), InteractionError> {
        let written = tx.written().to_vec();
        route(&mut tx, &self.registry, &written).await?;
        self.record_events(&mut tx).await?;
        Ok(tx.commit().await?)
    }
}

/// The audit entities of a single write: the version written or answered, else (nothing to delete) none.
pub(crate) fn audit_entities(outcome: &WriteOutcome) -> Vec<(Option<AuditSubtype>, AuditEntities)> {
    let entities = outcome.resource.as_ref().map(AuditEntities::of_version).unwrap_or_default();
    vec![(None, entities)]
}

/// Deletes a resource inside `tx`; `None` when it never existed.
async fn delete_in(
    tx: &mut StoreTx,
    resource_type: ResourceType,
    id: &LogicalId,
) -> Result<Option<WriteOutcome>, InteractionError> {
    let Some((current, deleted)) = tx.current(resource_type, id).await? else {
        return Ok(None);
    };
    if deleted {
        return Ok(Some(WriteOutcome { status: WriteStatus::NothingToDelete, resource: None }));
    }
    let version = current.next();
    let last_updated = Instant::now();
    tx.write(&NewVersion {
        res_type: resource_type,
        res_id: id,
        version,
        last_updated,
        method: WriteMethod::Delete,
        body: None,
        index: &[],
    })
    .await?;
    let deletion =
        VersionedResource { resource_type, id: id.clone(), version, last_updated, body: None };
    Ok(Some(WriteOutcome { status: WriteStatus::Deleted, resource: Some(deletion) }))
}

/// Stamps `id` and `meta` on the resource and writes it as `version`.
pub(crate) async fn write_version(
    tx: &mut StoreTx,
    registry: &SearchParamRegistry,
    resource_type: ResourceType,
    id: &LogicalId,
    mut resource: Resource,
    version: VersionId,
    method: WriteMethod,
) -> Result<VersionedResource, InteractionError> {
    let last_updated = Instant::now();
    resource.set_id(id);
    resource.set_meta(&version.to_string(), &last_updated.to_fhir());
    let body = resource.to_json_string();
    let json = Value::Object(resource.into_json());
    let index = index_entries(&json, registry, resource_type, id);
    tx.write(&NewVersion {
        res_type: resource_type,
        res_id: id,
        version,
        last_updated,
        method,
        body: Some(&body),
        index: &index,
    })
    .await?;
    Ok(VersionedResource { resource_type, id: id.clone(), version, last_updated, body: Some(body) })
}

/// The index rows of a resource; a value a parameter's expression cannot index is logged and left out.
pub(crate) fn index_entries(
    json: &Value,
    registry: &SearchParamRegistry,
    resource_type: ResourceType,
    id: &LogicalId,
) -> Vec<IndexEntry> {
    let extraction = extract(json, registry, resource_type);
    for failure in &extraction.failures {
        tracing::warn!(%resource_type, %id, %failure, "search parameter not indexed");
    }
    extraction.entries
}

/// Rebuilds every index row from the stored bodies of the live resources, `batch_size` resources per
/// transaction, with the parameters of `registry`; returns the number of resources indexed.
///
/// # Errors
/// On storage failure, or a stored body that is not JSON.
pub async fn reindex(
    store: &Store,
    registry: &SearchParamRegistry,
    batch_size: u32,
) -> Result<u64, InteractionError> {
    let mut after: Option<(ResourceType, LogicalId)> = None;
    let mut n_indexed = 0;
    loop {
        let batch = store
            .live_bodies(after.as_ref().map(|(res_type, res_id)| (*res_type, res_id)), batch_size)
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.res_type, last.res_id.clone()));
        let mut tx = store.begin().await?;
        let mut changed = Vec::with_capacity(batch.len());
        for LiveBody { res_type, res_id, body } in &batch {
            let json: Value = serde_json::from_str(body).map_err(|error| {
                InteractionError::Internal(StoreError::Corrupt(format!(
                    "{res_type}/{res_id}: {error}"
                )))
            })?;
            let index = index_entries(&json, registry, *res_type, res_id);
            tx.replace_index(*res_type, res_id, &index).await?;
            changed.push((*res_type, res_id.clone()));
            n_indexed += 1;
        }
        // The rows routing derives from other resources, as a write of these resources would: a report's
        // from its orders as they are indexed now, and an order's reports' again once it is reindexed.
        route(&mut tx, registry, &changed).await?;
        tx.commit().await?;
        tracing::info!(resources = n_indexed, "reindexed a batch");
    }
    Ok(n_indexed)
}

/// Checks that an update's resource carries the id of its URL (R4 update), located at `id`.
pub(crate) fn check_update_id(resource: &Resource, id: &LogicalId) -> Result<(), InteractionError> {
    match resource.id() {
        None => Err(invalid_at("an update must carry the id of its URL in the resource", "id")),
        Some(body_id) if body_id != id.as_str() => Err(invalid_at(
            format!("the resource id '{body_id}' does not match the URL id '{id}'"),
            "id",
        )),
        Some(_) => Ok(()),
    }
}

/// Parses a request body and applies the structural checks every write needs.
pub(crate) fn parse_body(
    resource_type: ResourceType,
    body: &[u8],
) -> Result<Resource, InteractionError> {
    check_structure(resource_type, parse_value(body)?)
}

/// The structural checks of every write on a parsed resource (also a patched one): its type is the URL's and
/// `meta`, when present, is a non-empty object.
pub(crate) fn check_structure(
    resource_type: ResourceType,
    resource: Resource,
) -> Result<Resource, InteractionError> {
    if resource.resource_type() != resource_type {
        return Err(invalid_at(
            format!(
                "the body is a {}, but the URL is for {resource_type}",
                resource.resource_type()
            ),
            "resourceType",
        ));
    }
    if resource.json().get("meta").is_some_and(|meta| !meta.is_object()) {
        return Err(invalid_at("meta must be a JSON object", "meta"));
    }
    if resource.json().get("meta").and_then(Value::as_object).is_some_and(serde_json::Map::is_empty)
    {
        return Err(invalid_at("meta must not be an empty object", "meta"));
    }
    Ok(resource)
}

/// Parses a body as a resource of any type: a JSON object with a known `resourceType` and a valid `id`.
pub(crate) fn parse_value(body: &[u8]) -> Result<Resource, InteractionError> {
    Resource::from_slice(body).map_err(|error| {
        let (code, expression) = match &error {
            ResourceError::MissingResourceType | ResourceError::UnknownType(_) => {
                (IssueType::Invalid, Some("resourceType"))
            }
            ResourceError::InvalidId(_) => (IssueType::Invalid, Some("id")),
            _ => (IssueType::Structure, None),
        };
        let issue = Issue::error(code, error.to_string());
        InteractionError::Invalid(OperationOutcome::single(match expression {
            Some(expression) => issue.at(expression),
            None => issue,
        }))
    })
}

/// Refuses a resource of a single create, update or patch that holds a reference only a transaction Bundle gives
/// meaning to (R4 references.html, http.html#trules, bundle.html#references): `urn:uuid:` and `urn:oid:` (the
/// `fullUrl` of another entry) and conditional references (`Patient?identifier=system|value`), which a transaction
/// resolves to `Type/id` before it writes. A single request has no Bundle to resolve them in, and stored as
/// written they would point nowhere: a 422 at the first one, named as the reference errors of the validator
/// name theirs (`Observation.subject.reference`). Bundle entries never get here: their references are resolved
/// by the transaction.
pub(crate) fn refuse_outside_bundle(resource: &Resource) -> Result<(), InteractionError> {
    let type_name = resource.resource_type();
    let mut json = Value::Object(resource.json().clone());
    rewrite(
        &mut json,
        &mut |reference: &str, path: &str| {
            let kind = if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
                "names an entry of a transaction Bundle"
            } else if conditional(reference).is_some() {
                "is a conditional reference, which a transaction Bundle resolves"
            } else {
                return Ok(None);
            };
            Err(InteractionError::Unprocessable(OperationOutcome::single(
                Issue::error(
                    IssueType::Value,
                    format!(
                        "'{reference}' {kind}: a single create, update or patch has no Bundle to resolve it in (refer by Type/id, an absolute URL or Reference.identifier, or send a transaction)"
                    ),
                )
                .at(format!("{type_name}.{path}")),
            )))
        },
        &|_| None,
    )
}

pub(crate) fn invalid_at(diagnostics: impl Into<String>, expression: &str) -> InteractionError {
    InteractionError::Invalid(OperationOutcome::single(
        Issue::error(IssueType::Invalid, diagnostics).at(expression),
    ))
}

pub(crate) fn multiple_matches(resource_type: ResourceType, query: &str) -> InteractionError {
    InteractionError::MultipleMatches(format!("more than one {resource_type} matches '{query}'"))
}

pub(crate) fn new_id() -> LogicalId {
    let text = uuid::Uuid::new_v4().to_string();
    LogicalId::parse(&text).unwrap_or_else(|_| unreachable!("a UUID is a valid FHIR id"))
}
