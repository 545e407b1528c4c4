//! `GET /metadata`: the CapabilityStatement.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::links::BaseUrl;
use crate::respond::fhir_json;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metadata", get(metadata))
}

async fn metadata(State(state): State<AppState>, BaseUrl(base): BaseUrl) -> Response {
    fhir_json(StatusCode::OK, state.engine.capabilities(&base).to_string())
}
