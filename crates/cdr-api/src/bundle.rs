//! `POST [base]` (and `POST [base]/Bundle`) with a transaction or batch Bundle, answered with a
//! `transaction-response` or `batch-response` (R4 http.html#transaction-response). Under `--auth smart`
//! each entry is checked against the token's scopes: a refused entry fails a transaction whole (403), and
//! answers 403 in its place in a batch.

use axum::Extension;
use axum::http::StatusCode;
use axum::response::Response;
use cdr_interactions::{
    BundleKind, Engine, EntryOutcome, EntryResult, InteractionError, VersionedResource, WriteStatus,
};
use cdr_model::{Bundle, BundleEntry, BundleType};
use serde_json::{Map, Value, json};

use crate::audit::AuditedEngine;
use crate::auth::Scoped;
use crate::auth::{Grants, bundle_refusals};
use crate::caller::Caller;
use crate::error::{ApiError, error_chain, interaction_response};
use crate::extract::{FhirBody, PreferAsync, PreferReturn};
use crate::links::BaseUrl;
use crate::respond::{UNCHANGED, fhir_json, informational_outcome};

/// `POST [base]` and `POST [base]/Bundle`; with `Prefer: respond-async`, queued (`jobs.rs`).
#[allow(clippy::too_many_arguments, reason = "an axum handler: one argument per extractor")]
pub(crate) async fn bundle(
    Scoped(state): Scoped,
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    prefer: PreferReturn,
    PreferAsync(respond_async): PreferAsync,
    grants: Option<Extension<Grants>>,
    caller: Option<Extension<Caller>>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let refusals = match &grants {
        Some(Extension(grants)) => bundle_refusals(grants, &body, &base),
        None => None,
    };
    let mut refused: Vec<Option<ApiError>> = Vec::new();
    if let Some((transaction, refusals)) = refusals {
        // A transaction is refused whole; so is a queued batch, whose entries run later.
        if transaction || respond_async {
            if let Some(refusal) = refusals.into_iter().flatten().next() {
                return Err(refusal);
            }
        } else {
            refused = refusals;
        }
    }
    if respond_async {
        let caller = caller.as_ref().map(|Extension(caller)| caller);
        return crate::jobs::accept(&state, &engine, &base, prefer, &body, caller).await;
    }
    if refused.iter().any(Option::is_some) {
        return refused_batch(&engine, &base, prefer, &body, refused).await;
    }
    let outcome = engine.bundle(&body, &base).await?;
    let entries = outcome
        .entries
        .iter()
        .map(|entry| response_entry(entry, &base, prefer).to_json())
        .collect();
    let mut response =
        fhir_json(StatusCode::OK, response_bundle(outcome.kind, entries).to_string());
    let interaction = match outcome.kind {
        BundleKind::Transaction => "transaction",
        BundleKind::Batch => "batch",
    };
    response.extensions_mut().insert(crate::metrics::Interaction(interaction));
    Ok(response)
}

/// A batch some of whose entries the scopes refuse: the others run as a batch of their own (batch entries
/// are independent), and each refused one answers 403 in its place.
async fn refused_batch(
    engine: &Engine,
    base: &str,
    prefer: PreferReturn,
    body: &[u8],
    refused: Vec<Option<ApiError>>,
) -> Result<Response, ApiError> {
    let mut bundle: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not JSON: {error}")))?;
    let allowed: Vec<usize> = refused
        .iter()
        .enumerate()
        .filter(|(_, refusal)| refusal.is_none())
        .map(|(index, _)| index)
        .collect();
    let mut entries: Vec<Value> = bundle
        .get_mut("entry")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let kept: Vec<Value> =
        allowed.iter().filter_map(|index| entries.get_mut(*index).map(Value::take)).collect();
    if let Some(object) = bundle.as_object_mut() {
        object.insert("entry".into(), Value::Array(kept));
    }
    let outcome = engine.bundle(bundle.to_string().as_bytes(), base).await?;
    let mut answers = outcome.entries.into_iter();
    let mut response = Vec::with_capacity(refused.len());
    let mut audited = Vec::new();
    for (index, refusal) in refused.into_iter().enumerate() {
        match refusal {
            Some(refusal) => {
                let (status, outcome) = refusal.status_and_outcome();
                let request = entries.get(index).map(|entry| &entry["request"]);
                let subject = request.and_then(|request| {
                    crate::audit::entry_subject(
                        request["method"].as_str()?,
                        request["url"].as_str()?,
                    )
                });
                if let Some((subtype, entities)) = subject {
                    let reason = outcome.issues.first().map(|issue| issue.diagnostics.clone());
                    audited.push((
                        subtype,
                        entities,
                        format!("{status}: {}", reason.unwrap_or_default()),
                    ));
                }
                let mut entry = json!({"response": {"status": status_line(status), "outcome": outcome.to_json()}});
                if let Some(full_url) = entries.get(index).and_then(|entry| entry.get("fullUrl")) {
                    entry["fullUrl"] = full_url.clone();
                }
                response.push(entry);
            }
            None => {
                let Some(mut answer) = answers.next() else { break };
                if let Err(error) = &mut answer.result {
                    relocate(error, index);
                }
                response.push(response_entry(&answer, base, prefer).to_json());
            }
        }
    }
    engine.record_audit_refusals(&audited).await?;
    Ok(fhir_json(StatusCode::OK, response_bundle(BundleKind::Batch, response).to_string()))
}

/// The transaction-response or batch-response of these `Bundle.entry` values.
pub(crate) fn response_bundle(kind: BundleKind, entries: Vec<Value>) -> Value {
    let bundle_type = match kind {
        BundleKind::Transaction => BundleType::TransactionResponse,
        BundleKind::Batch => BundleType::BatchResponse,
    };
    let mut bundle = Bundle::new(bundle_type);
    bundle.id = Some(uuid::Uuid::new_v4().to_string());
    let mut json = bundle.to_json();
    if !entries.is_empty()
        && let Some(object) = json.as_object_mut()
    {
        object.insert("entry".into(), Value::Array(entries));
    }
    json
}

/// The `Bundle.entry` answering one entry of a posted Bundle.
pub(crate) fn response_entry(
    entry: &EntryOutcome,
    base: &str,
    prefer: PreferReturn,
) -> BundleEntry {
    let result = match &entry.result {
        Ok(result) => result,
        Err(error) => {
            let (status, outcome) = interaction_response(error);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %error_chain(error), "a batch entry failed");
            }
            return BundleEntry {
                full_url: entry.full_url.clone(),
                response: Some(
                    json!({"status": status_line(status), "outcome": outcome.to_json()}),
                ),
                ..BundleEntry::default()
            };
        }
    };
    let (status, version, resource, message) = match result {
        EntryResult::Write(write) => {
            let (status, message) = match write.status {
                WriteStatus::Created => (StatusCode::CREATED, "created"),
                WriteStatus::Updated => (StatusCode::OK, "updated"),
                WriteStatus::Unchanged => (StatusCode::OK, UNCHANGED),
                WriteStatus::Existing => {
                    (StatusCode::OK, "a matching resource already exists; nothing was created")
                }
                WriteStatus::Deleted => (StatusCode::NO_CONTENT, "deleted"),
                WriteStatus::NothingToDelete => (StatusCode::NO_CONTENT, "nothing to delete"),
            };
            let body = write.resource.as_ref().and_then(|version| version.body.as_deref());
            (status, write.resource.as_ref(), body.and_then(parse), message)
        }
        EntryResult::Read { resource, head } => {
            let body = resource.body.as_deref().filter(|_| !head).and_then(parse);
            (StatusCode::OK, Some(resource), body, "read")
        }
        EntryResult::NotModified(resource) => {
            (StatusCode::NOT_MODIFIED, Some(resource), None, "not modified")
        }
        EntryResult::Search { bundle, head } => {
            (StatusCode::OK, None, (!head).then(|| bundle.clone()), "searched")
        }
    };
    let mut response = Map::new();
    response.insert("status".into(), Value::from(status_line(status)));
    let mut full_url = entry.full_url.clone();
    if let Some(version) = version {
        response.insert("location".into(), Value::from(location(version)));
        response.insert("etag".into(), Value::from(version.version.etag().to_string()));
        response.insert("lastModified".into(), Value::from(version.last_updated.to_fhir()));
        if version.body.is_some() {
            full_url = Some(format!("{base}/{}/{}", version.resource_type, version.id));
        }
    }
    let is_write = matches!(result, EntryResult::Write(_));
    let unchanged =
        matches!(result, EntryResult::Write(write) if write.status == WriteStatus::Unchanged);
    if unchanged {
        response.insert("outcome".into(), informational_outcome(message));
    }
    let resource = match prefer {
        PreferReturn::Representation => resource,
        PreferReturn::Minimal if is_write => None,
        PreferReturn::Minimal => resource,
        PreferReturn::OperationOutcome if is_write => {
            response.insert("outcome".into(), informational_outcome(message));
            None
        }
        PreferReturn::OperationOutcome => resource,
    };
    BundleEntry {
        full_url,
        resource,
        response: Some(Value::Object(response)),
        ..BundleEntry::default()
    }
}

/// Gives the failure of a batch entry that ran in a smaller batch its position in the batch posted: the
/// entry index and the `Bundle.entry[n]` prefix of its issues' locations.
fn relocate(error: &mut InteractionError, posted: usize) {
    let InteractionError::Entry { index, source } = error else { return };
    let (old, new) = (format!("Bundle.entry[{index}]"), format!("Bundle.entry[{posted}]"));
    *index = posted;
    if let InteractionError::Invalid(outcome) | InteractionError::Unprocessable(outcome) =
        source.as_mut()
    {
        for expression in outcome.issues.iter_mut().flat_map(|issue| issue.expression.iter_mut()) {
            if let Some(rest) = expression.strip_prefix(&old) {
                *expression = format!("{new}{rest}");
            }
        }
    }
}

fn location(version: &VersionedResource) -> String {
    format!("{}/{}/_history/{}", version.resource_type, version.id, version.version)
}

/// `201 Created`, as `Bundle.entry.response.status` writes a status.
fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default())
}

fn parse(body: &str) -> Option<Value> {
    serde_json::from_str(body).ok()
}
