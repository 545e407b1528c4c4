//! `POST [base]` with a transaction or batch Bundle (R4 http.html#transaction).
//!
//! A transaction's writes commit together or not at all (`transaction.rs`); a batch runs each entry on
//! its own, as a transaction of one entry, so both share every rule: reference rewriting, conditional
//! references, conditional entries, preconditions and validation. GET and HEAD entries are answered after
//! the writes, from what the database then holds.
//!
//! The outcome is semantic ([`BundleOutcome`]); `cdr-api` renders the `transaction-response` or
//! `batch-response` Bundle with the HTTP status of each entry.

mod contribution;
mod entry;
mod job;
mod references;
mod transaction;

use cdr_model::{ETag, OperationOutcome, ResourceType};
use serde_json::Value;

pub(crate) use self::contribution::address;
use self::entry::{Entry, Method, Target};
pub use self::job::{JobRemoval, JobRenderer, JobRequest, JobRun, JobStatus};
pub(crate) use self::references::{conditional, rewrite};
use self::transaction::Record;
use crate::audit::{AuditEntities, AuditOutcome, AuditSubtype, audit_event, patient_of};
use crate::{Engine, Handling, InteractionError, VersionedResource, WriteOutcome};

/// What a batch entry's event says before the entry runs: its interaction and the resource or query it
/// names.
fn batch_audit_subject(entry: &Entry) -> (AuditSubtype, AuditEntities) {
    let reads = matches!(entry.method, Method::Get | Method::Head);
    let subtype = match (&entry.method, &entry.target) {
        (Method::Post, _) => AuditSubtype::Create,
        (Method::Put, _) => AuditSubtype::Update,
        (Method::Patch, _) => AuditSubtype::Patch,
        (Method::Delete, _) => AuditSubtype::Delete,
        (_, Target::Instance(..)) => AuditSubtype::Read,
        (_, Target::Version(..)) => AuditSubtype::Vread,
        (_, Target::Type(..)) => AuditSubtype::SearchType,
        (_, Target::System(_)) => AuditSubtype::SearchSystem,
    };
    let mut entities = AuditEntities::default();
    match &entry.target {
        Target::Instance(resource_type, id) => {
            entities.resource = Some(format!("{resource_type}/{id}"));
            entities.patient = patient_of(*resource_type, id, b"{}");
        }
        Target::Version(resource_type, id, version) => {
            entities.resource = Some(format!("{resource_type}/{id}/_history/{version}"));
            entities.patient = patient_of(*resource_type, id, b"{}");
        }
        Target::Type(resource_type, query) if reads && !query.is_empty() => {
            entities.query = Some(format!("{resource_type}?{query}"));
        }
        Target::System(query) if reads && !query.is_empty() => {
            entities.query = Some(format!("?{query}"));
        }
        Target::Type(..) | Target::System(_) => {}
    }
    (subtype, entities)
}

/// The event a batch entry leaves beside the batch's own: a read's (with the version read and its patient),
/// or a failure's; `None` for a write that succeeded, whose event committed with it.
fn batch_entry_event(
    subtype: AuditSubtype,
    entities: AuditEntities,
    outcome: &EntryOutcome,
) -> Option<(AuditSubtype, AuditEntities, AuditOutcome)> {
    match &outcome.result {
        Ok(EntryResult::Read { resource, .. } | EntryResult::NotModified(resource)) => {
            Some((subtype, AuditEntities::of_version(resource), AuditOutcome::Success))
        }
        Ok(EntryResult::Search { .. }) => Some((subtype, entities, AuditOutcome::Success)),
        Ok(EntryResult::Write(_)) => None,
        Err(error) => {
            let text = error.to_string();
            let outcome = if error.is_server_error() {
                AuditOutcome::Serious(text)
            } else {
                AuditOutcome::Minor(text)
            };
            Some((subtype, entities, outcome))
        }
    }
}

/// Whether a Bundle is a transaction or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Transaction,
    Batch,
}

/// The result of a posted transaction or batch: one outcome per entry, in entry order.
#[derive(Debug)]
pub struct BundleOutcome {
    pub kind: BundleKind,
    pub entries: Vec<EntryOutcome>,
}

/// How one entry went. In a transaction every entry succeeded (else the whole Bundle failed).
#[derive(Debug)]
pub struct EntryOutcome {
    pub full_url: Option<String>,
    pub result: Result<EntryResult, InteractionError>,
}

/// What a successful entry did.
#[derive(Debug, Clone)]
pub enum EntryResult {
    /// A create, update or delete (plain or conditional).
    Write(WriteOutcome),
    /// A GET of a resource or version; `head` when the entry asked for HEAD (no body in the response).
    Read { resource: VersionedResource, head: bool },
    /// A GET whose `ifNoneMatch` or `ifModifiedSince` says the client's copy is current.
    NotModified(VersionedResource),
    /// A GET search: the searchset Bundle.
    Search { bundle: Value, head: bool },
}

impl Engine {
    /// Processes a posted transaction or batch Bundle. `base` is this server's FHIR base URL, for entry
    /// URLs given as absolute URLs and for the links of search results.
    ///
    /// # Errors
    /// A body that is not a transaction or batch Bundle, or (for a transaction) the first entry that
    /// fails, as [`InteractionError::Entry`] with the status that entry would have had.
    pub async fn bundle(&self, body: &[u8], base: &str) -> Result<BundleOutcome, InteractionError> {
        let posted = self.parse_bundle(body, base)?;
        let entries = match posted.kind {
            BundleKind::Transaction => {
                let entries = posted.entries.into_iter().collect::<Result<Vec<_>, _>>()?;
                self.transaction(entries, base, true, None).await?
            }
            BundleKind::Batch => {
                let mut outcomes = Vec::with_capacity(posted.entries.len());
                let mut events = Vec::new();
                for entry in posted.entries {
                    outcomes.push(match entry {
                        Ok(entry) => {
                            let subject = self.audit.as_ref().map(|_| batch_audit_subject(&entry));
                            let outcome = self.batch_entry(entry, base, None).await.0;
                            if let Some((subtype, entities)) = subject {
                                events.extend(batch_entry_event(subtype, entities, &outcome));
                            }
                            outcome
                        }
                        Err(error) => EntryOutcome { full_url: None, result: Err(error) },
                    });
                }
                self.record_batch_events(events).await?;
                outcomes
            }
        };
        Ok(BundleOutcome { kind: posted.kind, entries })
    }

    /// Records the events of batch entries that no write recorded (reads and failures) through the group
    /// commit, when this engine records a request.
    pub(crate) async fn record_batch_events(
        &self,
        events: Vec<(AuditSubtype, AuditEntities, AuditOutcome)>,
    ) -> Result<(), InteractionError> {
        let Some(request) = &self.audit else { return Ok(()) };
        if events.is_empty() {
            return Ok(());
        }
        let recorded = cdr_model::Instant::now();
        let events = events
            .iter()
            .map(|(subtype, entities, outcome)| {
                audit_event(request, *subtype, outcome, entities, recorded)
            })
            .collect();
        self.record_audit(events).await
    }

    /// One batch entry: a read, or a transaction of this entry alone, to which `record` adds its job's
    /// record. The flag says whether `record` was written with the entry's writes (`false` for a read or a
    /// failure, which wrote nothing).
    async fn batch_entry(
        &self,
        entry: Entry,
        base: &str,
        record: Option<&Record<'_>>,
    ) -> (EntryOutcome, bool) {
        let full_url = entry.full_url.clone();
        let index = entry.index;
        if matches!(entry.method, Method::Get | Method::Head) {
            let result =
                self.answer_read(&entry, base).await.map_err(|error| in_entry(index, error));
            return (EntryOutcome { full_url, result }, false);
        }
        match self.transaction(vec![entry], base, false, record).await {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(outcome) => (outcome, record.is_some()),
                None => (
                    EntryOutcome {
                        full_url,
                        result: Err(InteractionError::invalid("the entry produced no outcome")),
                    },
                    false,
                ),
            },
            Err(error) => (EntryOutcome { full_url, result: Err(error) }, false),
        }
    }

    /// A GET or HEAD entry: read, vread or search, honouring `ifNoneMatch` and `ifModifiedSince`.
    async fn answer_read(
        &self,
        entry: &Entry,
        base: &str,
    ) -> Result<EntryResult, InteractionError> {
        let head = entry.method == Method::Head;
        let (resource_type, id) = match &entry.target {
            Target::Instance(resource_type, id) => (*resource_type, id),
            Target::Version(resource_type, id, version) => {
                let resource = self.vread(resource_type.as_str(), id.as_str(), version).await?;
                return Ok(EntryResult::Read { resource, head });
            }
            Target::Type(resource_type, query) => {
                let bundle = self
                    .search(base, Some(resource_type.as_str()), &pairs(query), Handling::default())
                    .await?;
                return Ok(EntryResult::Search { bundle, head });
            }
            Target::System(query) => {
                let bundle = self.search(base, None, &pairs(query), Handling::default()).await?;
                return Ok(EntryResult::Search { bundle, head });
            }
        };
        let resource = self.read(resource_type.as_str(), id.as_str()).await?;
        let not_modified = match (&entry.if_none_match, entry.if_modified_since) {
            (Some(tags), _) => tags.iter().any(|tag| {
                tag == "*" || ETag::parse(tag).is_ok_and(|tag| tag.version() == resource.version)
            }),
            (None, Some(since)) => resource.last_updated.millis() / 1000 <= since.millis() / 1000,
            (None, None) => false,
        };
        if not_modified {
            return Ok(EntryResult::NotModified(resource));
        }
        Ok(EntryResult::Read { resource, head })
    }
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// `error` as the failure of `Bundle.entry[index]`: the locations of its issues (relative to the entry,
/// such as `request.url` or `resource.subject`) become `Bundle.entry[index].…`.
pub(crate) fn in_entry(index: usize, error: InteractionError) -> InteractionError {
    let locate = |mut outcome: OperationOutcome| {
        for issue in &mut outcome.issues {
            if issue.expression.is_empty() {
                issue.expression.push(format!("Bundle.entry[{index}]"));
            }
            for expression in &mut issue.expression {
                if !expression.starts_with("Bundle.") {
                    *expression = format!("Bundle.entry[{index}].{expression}");
                }
            }
        }
        outcome
    };
    let source = match error {
        InteractionError::Entry { .. } => return error,
        InteractionError::Invalid(outcome) => InteractionError::Invalid(locate(outcome)),
        InteractionError::Unprocessable(outcome) => {
            InteractionError::Unprocessable(locate(outcome))
        }
        other => other,
    };
    InteractionError::Entry { index, source: Box::new(source) }
}

/// `error` of a resource's validation, its locations (`Patient.name[0]`, `Resource`, `id`) made relative
/// to the entry (`resource.name[0]`, `resource`, `resource.id`).
pub(crate) fn resource_relative(
    resource_type: ResourceType,
    error: InteractionError,
) -> InteractionError {
    let relocate = |mut outcome: OperationOutcome| {
        for issue in &mut outcome.issues {
            for expression in &mut issue.expression {
                let rest = expression
                    .strip_prefix(resource_type.as_str())
                    .or_else(|| expression.strip_prefix("Resource"))
                    .filter(|rest| rest.is_empty() || rest.starts_with('.'))
                    .map(|rest| rest.trim_start_matches('.').to_owned());
                *expression = match rest {
                    Some(rest) if rest.is_empty() => "resource".to_owned(),
                    Some(rest) => format!("resource.{rest}"),
                    None => format!("resource.{expression}"),
                };
            }
            if issue.expression.is_empty() {
                issue.expression.push("resource".to_owned());
            }
        }
        outcome
    };
    match error {
        InteractionError::Invalid(outcome) => InteractionError::Invalid(relocate(outcome)),
        InteractionError::Unprocessable(outcome) => {
            InteractionError::Unprocessable(relocate(outcome))
        }
        other => other,
    }
}
