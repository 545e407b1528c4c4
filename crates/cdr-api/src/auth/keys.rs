//! Verification keys: JSON Web Key Sets held in memory or fetched from an `http` URL, refreshed when a token
//! names an unknown `kid` (at most once per refresh interval), and the check of a JWS with them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The only signature algorithms accepted, for tokens and client assertions alike: never `none`, never HMAC.
pub(crate) const ALGORITHMS: [Algorithm; 4] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::ES256, Algorithm::ES384];

/// The `alg` names of [`ALGORITHMS`], as the SMART configuration lists them.
pub(crate) const ALGORITHM_NAMES: [&str; 4] = ["RS256", "RS384", "ES256", "ES384"];

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub(crate) const SKEW_SECONDS: u64 = 60;

/// The keys of an issuer or of a client.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// `None` for keys given once (a file, inline); the URL they are fetched from otherwise.
    url: Option<String>,
    min_refresh: Duration,
    state: tokio::sync::Mutex<Fetched>,
    /// The keys last read, for the lock-free path of a known `kid`.
    keys: Mutex<Arc<Vec<Jwk>>>,
}

#[derive(Debug, Default)]
struct Fetched {
    at: Option<Instant>,
}

impl KeySet {
    /// Keys given once: the `keys` of a JWKS document.
    pub(crate) fn fixed(jwks: &Value) -> KeySet {
        KeySet {
            url: None,
            min_refresh: Duration::ZERO,
            state: tokio::sync::Mutex::default(),
            keys: Mutex::new(Arc::new(parse_keys(jwks))),
        }
    }

    /// Keys fetched from `url` at first use, and again on an unknown `kid` once `min_refresh` has passed
    /// since the last fetch.
    pub(crate) fn remote(url: String, min_refresh: Duration) -> KeySet {
        KeySet {
            url: Some(url),
            min_refresh,
            state: tokio::sync::Mutex::default(),
            keys: Mutex::new(Arc::default()),
        }
    }

    fn current(&self) -> Arc<Vec<Jwk>> {
        match self.keys.lock() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The keys that may have signed a token with this header: the one of its `kid` (after a bounded
    /// refresh when none has it), or, without a `kid`, every key.
    async fn candidates(&self, kid: Option<&str>) -> Result<Vec<Jwk>, String> {
        let find = |keys: &[Jwk]| -> Vec<Jwk> {
            keys.iter()
                .filter(|key| kid.is_none() || key.common.key_id.as_deref() == kid)
                .cloned()
                .collect()
        };
        let found = find(&self.current());
        if !found.is_empty() {
            return Ok(found);
        }
        let Some(url) = &self.url else {
            return Err(unknown_kid(kid));
        };
        let mut state = self.state.lock().await;
        // Another request may have refreshed while this one waited.
        let found = find(&self.current());
        if !found.is_empty() {
            return Ok(found);
        }
        if state.at.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return Err(unknown_kid(kid));
        }
        state.at = Some(Instant::now());
        let jwks = fetch(url)
            .await
            .map_err(|error| format!("the issuer's keys ({url}) cannot be fetched: {error}"))?;
        let keys = Arc::new(parse_keys(&jwks));
        let found = find(&keys);
        match self.keys.lock() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        if found.is_empty() { Err(unknown_kid(kid)) } else { Ok(found) }
    }

    /// The claims of `token` once its signature verifies with one of these keys and `validation` (audience,
    /// issuer, times) passes.
    pub(crate) async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        header: &Header,
        validation: &Validation,
    ) -> Result<T, String> {
        let mut last = String::from("no key of the issuer can verify it");
        for jwk in self.candidates(header.kid.as_deref()).await? {
            if !fits(&jwk, header.alg) {
                last = format!("its key does not sign with {:?}", header.alg);
                continue;
            }
            let key = DecodingKey::from_jwk(&jwk)
                .map_err(|error| format!("a key is unusable: {error}"))?;
            match jsonwebtoken::decode::<T>(token, &key, validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last = describe(&error),
            }
        }
        Err(last)
    }
}

fn unknown_kid(kid: Option<&str>) -> String {
    match kid {
        Some(kid) => format!("no key of the issuer has kid '{kid}'"),
        None => "the issuer has no keys".to_owned(),
    }
}

/// The keys of a JWKS document that this server can use; others (unknown `kty`, private members) are
/// skipped rather than spoiling the set.
fn parse_keys(jwks: &Value) -> Vec<Jwk> {
    let keys = jwks.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
    keys.into_iter().filter_map(|key| serde_json::from_value::<Jwk>(key).ok()).collect()
}

/// Whether `jwk` is a key of the family and curve `alg` needs, and does not name another `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(own) = jwk.common.key_algorithm
        && own.to_string() != format!("{alg:?}")
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        _ => false,
    }
}

/// A refusal in words.
pub(crate) fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => "its signature does not verify".to_owned(),
        ErrorKind::ExpiredSignature => "it has expired (exp)".to_owned(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidAudience => "it is for another audience (aud)".to_owned(),
        ErrorKind::InvalidIssuer => "it is from another issuer (iss)".to_owned(),
        ErrorKind::InvalidSubject => "its subject (sub) is not its issuer (iss)".to_owned(),
        ErrorKind::InvalidAlgorithm => "its algorithm is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no '{claim}' claim"),
        _ => format!("it is malformed ({error})"),
    }
}

/// The header of a compact JWS, refused unless its `alg` is one of [`ALGORITHMS`] (so `none` and every
/// HMAC algorithm are refused before any key is looked at).
pub(crate) fn header(token: &str) -> Result<Header, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|error| match error.kind() {
        jsonwebtoken::errors::ErrorKind::Json(_) | jsonwebtoken::errors::ErrorKind::Base64(_) => {
            "its header is not a JWS header with an accepted alg (RS256, RS384, ES256, ES384)"
                .to_owned()
        }
        _ => format!("it is not a compact JWS ({error})"),
    })?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(format!(
            "its algorithm {:?} is not accepted: only RS256, RS384, ES256 and ES384 are",
            header.alg
        ));
    }
    Ok(header)
}

/// The claims of a compact JWS read without verifying it: only to find which issuer's keys verify it.
pub(crate) fn unverified_claims(token: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or("it is not a compact JWS")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "its payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "its payload is not a JSON object".to_owned())
}

/// The validation of every token and assertion: `exp` required, `nbf` checked, both with the skew;
/// the algorithm of the header (already one of [`ALGORITHMS`]).
pub(crate) fn validation(alg: Algorithm, audience: &str, issuer: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = SKEW_SECONDS;
    validation.validate_nbf = true;
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation
}

/// Largest JWKS document read from a URL.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Longest wait for an issuer's JWKS.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// GETs a JWKS document from an `http` URL.
async fn fetch(url: &str) -> Result<Value, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri: hyper::Uri = url.parse().map_err(|error| format!("{error}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<axum::body::Bytes>>();
    let request = hyper::Request::get(uri)
        .header("accept", "application/json")
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|error| error.to_string())?
    .to_bytes();
    serde_json::from_slice(&body).map_err(|error| format!("not JSON: {error}"))
}
