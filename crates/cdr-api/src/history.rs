//! History at system, type and instance level.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use cdr_interactions::HistoryParams;

use crate::AppState;
use crate::auth::Scoped;
use crate::error::ApiError;
use crate::extract::FhirPath;
use crate::links::BaseUrl;
use crate::respond::fhir_json;

pub(crate) async fn system_history(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    history(&state, &base, None, None, query.as_deref()).await
}

pub(crate) async fn type_history(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    history(&state, &base, Some(&type_name), None, query.as_deref()).await
}

pub(crate) async fn instance_history(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    history(&state, &base, Some(&type_name), Some(&id), query.as_deref()).await
}

async fn history(
    state: &AppState,
    base: &str,
    type_name: Option<&str>,
    id: Option<&str>,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let params = HistoryParams::parse(query.unwrap_or_default())?;
    let bundle = state.engine.history(base, type_name, id, &params).await?;
    Ok(fhir_json(StatusCode::OK, bundle.to_string()))
}
