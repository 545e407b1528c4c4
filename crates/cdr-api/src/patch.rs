//! `PATCH [base]/[type]/[id]` and the conditional `PATCH [base]/[type]?criteria`: a JSON Patch
//! (`application/json-patch+json`) or a FHIRPath Patch (a Parameters resource as `application/fhir+json` or
//! `application/fhir+xml`),
//! answered like an update (200, `ETag`, `Last-Modified`, `Location`, the body `Prefer: return` asks for).

use axum::extract::{FromRequest, RawQuery, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use cdr_interactions::{Patch, PatchFormat};

use crate::AppState;
use crate::audit::AuditedEngine;
use crate::error::ApiError;
use crate::extract::{FhirPath, IfMatch, PreferReturn, read_body};
use crate::format::{Format, json_body, media_format};
use crate::links::BaseUrl;
use crate::respond::write_response;

/// The media type of JSON Patch (RFC 6902).
const JSON_PATCH: &str = "application/json-patch+json";

/// A PATCH body, parsed by the format its `Content-Type` names: JSON Patch, or FHIRPath Patch for FHIR JSON.
/// Any other media type, or none, is refused with 415.
#[derive(Debug)]
pub(crate) struct PatchBody(Patch);

impl FromRequest<AppState> for PatchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<PatchBody, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default().to_owned());
        let (format, body_format) = match content_type.as_deref() {
            Some(text) if essence(text) == JSON_PATCH => (PatchFormat::JsonPatch, Format::Json),
            Some(text) if let Some(body_format) = media_format(text) => {
                (PatchFormat::FhirPath, body_format)
            }
            Some(text) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type '{text}' is not a patch format: send {JSON_PATCH}, or a FHIRPath Patch Parameters resource as application/fhir+json or application/fhir+xml"
                )));
            }
            None => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "a PATCH body needs a Content-Type: {JSON_PATCH}, application/fhir+json or application/fhir+xml"
                )));
            }
        };
        let body = json_body(body_format, read_body(request, state).await?)?;
        Ok(PatchBody(Patch::parse(format, &body)?))
    }
}

fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

pub(crate) async fn patch_resource(
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    prefer: PreferReturn,
    IfMatch(precondition): IfMatch,
    PatchBody(patch): PatchBody,
) -> Result<Response, ApiError> {
    let version = engine.patch(&type_name, &id, &patch, precondition, &base).await?;
    Ok(write_response(StatusCode::OK, &version, Some(&base), prefer, "patched"))
}

pub(crate) async fn conditional_patch_resource(
    AuditedEngine(engine): AuditedEngine,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    RawQuery(query): RawQuery,
    prefer: PreferReturn,
    IfMatch(precondition): IfMatch,
    PatchBody(patch): PatchBody,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let version = engine.conditional_patch(&type_name, &query, &patch, precondition, &base).await?;
    Ok(write_response(StatusCode::OK, &version, Some(&base), prefer, "patched"))
}
