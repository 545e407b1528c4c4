//! The audit trail at the HTTP surface (`ApiConfig::audit`): the middleware that makes every FHIR request and
//! every token request leave one AuditEvent (`cdr_interactions::audit_event`, shaped after IHE BALP) before
//! its response leaves, and the [`AuditedEngine`] extractor of the write handlers.
//!
//! A write handler takes its engine from [`AuditedEngine`], which records the write's event in the write's own
//! transaction; every other event (reads, searches, history, `$validate`, Bundles as a whole, token requests,
//! refusals and failures) is recorded by the middleware after the handler answered, through the engine's
//! group commit, and the response waits for it: if the event cannot be written, the client gets the 503 of
//! `InteractionError::AuditUnavailable` instead. A refusal's reason (`AuditReason`, put on every error
//! response by `error.rs`, e.g. the diagnostics of a 403) becomes `outcomeDesc`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_interactions::{
    AuditAgents, AuditEntities, AuditOutcome, AuditRequest, AuditSubtype, Engine, audit_event,
    patient_of, patient_reference,
};
use cdr_model::{ETag, Instant, LogicalId, ResourceType};

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;

/// `--audit on`: the trail's settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `AuditEvent.source.observer` (and the destination agent): this server's name in the trail.
    pub observer: String,
}

/// The reason of a failed response, for `outcomeDesc`: the diagnostics of its OperationOutcome, put on every
/// error response (a 403's refusal reason included) by `ApiError::into_response`.
#[derive(Debug, Clone)]
pub(crate) struct AuditReason(pub(crate) String);

/// The query a search ran (the URL's, or a `POST _search` form's), put on its response by `search.rs`.
#[derive(Debug, Clone)]
pub(crate) struct AuditQuery(pub(crate) String);

/// What the middleware knows of a request before its handler runs, for the write handlers' engine.
#[derive(Debug, Clone)]
struct AuditSeed {
    observer: String,
    subtype: AuditSubtype,
    address: Option<String>,
    /// The request as a write handler's engine records it, once the handler took its engine.
    request: Arc<OnceLock<Arc<AuditRequest>>>,
}

/// The engine of a write handler: under `--audit on`, one that records the write's event in the write's
/// transaction.
pub(crate) struct AuditedEngine(pub(crate) Engine);

impl FromRequestParts<AppState> for AuditedEngine {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<AuditedEngine, ApiError> {
        // The engine confined to the caller's compartment, when there is one (as `auth::Scoped` gives it).
        let engine = match parts.extensions.get::<crate::auth::Confinement>() {
            Some(crate::auth::Confinement(compartment)) => {
                state.engine.confined(Some(compartment.clone()))
            }
            None => state.engine.clone(),
        };
        let Some(seed) = parts.extensions.get::<AuditSeed>() else {
            return Ok(AuditedEngine(engine));
        };
        let agents = agents_of(parts.extensions.get::<Caller>(), seed.address.clone());
        let request = seed.request.get_or_init(|| {
            Arc::new(AuditRequest::new(seed.observer.clone(), agents, seed.subtype))
        });
        Ok(AuditedEngine(engine.audited(Arc::clone(request))))
    }
}

/// The middleware of the FHIR routes and the token endpoint: records the request's AuditEvent unless its
/// write recorded it, and answers only once it is committed.
pub(crate) async fn record(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(config) = &state.config.audit else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    let Some(subtype) = subtype_of(request.method(), &path) else {
        return next.run(request).await;
    };
    let address =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    let query = request.uri().query().map(str::to_owned);
    let seed = AuditSeed {
        observer: config.observer.clone(),
        subtype,
        address: address.clone(),
        request: Arc::default(),
    };
    let recorded = Arc::clone(&seed.request);
    request.extensions_mut().insert(seed);
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() && recorded.get().is_some_and(|request| request.recorded_with_write()) {
        return response;
    }
    let subtype = match response.extensions().get::<crate::metrics::Interaction>() {
        Some(crate::metrics::Interaction("batch")) => AuditSubtype::Batch,
        _ => subtype,
    };
    let agents = agents_of(response.extensions().get::<Caller>(), address);
    let outcome = outcome_of(status, response.extensions().get::<AuditReason>());
    let query =
        response.extensions().get::<AuditQuery>().map(|searched| searched.0.clone()).or(query);
    let (response, entities) = entities_of(subtype, &path, query.as_deref(), response).await;
    let request = AuditRequest::new(config.observer.clone(), agents, subtype);
    let event = audit_event(&request, subtype, &outcome, &entities, Instant::now());
    match state.engine.record_audit(vec![event]).await {
        Ok(()) => response,
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The subtype and entities of a Bundle entry (its `request.method` and `request.url`, relative to the base)
/// that is refused before it runs, for its own event.
pub(crate) fn entry_subject(method: &str, url: &str) -> Option<(AuditSubtype, AuditEntities)> {
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let path = format!("/{}", path.trim_start_matches('/'));
    let subtype = subtype_of(&method, &path)?;
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let mut entities = AuditEntities::default();
    if let [type_name, id, ..] = segments.as_slice()
        && let (Ok(resource_type), Ok(id)) = (ResourceType::parse(type_name), LogicalId::parse(id))
    {
        entities.resource = Some(format!("{resource_type}/{id}"));
        entities.patient = patient_of(resource_type, &id, b"{}");
    }
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        entities.query = Some(format!("{}?{query}", segments.join("/")));
        entities.patient =
            entities.patient.or_else(|| queried_patient(segments.first().copied(), query));
    }
    Some((subtype, entities))
}

/// The agents of a request: its verified caller (user, client, token) and the network peer.
fn agents_of(caller: Option<&Caller>, address: Option<String>) -> AuditAgents {
    AuditAgents {
        user: caller.and_then(|caller| caller.fhir_user.clone()),
        client: caller.map(|caller| (caller.issuer.clone(), caller.client_id.clone())),
        token_id: caller.and_then(|caller| caller.token_id.clone()),
        address,
    }
}

fn outcome_of(status: StatusCode, reason: Option<&AuditReason>) -> AuditOutcome {
    let reason =
        || reason.map_or_else(|| status.to_string(), |reason| format!("{status}: {}", reason.0));
    if status.is_client_error() {
        AuditOutcome::Minor(reason())
    } else if status.is_server_error() {
        AuditOutcome::Serious(reason())
    } else {
        AuditOutcome::Success
    }
}

/// The interaction of a request (its path below the FHIR base, or `/auth/token`); `None` for what holds no
/// personal information and is not audited (`metadata`, the SMART configuration, the server's keys).
fn subtype_of(method: &Method, path: &str) -> Option<AuditSubtype> {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let get = method == Method::GET || method == Method::HEAD;
    let subtype = match (segments.as_slice(), get) {
        (["metadata"] | [".well-known", ..] | ["auth", "jwks"], _) => return None,
        (["auth", "token"], _) => AuditSubtype::Login,
        ([] | ["_search"], _) if get || segments.first() == Some(&"_search") => {
            AuditSubtype::SearchSystem
        }
        ([] | ["Bundle"], false) if method == Method::POST => AuditSubtype::Transaction,
        (["_history"], true) => AuditSubtype::HistorySystem,
        ([_, "_search"], false) | ([_], true) => AuditSubtype::SearchType,
        ([_, "_history"], true) => AuditSubtype::HistoryType,
        ([_, _], true) if !segments[1].starts_with('$') && segments[0] != "_async" => {
            AuditSubtype::Read
        }
        ([_, _, "_history"], true) => AuditSubtype::HistoryInstance,
        ([_, _, "_history", _], true) => AuditSubtype::Vread,
        ([type_name], false) if method == Method::POST && !type_name.starts_with('$') => {
            AuditSubtype::Create
        }
        ([_] | [_, _], false) if method == Method::PUT => AuditSubtype::Update,
        ([_] | [_, _], false) if method == Method::PATCH => AuditSubtype::Patch,
        ([first] | [first, _], false) if method == Method::DELETE && *first != "_async" => {
            AuditSubtype::Delete
        }
        _ => AuditSubtype::Operation,
    };
    Some(subtype)
}

/// The entities of an event recorded by the middleware, and the response (whose body a successful read
/// gives up for the patient it names).
async fn entities_of(
    subtype: AuditSubtype,
    path: &str,
    query: Option<&str>,
    response: Response,
) -> (Response, AuditEntities) {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let target = match segments.as_slice() {
        [type_name, id, ..] if !id.starts_with(['$', '_']) => {
            ResourceType::parse(type_name).ok().zip(LogicalId::parse(id).ok())
        }
        _ => None,
    };
    let mut entities = AuditEntities::default();
    let is_query = matches!(
        subtype,
        AuditSubtype::SearchType
            | AuditSubtype::SearchSystem
            | AuditSubtype::HistoryType
            | AuditSubtype::HistorySystem
            | AuditSubtype::Operation
    );
    if is_query && let Some(query) = query.filter(|query| !query.is_empty()) {
        let relative = segments.join("/");
        entities.query = Some(format!("{relative}?{query}"));
        entities.patient = queried_patient(segments.first().copied(), query);
    }
    // A type-level write that answered a resource (a conditional create finding its match) names it in
    // `Location`.
    let located = || {
        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
        let tail: Vec<&str> = location.rsplit('/').take(4).collect();
        match tail.as_slice() {
            [_, "_history", id, type_name] => {
                ResourceType::parse(type_name).ok().zip(LogicalId::parse(id).ok())
            }
            _ => None,
        }
    };
    let Some((resource_type, id)) = target.or_else(located) else {
        return (response, entities);
    };
    let version = response
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| ETag::parse(text).ok())
        .map(ETag::version);
    entities.resource = Some(match version {
        Some(version) => format!("{resource_type}/{id}/_history/{version}"),
        None => format!("{resource_type}/{id}"),
    });
    let reads = matches!(subtype, AuditSubtype::Read | AuditSubtype::Vread);
    if !(reads && response.status() == StatusCode::OK) {
        entities.patient = patient_of(resource_type, &id, b"{}");
        return (response, entities);
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), entities);
    };
    entities.patient = patient_of(resource_type, &id, &bytes);
    (Response::from_parts(parts, Body::from(bytes)), entities)
}

/// The patient a search or history query is about: its `patient` or `subject` value naming a Patient (a
/// `patient` value may be a bare id), or the `_id` of a Patient search.
fn queried_patient(type_name: Option<&str>, query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| {
        let name = name.split(':').next().unwrap_or_default();
        match name {
            "patient" | "subject" => patient_reference(&value).or_else(|| {
                (name == "patient")
                    .then(|| LogicalId::parse(&value).ok())
                    .flatten()
                    .map(|id| format!("Patient/{id}"))
            }),
            "_id" if type_name == Some("Patient") => {
                LogicalId::parse(&value).ok().map(|id| format!("Patient/{id}"))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_restful_interactions() {
        let cases = [
            (Method::GET, "/Patient/p", Some(AuditSubtype::Read)),
            (Method::HEAD, "/Patient/p/_history/2", Some(AuditSubtype::Vread)),
            (Method::GET, "/Patient/p/_history", Some(AuditSubtype::HistoryInstance)),
            (Method::GET, "/Patient/_history", Some(AuditSubtype::HistoryType)),
            (Method::GET, "/_history", Some(AuditSubtype::HistorySystem)),
            (Method::GET, "/Patient", Some(AuditSubtype::SearchType)),
            (Method::POST, "/Patient/_search", Some(AuditSubtype::SearchType)),
            (Method::GET, "/", Some(AuditSubtype::SearchSystem)),
            (Method::POST, "/_search", Some(AuditSubtype::SearchSystem)),
            (Method::POST, "/", Some(AuditSubtype::Transaction)),
            (Method::POST, "/Patient", Some(AuditSubtype::Create)),
            (Method::PUT, "/Patient", Some(AuditSubtype::Update)),
            (Method::PATCH, "/Patient/p", Some(AuditSubtype::Patch)),
            (Method::DELETE, "/Patient/p", Some(AuditSubtype::Delete)),
            (Method::POST, "/Patient/$validate", Some(AuditSubtype::Operation)),
            (Method::POST, "/$validate", Some(AuditSubtype::Operation)),
            (Method::GET, "/_async/j", Some(AuditSubtype::Operation)),
            (Method::DELETE, "/_async/j", Some(AuditSubtype::Operation)),
            (Method::POST, "/auth/token", Some(AuditSubtype::Login)),
            (Method::GET, "/metadata", None),
            (Method::GET, "/.well-known/smart-configuration", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(subtype_of(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn a_query_names_its_patient() {
        assert_eq!(
            queried_patient(Some("DiagnosticReport"), "patient=p1&code=x").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(
            queried_patient(Some("ImagingStudy"), "subject=Patient%2Fp2").as_deref(),
            Some("Patient/p2")
        );
        assert_eq!(queried_patient(Some("Patient"), "_id=p3").as_deref(), Some("Patient/p3"));
        assert_eq!(queried_patient(Some("Encounter"), "_id=e"), None);
    }
}
