//! `POST [base]/[type]/$validate` and `POST [base]/$validate`: validation without storing.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{FhirBody, FhirPath};
use crate::respond::fhir_json;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/$validate", post(validate_any))
        .route("/{type}/$validate", post(validate_type))
}

async fn validate_any(
    State(state): State<AppState>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let outcome = state.engine.validate_operation(None, &body).await?;
    Ok(fhir_json(StatusCode::OK, outcome.to_json().to_string()))
}

async fn validate_type(
    State(state): State<AppState>,
    FhirPath(type_name): FhirPath<String>,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let outcome = state.engine.validate_operation(Some(&type_name), &body).await?;
    Ok(fhir_json(StatusCode::OK, outcome.to_json().to_string()))
}
