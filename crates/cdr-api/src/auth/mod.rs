//! SMART on FHIR authorization (`--auth smart`): the resource server (bearer JWTs from configured issuers and
//! from this server's own token endpoint), the scope check of every interaction, the token endpoint for
//! SMART backend services (`token.rs`) and the discovery documents.
//!
//! Invariants: with auth on, no FHIR route but `metadata` and `.well-known/smart-configuration` answers
//! without a verified token, and no interaction runs without the scope letters `access.rs` says it needs;
//! a route `access::classify` does not know is refused.
//!
//! Whose records the scopes reach: `system/` scopes, every record. `patient/` scopes, when the token has a
//! patient context (its `patient` claim), that patient's compartment: the request's engine is then confined
//! to it ([`Engine::confined`], which every handler of a FHIR route gets through [`Scoped`]), for every
//! scope of the token. A token whose patient/ scopes have no patient context gets nothing from them.
//! `user/` scopes, when the `fhirUser` is a practitioner the access policy admits (`eligibility.rs`,
//! checked on every request that holds them), every record; otherwise they grant nothing. A refusal (401,
//! 403) carries its reason in its OperationOutcome and, for the audit, as a `Refusal` in the response's
//! extensions (`error.rs`). The token endpoint grants `system/` scopes only.

mod access;
mod eligibility;
mod keys;
mod scopes;
mod token;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cdr_interactions::{Compartment, Engine};
use cdr_model::LogicalId;
use serde::Deserialize;
use serde_json::Value;

use self::access::{Interaction, classify, forbidden, require};
pub(crate) use self::access::{authorize_search, bundle_refusals, filter_included};
pub use self::eligibility::{AccessPolicy, EligibleQualification};
pub(crate) use self::scopes::Grants;
use self::scopes::{Allowance, Context, Letter};
pub use self::token::ServerKey;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document, given once (read from a file by the server).
    Document(Value),
    /// An `http` URL serving the JWKS, fetched at first use and again on an unknown `kid`, at most once
    /// every `min_refresh`.
    Url { url: String, min_refresh: Duration },
}

/// An identity provider whose access tokens this server accepts.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry.
    pub iss: String,
    /// The `aud` its tokens must carry; the FHIR base URL when `None`.
    pub aud: Option<String>,
    pub jwks: JwksSource,
}

/// A backend-services client registered with the built-in token endpoint.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    /// The client's public keys (a JWKS document); its assertions name one by `kid`.
    pub jwks: Value,
    /// The scopes it may be granted (`system/` scopes only).
    pub scopes: Vec<String>,
}

/// `--auth smart`.
#[derive(Debug, Clone)]
pub struct SmartConfig {
    /// The public FHIR base URL: the `aud` every access token must carry, and the `iss` of this server's own.
    pub fhir_base_url: String,
    /// The public URL of `POST /auth/token`: the `aud` of client assertions.
    pub token_endpoint: String,
    /// The public URL of `GET /auth/jwks`, where this server publishes its signing key.
    pub jwks_uri: String,
    /// How long the access tokens of the token endpoint live.
    pub access_token_lifetime: Duration,
    pub issuers: Vec<IssuerConfig>,
    pub clients: Vec<ClientConfig>,
    /// The key that signs this server's access tokens.
    pub server_key: ServerKey,
    /// Which practitioners `user/` scopes grant access for (`--access-policy`); without one, `user/`
    /// scopes grant nothing.
    pub access_policy: Option<AccessPolicy>,
}

impl SmartConfig {
    /// Refuses a configuration with a malformed scope or a scope the token endpoint does not grant
    /// (`patient/`, `user/`), or a client registered twice.
    ///
    /// # Errors
    /// What is wrong, for the operator.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for client in &self.clients {
            if !seen.insert(&client.client_id) {
                return Err(format!("client '{}' is registered twice", client.client_id));
            }
            for text in &client.scopes {
                token::grantable(text)
                    .map_err(|error| format!("client '{}': {error}", client.client_id))?;
            }
        }
        Ok(())
    }
}

/// The token endpoint and resource server of one application.
#[derive(Debug)]
pub(crate) struct Auth {
    config: SmartConfig,
    /// Keys by issuer, this server's own first.
    issuers: Vec<(String, String, keys::KeySet)>,
    clients: HashMap<String, (keys::KeySet, Vec<scopes::Scope>)>,
    replay: token::ReplayCache,
}

impl Auth {
    pub(crate) fn new(config: SmartConfig) -> Auth {
        let mut issuers = vec![(
            config.fhir_base_url.clone(),
            config.fhir_base_url.clone(),
            keys::KeySet::fixed(&config.server_key.jwks()),
        )];
        for issuer in &config.issuers {
            let set = match &issuer.jwks {
                JwksSource::Document(document) => keys::KeySet::fixed(document),
                JwksSource::Url { url, min_refresh } => {
                    keys::KeySet::remote(url.clone(), *min_refresh)
                }
            };
            let aud = issuer.aud.clone().unwrap_or_else(|| config.fhir_base_url.clone());
            issuers.push((issuer.iss.clone(), aud, set));
        }
        let clients = config
            .clients
            .iter()
            .map(|client| {
                let allowed =
                    client.scopes.iter().filter_map(|text| token::grantable(text).ok()).collect();
                (client.client_id.clone(), (keys::KeySet::fixed(&client.jwks), allowed))
            })
            .collect();
        Auth { config, issuers, clients, replay: token::ReplayCache::default() }
    }

    /// The caller and what it may do, from a bearer token.
    async fn verify(&self, token: &str) -> Result<(Caller, Grants), String> {
        let header = keys::header(token)?;
        let claims = keys::unverified_claims(token)?;
        let iss = claims.get("iss").and_then(Value::as_str).ok_or("it has no 'iss' claim")?;
        let (_, aud, set) = self
            .issuers
            .iter()
            .find(|(own, _, _)| own == iss)
            .ok_or_else(|| format!("its issuer '{iss}' is not one this server trusts"))?;
        let validation = keys::validation(header.alg, aud, iss);
        let claims: TokenClaims = set.verify(token, &header, &validation).await?;
        let scopes: Vec<String> = match (&claims.scope, &claims.scp) {
            (Some(text), _) => text.split_ascii_whitespace().map(str::to_owned).collect(),
            (None, Some(list)) => list.clone(),
            (None, None) => Vec::new(),
        };
        let grants = Grants::from_scope_text(&scopes.join(" "));
        let client_id = claims
            .client_id
            .or(claims.azp)
            .or(claims.sub)
            .ok_or("it names no client (client_id, azp or sub)")?;
        let caller = Caller {
            issuer: iss.to_owned(),
            client_id,
            fhir_user: claims.fhir_user,
            token_id: claims.jti,
            patient: claims.patient,
            scopes,
        };
        Ok((caller, grants))
    }
}

/// The claims of an access token that the server reads (the checked ones, `exp`, `nbf`, `aud`, `iss`, are
/// read by `jsonwebtoken`).
#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: Option<String>,
    client_id: Option<String>,
    azp: Option<String>,
    jti: Option<String>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
    #[serde(rename = "fhirUser")]
    fhir_user: Option<String>,
    patient: Option<String>,
}

/// The patient compartment a request is confined to, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct Confinement(pub(crate) Compartment);

/// The application state of a FHIR request, whose engine is confined to the caller's compartment when the
/// caller is (else the application's own): every FHIR handler takes its engine from here.
pub(crate) struct Scoped(pub(crate) AppState);

impl FromRequestParts<AppState> for Scoped {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Scoped, Self::Rejection> {
        let mut scoped = state.clone();
        if let Some(Confinement(compartment)) = parts.extensions.get::<Confinement>() {
            scoped.engine = state.engine.confined(Some(compartment.clone()));
        }
        Ok(Scoped(scoped))
    }
}

/// The authorization middleware of the FHIR routes: verifies the bearer token, decides what its `patient/`
/// and `user/` scopes grant, puts the [`Caller`], its grants and its [`Confinement`] in the request's
/// extensions, and checks every interaction that its route alone decides; searches and Bundles are checked
/// by their handlers with their parameters and entries.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(auth) = state.auth.clone() else {
        return next.run(request).await;
    };
    let conditional = request.headers().contains_key("if-none-exist");
    let interaction = classify(request.method(), request.uri().path(), conditional);
    if interaction == Some(Interaction::Open) {
        return next.run(request).await;
    }
    let token = match bearer(&request) {
        Ok(token) => token,
        Err(error) => return error.into_response(),
    };
    let (caller, mut grants) = match auth.verify(&token).await {
        Ok(verified) => verified,
        Err(reason) => return ApiError::InvalidToken(reason).into_response(),
    };
    let confinement = match contexts(&state.engine, &auth, &caller, &mut grants).await {
        Ok(confinement) => confinement,
        Err(error) => return error.into_response(),
    };
    let engine = state.engine.confined(confinement.clone());
    let checked = match &interaction {
        None => Err(forbidden(&grants, "this request is not one the authorization rules know")),
        Some(Interaction::Other(needs)) => require(&grants, needs),
        Some(Interaction::Read { resource_type, id }) => {
            check_read(&engine, &auth, &grants, resource_type, id).await
        }
        Some(Interaction::Open | Interaction::Search { .. } | Interaction::Bundle) => Ok(()),
    };
    if let Err(error) = checked {
        let mut response = error.into_response();
        response.extensions_mut().insert(caller);
        return response;
    }
    request.extensions_mut().insert(caller.clone());
    request.extensions_mut().insert(grants);
    if let Some(compartment) = confinement {
        request.extensions_mut().insert(Confinement(compartment));
    }
    // The audit trail names the caller of every answer, refusals by the handlers included.
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// Decides what the token's `patient/` and `user/` scopes grant (withholding those that grant nothing, with
/// why) and returns the compartment the request is confined to.
async fn contexts(
    engine: &Engine,
    auth: &Auth,
    caller: &Caller,
    grants: &mut Grants,
) -> Result<Option<Compartment>, ApiError> {
    let mut confinement = None;
    if grants.has(Context::Patient) {
        match caller.patient.as_deref().map(LogicalId::parse) {
            Some(Ok(id)) => confinement = Some(Compartment::patient(id.as_str())),
            Some(Err(_)) => grants.withhold(
                Context::Patient,
                "the token's patient/ scopes grant nothing: its patient claim is not a logical id"
                    .to_owned(),
            ),
            None => grants.withhold(
                Context::Patient,
                "the token's patient/ scopes grant nothing: they need the patient context (the \
                 token's patient claim), and it has none"
                    .to_owned(),
            ),
        }
    }
    if grants.has(Context::User) {
        let policy = auth.config.access_policy.as_ref();
        let base = &auth.config.fhir_base_url;
        let fhir_user = caller.fhir_user.as_deref();
        if let Some(reason) = eligibility::check(engine, policy, fhir_user, base).await? {
            grants.withhold(Context::User, reason);
        }
    }
    Ok(confinement)
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(request: &Request) -> Result<String, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::MissingToken);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is not text".into()))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::InvalidToken("the Authorization header is not 'Bearer <token>'".into())),
    }
}

/// A read needs `r`; with granular scopes only, the resource must match one of their restrictions (asked
/// as a search by `_id` with the restriction's parameters).
async fn check_read(
    engine: &Engine,
    auth: &Auth,
    grants: &Grants,
    resource_type: &str,
    id: &str,
) -> Result<(), ApiError> {
    match grants.allowance(Some(resource_type), Letter::Read) {
        Allowance::Unrestricted => Ok(()),
        Allowance::Denied => {
            Err(forbidden(grants, &format!("no scope of the token grants 'r' on {resource_type}")))
        }
        Allowance::Restricted(restrictions) => {
            for restriction in restrictions {
                let mut params = vec![
                    ("_id".to_owned(), id.to_owned()),
                    ("_summary".to_owned(), "count".to_owned()),
                ];
                params.extend(restriction);
                let bundle = engine
                    .search(
                        &auth.config.fhir_base_url,
                        Some(resource_type),
                        &params,
                        cdr_interactions::Handling::Strict,
                    )
                    .await?;
                if bundle.get("total").and_then(Value::as_u64).is_some_and(|total| total > 0) {
                    return Ok(());
                }
            }
            Err(forbidden(
                grants,
                &format!(
                    "{resource_type}/{id} does not match the search parameters of the token's granular scopes"
                ),
            ))
        }
    }
}

pub(crate) use self::token::{jwks, rest_security, smart_configuration, token};
