//! The built-in token endpoint for SMART backend services (`POST /auth/token`: `client_credentials` with a
//! `private_key_jwt` client assertion), this server's signing key and its JWKS (`GET /auth/jwks`), and
//! `GET [base]/.well-known/smart-configuration`.
//!
//! Replayed assertions are found by a bounded in-memory cache of `(client, jti)` kept until each assertion's
//! `exp`: it holds for one process. Several processes behind one load balancer each keep their own, so an
//! assertion could be replayed once on each process within its (at most five-minute) lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Deserialize;
use serde_json::{Value, json};

use super::keys::{self, ALGORITHM_NAMES, SKEW_SECONDS};
use super::scopes::{Context, Scope};
use crate::AppState;
use crate::error::ApiError;

/// The latest `exp` of a client assertion, from now (SMART backend services: at most five minutes).
const MAX_ASSERTION_SECONDS: u64 = 300;

/// Most assertions remembered at once; past it (after dropping the expired ones) the endpoint answers 503.
const MAX_REMEMBERED_ASSERTIONS: usize = 100_000;

/// This server's P-256 signing key (ES256).
#[derive(Clone)]
pub struct ServerKey {
    pkcs8: Arc<Vec<u8>>,
    public: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// A new key, as a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`) for the server to keep.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate_pem() -> Result<String, String> {
        let rng = ring::rand::SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a key: the random source failed".to_owned())?;
        let text = STANDARD.encode(document.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in text.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }

    /// The key of a PKCS#8 PEM document holding a P-256 private key (with its public key, as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it).
    ///
    /// # Errors
    /// When the text is not such a document.
    pub fn from_pem(pem: &str) -> Result<ServerKey, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|line| *line != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|line| *line != "-----END PRIVATE KEY-----")
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| "not a PEM document with a PRIVATE KEY (PKCS#8) block".to_owned())?;
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| "not a PKCS#8 P-256 private key with its public key".to_owned())?;
        let public = pair.public_key().as_ref().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(ServerKey { pkcs8: Arc::new(der), public, kid })
    }

    /// The public key as a JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04, x (32 bytes), y (32 bytes).
        let point = self.public.get(1..).unwrap_or_default();
        let (x, y) = point.split_at(point.len() / 2);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
    }

    fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8))
    }
}

/// A scope a client may be registered with or granted, or why not: backend services act for no patient and
/// no user, so only `system/` scopes (`patient/` and `user/` scopes come in tokens of an identity provider
/// that knows the patient or the user).
pub(crate) fn grantable(text: &str) -> Result<Scope, String> {
    let scope = Scope::parse(text)?.ok_or_else(|| format!("'{text}' is not a resource scope"))?;
    match scope.context {
        Context::System => Ok(scope),
        Context::Patient | Context::User => Err(format!(
            "'{text}': the token endpoint serves SMART backend services, which act for no patient and no \
             user, so it grants system/ scopes only (patient/ and user/ scopes come in the tokens of an \
             identity provider that launches the app)"
        )),
    }
}

/// The `(client, jti)` of the assertions seen, until their `exp`.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache(Mutex<HashMap<(String, String), u64>>);

impl ReplayCache {
    /// Remembers an assertion; `Ok(false)` when it was seen before, `Err` when the cache is full.
    fn remember(&self, client: &str, jti: &str, exp: u64, now: u64) -> Result<bool, ()> {
        let mut seen = match self.0.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        let key = (client.to_owned(), jti.to_owned());
        // Kept past `exp` by the skew, since the assertion is accepted that long.
        if seen.get(&key).is_some_and(|until| *until + SKEW_SECONDS >= now) {
            return Ok(false);
        }
        if seen.len() >= MAX_REMEMBERED_ASSERTIONS {
            seen.retain(|_, until| *until + SKEW_SECONDS >= now);
            if seen.len() >= MAX_REMEMBERED_ASSERTIONS {
                return Err(());
            }
        }
        seen.insert(key, exp);
        Ok(true)
    }
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response.extensions_mut().insert(crate::audit::AuditReason(format!("{error}: {description}")));
    response
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    exp: u64,
    jti: Option<String>,
}

/// `POST /auth/token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(auth) = state.auth.clone() else {
        return ApiError::NoRoute("/auth/token".to_owned()).into_response();
    };
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split(';').next())
        .map(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if form_type != Some(true) {
        return invalid_request("the body must be application/x-www-form-urlencoded");
    }
    let mut form: HashMap<String, String> = HashMap::new();
    for (name, value) in form_urlencoded::parse(&body) {
        if form.insert(name.clone().into_owned(), value.into_owned()).is_some() {
            return invalid_request(&format!("the parameter '{name}' is repeated"));
        }
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|value| !value.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type '{other}' is not supported: only client_credentials is"),
            );
        }
        None => return invalid_request("grant_type is missing"),
    }
    if field("client_assertion_type")
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return invalid_request(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        );
    }
    let Some(assertion) = field("client_assertion") else {
        return invalid_request("client_assertion is missing");
    };
    let Some(requested) = field("scope") else {
        return invalid_request("scope is missing");
    };
    let client_id = match authenticate(&auth, assertion).await {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    let granted = match grant(&auth, &client_id, requested) {
        Ok(granted) => granted,
        Err(description) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &description);
        }
    };
    issue(&auth, &client_id, &granted)
}

/// The client an assertion authenticates, or the error response.
async fn authenticate(auth: &super::Auth, assertion: &str) -> Result<String, Box<Response>> {
    let refuse = |description: String| Box::new(invalid_client(&description));
    let header = keys::header(assertion)
        .map_err(|reason| refuse(format!("the client assertion is refused: {reason}")))?;
    let claims = keys::unverified_claims(assertion)
        .map_err(|reason| refuse(format!("the client assertion is refused: {reason}")))?;
    let client_id = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            refuse("the client assertion has no 'iss' claim (the client id)".to_owned())
        })?
        .to_owned();
    let Some((set, _)) = auth.clients.get(&client_id) else {
        return Err(refuse(format!("'{client_id}' is not a registered client")));
    };
    // `sub` must equal `iss`, the client id (SMART backend services).
    let mut validation = keys::validation(header.alg, &auth.config.token_endpoint, &client_id);
    validation.sub = Some(client_id.clone());
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims: AssertionClaims = set
        .verify(assertion, &header, &validation)
        .await
        .map_err(|reason| refuse(format!("the client assertion is refused: {reason}")))?;
    let now = now_seconds();
    if claims.exp > now + MAX_ASSERTION_SECONDS + SKEW_SECONDS {
        return Err(refuse(format!(
            "the client assertion's exp is more than {MAX_ASSERTION_SECONDS} seconds ahead"
        )));
    }
    let Some(jti) = claims.jti.filter(|jti| !jti.is_empty()) else {
        return Err(refuse("the client assertion has no 'jti' claim".to_owned()));
    };
    match auth.replay.remember(&client_id, &jti, claims.exp, now) {
        Ok(true) => Ok(client_id),
        Ok(false) => Err(refuse(format!("the client assertion's jti '{jti}' was already used"))),
        Err(()) => Err(Box::new(oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many client assertions are remembered: retry shortly",
        ))),
    }
}

/// The requested scopes that the client's registered scopes cover, as written; refused when one is
/// malformed or not grantable (`patient/`, `user/`), or none is covered.
fn grant(auth: &super::Auth, client_id: &str, requested: &str) -> Result<Vec<String>, String> {
    let allowed =
        auth.clients.get(client_id).map(|(_, allowed)| allowed.as_slice()).unwrap_or_default();
    let mut granted = Vec::new();
    for text in requested.split_ascii_whitespace() {
        let scope = grantable(text)?;
        if allowed.iter().any(|allowed| allowed.covers(&scope)) {
            granted.push(text.to_owned());
        }
    }
    if granted.is_empty() {
        return Err(format!("none of the requested scopes is allowed for client '{client_id}'"));
    }
    Ok(granted)
}

/// The access token response.
fn issue(auth: &super::Auth, client_id: &str, granted: &[String]) -> Response {
    let now = now_seconds();
    let lifetime = auth.config.access_token_lifetime.as_secs();
    let scope = granted.join(" ");
    let token_id = uuid::Uuid::new_v4().to_string();
    let claims = json!({
        "iss": auth.config.fhir_base_url,
        "sub": client_id,
        "aud": auth.config.fhir_base_url,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + lifetime,
        "jti": token_id,
    });
    let token = match auth.config.server_key.sign(&claims) {
        Ok(token) => token,
        Err(error) => {
            return ApiError::Panic(format!("cannot sign an access token: {error}"))
                .into_response();
        }
    };
    let body = json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": scope,
    });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // The audit trail's agent of the token request: the client, and the token it was given.
    response.extensions_mut().insert(crate::caller::Caller {
        issuer: auth.config.fhir_base_url.clone(),
        client_id: client_id.to_owned(),
        fhir_user: None,
        token_id: Some(token_id),
        patient: None,
        scopes: granted.to_vec(),
    });
    response
}

/// `GET /auth/jwks`.
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    match &state.auth {
        Some(auth) => json_response(&auth.config.server_key.jwks()),
        None => ApiError::NoRoute("/auth/jwks".to_owned()).into_response(),
    }
}

fn json_response(value: &Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The scopes the SMART configuration advertises: the v1 and v2 forms of `system/*` that the token endpoint
/// grants (a client's registration narrows what it gets).
const SCOPES_SUPPORTED: [&str; 5] =
    ["system/*.read", "system/*.write", "system/*.*", "system/*.rs", "system/*.cruds"];

/// `GET [base]/.well-known/smart-configuration` (SMART App Launch 2.x §4).
pub(crate) async fn smart_configuration(State(state): State<AppState>) -> Response {
    let Some(auth) = &state.auth else {
        return ApiError::NoRoute("/.well-known/smart-configuration".to_owned()).into_response();
    };
    json_response(&json!({
        "issuer": auth.config.fhir_base_url,
        "jwks_uri": auth.config.jwks_uri,
        "token_endpoint": auth.config.token_endpoint,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHM_NAMES,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["token"],
        "capabilities": capabilities(auth),
    }))
}

/// The SMART capabilities: backend services at the token endpoint, v1 and v2 scopes, `patient/` scopes
/// (confined to the token's patient), and `user/` scopes when an access policy says who may use them.
fn capabilities(auth: &super::Auth) -> Vec<&'static str> {
    let mut capabilities = vec![
        "client-confidential-asymmetric",
        "permission-v1",
        "permission-v2",
        "permission-patient",
    ];
    if auth.config.access_policy.is_some() {
        capabilities.push("permission-user");
    }
    capabilities
}

/// `rest.security` of the CapabilityStatement (SMART App Launch: the SMART-on-FHIR service and the
/// oauth-uris extension).
pub(crate) fn rest_security(auth: &super::Auth) -> Value {
    json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": auth.config.token_endpoint}],
        }],
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
        "description": "SMART backend services: client_credentials with a private_key_jwt assertion at the \
                        token endpoint; system/ scopes (v1 and v2)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_publishes_its_point() {
        let pem = ServerKey::generate_pem().unwrap();
        let key = ServerKey::from_pem(&pem).unwrap();
        let jwks = key.jwks();
        let x = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["y"].as_str().unwrap()).unwrap();
        assert_eq!((x.len(), y.len()), (32, 32));
        assert!(
            ServerKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn replayed_assertions_are_found_until_they_expire() {
        let cache = ReplayCache::default();
        assert_eq!(cache.remember("c", "1", 1_000, 900), Ok(true));
        assert_eq!(cache.remember("c", "1", 1_000, 950), Ok(false));
        assert_eq!(cache.remember("other", "1", 1_000, 950), Ok(true));
        assert_eq!(cache.remember("c", "1", 2_000, 1_000 + SKEW_SECONDS + 1), Ok(true));
    }
}
