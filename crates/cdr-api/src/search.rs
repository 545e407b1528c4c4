//! Search: `GET [base]/T?…`, `POST [base]/T/_search` (form body merged with the URL parameters), and
//! system search `GET [base]?…` / `POST [base]/_search`. Under `--auth smart` each is checked against the
//! token's scopes and narrowed by their granular restrictions (`auth::authorize_search`).

use axum::Extension;
use axum::extract::{RawQuery, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use cdr_interactions::Handling;

use crate::AppState;
use crate::auth::Scoped;
use crate::auth::{Grants, authorize_search, filter_included};
use crate::error::ApiError;
use crate::extract::{FhirPath, PreferHandling, read_body};
use crate::links::BaseUrl;
use crate::respond::fhir_json;

/// `GET [base]/T?…`.
pub(crate) async fn type_search(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    PreferHandling(handling): PreferHandling,
    grants: Option<Extension<Grants>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = pairs(query.as_deref().unwrap_or_default());
    search(&state, &base, Some(&type_name), params, handling, grants).await
}

pub(crate) async fn type_search_post(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    FhirPath(type_name): FhirPath<String>,
    PreferHandling(handling): PreferHandling,
    grants: Option<Extension<Grants>>,
    request: Request,
) -> Result<Response, ApiError> {
    let params = form_params(&state, request).await?;
    search(&state, &base, Some(&type_name), params, handling, grants).await
}

pub(crate) async fn system_search(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    PreferHandling(handling): PreferHandling,
    grants: Option<Extension<Grants>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = pairs(query.as_deref().unwrap_or_default());
    search(&state, &base, None, params, handling, grants).await
}

pub(crate) async fn system_search_post(
    Scoped(state): Scoped,
    BaseUrl(base): BaseUrl,
    PreferHandling(handling): PreferHandling,
    grants: Option<Extension<Grants>>,
    request: Request,
) -> Result<Response, ApiError> {
    let params = form_params(&state, request).await?;
    search(&state, &base, None, params, handling, grants).await
}

async fn search(
    state: &AppState,
    base: &str,
    type_name: Option<&str>,
    mut params: Vec<(String, String)>,
    handling: Handling,
    grants: Option<Extension<Grants>>,
) -> Result<Response, ApiError> {
    if let Some(Extension(grants)) = &grants {
        authorize_search(grants, type_name, &mut params)?;
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    let mut bundle = state.engine.search(base, type_name, &params, handling).await?;
    if let Some(Extension(grants)) = &grants {
        filter_included(grants, &mut bundle);
    }
    let mut response = fhir_json(StatusCode::OK, bundle.to_string());
    // The query as searched (a POST _search's form included) for the audit trail's query entity.
    response.extensions_mut().insert(crate::audit::AuditQuery(query));
    Ok(response)
}

fn pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The URL parameters followed by those of an `application/x-www-form-urlencoded` body; a body needs
/// that Content-Type (an empty one needs none).
async fn form_params(
    state: &AppState,
    request: Request,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut params = pairs(request.uri().query().unwrap_or_default());
    let has_content_type = request.headers().contains_key(header::CONTENT_TYPE);
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or_default();
        let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/x-www-form-urlencoded" {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type '{text}' is not supported by _search: send application/x-www-form-urlencoded"
            )));
        }
    }
    let body = read_body(request, state).await?;
    if !has_content_type && !body.is_empty() {
        return Err(ApiError::UnsupportedMediaType(
            "a _search body needs Content-Type: application/x-www-form-urlencoded".to_owned(),
        ));
    }
    params.extend(pairs(&String::from_utf8_lossy(&body)));
    Ok(params)
}
