//! Liveness and readiness, outside the FHIR base.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// The process is up.
pub(crate) async fn livez() -> &'static str {
    "ok"
}

/// The process can serve: the database answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.ready().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
