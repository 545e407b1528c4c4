//! Transactions (R4 http.html#transaction): every write of a Bundle in one database transaction, or none.
//!
//! The work is split so that no lock is held while a resource is validated:
//! 1. *Plan* (no database): each entry becomes an action; creates get their ids, conditional entries a
//!    provisional one; references to other entries (`urn:uuid:`, `urn:oid:`, absolute and relative
//!    RESTful `fullUrl`s) are rewritten to `Type/id`, an unresolvable `urn:` reference fails; conditional
//!    criteria (of entries and of conditional references) are parsed; then every resource is validated,
//!    concurrently, on the CPU pool.
//! 2. *Apply* (one store transaction): all criteria are matched under their advisory locks, taken in one
//!    canonical order (shared for criteria that match, exclusive for those that may create:
//!    `StoreTx::find_all_locked`), deletes are resolved first (R4 order: DELETE, POST, PUT), conditional
//!    references are resolved (against the store and the Bundle's own conditional entries), a resource may
//!    be written once; the current versions of every target are read, an update whose content equals the
//!    current version's becomes unchanged (no version is written), and the target rows are locked in one
//!    canonical order (shared for unchanged ones, so Bundles repeating the same hospital and practitioners do
//!    not queue on their rows); references to provisional ids are rewritten to the ids found, and every
//!    version and index row is written in multi-row statements. A unique-key conflict (two transactions
//!    creating one id), a criteria whose match vanished before its lock, or an unchanged row changed before
//!    its lock retries the whole apply a bounded number of times.
//! 3. *Read* (after commit): GET and HEAD entries are answered from what the database now holds (a
//!    conditional create that found its resource read it inside the transaction, so an asynchronous job's
//!    record, written before the commit, holds it).

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use cdr_model::{Instant, LogicalId, Resource, ResourceType, VersionId};
use cdr_search::SearchQuery;
use cdr_store::{
    JobCompletion, NewVersion, RowLock, StoreError, StoreTx, StoredVersion, WriteMethod,
};
use serde_json::Value;

use super::contribution::{self, MustResolve};
use super::entry::{Entry, Method, Target};
use super::references::{conditional, resolve_relative, rewrite, rewrite_patch};
use super::{EntryOutcome, EntryResult, in_entry, resource_relative};
use crate::audit::{AuditEntities, AuditSubtype};
use crate::conditional::{Criteria, parse_criteria};
use crate::micdr;
use crate::outside_compartment;
use crate::read::live_version;
use crate::subscriptions::Change;
use crate::terminology::expand_terminology;
use crate::write::{index_entries, invalid_at, new_id, unchanged};
use crate::{
    Engine, InteractionError, Patch, PatchFormat, Precondition, VersionedResource, WriteOutcome,
    WriteStatus,
};

/// How many times a transaction that lost a race (a unique key, a vanished match, an unchanged row that
/// changed before it was locked) is applied again.
const RETRIES: usize = 3;

/// What one entry asks for, after planning.
#[derive(Debug)]
enum Action {
    Create { if_none_exist: Option<Criteria> },
    Update { id: LogicalId, precondition: Precondition },
    ConditionalUpdate { criteria: Criteria, precondition: Precondition },
    Delete { id: LogicalId },
    ConditionalDelete { criteria: Criteria },
    Patch { id: LogicalId, patch: Patch, precondition: Precondition },
    ConditionalPatch { criteria: Criteria, patch: Patch, precondition: Precondition },
    Read(Entry),
}

#[derive(Debug)]
struct Planned {
    index: usize,
    full_url: Option<String>,
    resource_type: ResourceType,
    /// The id a write gets unless a conditional match says otherwise.
    provisional: Option<LogicalId>,
    /// The resource of a create or update; `None` only while it is being validated.
    resource: Option<Resource>,
    /// Under the contribution rules, the references of the resource that must resolve.
    must_resolve: Vec<MustResolve>,
    action: Action,
}

/// A conditional reference of the Bundle (`Patient?identifier=…`), resolved once for every entry using it.
#[derive(Debug)]
struct ConditionalReference {
    resource_type: ResourceType,
    criteria: Criteria,
    /// The first entry using it and where, for the error when it does not resolve.
    entry: usize,
    element: String,
}

#[derive(Debug)]
struct Plan {
    entries: Vec<Planned>,
    /// Keyed by the reference text as written.
    references: HashMap<String, ConditionalReference>,
}

/// What the apply step decided for one entry.
enum Step {
    Write(Write),
    /// A patch of this resource, applied to its current version inside the transaction.
    Patch {
        id: LogicalId,
        precondition: Precondition,
    },
    /// A conditional create found this resource; nothing is written.
    Existing(LogicalId),
    NothingToDelete,
    Read,
}

/// A version to write: a create or update when the entry has a resource, else a delete.
struct Write {
    id: LogicalId,
    precondition: Precondition,
    /// The id was assigned here just now: there is no current version to look up.
    fresh_id: bool,
    /// The id is the client's (`PUT T/id`, or a conditional update's body id): update-as-create rules apply.
    client_id: bool,
    /// A conditional update matched nothing and names an id in its body, which must not exist (the
    /// criteria did not select it).
    must_be_new: bool,
}

/// How an entry is answered once the transaction has committed.
enum Applied {
    Done(EntryResult),
    /// A GET or HEAD entry.
    Read(Entry),
}

/// What an asynchronous job writes in the transaction of a Bundle's writes, made from the entries' outcomes
/// just before it commits (a GET or HEAD entry, answered after the commit, is there as
/// [`InteractionError::ReadAfterCommit`]).
pub(crate) type Record<'a> = dyn Fn(&[EntryOutcome]) -> JobCompletion + Send + Sync + 'a;

/// Why an apply did not commit.
enum Failure {
    /// A concurrent transaction won a race (on a unique key, or on a row or match this one had read before
    /// locking it); applying again will see its result.
    Race,
    Final(InteractionError),
}

impl From<InteractionError> for Failure {
    fn from(error: InteractionError) -> Failure {
        Failure::Final(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        match error {
            StoreError::Conflict => Failure::Race,
            other => Failure::Final(other.into()),
        }
    }
}

impl Engine {
    /// Runs `entries` as one transaction; the outcomes are in entry order. `whole_bundle` is false for an
    /// entry of a batch, run as a transaction of its own (the contribution rules ask of a whole Bundle that
    /// it names a Patient, a Practitioner and an Organization). `record`, if given, adds an asynchronous
    /// job's completion to the database transaction of the writes.
    pub(crate) async fn transaction(
        &self,
        entries: Vec<Entry>,
        base: &str,
        whole_bundle: bool,
        record: Option<&Record<'_>>,
    ) -> Result<Vec<EntryOutcome>, InteractionError> {
        let plan = self.plan(entries, whole_bundle).await?;
        let mut attempt = 0;
        let applied = loop {
            attempt += 1;
            match self.apply(&plan, base, record).await {
                Ok(applied) => break applied,
                Err(Failure::Race) if attempt < RETRIES => {
                    tracing::debug!(
                        attempt,
                        "a transaction lost a race with a concurrent write; applying it again"
                    );
                }
                Err(Failure::Race) => {
                    return Err(InteractionError::Conflict(
                        "the transaction kept conflicting with concurrent writes of the same resources; retry"
                            .to_owned(),
                    ));
                }
                Err(Failure::Final(error)) => return Err(error),
            }
        };
        let mut outcomes = Vec::with_capacity(applied.len());
        for (entry, applied) in plan.entries.iter().zip(applied) {
            let result = match applied {
                Applied::Done(result) => Ok(result),
                Applied::Read(read) => self.answer_read(&read, base).await,
            };
            outcomes.push(EntryOutcome {
                full_url: entry.full_url.clone(),
                result: result.map_err(|error| in_entry(entry.index, error)),
            });
        }
        Ok(outcomes)
    }

    /// Step 1: actions, ids, references rewritten to `Type/id`, criteria parsed, resources validated.
    async fn plan(
        &self,
        entries: Vec<Entry>,
        whole_bundle: bool,
    ) -> Result<Plan, InteractionError> {
        let rules = self.config.contribution_rules;
        let mut planned = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.index;
            if rules {
                contribution::check_entry(&entry).map_err(|error| in_entry(index, error))?;
            }
            planned.push(self.plan_entry(entry).map_err(|error| in_entry(index, error))?);
        }
        let mut named_types: Vec<String> = Vec::new();
        let mut targets: HashMap<String, String> = HashMap::new();
        let mut owners: HashMap<&str, usize> = HashMap::new();
        for entry in &planned {
            let (Some(full_url), Some(id)) = (&entry.full_url, &entry.provisional) else {
                continue;
            };
            if let Some(first) = owners.insert(full_url, entry.index) {
                return Err(in_entry(
                    entry.index,
                    invalid_at(
                        format!(
                            "fullUrl '{full_url}' is also the fullUrl of Bundle.entry[{first}]"
                        ),
                        "fullUrl",
                    ),
                ));
            }
            targets.insert(full_url.clone(), format!("{}/{id}", entry.resource_type));
        }
        let mut references: HashMap<String, ConditionalReference> = HashMap::new();
        for entry in &mut planned {
            let index = entry.index;
            let mut found: Vec<(String, String)> = Vec::new();
            let full_url = entry.full_url.as_deref();
            let mut visit = |reference: &str, path: &str| {
                in_bundle(reference, path, &targets, full_url, &mut found)
            };
            let other = |url: &str| targets.get(url).cloned();
            if let Action::Patch { patch, .. } | Action::ConditionalPatch { patch, .. } =
                &mut entry.action
            {
                rewrite_patch(patch, &mut visit, &other).map_err(|error| in_entry(index, error))?;
            }
            let Some(resource) = entry.resource.take() else {
                self.resolve_conditional(found, index, &mut references)?;
                continue;
            };
            let mut json = Value::Object(resource.into_json());
            rewrite(&mut json, &mut visit, &other).map_err(|error| in_entry(index, error))?;
            if rules {
                let (must_resolve, types) = contribution::references_of(&mut json)
                    .map_err(|error| in_entry(index, error))?;
                entry.must_resolve = must_resolve;
                named_types.extend(types);
                named_types.push(entry.resource_type.as_str().to_owned());
            }
            entry.resource =
                Some(Resource::from_value(json).map_err(|error| {
                    in_entry(index, InteractionError::invalid(error.to_string()))
                })?);
            self.resolve_conditional(found, index, &mut references)?;
        }
        if rules && whole_bundle {
            contribution::check_required_types(named_types.iter().map(String::as_str))?;
        }
        self.validate_planned(&mut planned).await?;
        if rules {
            for entry in &planned {
                let Some(resource) = &entry.resource else { continue };
                micdr::registry::check(self.person_registry.as_ref(), resource).await.map_err(
                    |error| in_entry(entry.index, resource_relative(entry.resource_type, error)),
                )?;
            }
        }
        Ok(Plan { entries: planned, references })
    }

    fn plan_entry(&self, entry: Entry) -> Result<Planned, InteractionError> {
        let index = entry.index;
        let full_url = entry.full_url.clone();
        let precondition = entry.if_match.map_or(Precondition::None, Precondition::IfMatch);
        let (resource_type, provisional, action) = match (entry.method, &entry.target) {
            (Method::Post, Target::Type(resource_type, _)) => {
                let if_none_exist = entry
                    .if_none_exist
                    .as_deref()
                    .map(|query| self.criteria(*resource_type, query))
                    .transpose()?;
                (*resource_type, Some(new_id()), Action::Create { if_none_exist })
            }
            (Method::Put, Target::Instance(resource_type, id)) => {
                (*resource_type, Some(id.clone()), Action::Update { id: id.clone(), precondition })
            }
            (Method::Put, Target::Type(resource_type, query)) => {
                let criteria = self.criteria(*resource_type, query)?;
                let provisional = match entry.resource.as_ref().and_then(Resource::id) {
                    Some(id) => crate::parse_id(id)?,
                    None => new_id(),
                };
                (
                    *resource_type,
                    Some(provisional),
                    Action::ConditionalUpdate { criteria, precondition },
                )
            }
            (Method::Delete, Target::Instance(resource_type, id)) => {
                (*resource_type, None, Action::Delete { id: id.clone() })
            }
            (Method::Delete, Target::Type(resource_type, query)) => {
                let criteria = self.criteria(*resource_type, query)?;
                (*resource_type, None, Action::ConditionalDelete { criteria })
            }
            (Method::Patch, Target::Instance(resource_type, id)) => {
                let patch = patch_of(entry.resource.as_ref())?;
                (*resource_type, None, Action::Patch { id: id.clone(), patch, precondition })
            }
            (Method::Patch, Target::Type(resource_type, query)) => {
                let criteria = self.criteria(*resource_type, query)?;
                let patch = patch_of(entry.resource.as_ref())?;
                (*resource_type, None, Action::ConditionalPatch { criteria, patch, precondition })
            }
            (Method::Get | Method::Head, _) => {
                let resource_type = entry.resource_type().unwrap_or(ResourceType::known("Bundle"));
                (resource_type, None, Action::Read(entry.clone()))
            }
            (method, _) => {
                return Err(InteractionError::invalid(format!(
                    "{method:?} does not go with this request.url"
                )));
            }
        };
        // A patch entry's resource is its patch document, parsed into the action.
        let resource = if entry.method == Method::Patch { None } else { entry.resource };
        Ok(Planned {
            index,
            full_url,
            resource_type,
            provisional,
            resource,
            must_resolve: Vec::new(),
            action,
        })
    }

    fn criteria(
        &self,
        resource_type: ResourceType,
        query: &str,
    ) -> Result<Criteria, InteractionError> {
        let mut criteria =
            parse_criteria(&self.registry, &self.query_limits, resource_type, query)?;
        criteria.query.compartment.clone_from(&self.confinement);
        expand_terminology(&mut criteria.query, self.profiles.set())?;
        Ok(criteria)
    }

    /// Parses the conditional references found in entry `index` that are not parsed yet.
    fn resolve_conditional(
        &self,
        found: Vec<(String, String)>,
        index: usize,
        references: &mut HashMap<String, ConditionalReference>,
    ) -> Result<(), InteractionError> {
        for (reference, path) in found {
            if references.contains_key(&reference) {
                continue;
            }
            let resolved = self
                .conditional_reference(&reference, &path, index)
                .map_err(|error| in_entry(index, error))?;
            references.insert(reference, resolved);
        }
        Ok(())
    }

    fn conditional_reference(
        &self,
        reference: &str,
        path: &str,
        entry: usize,
    ) -> Result<ConditionalReference, InteractionError> {
        let element = element_of(path);
        let (type_name, query) = conditional(reference).unwrap_or_default();
        let resource_type = self.served_type(type_name).map_err(|_| {
            unresolved(
                format!(
                    "the conditional reference '{reference}' names a type this server does not serve"
                ),
                path,
            )
        })?;
        let criteria = self.criteria(resource_type, query).map_err(|error| match error {
            InteractionError::Invalid(mut outcome) => {
                for issue in &mut outcome.issues {
                    issue.expression = vec![format!("resource.{element}")];
                }
                InteractionError::Invalid(outcome)
            }
            other => other,
        })?;
        Ok(ConditionalReference { resource_type, criteria, entry, element })
    }

    /// Validates every resource of the plan, concurrently on the CPU pool; the first failure in entry
    /// order fails the transaction.
    async fn validate_planned(&self, planned: &mut [Planned]) -> Result<(), InteractionError> {
        let mut tasks = tokio::task::JoinSet::new();
        for (position, entry) in planned.iter_mut().enumerate() {
            let Some(resource) = entry.resource.take() else { continue };
            let engine = self.clone();
            tasks.spawn(async move { (position, engine.check_for_write(resource).await) });
        }
        let mut first_failure: Option<(usize, InteractionError)> = None;
        while let Some(joined) = tasks.join_next().await {
            let (position, result) = joined.map_err(|error| {
                InteractionError::Internal(StoreError::Corrupt(format!(
                    "a validation task failed: {error}"
                )))
            })?;
            let entry = &mut planned[position];
            match result {
                Ok(resource) => entry.resource = Some(resource),
                Err(error) => {
                    if first_failure.as_ref().is_none_or(|(index, _)| entry.index < *index) {
                        let error =
                            in_entry(entry.index, resource_relative(entry.resource_type, error));
                        first_failure = Some((entry.index, error));
                    }
                }
            }
        }
        match first_failure {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    /// Step 2: one store transaction; how each entry is answered, in entry order.
    async fn apply(
        &self,
        plan: &Plan,
        base: &str,
        record: Option<&Record<'_>>,
    ) -> Result<Vec<Applied>, Failure> {
        let mut tx = self.store.begin().await?;
        let now = Instant::now();
        let Lookups { matches, of_entry: lookup_of_entry, references: reference_lookups } =
            Lookups::run(&mut tx, plan, now).await?;
        let matches_of = |position: usize| -> &[LogicalId] {
            lookup_of_entry.get(&position).map_or(&[], |lookup| matches[*lookup].as_slice())
        };

        let steps = resolve_steps(plan, &matches_of)?;

        check_each_resource_once(plan, &steps)?;
        let rewrites = resolve_references(plan, &steps, &reference_lookups, &matches)?;

        let outside = references_outside(plan, &steps, &rewrites)?;
        let Locked { peeked, unchanged, current } =
            Locked::take(&mut tx, plan, &steps, &rewrites, &outside).await?;
        self.check_report_updates(plan, &steps, &peeked)?;
        let existing = existing_versions(&mut tx, plan, &steps).await?;

        let mut applied = Vec::with_capacity(plan.entries.len());
        let mut written: Vec<Written> = Vec::new();
        for ((entry, step), unchanged) in plan.entries.iter().zip(steps).zip(unchanged) {
            let resource_type = entry.resource_type;
            let write = match step {
                Step::Read => {
                    let Action::Read(read) = &entry.action else {
                        unreachable!("only reads have a read step")
                    };
                    applied.push(Applied::Read(read.clone()));
                    continue;
                }
                Step::NothingToDelete => {
                    applied.push(Applied::Done(EntryResult::Write(WriteOutcome {
                        status: WriteStatus::NothingToDelete,
                        resource: None,
                    })));
                    continue;
                }
                Step::Existing(id) => {
                    applied.push(found(&existing, resource_type, id, entry.index)?);
                    continue;
                }
                Step::Patch { id, precondition } => {
                    let (Action::Patch { patch, .. } | Action::ConditionalPatch { patch, .. }) =
                        &entry.action
                    else {
                        unreachable!("only patches have a patch step")
                    };
                    let patch = patch_final(patch, &rewrites);
                    let patched = self
                        .patch_in(&mut tx, resource_type, &id, &patch, precondition)
                        .await
                        .map_err(|error| in_entry(entry.index, error))?;
                    applied.push(Applied::Done(EntryResult::Write(WriteOutcome {
                        status: WriteStatus::Updated,
                        resource: Some(patched),
                    })));
                    continue;
                }
                Step::Write(write) => write,
            };
            let key = (resource_type, write.id.clone());
            self.confine_existing(resource_type, &write.id, peeked.get(&key))
                .map_err(|error| in_entry(entry.index, error))?;
            let state = if write.fresh_id { None } else { current.get(&key).copied() };
            if let Some(stored) = peeked.get(&key).filter(|_| unchanged) {
                // An unchanged resource: the version read before locking must still be current.
                if state != Some((stored.version, false)) {
                    return Err(Failure::Race);
                }
                applied.push(Applied::Done(EntryResult::Write(WriteOutcome {
                    status: WriteStatus::Unchanged,
                    resource: Some(VersionedResource {
                        resource_type,
                        id: write.id,
                        version: stored.version,
                        last_updated: stored.last_updated,
                        body: stored.body.clone(),
                    }),
                })));
                continue;
            }
            let (version, status) = self
                .version_to_write(resource_type, &write, state, entry.resource.is_none())
                .map_err(|error| in_entry(entry.index, error))?;
            let Some(version) = version else {
                applied.push(Applied::Done(EntryResult::Write(WriteOutcome {
                    status,
                    resource: None,
                })));
                continue;
            };
            let id = write.id;
            let (method, body, index) = match &entry.resource {
                None => (WriteMethod::Delete, None, Vec::new()),
                Some(resource) => self
                    .stamp(resource, &rewrites, resource_type, &id, version, now)
                    .map_err(|error| in_entry(entry.index, error))?,
            };
            let version_written = VersionedResource {
                resource_type,
                id: id.clone(),
                version,
                last_updated: now,
                body: body.clone(),
            };
            written.push(Written { resource_type, id, version, method, body, index });
            applied.push(Applied::Done(EntryResult::Write(WriteOutcome {
                status,
                resource: Some(version_written),
            })));
        }
        self.write_versions(&mut tx, &written, now, base).await?;
        self.write_index_entries(&mut tx, &index_sources(&applied), base, now).await?;
        if let Some(request) = &self.audit {
            self.write_audit_in(&mut tx, request, &entry_audits(plan, &applied)).await?;
        }
        if let Some(record) = record {
            tx.complete_job(&record(&before_commit(plan, &applied))).await?;
        }
        self.commit(tx).await?;
        Ok(applied)
    }

    /// Writes the planned versions in multi-row statements, and the delivery state of the Subscriptions among
    /// them.
    async fn write_versions(
        &self,
        tx: &mut StoreTx,
        written: &[Written],
        now: Instant,
        base: &str,
    ) -> Result<(), InteractionError> {
        let versions: Vec<NewVersion<'_>> =
            written.iter().map(|one| one.new_version(now)).collect();
        tx.write_all(&versions).await?;
        let changes: Vec<Change<'_>> = written.iter().map(Written::change).collect();
        self.record_subscriptions(tx, &changes, base).await
    }

    /// Under the contribution rules, the report lifecycle of each update of a live DiagnosticReport, against
    /// its current version as the apply read it (and now holds locked).
    fn check_report_updates(
        &self,
        plan: &Plan,
        steps: &[Step],
        peeked: &HashMap<(ResourceType, LogicalId), StoredVersion>,
    ) -> Result<(), InteractionError> {
        for (entry, step) in plan.entries.iter().zip(steps) {
            let (Step::Write(write), Some(resource)) = (step, &entry.resource) else { continue };
            let stored = peeked
                .get(&(entry.resource_type, write.id.clone()))
                .filter(|stored| !stored.deleted)
                .and_then(|stored| stored.body.as_deref());
            if let Some(body) = stored {
                self.check_report_update(resource, &write.id, body).map_err(|error| {
                    in_entry(entry.index, resource_relative(entry.resource_type, error))
                })?;
            }
        }
        Ok(())
    }

    /// The version of `resource` to write: its final references, id and `meta`, JSON text and index rows;
    /// refused under confinement when it would be outside the compartment.
    fn stamp(
        &self,
        resource: &Resource,
        rewrites: &HashMap<String, String>,
        resource_type: ResourceType,
        id: &LogicalId,
        version: VersionId,
        now: Instant,
    ) -> Result<(WriteMethod, Option<String>, Vec<cdr_search::IndexEntry>), InteractionError> {
        let mut resource = resource.clone();
        if !rewrites.is_empty() {
            resource = rewrite_final(resource, rewrites)?;
        }
        resource.set_id(id);
        resource.set_meta(&version.to_string(), &now.to_fhir());
        let body = resource.to_json_string();
        let json = Value::Object(resource.into_json());
        let index = index_entries(&json, &self.registry, resource_type, id);
        if let Some(compartment) = &self.confinement
            && !compartment.holds_index(resource_type, id.as_str(), &index)
        {
            return Err(outside_compartment(compartment, resource_type));
        }
        let method =
            if version == VersionId::FIRST { WriteMethod::Create } else { WriteMethod::Update };
        Ok((method, Some(body), index))
    }

    /// The version a write makes given the resource's current state (`None`: it does not exist), and what
    /// the write is; no version for the delete of a resource already deleted.
    fn version_to_write(
        &self,
        resource_type: ResourceType,
        write: &Write,
        current: Option<(VersionId, bool)>,
        is_delete: bool,
    ) -> Result<(Option<VersionId>, WriteStatus), InteractionError> {
        let id = &write.id;
        if is_delete {
            return match current {
                None => Err(InteractionError::NotFound(format!("{resource_type}/{id}"))),
                Some((_, true)) => Ok((None, WriteStatus::NothingToDelete)),
                Some((version, false)) => Ok((Some(version.next()), WriteStatus::Deleted)),
            };
        }
        match (current, write.precondition) {
            (Some(_), _) if write.must_be_new => Err(InteractionError::Conflict(format!(
                "no {resource_type} matches the criteria, and {resource_type}/{id} named by the resource's id exists: a conditional update only changes the resource its criteria match"
            ))),
            (Some((current, _)), Precondition::IfMatch(expected)) if current != expected => {
                Err(InteractionError::PreconditionFailed(format!(
                    "If-Match expects version {expected} of {resource_type}/{id}, but the current version is {current}"
                )))
            }
            (Some((current, deleted)), _) => Ok((
                Some(current.next()),
                if deleted { WriteStatus::Created } else { WriteStatus::Updated },
            )),
            (None, Precondition::IfMatch(expected)) => {
                Err(InteractionError::PreconditionFailed(format!(
                    "If-Match expects version {expected} of {resource_type}/{id}, which does not exist"
                )))
            }
            (None, Precondition::None) if write.client_id && !self.config.update_create => {
                Err(InteractionError::NotAllowed(format!(
                    "{resource_type}/{id} does not exist and this server assigns ids itself (update as create is off); use POST to create"
                )))
            }
            (None, Precondition::None) => Ok((Some(VersionId::FIRST), WriteStatus::Created)),
        }
    }
}

/// The current versions of the resources that conditional creates found, read in the transaction (without
/// a row lock: the criteria's lock that matched them is held), so the response names the version found.
async fn existing_versions(
    tx: &mut StoreTx,
    plan: &Plan,
    steps: &[Step],
) -> Result<HashMap<(ResourceType, LogicalId), StoredVersion>, Failure> {
    let addresses: Vec<(ResourceType, &LogicalId)> = plan
        .entries
        .iter()
        .zip(steps)
        .filter_map(|(entry, step)| match step {
            Step::Existing(id) => Some((entry.resource_type, id)),
            _ => None,
        })
        .collect();
    if addresses.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tx.peek_all(&addresses).await?)
}

/// A conditional create's answer: the resource it found.
fn found(
    existing: &HashMap<(ResourceType, LogicalId), StoredVersion>,
    resource_type: ResourceType,
    id: LogicalId,
    index: usize,
) -> Result<Applied, Failure> {
    let found = existing
        .get(&(resource_type, id.clone()))
        .cloned()
        .ok_or_else(|| InteractionError::NotFound(format!("{resource_type}/{id}")))
        .and_then(|stored| live_version(resource_type, id, stored))
        .map_err(|error| in_entry(index, error))?;
    Ok(Applied::Done(EntryResult::Write(WriteOutcome {
        status: WriteStatus::Existing,
        resource: Some(found),
    })))
}

/// The outcomes known before the commit, for an asynchronous job's record: a GET or HEAD entry is only
/// answered after it.
fn before_commit(plan: &Plan, applied: &[Applied]) -> Vec<EntryOutcome> {
    plan.entries
        .iter()
        .zip(applied)
        .map(|(entry, applied)| EntryOutcome {
            full_url: entry.full_url.clone(),
            result: match applied {
                Applied::Done(result) => Ok(result.clone()),
                Applied::Read(_) => Err(InteractionError::ReadAfterCommit),
            },
        })
        .collect()
}

/// The matches of every criteria of a Bundle, found under their locks.
struct Lookups<'p> {
    /// The ids matching each criteria, in lookup order.
    matches: Vec<Vec<LogicalId>>,
    /// The lookup of each conditional entry, by its position.
    of_entry: HashMap<usize, usize>,
    /// Each conditional reference with its lookup.
    references: Vec<(&'p String, &'p ConditionalReference, usize)>,
}

impl<'p> Lookups<'p> {
    /// Matches every criteria (the entries', then the conditional references') under its advisory lock
    /// ([`StoreTx::find_all_locked`]).
    async fn run(tx: &mut StoreTx, plan: &'p Plan, now: Instant) -> Result<Lookups<'p>, Failure> {
        let mut lookups: Vec<(&Criteria, [ResourceType; 1])> = Vec::new();
        let mut of_entry: HashMap<usize, usize> = HashMap::new();
        for (position, entry) in plan.entries.iter().enumerate() {
            if let Some(criteria) = entry.criteria() {
                of_entry.insert(position, lookups.len());
                lookups.push((criteria, [entry.resource_type]));
            }
        }
        let mut references = Vec::new();
        for (text, reference) in &plan.references {
            references.push((text, reference, lookups.len()));
            lookups.push((&reference.criteria, [reference.resource_type]));
        }
        let queries: Vec<(&SearchQuery, &[ResourceType], &str)> = lookups
            .iter()
            .map(|(criteria, types)| {
                (&criteria.query, types.as_slice(), criteria.lock_key.as_str())
            })
            .collect();
        let matches = tx.find_all_locked(&queries, now.millis() * 1_000, 2).await?;
        Ok(Lookups { matches, of_entry, references })
    }
}

/// The rows of a transaction's targets, read and locked.
struct Locked {
    /// The current versions of the targets that exist, read before locking.
    peeked: HashMap<(ResourceType, LogicalId), StoredVersion>,
    /// For each entry, whether it is an update that changes nothing.
    unchanged: Vec<bool>,
    /// The version and deletion flag of each locked row.
    current: HashMap<(ResourceType, LogicalId), (VersionId, bool)>,
}

/// A row to lock, and how.
type RowToLock<'a> = (ResourceType, &'a LogicalId, RowLock);

impl Locked {
    /// Reads the resources the Bundle writes that exist, first without locks: an update whose content
    /// equals the current version writes nothing (it only holds off writers of that row until commit, so
    /// Bundles naming the same unchanged hospital or practitioner do not queue behind one another); then
    /// locks every target row, and the rows outside the Bundle that the contribution rules rely on, in
    /// one canonical order, and checks that those outside rows are live.
    async fn take(
        tx: &mut StoreTx,
        plan: &Plan,
        steps: &[Step],
        rewrites: &HashMap<String, String>,
        outside: &[Outside<'_>],
    ) -> Result<Locked, Failure> {
        let targets: Vec<(ResourceType, &LogicalId)> = plan
            .entries
            .iter()
            .zip(steps)
            .filter_map(|(entry, step)| target_of(entry, step))
            .collect();
        let mut peeked = tx.peek_all(&targets).await?;
        let mut unchanged: Vec<bool> = Vec::with_capacity(plan.entries.len());
        let mut modes: Vec<Option<RowLock>> = Vec::with_capacity(plan.entries.len());
        let mut locks: Vec<RowToLock<'_>> = Vec::new();
        for (entry, step) in plan.entries.iter().zip(steps) {
            let (same, lock) = row_lock(entry, step, &peeked, rewrites)
                .map_err(|error| in_entry(entry.index, error))?;
            unchanged.push(same);
            modes.push(lock.map(|(_, _, mode)| mode));
            locks.extend(lock);
        }
        locks.extend(
            outside.iter().map(|(_, _, (resource_type, id))| (*resource_type, id, RowLock::Share)),
        );
        let current = tx.lock_rows(&locks).await?;
        // Rows written between the read and the lock are read again (locked now, they hold still) and
        // decided again: an update may have become unchanged, which is fine under its update lock; an
        // unchanged one that now changes would need its shared lock raised, so the apply runs again.
        let moved: Vec<(ResourceType, &LogicalId)> = targets
            .iter()
            .copied()
            .filter(|(resource_type, id)| {
                let key = (*resource_type, (*id).clone());
                current.get(&key).map(|(version, _)| *version)
                    != peeked.get(&key).map(|stored| stored.version)
            })
            .collect();
        if !moved.is_empty() {
            peeked.extend(tx.peek_all(&moved).await?);
            for ((entry, step), (same, mode)) in
                plan.entries.iter().zip(steps).zip(unchanged.iter_mut().zip(&modes))
            {
                if !target_of(entry, step).is_some_and(|target| moved.contains(&target)) {
                    continue;
                }
                let (now_same, _) = row_lock(entry, step, &peeked, rewrites)
                    .map_err(|error| in_entry(entry.index, error))?;
                if *mode == Some(RowLock::Share) && !now_same {
                    return Err(Failure::Race);
                }
                *same = now_same;
            }
        }
        for (index, reference, address) in outside {
            if !matches!(current.get(address), Some((_, false))) {
                return Err(in_entry(*index, contribution::unresolved(reference)).into());
            }
        }
        Ok(Locked { peeked, unchanged, current })
    }
}

/// One version the transaction writes.
struct Written {
    resource_type: ResourceType,
    id: LogicalId,
    version: VersionId,
    method: WriteMethod,
    body: Option<String>,
    index: Vec<cdr_search::IndexEntry>,
}

impl Written {
    /// The version as the subscriptions see it.
    fn change(&self) -> Change<'_> {
        Change { resource_type: self.resource_type, id: &self.id, body: self.body.as_deref() }
    }

    fn new_version(&self, now: Instant) -> NewVersion<'_> {
        NewVersion {
            res_type: self.resource_type,
            res_id: &self.id,
            version: self.version,
            last_updated: now,
            method: self.method,
            body: self.body.as_deref(),
            index: &self.index,
        }
    }
}

/// Decides each entry's step from the matches of its criteria: deletes first (R4 order), so that the
/// conditional matches of creates and updates no longer see what the Bundle deletes.
fn resolve_steps<'a>(
    plan: &Plan,
    matches_of: &impl Fn(usize) -> &'a [LogicalId],
) -> Result<Vec<Step>, InteractionError> {
    let mut steps: Vec<Option<Step>> = plan.entries.iter().map(|_| None).collect();
    let mut deleted: HashSet<(ResourceType, LogicalId)> = HashSet::new();
    for (position, entry) in plan.entries.iter().enumerate() {
        let id = match &entry.action {
            Action::Delete { id } => id.clone(),
            Action::ConditionalDelete { criteria } => match matches_of(position) {
                [] => {
                    steps[position] = Some(Step::NothingToDelete);
                    continue;
                }
                [found] => found.clone(),
                _ => return Err(multiple(entry, criteria)),
            },
            _ => continue,
        };
        deleted.insert((entry.resource_type, id.clone()));
        steps[position] = Some(Step::Write(Write {
            id,
            precondition: Precondition::None,
            fresh_id: false,
            client_id: false,
            must_be_new: false,
        }));
    }
    for (position, entry) in plan.entries.iter().enumerate() {
        let found = live(&deleted, entry.resource_type, matches_of(position));
        let provisional = || entry.provisional.clone().unwrap_or_else(new_id);
        let body_id = entry.resource.as_ref().and_then(Resource::id);
        let step = match &entry.action {
            Action::Create { if_none_exist } => match (found.as_slice(), if_none_exist) {
                ([], _) => Step::Write(Write {
                    id: provisional(),
                    precondition: Precondition::None,
                    fresh_id: true,
                    client_id: false,
                    must_be_new: false,
                }),
                ([id], _) => Step::Existing(id.clone()),
                (_, Some(criteria)) => return Err(multiple(entry, criteria)),
                (_, None) => unreachable!("a create without criteria has no matches"),
            },
            Action::Update { id, precondition } => Step::Write(Write {
                id: id.clone(),
                precondition: *precondition,
                fresh_id: false,
                client_id: true,
                must_be_new: false,
            }),
            Action::ConditionalUpdate { criteria, precondition } => match found.as_slice() {
                [] => Step::Write(Write {
                    id: provisional(),
                    precondition: *precondition,
                    fresh_id: body_id.is_none(),
                    client_id: body_id.is_some(),
                    must_be_new: body_id.is_some(),
                }),
                [found] => {
                    if let Some(body_id) = body_id.filter(|body_id| *body_id != found.as_str()) {
                        return Err(in_entry(
                            entry.index,
                            invalid_at(
                                format!(
                                    "the resource id '{body_id}' is not the id '{found}' of the resource matching '{}'",
                                    criteria.lock_key
                                ),
                                "resource.id",
                            ),
                        ));
                    }
                    Step::Write(Write {
                        id: found.clone(),
                        precondition: *precondition,
                        fresh_id: false,
                        client_id: false,
                        must_be_new: false,
                    })
                }
                _ => return Err(multiple(entry, criteria)),
            },
            Action::Patch { id, precondition, .. } => {
                Step::Patch { id: id.clone(), precondition: *precondition }
            }
            Action::ConditionalPatch { criteria, precondition, .. } => match found.as_slice() {
                [] => {
                    return Err(in_entry(
                        entry.index,
                        InteractionError::NotFound(format!(
                            "no {} matches '{}' to patch",
                            entry.resource_type, criteria.lock_key
                        )),
                    ));
                }
                [found] => Step::Patch { id: found.clone(), precondition: *precondition },
                _ => return Err(multiple(entry, criteria)),
            },
            Action::Read(_) => Step::Read,
            Action::Delete { .. } | Action::ConditionalDelete { .. } => continue,
        };
        steps[position] = Some(step);
    }
    Ok(steps.into_iter().map(|step| step.unwrap_or(Step::Read)).collect())
}

/// A reference that must resolve to a resource outside the Bundle: its entry's index, the reference and the
/// address it names.
type Outside<'a> = (usize, &'a MustResolve, (ResourceType, LogicalId));

/// The references that must resolve (contribution rules) and name no resource of the Bundle: each with its
/// entry, its text and element, and its address, which must be a live resource of the store. A reference
/// to a resource the Bundle deletes, or that is not a relative RESTful reference, does not resolve.
fn references_outside<'a>(
    plan: &'a Plan,
    steps: &[Step],
    rewrites: &HashMap<String, String>,
) -> Result<Vec<Outside<'a>>, InteractionError> {
    let deleted = deleted_by(plan, steps);
    let mut in_bundle: HashSet<(ResourceType, &LogicalId)> = HashSet::new();
    for (entry, step) in plan.entries.iter().zip(steps) {
        match step {
            Step::Write(write) if entry.resource.is_some() => {
                in_bundle.insert((entry.resource_type, &write.id));
            }
            Step::Patch { id, .. } | Step::Existing(id) => {
                in_bundle.insert((entry.resource_type, id));
            }
            _ => {}
        }
    }
    let mut outside = Vec::new();
    for entry in &plan.entries {
        for reference in &entry.must_resolve {
            let text = rewrites.get(&reference.reference).unwrap_or(&reference.reference);
            let Some(address) =
                contribution::address(text).filter(|address| !deleted.contains(address))
            else {
                return Err(in_entry(entry.index, contribution::unresolved(reference)));
            };
            if !in_bundle.contains(&(address.0, &address.1)) {
                outside.push((entry.index, reference, address));
            }
        }
    }
    Ok(outside)
}

/// The existing resource an entry writes or patches, if it may exist (a fresh id does not).
fn target_of<'s>(entry: &Planned, step: &'s Step) -> Option<(ResourceType, &'s LogicalId)> {
    match step {
        Step::Write(write) if !write.fresh_id => Some((entry.resource_type, &write.id)),
        Step::Patch { id, .. } => Some((entry.resource_type, id)),
        _ => None,
    }
}

/// How the apply step locks the current row of an entry's target, and whether the entry is an update
/// whose resource (with its final references and id) has the same content as the version read before
/// locking: such an update writes nothing and only shares the row lock. Every other target is locked for
/// update.
fn row_lock<'s>(
    entry: &Planned,
    step: &'s Step,
    peeked: &HashMap<(ResourceType, LogicalId), StoredVersion>,
    rewrites: &HashMap<String, String>,
) -> Result<(bool, Option<RowToLock<'s>>), InteractionError> {
    let resource_type = entry.resource_type;
    let write = match step {
        Step::Write(write) if !write.fresh_id => write,
        Step::Patch { id, .. } => return Ok((false, Some((resource_type, id, RowLock::Update)))),
        _ => return Ok((false, None)),
    };
    let update = Some((resource_type, &write.id, RowLock::Update));
    let (Some(resource), Some(stored)) =
        (&entry.resource, peeked.get(&(resource_type, write.id.clone())))
    else {
        return Ok((false, update));
    };
    if !write.precondition.allows(stored.version) || write.must_be_new {
        return Ok((false, update));
    }
    let resource = if rewrites.is_empty() {
        resource.clone()
    } else {
        rewrite_final(resource.clone(), rewrites)?
    };
    if unchanged(&resource, &write.id, stored) {
        Ok((true, Some((resource_type, &write.id, RowLock::Share))))
    } else {
        Ok((false, update))
    }
}

/// A resource is written (or found) by one entry only.
fn check_each_resource_once(plan: &Plan, steps: &[Step]) -> Result<(), InteractionError> {
    let mut owner: HashMap<(ResourceType, &LogicalId), usize> = HashMap::new();
    for (entry, step) in plan.entries.iter().zip(steps) {
        let (Step::Write(Write { id, .. }) | Step::Patch { id, .. } | Step::Existing(id)) = step
        else {
            continue;
        };
        if let Some(first) = owner.insert((entry.resource_type, id), entry.index) {
            return Err(in_entry(
                entry.index,
                InteractionError::invalid(format!(
                    "{}/{id} is also the resource of Bundle.entry[{first}]: a transaction names each resource once",
                    entry.resource_type
                )),
            ));
        }
    }
    Ok(())
}

/// The final text of every reference that changes now that the matches are known: each conditional
/// reference (a live match in the store, or a conditional entry of this Bundle with the same criteria),
/// and each provisional id whose conditional entry matched an existing resource.
fn resolve_references(
    plan: &Plan,
    steps: &[Step],
    reference_lookups: &[(&String, &ConditionalReference, usize)],
    matches: &[Vec<LogicalId>],
) -> Result<HashMap<String, String>, InteractionError> {
    let deleted = deleted_by(plan, steps);
    let mut rewrites: HashMap<String, String> = HashMap::new();
    for (text, reference, lookup) in reference_lookups {
        let mut found = live(&deleted, reference.resource_type, &matches[*lookup]);
        for (entry, step) in plan.entries.iter().zip(steps) {
            let same_criteria = entry
                .criteria()
                .is_some_and(|criteria| criteria.lock_key == reference.criteria.lock_key);
            let id = match step {
                Step::Write(write) if entry.resource.is_some() => &write.id,
                Step::Existing(id) => id,
                _ => continue,
            };
            if same_criteria && !found.contains(id) {
                found.push(id.clone());
            }
        }
        match found.as_slice() {
            [id] => {
                rewrites.insert((*text).clone(), format!("{}/{id}", reference.resource_type));
            }
            [] => {
                return Err(in_entry(
                    reference.entry,
                    unresolved(
                        format!(
                            "no {} matches the conditional reference '{text}'",
                            reference.resource_type
                        ),
                        &reference.element,
                    ),
                ));
            }
            _ => {
                return Err(in_entry(
                    reference.entry,
                    InteractionError::MultipleMatches(format!(
                        "more than one {} matches the conditional reference '{text}' at {}",
                        reference.resource_type, reference.element
                    )),
                ));
            }
        }
    }
    for (entry, step) in plan.entries.iter().zip(steps) {
        let id = match step {
            Step::Write(write) => &write.id,
            Step::Existing(id) => id,
            _ => continue,
        };
        if let Some(provisional) =
            entry.provisional.as_ref().filter(|provisional| *provisional != id)
        {
            rewrites.insert(
                format!("{}/{provisional}", entry.resource_type),
                format!("{}/{id}", entry.resource_type),
            );
        }
    }
    Ok(rewrites)
}

/// The audit event of each entry, written with the Bundle's writes: the subtype of its method and the
/// version it wrote or answers; a GET entry (read after the commit) names what it reads.
fn entry_audits(plan: &Plan, applied: &[Applied]) -> Vec<(Option<AuditSubtype>, AuditEntities)> {
    plan.entries
        .iter()
        .zip(applied)
        .map(|(entry, applied)| {
            let subtype = match &entry.action {
                Action::Create { .. } => AuditSubtype::Create,
                Action::Update { .. } | Action::ConditionalUpdate { .. } => AuditSubtype::Update,
                Action::Delete { .. } | Action::ConditionalDelete { .. } => AuditSubtype::Delete,
                Action::Patch { .. } | Action::ConditionalPatch { .. } => AuditSubtype::Patch,
                Action::Read(read) => match read.target {
                    Target::Instance(..) => AuditSubtype::Read,
                    Target::Version(..) => AuditSubtype::Vread,
                    Target::Type(..) => AuditSubtype::SearchType,
                    Target::System(_) => AuditSubtype::SearchSystem,
                },
            };
            let entities = match applied {
                Applied::Done(EntryResult::Write(outcome)) => {
                    outcome.resource.as_ref().map(AuditEntities::of_version).unwrap_or_default()
                }
                Applied::Done(
                    EntryResult::Read { resource, .. } | EntryResult::NotModified(resource),
                ) => AuditEntities::of_version(resource),
                Applied::Done(EntryResult::Search { .. }) => AuditEntities::default(),
                Applied::Read(read) => match &read.target {
                    Target::Instance(resource_type, id) => AuditEntities {
                        resource: Some(format!("{resource_type}/{id}")),
                        ..AuditEntities::default()
                    },
                    Target::Version(resource_type, id, version) => AuditEntities {
                        resource: Some(format!("{resource_type}/{id}/_history/{version}")),
                        ..AuditEntities::default()
                    },
                    Target::Type(resource_type, query) => AuditEntities {
                        query: Some(format!("{resource_type}?{query}")),
                        ..AuditEntities::default()
                    },
                    Target::System(query) => {
                        AuditEntities { query: Some(query.clone()), ..AuditEntities::default() }
                    }
                },
            };
            (Some(subtype), entities)
        })
        .collect()
}

/// The versions the transaction wrote, for their index entries (contribution rules).
fn index_sources(applied: &[Applied]) -> Vec<micdr::Source<'_>> {
    applied
        .iter()
        .filter_map(|applied| match applied {
            Applied::Done(EntryResult::Write(WriteOutcome { status, resource: Some(written) }))
                if *status != WriteStatus::Unchanged =>
            {
                Some(micdr::Source {
                    resource_type: written.resource_type,
                    id: &written.id,
                    version: written.version,
                    body: written.body.as_deref(),
                })
            }
            _ => None,
        })
        .collect()
}

/// The resources the Bundle's deletes remove.
fn deleted_by(plan: &Plan, steps: &[Step]) -> HashSet<(ResourceType, LogicalId)> {
    plan.entries
        .iter()
        .zip(steps)
        .filter_map(|(entry, step)| match (step, &entry.resource) {
            (Step::Write(write), None) => Some((entry.resource_type, write.id.clone())),
            _ => None,
        })
        .collect()
}

/// The matches not deleted by the Bundle.
fn live(
    deleted: &HashSet<(ResourceType, LogicalId)>,
    resource_type: ResourceType,
    ids: &[LogicalId],
) -> Vec<LogicalId> {
    ids.iter().filter(|id| !deleted.contains(&(resource_type, (*id).clone()))).cloned().collect()
}

impl Planned {
    fn criteria(&self) -> Option<&Criteria> {
        match &self.action {
            Action::Create { if_none_exist } => if_none_exist.as_ref(),
            Action::ConditionalUpdate { criteria, .. }
            | Action::ConditionalDelete { criteria }
            | Action::ConditionalPatch { criteria, .. } => Some(criteria),
            _ => None,
        }
    }
}

/// The patch document of a PATCH entry: a Parameters resource (FHIRPath Patch), or a Binary holding a JSON
/// Patch (`contentType` `application/json-patch+json`, the document base64 in `data`), as R4 transactions
/// carry them.
/// `patch` with the references its values hold that are found in `rewrites` replaced by their ids.
fn patch_final(patch: &Patch, rewrites: &HashMap<String, String>) -> Patch {
    let mut patch = patch.clone();
    if !rewrites.is_empty() {
        let replaced: Result<(), std::convert::Infallible> = rewrite_patch(
            &mut patch,
            &mut |reference: &str, _path: &str| Ok(rewrites.get(reference).cloned()),
            &|url: &str| rewrites.get(url).cloned(),
        );
        let Ok(()) = replaced;
    }
    patch
}

fn patch_of(resource: Option<&Resource>) -> Result<Patch, InteractionError> {
    let Some(resource) = resource else {
        return Err(invalid_at(
            "a PATCH entry needs its patch document as the resource",
            "resource",
        ));
    };
    match resource.resource_type().as_str() {
        "Parameters" => Patch::parse(PatchFormat::FhirPath, resource.to_json_string().as_bytes()),
        "Binary" => {
            let json = resource.json();
            let content_type = json.get("contentType").and_then(Value::as_str).unwrap_or_default();
            if content_type.split(';').next().map(str::trim) != Some("application/json-patch+json")
            {
                return Err(invalid_at(
                    format!(
                        "a Binary patch document must have contentType application/json-patch+json, not '{content_type}'"
                    ),
                    "resource.contentType",
                ));
            }
            let data = json.get("data").and_then(Value::as_str).unwrap_or_default();
            let document =
                base64::engine::general_purpose::STANDARD.decode(data).map_err(|error| {
                    invalid_at(format!("the Binary's data is not base64: {error}"), "resource.data")
                })?;
            Patch::parse(PatchFormat::JsonPatch, &document)
        }
        other => Err(invalid_at(
            format!(
                "a PATCH entry's resource is a Parameters (FHIRPath Patch) or a Binary (JSON Patch), not a {other}"
            ),
            "resource.resourceType",
        )),
    }
}

/// What a reference at `path` of an entry whose `fullUrl` is `full_url` becomes when the Bundle is planned:
/// the provisional `Type/id` of the entry it names (by `fullUrl`, or relative to an absolute `fullUrl`);
/// `None` for local and other references, and for conditional ones, which are added to `found` with their
/// location; an error for a `urn:` reference that no entry owns.
fn in_bundle(
    reference: &str,
    path: &str,
    targets: &HashMap<String, String>,
    full_url: Option<&str>,
    found: &mut Vec<(String, String)>,
) -> Result<Option<String>, InteractionError> {
    if reference.starts_with('#') {
        return Ok(None);
    }
    if let Some(target) = targets.get(reference) {
        return Ok(Some(target.clone()));
    }
    if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
        return Err(unresolved(
            format!("no entry of the Bundle has the fullUrl '{reference}'"),
            path,
        ));
    }
    if let Some(target) = full_url
        .and_then(|full_url| resolve_relative(reference, full_url))
        .and_then(|absolute| targets.get(&absolute))
    {
        return Ok(Some(target.clone()));
    }
    if conditional(reference).is_some() {
        found.push((reference.to_owned(), path.to_owned()));
    }
    Ok(None)
}

/// Replaces references found in `rewrites` (provisional ids and conditional references) with their ids.
fn rewrite_final(
    resource: Resource,
    rewrites: &HashMap<String, String>,
) -> Result<Resource, InteractionError> {
    let mut json = Value::Object(resource.into_json());
    rewrite::<InteractionError>(
        &mut json,
        &mut |reference: &str, _path: &str| Ok(rewrites.get(reference).cloned()),
        &|url: &str| rewrites.get(url).cloned(),
    )?;
    Resource::from_value(json).map_err(|error| InteractionError::invalid(error.to_string()))
}

fn multiple(entry: &Planned, criteria: &Criteria) -> InteractionError {
    in_entry(
        entry.index,
        InteractionError::MultipleMatches(format!(
            "more than one {} matches '{}'",
            entry.resource_type, criteria.lock_key
        )),
    )
}

/// A reference that cannot be resolved, located at its Reference element within the entry.
fn unresolved(diagnostics: String, path: &str) -> InteractionError {
    InteractionError::Unprocessable(cdr_model::OperationOutcome::single(
        cdr_model::Issue::error(cdr_model::IssueType::NotFound, diagnostics)
            .at(format!("resource.{}", element_of(path))),
    ))
}

/// The Reference element of a `reference` string's location (`subject.reference` is in `subject`).
fn element_of(path: &str) -> String {
    path.strip_suffix(".reference").unwrap_or(path).to_owned()
}
