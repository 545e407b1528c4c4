//! `POST [base]` (and `POST [base]/Bundle`) with a transaction or batch Bundle, answered with a
//! `transaction-response` or `batch-response` (R4 http.html#transaction-response).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use cdr_interactions::{BundleKind, EntryOutcome, EntryResult, VersionedResource, WriteStatus};
use cdr_model::{Bundle, BundleEntry, BundleType};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, error_chain, interaction_response};
use crate::extract::{FhirBody, PreferAsync, PreferReturn};
use crate::links::BaseUrl;
use crate::respond::{UNCHANGED, fhir_json, informational_outcome};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/Bundle", post(bundle))
}

/// `POST [base]` and `POST [base]/Bundle`; with `Prefer: respond-async`, queued (`jobs.rs`).
pub(crate) async fn bundle(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    prefer: PreferReturn,
    PreferAsync(respond_async): PreferAsync,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    if respond_async {
        return crate::jobs::accept(&state, &base, prefer, &body).await;
    }
    let outcome = state.engine.bundle(&body, &base).await?;
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
