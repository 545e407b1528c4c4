//! Instance and type interactions: read, vread, create, update, delete, plain and conditional.

use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr_interactions::{VersionedResource, WriteOutcome, WriteStatus};
use cdr_model::{ETag, Instant};

use crate::audit::AuditedEngine;
use crate::auth::Scoped;
use crate::error::ApiError;
use crate::extract::{FhirBody, FhirPath, IfMatch, IfNoneExist, PreferReturn};
use crate::links::BaseUrl;
use crate::respond::{UNCHANGED, fhir_json, informational, version_headers, write_response};

pub(crate) async fn read(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let version = state.engine.read(&type_name, &id).await?;
    if not_modified(&version, &headers) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().extend(version_headers(&version, None));
        return Ok(response);
    }
    Ok(resource_response(version))
}

pub(crate) async fn vread(
    Scoped(state): Scoped,
    FhirPath((type_name, id, version)): FhirPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let version = state.engine.vread(&type_name, &id, &version).await?;
    Ok(resource_response(version))
}

pub(crate) async fn create(
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    prefer: PreferReturn,
    IfNoneExist(criteria): IfNoneExist,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let outcome = engine.create(&type_name, &body, criteria.as_deref(), &base).await?;
    Ok(write_outcome_response(&outcome, &base, prefer))
}

pub(crate) async fn update(
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    prefer: PreferReturn,
    IfMatch(precondition): IfMatch,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let outcome = engine.update(&type_name, &id, &body, precondition, &base).await?;
    Ok(write_outcome_response(&outcome, &base, prefer))
}

pub(crate) async fn conditional_update(
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    RawQuery(query): RawQuery,
    prefer: PreferReturn,
    IfMatch(precondition): IfMatch,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let outcome = engine.conditional_update(&type_name, &query, &body, precondition, &base).await?;
    Ok(write_outcome_response(&outcome, &base, prefer))
}

pub(crate) async fn delete(
    AuditedEngine(engine): AuditedEngine,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    prefer: PreferReturn,
) -> Result<Response, ApiError> {
    let outcome = engine.delete(&type_name, &id).await?;
    Ok(delete_response(&outcome, prefer))
}

pub(crate) async fn conditional_delete(
    AuditedEngine(engine): AuditedEngine,
    FhirPath(type_name): FhirPath<String>,
    RawQuery(query): RawQuery,
    prefer: PreferReturn,
) -> Result<Response, ApiError> {
    let outcome = engine.conditional_delete(&type_name, &query.unwrap_or_default()).await?;
    Ok(delete_response(&outcome, prefer))
}

/// A read's response: the stored JSON text moved into the body as it is, with the version headers.
fn resource_response(mut version: VersionedResource) -> Response {
    let headers = version_headers(&version, None);
    let mut response = fhir_json(StatusCode::OK, version.body.take().unwrap_or_default());
    response.headers_mut().extend(headers);
    response
}

/// Whether `If-None-Match` or `If-Modified-Since` says the client's copy is current.
fn not_modified(version: &VersionedResource, headers: &HeaderMap) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) {
        return value.split(',').any(|tag| {
            tag.trim() == "*" || ETag::parse(tag).is_ok_and(|tag| tag.version() == version.version)
        });
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| Instant::parse_http_date(text).ok());
    since.is_some_and(|since| version.last_updated.millis() / 1000 <= since.millis() / 1000)
}

fn write_outcome_response(outcome: &WriteOutcome, base: &str, prefer: PreferReturn) -> Response {
    let Some(version) = &outcome.resource else {
        return fhir_json(StatusCode::OK, informational("nothing was written"));
    };
    let (status, message) = match outcome.status {
        WriteStatus::Created => (StatusCode::CREATED, "created"),
        WriteStatus::Existing => {
            (StatusCode::OK, "a matching resource already exists; nothing was created")
        }
        WriteStatus::Unchanged => (StatusCode::OK, UNCHANGED),
        _ => (StatusCode::OK, "updated"),
    };
    write_response(status, version, Some(base), prefer, message)
}

fn delete_response(outcome: &WriteOutcome, prefer: PreferReturn) -> Response {
    let message = match outcome.status {
        WriteStatus::Deleted => "deleted",
        _ => "nothing to delete",
    };
    let mut response = match prefer {
        PreferReturn::OperationOutcome => fhir_json(StatusCode::OK, informational(message)),
        _ => StatusCode::NO_CONTENT.into_response(),
    };
    if let Some(version) = &outcome.resource {
        response.headers_mut().extend(version_headers(version, None));
    }
    response
}
