//! `POST [base]/$validate`, `POST [base]/[type]/$validate` and `POST [base]/[type]/[id]/$validate`: validation
//! without storing (the engine's `validate_operation` says what each level and mode checks).

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;

use crate::AppState;
use crate::auth::Scoped;
use crate::error::ApiError;
use crate::extract::{FhirBody, FhirPath};
use crate::respond::fhir_json;

pub(crate) async fn validate_any(
    Scoped(state): Scoped,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    validate(&state, None, None, query.as_deref(), &body).await
}

pub(crate) async fn validate_type(
    Scoped(state): Scoped,
    FhirPath(type_name): FhirPath<String>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    validate(&state, Some(&type_name), None, query.as_deref(), &body).await
}

pub(crate) async fn validate_instance(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    validate(&state, Some(&type_name), Some(&id), query.as_deref(), &body).await
}

async fn validate(
    state: &AppState,
    type_name: Option<&str>,
    id: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let outcome = state.engine.validate_operation(type_name, id, query, body).await?;
    Ok(fhir_json(StatusCode::OK, outcome.to_json().to_string()))
}
