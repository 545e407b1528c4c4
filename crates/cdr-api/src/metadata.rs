//! `GET /metadata`: the CapabilityStatement, with `rest.security` under `--auth smart`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use serde_json::Value;

use crate::AppState;
use crate::links::BaseUrl;
use crate::respond::fhir_json;

pub(crate) async fn metadata(State(state): State<AppState>, BaseUrl(base): BaseUrl) -> Response {
    let mut capabilities = state.engine.capabilities(&base);
    if let Some(auth) = &state.auth
        && let Some(rest) = capabilities.pointer_mut("/rest/0").and_then(Value::as_object_mut)
    {
        rest.insert("security".into(), crate::auth::rest_security(auth));
    }
    fhir_json(StatusCode::OK, capabilities.to_string())
}
