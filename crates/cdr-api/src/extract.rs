//! Extractors for the FHIR request headers and bodies; their rejections are FHIR-shaped [`ApiError`]s.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use cdr_interactions::{Handling, InteractionError, Precondition};
use cdr_model::{ETag, IdError};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::AppState;
use crate::error::ApiError;
use crate::format::{json_body, media_format};

/// `axum::extract::Path` whose rejection is an OperationOutcome.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct FhirPath<T>(pub(crate) T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(format!("invalid URL path: {}", rejection.body_text()))
    }
}

/// The `return` preference of `Prefer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PreferReturn {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

impl PreferReturn {
    /// The preference as `Prefer` spells it, as an asynchronous job keeps it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PreferReturn::Minimal => "minimal",
            PreferReturn::Representation => "representation",
            PreferReturn::OperationOutcome => "OperationOutcome",
        }
    }

    /// The preference [`PreferReturn::as_str`] spelled (the default for anything else).
    pub(crate) fn parse(text: &str) -> PreferReturn {
        match text {
            "minimal" => PreferReturn::Minimal,
            "OperationOutcome" => PreferReturn::OperationOutcome,
            _ => PreferReturn::Representation,
        }
    }
}

/// Whether `Prefer` asks for `respond-async` (R4 async.html).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreferAsync(pub(crate) bool);

impl<S: Send + Sync> FromRequestParts<S> for PreferAsync {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<PreferAsync, ApiError> {
        for value in parts.headers.get_all("prefer") {
            let text = value
                .to_str()
                .map_err(|_| ApiError::BadRequest("the Prefer header is not ASCII".into()))?;
            if text
                .split([',', ';'])
                .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
            {
                return Ok(PreferAsync(true));
            }
        }
        Ok(PreferAsync(false))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PreferReturn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<PreferReturn, ApiError> {
        let mut preference = PreferReturn::default();
        for (name, value) in prefer_pairs(parts)? {
            match (name, value) {
                ("return", "minimal") => preference = PreferReturn::Minimal,
                ("return", "representation") => preference = PreferReturn::Representation,
                ("return", "OperationOutcome") => preference = PreferReturn::OperationOutcome,
                _ => {}
            }
        }
        Ok(preference)
    }
}

/// The `name=value` preferences of every `Prefer` header, in order (later ones win where they repeat).
fn prefer_pairs(parts: &Parts) -> Result<Vec<(&str, &str)>, ApiError> {
    let mut pairs = Vec::new();
    for value in parts.headers.get_all("prefer") {
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("the Prefer header is not ASCII".into()))?;
        for token in text.split([',', ';']) {
            if let Some((name, value)) = token.split_once('=') {
                pairs.push((name.trim(), value.trim().trim_matches('"')));
            }
        }
    }
    Ok(pairs)
}

/// The `handling` preference of `Prefer` for unknown search parameters (default lenient).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreferHandling(pub(crate) Handling);

impl<S: Send + Sync> FromRequestParts<S> for PreferHandling {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<PreferHandling, ApiError> {
        let mut handling = Handling::default();
        for (name, value) in prefer_pairs(parts)? {
            match (name, value) {
                ("handling", "strict") => handling = Handling::Strict,
                ("handling", "lenient") => handling = Handling::Lenient,
                _ => {}
            }
        }
        Ok(PreferHandling(handling))
    }
}

/// `If-Match`: the version the client expects to replace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfMatch(pub(crate) Precondition);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IfMatch, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(Precondition::None));
        };
        let text = value.to_str().unwrap_or_default();
        match ETag::parse(text) {
            Ok(tag) => Ok(IfMatch(Precondition::IfMatch(tag.version()))),
            // A well-formed tag of no version (`W/"0"`) cannot match the current one.
            Err(IdError::InvalidVersion(_)) => {
                Err(ApiError::Interaction(InteractionError::PreconditionFailed(format!(
                    "If-Match expects the version of '{text}', which no resource has"
                ))))
            }
            Err(_) => Err(ApiError::BadRequest(format!(
                "If-Match must be a version ETag such as W/\"3\", not '{text}'"
            ))),
        }
    }
}

/// `If-None-Exist`: the criteria of a conditional create.
#[derive(Debug, Clone)]
pub(crate) struct IfNoneExist(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneExist {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IfNoneExist, ApiError> {
        let Some(value) = parts.headers.get("if-none-exist") else {
            return Ok(IfNoneExist(None));
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("If-None-Exist is not ASCII".into()))?;
        Ok(IfNoneExist(Some(text.to_owned())))
    }
}

/// A request body that claims to be FHIR JSON or FHIR XML and fits the size limit, as JSON (an XML body is read
/// into its JSON, `format::json_body`). A body must say what it is: one without `Content-Type` is refused (415)
/// like one of another type, so that a cross-site HTML form (which can send neither media type) cannot write
/// resources. An empty body needs no `Content-Type`.
#[derive(Debug)]
pub(crate) struct FhirBody(pub(crate) Bytes);

impl FromRequest<AppState> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<FhirBody, ApiError> {
        let declared = match request.headers().get(header::CONTENT_TYPE) {
            None => None,
            Some(content_type) => {
                let text = content_type.to_str().unwrap_or_default();
                let Some(format) = media_format(text) else {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "Content-Type '{text}' is not supported: send application/fhir+json or application/fhir+xml"
                    )));
                };
                Some(format)
            }
        };
        let body = read_body(request, state).await?;
        match declared {
            Some(format) => Ok(FhirBody(json_body(format, body)?)),
            None if body.is_empty() => Ok(FhirBody(body)),
            None => Err(ApiError::UnsupportedMediaType(
                "the request body has no Content-Type: send application/fhir+json or application/fhir+xml"
                    .into(),
            )),
        }
    }
}

/// The whole request body, refused with 413 past the configured limit.
pub(crate) async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let body = Limited::new(request.into_body(), limit).collect().await.map_err(|error| {
        if error.downcast_ref::<LengthLimitError>().is_some() {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest("the request body could not be read".into())
        }
    })?;
    Ok(body.to_bytes())
}
