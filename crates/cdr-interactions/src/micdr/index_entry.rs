//! The DocumentReference index entries of the miCDR (Ontario MI guide §8 item 19, "Search DocumentReference"):
//! every stored ServiceRequest (MI order), ImagingStudy (imaging manifest) and DiagnosticReport (MI report)
//! has one DocumentReference, written in the same store transaction as the source's version, so that
//! `DocumentReference?patient.identifier=system|value` lists a patient's imaging record.
//!
//! The entry carries the identifier [`INDEX_ENTRY_SYSTEM`]`|<Type>/<id>`, by which the next version of the
//! source finds it (under the source's row lock, so two writers of one source never both create one); the
//! source's subject and identifiers; `date` (when the entry was written); the category of
//! `ca-on-mi-index-entry-type`; `type` (the procedure code); `context.event` (the DICOM modalities, those of
//! the AcquisitionModality value set); `context.period` (when the procedure happened); `docStatus` (from the
//! source's status); `content.attachment.url` = `[base]/<Type>/<id>`; and `context.related` the source. It
//! declares the Ontario DocumentReference profile. Deleting the source marks its entry `entered-in-error`.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_store::{NewVersion, RowLock, StoreTx, WriteMethod};
use cdr_validation::expand_value_set;
use serde_json::{Map, Value, json};

use crate::conditional::parse_criteria;
use crate::write::{index_entries, new_id};
use crate::{Engine, InteractionError};

/// The system of the identifier that ties an index entry to its source (value `<Type>/<id>`).
pub const INDEX_ENTRY_SYSTEM: &str = "urn:imaging-cdr:index-entry";

const INDEX_ENTRY_TYPES: &str = "http://ontariohealth.ca/fhir/CodeSystem/ca-on-mi-index-entry-type";
const PROFILE: &str =
    "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-documentReference";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACQUISITION_MODALITY: &str =
    "http://dicom.nema.org/medical/dicom/current/output/chtml/part16/sect_CID_29.html";

/// The category code and display of each source type.
fn category(resource_type: ResourceType) -> Option<(&'static str, &'static str)> {
    match resource_type.as_str() {
        "ServiceRequest" => Some(("mi-order", "MI Order")),
        "ImagingStudy" => Some(("imaging-manifest", "Imaging Manifest")),
        "DiagnosticReport" => Some(("mi-report", "MI Report")),
        _ => None,
    }
}

/// A version of a resource just written in the transaction: its body, `None` for a deletion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) resource_type: ResourceType,
    pub(crate) id: &'a LogicalId,
    pub(crate) version: VersionId,
    pub(crate) body: Option<&'a str>,
}

/// One index entry to write.
struct EntryWrite {
    id: LogicalId,
    version: VersionId,
    body: String,
    index: Vec<cdr_search::IndexEntry>,
}

impl Engine {
    /// Under the contribution rules, creates, updates or marks `entered-in-error` the index entry of each
    /// source (other types are skipped), inside `tx`. `base` is the FHIR base of the attachment URLs.
    pub(crate) async fn write_index_entries(
        &self,
        tx: &mut StoreTx,
        sources: &[Source<'_>],
        base: &str,
        now: Instant,
    ) -> Result<(), InteractionError> {
        let document_reference = ResourceType::known("DocumentReference");
        let sources: Vec<&Source<'_>> =
            sources.iter().filter(|source| category(source.resource_type).is_some()).collect();
        if !self.config.contribution_rules || sources.is_empty() {
            return Ok(());
        }
        // A first version has no entry yet; the others look theirs up by identifier.
        let mut criteria = Vec::new();
        let mut lookup_of = Vec::with_capacity(sources.len());
        for source in &sources {
            if source.version == VersionId::FIRST {
                lookup_of.push(None);
                continue;
            }
            let query =
                format!("identifier={INDEX_ENTRY_SYSTEM}|{}/{}", source.resource_type, source.id);
            lookup_of.push(Some(criteria.len()));
            criteria.push(parse_criteria(
                &self.registry,
                &self.query_limits,
                document_reference,
                &query,
            )?);
        }
        let types = [document_reference];
        let queries: Vec<_> =
            criteria.iter().map(|criteria| (&criteria.query, types.as_slice())).collect();
        let found = tx.find_all(&queries, now.millis() * 1_000, 1).await?;
        let existing: Vec<Option<&LogicalId>> = lookup_of
            .iter()
            .map(|lookup| lookup.and_then(|lookup| found[lookup].first()))
            .collect();
        let rows: Vec<(ResourceType, &LogicalId, RowLock)> = existing
            .iter()
            .flatten()
            .map(|id| (document_reference, *id, RowLock::Update))
            .collect();
        let current = tx.lock_rows(&rows).await?;
        let mut writes = Vec::new();
        for (source, existing) in sources.iter().zip(existing) {
            let state = existing.and_then(|id| {
                current.get(&(document_reference, id.clone())).map(|state| (id, *state))
            });
            let (id, version, body) = match (source.body, state) {
                (Some(body), state) => {
                    let json: Value = serde_json::from_str(body).map_err(|error| {
                        InteractionError::invalid(format!("the written resource: {error}"))
                    })?;
                    let (id, version) = state.map_or_else(
                        || (new_id(), VersionId::FIRST),
                        |(id, (version, _))| (id.clone(), version.next()),
                    );
                    let entry = self.index_entry(source, &json, base, now);
                    (id, version, entry)
                }
                (None, Some((id, (version, false)))) => {
                    let Some(stored) = tx.current_version(document_reference, id).await? else {
                        continue;
                    };
                    let mut entry: Value =
                        serde_json::from_str(stored.body.as_deref().unwrap_or("{}")).map_err(
                            |error| InteractionError::invalid(format!("the index entry: {error}")),
                        )?;
                    entry["status"] = json!("entered-in-error");
                    entry["date"] = json!(now.to_fhir());
                    (id.clone(), version.next(), entry)
                }
                (None, _) => continue,
            };
            writes.push(stamp(body, id, version, now, self, document_reference));
        }
        let versions: Vec<NewVersion<'_>> = writes
            .iter()
            .map(|write| NewVersion {
                res_type: document_reference,
                res_id: &write.id,
                version: write.version,
                last_updated: now,
                method: if write.version == VersionId::FIRST {
                    WriteMethod::Create
                } else {
                    WriteMethod::Update
                },
                body: Some(&write.body),
                index: &write.index,
            })
            .collect();
        tx.write_all(&versions).await?;
        Ok(())
    }

    /// The index entry of a source version (its JSON as written, with its id).
    fn index_entry(&self, source: &Source<'_>, json: &Value, base: &str, now: Instant) -> Value {
        let (resource_type, id) = (source.resource_type, source.id);
        let (code, display) = category(resource_type).unwrap_or_default();
        let mut identifiers =
            vec![json!({"system": INDEX_ENTRY_SYSTEM, "value": format!("{resource_type}/{id}")})];
        identifiers.extend(
            array(json, "identifier")
                .filter(|identifier| {
                    identifier.get("system").is_some() && identifier.get("value").is_some()
                })
                .cloned(),
        );
        let status = json.get("status").and_then(Value::as_str).unwrap_or_default();
        let mut entry = json!({
            "resourceType": "DocumentReference",
            "meta": {"profile": [PROFILE]},
            "identifier": identifiers,
            "status": if status == "entered-in-error" { "entered-in-error" } else { "current" },
            "category": [{"coding": [{"system": INDEX_ENTRY_TYPES, "code": code, "display": display}]}],
            "date": now.to_fhir(),
            "content": [{"attachment": {
                "contentType": "application/fhir+json",
                "url": format!("{base}/{resource_type}/{id}"),
            }}],
        });
        let mut context = Map::new();
        context
            .insert("related".to_owned(), json!([{"reference": format!("{resource_type}/{id}")}]));
        if let Some(doc_status) = doc_status(resource_type, status) {
            entry["docStatus"] = json!(doc_status);
        }
        if let Some(subject) = json.get("subject") {
            entry["subject"] = subject.clone();
        }
        let procedure = match resource_type.as_str() {
            "ImagingStudy" => array(json, "procedureCode").next(),
            _ => json.get("code"),
        };
        if let Some(procedure) = procedure {
            entry["type"] = procedure.clone();
        }
        let events = self.modalities(resource_type, json);
        if !events.is_empty() {
            context.insert("event".to_owned(), Value::Array(events));
        }
        if let Some(start) = clinical_time(resource_type, json) {
            context.insert("period".to_owned(), json!({"start": start}));
        }
        entry["context"] = Value::Object(context);
        entry
    }

    /// The DICOM modalities of a source, each once, as CodeableConcepts: `ImagingStudy.modality` and
    /// `series.modality`, or the DCM codings of a ServiceRequest's or DiagnosticReport's `category` and
    /// `code`; only codes of the AcquisitionModality value set when it is loaded (the profile's required
    /// binding).
    fn modalities(&self, resource_type: ResourceType, json: &Value) -> Vec<Value> {
        let codings: Vec<&Value> = if resource_type.as_str() == "ImagingStudy" {
            array(json, "modality")
                .chain(array(json, "series").filter_map(|series| series.get("modality")))
                .collect()
        } else {
            array(json, "category")
                .chain(json.get("code"))
                .flat_map(|concept| array(concept, "coding"))
                .collect()
        };
        let allowed = expand_value_set(self.profiles.set(), ACQUISITION_MODALITY).ok();
        let mut seen: Vec<&str> = Vec::new();
        let mut events = Vec::new();
        for coding in codings {
            let Some(code) = coding.get("code").and_then(Value::as_str) else { continue };
            if coding.get("system").and_then(Value::as_str) != Some(DCM) || seen.contains(&code) {
                continue;
            }
            let pair = (DCM.to_owned(), code.to_owned());
            if allowed.as_ref().is_some_and(|allowed| allowed.binary_search(&pair).is_err()) {
                continue;
            }
            seen.push(code);
            let mut event = json!({"system": DCM, "code": code});
            if let Some(display) = coding.get("display") {
                event["display"] = display.clone();
            }
            events.push(json!({"coding": [event]}));
        }
        events
    }
}

/// The items of an array element (none when it is absent).
fn array<'a>(json: &'a Value, name: &str) -> impl Iterator<Item = &'a Value> + 'a {
    json.get(name).and_then(Value::as_array).into_iter().flatten()
}

/// The CompositionStatus of a source in this status (the profile's required `docStatus` binding), when
/// there is one.
fn doc_status(resource_type: ResourceType, status: &str) -> Option<&'static str> {
    match (resource_type.as_str(), status) {
        (_, "entered-in-error") => Some("entered-in-error"),
        ("DiagnosticReport", "registered" | "partial" | "preliminary")
        | ("ServiceRequest", "draft")
        | ("ImagingStudy", "registered") => Some("preliminary"),
        ("DiagnosticReport", "final")
        | ("ServiceRequest", "active" | "on-hold" | "completed")
        | ("ImagingStudy", "available") => Some("final"),
        ("DiagnosticReport", "amended" | "corrected" | "appended") => Some("amended"),
        _ => None,
    }
}

/// When the procedure happened: the study's start, the report's effective time, the order's occurrence or
/// authoring time.
fn clinical_time(resource_type: ResourceType, json: &Value) -> Option<Value> {
    let text = |pointer: &str| json.pointer(pointer).filter(|value| value.is_string()).cloned();
    match resource_type.as_str() {
        "ImagingStudy" => text("/started"),
        "DiagnosticReport" => text("/effectiveDateTime").or_else(|| text("/effectivePeriod/start")),
        _ => text("/occurrenceDateTime")
            .or_else(|| text("/occurrencePeriod/start"))
            .or_else(|| text("/authoredOn")),
    }
}

/// The index entry as its version is written: id and `meta` stamped, JSON text and index rows.
fn stamp(
    mut entry: Value,
    id: LogicalId,
    version: VersionId,
    now: Instant,
    engine: &Engine,
    document_reference: ResourceType,
) -> EntryWrite {
    entry["id"] = json!(id.as_str());
    entry["meta"]["versionId"] = json!(version.to_string());
    entry["meta"]["lastUpdated"] = json!(now.to_fhir());
    let index = index_entries(&entry, &engine.registry, document_reference, &id);
    EntryWrite { body: entry.to_string(), id, version, index }
}
