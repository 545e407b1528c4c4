//! Who is calling: the identity a verified bearer token carries, put in the request's extensions by the
//! authorization middleware (`--auth smart`) for the handlers and for the audit of the request.

/// The caller of one request, from its verified access token. Absent under `--auth none`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's issuer (`iss`): this server's own token endpoint or a configured identity provider.
    pub issuer: String,
    /// The client the token was issued to: the `client_id` claim, else `azp`, else `sub`.
    pub client_id: String,
    /// The `fhirUser` claim (a Practitioner, PractitionerRole, Patient, ... reference), when the token has one.
    pub fhir_user: Option<String>,
    /// The token's `jti`, when it has one.
    pub token_id: Option<String>,
    /// The patient context (`patient` claim), when the token has one.
    pub patient: Option<String>,
    /// Every scope the token carries, as written (the honoured ones and the others).
    pub scopes: Vec<String>,
}

/// Why a request was refused (401 or 403: a missing or invalid token, a scope that does not allow it, an
/// ineligible practitioner, a write outside the caller's compartment), in the extensions of its response:
/// the same text as its OperationOutcome's diagnostics, for the audit of refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
}
