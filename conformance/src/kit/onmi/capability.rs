//! Group: the CapabilityStatement (R4 capabilitystatement.html, http.html#capabilities) against what the
//! guide needs: the types and their interactions, search parameters, includes, profiles, transactions,
//! operations and security.

use hyper::Method;
use serde_json::{Value, json};

use super::support::{
    ONTARIO_PROFILES, capabilities, interaction_codes, resource_capability, rest_patient,
};
use crate::client::Call;
use crate::context::Ctx;
use crate::model::{GroupDef, Outcome, Stop, TestDef, body, ensure};

/// The guide's types (§2.1), each read and searched.
pub(crate) const GUIDE_TYPES: [&str; 7] = [
    "ServiceRequest",
    "ImagingStudy",
    "DiagnosticReport",
    "DocumentReference",
    "Patient",
    "Practitioner",
    "Organization",
];

/// The R4 search parameters the guide's tables (§2.3) search with, per type (the guide's non-standard
/// spellings are chains and aliases of these).
const GUIDE_PARAMS: [(&str, &[&str]); 7] = [
    (
        "ServiceRequest",
        &["patient", "identifier", "status", "code", "occurrence", "authored", "category"],
    ),
    ("ImagingStudy", &["patient", "identifier", "started", "basedon", "modality"]),
    (
        "DiagnosticReport",
        &["patient", "identifier", "status", "code", "issued", "based-on", "category"],
    ),
    ("DocumentReference", &["patient", "identifier", "date", "category"]),
    ("Patient", &["identifier", "gender", "birthdate"]),
    ("Practitioner", &["identifier"]),
    ("Organization", &["identifier"]),
];

/// The includes a viewer asks for with the guide's searches.
const GUIDE_INCLUDES: [(&str, &str); 3] = [
    ("ServiceRequest", "ServiceRequest:patient"),
    ("ImagingStudy", "ImagingStudy:basedon"),
    ("DiagnosticReport", "DiagnosticReport:based-on"),
];

pub(crate) fn group() -> GroupDef {
    GroupDef {
        id: "capability-statement",
        title: "CapabilityStatement",
        description: "GET [base]/metadata and what it claims, against what the guide requires.",
        tests: vec![
            TestDef::new(
                "read",
                "The server answers GET metadata with a CapabilityStatement in FHIR JSON",
                "R4 http.html#capabilities: GET [base]/metadata returns the CapabilityStatement, as application/fhir+json.",
                body!(read),
            ),
            TestDef::new(
                "version",
                "fhirVersion is 4.0.x, kind instance, JSON is a format",
                "R4: the guide is based on FHIR R4 (4.0.1); JSON is the guide's preferred format.",
                body!(version),
            ),
            TestDef::new(
                "resources",
                "Each of the guide's types is declared with read and search-type",
                "The guide reads and searches ServiceRequest, ImagingStudy, DiagnosticReport, DocumentReference, Patient, Practitioner and Organization.",
                body!(resources),
            ),
            TestDef::new(
                "search-params",
                "The guide's search parameters are declared",
                "Each parameter of the guide's search tables (§2.3) in rest.resource.searchParam.",
                body!(search_params),
            ),
            TestDef::new(
                "includes",
                "The guide's _include values are declared",
                "searchInclude lists the includes the guide's viewers use.",
                body!(includes),
            ),
            TestDef::new(
                "profiles",
                "The Ontario MI profiles are declared",
                "Each type's Ontario MI profile in supportedProfile (or profile).",
                body!(profiles),
            ),
            TestDef::new(
                "transaction",
                "The transaction interaction is declared",
                "Submissions are transaction Bundles (guide §4.1.1, §4.1.3).",
                body!(transaction),
            ),
            TestDef::new(
                "validate",
                "$validate, when declared, validates a resource",
                "An operation the server claims must work: POST [base]/Patient/$validate answers an OperationOutcome. Omitted when not declared (the guide does not require it).",
                body!(validate_operation),
            ),
            TestDef::new(
                "security",
                "Security, when declared, refuses a request without credentials",
                "rest.security: omitted when the server declares none (the guide's security is out of the kit's scope).",
                body!(security),
            ),
        ],
    }
}

async fn read(ctx: &mut Ctx) -> Outcome {
    let exchange = ctx.get("metadata").await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    ensure!(
        exchange.is_fhir_json(),
        "Content-Type {:?} is not application/fhir+json",
        exchange.header("content-type")
    );
    let body = exchange.json_or_fail()?;
    ensure!(
        body["resourceType"] == "CapabilityStatement",
        "the body is a {}",
        body["resourceType"]
    );
    ctx.capabilities = Some(body);
    Ok(())
}

async fn version(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let version = cs["fhirVersion"].as_str().unwrap_or_default();
    ensure!(version.starts_with("4.0."), "fhirVersion is {version:?}, not 4.0.x");
    ensure!(cs["kind"] == "instance", "kind is {}, not instance", cs["kind"]);
    let formats: Vec<&str> =
        cs["format"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    ensure!(
        formats.iter().any(|format| matches!(*format, "json" | "application/fhir+json")),
        "format {formats:?} does not list json"
    );
    Ok(())
}

async fn resources(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let mut missing = Vec::new();
    for ty in GUIDE_TYPES {
        let codes = resource_capability(&cs, ty)
            .map(|resource| interaction_codes(&resource["interaction"]))
            .unwrap_or_default();
        for code in ["read", "search-type"] {
            if !codes.contains(code) {
                missing.push(format!("{ty} {code}"));
            }
        }
    }
    ensure!(missing.is_empty(), "not declared: {}", missing.join(", "));
    Ok(())
}

async fn search_params(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let mut missing = Vec::new();
    for (ty, params) in GUIDE_PARAMS {
        let declared: Vec<&str> = resource_capability(&cs, ty)
            .and_then(|resource| resource["searchParam"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|param| param["name"].as_str())
            .collect();
        missing.extend(
            params
                .iter()
                .filter(|param| !declared.contains(param))
                .map(|param| format!("{ty}?{param}")),
        );
    }
    ensure!(missing.is_empty(), "not declared: {}", missing.join(", "));
    Ok(())
}

async fn includes(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let mut missing = Vec::new();
    for (ty, include) in GUIDE_INCLUDES {
        let declared: Vec<&str> = resource_capability(&cs, ty)
            .and_then(|resource| resource["searchInclude"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !declared.contains(&include) && !declared.contains(&"*") {
            missing.push(include);
        }
    }
    ensure!(missing.is_empty(), "searchInclude does not list: {}", missing.join(", "));
    Ok(())
}

async fn profiles(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let mut missing = Vec::new();
    for (ty, profile) in ONTARIO_PROFILES {
        let resource = resource_capability(&cs, ty);
        let declared = resource.is_some_and(|resource| {
            resource["profile"] == profile
                || resource["supportedProfile"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|url| url == profile))
        });
        if !declared {
            missing.push(format!("{ty} {profile}"));
        }
    }
    ensure!(missing.is_empty(), "not declared: {}", missing.join(", "));
    Ok(())
}

fn server_rest(cs: &Value) -> Option<&Value> {
    cs["rest"].as_array()?.iter().find(|rest| rest["mode"] == "server")
}

async fn transaction(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let codes =
        server_rest(&cs).map(|rest| interaction_codes(&rest["interaction"])).unwrap_or_default();
    ensure!(codes.contains("transaction"), "rest.interaction lists {codes:?}, not transaction");
    Ok(())
}

async fn validate_operation(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared = |operations: &Value| {
        operations
            .as_array()
            .is_some_and(|list| list.iter().any(|operation| operation["name"] == "validate"))
    };
    let system = server_rest(&cs).is_some_and(|rest| declared(&rest["operation"]));
    let on_patient = resource_capability(&cs, "Patient")
        .is_some_and(|resource| declared(&resource["operation"]));
    if !system && !on_patient {
        return Err(Stop::omit("$validate is not declared"));
    }
    let patient = rest_patient(ctx, "validate");
    let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]});
    let exchange =
        ctx.send(Call::with_json(Method::POST, "Patient/$validate", &parameters)).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let body = exchange.json_or_fail()?;
    ensure!(
        body["resourceType"] == "OperationOutcome",
        "$validate answered a {}",
        body["resourceType"]
    );
    Ok(())
}

async fn security(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared =
        server_rest(&cs).is_some_and(|rest| rest.get("security").is_some_and(Value::is_object));
    if !declared {
        return Err(Stop::omit("rest.security is not declared"));
    }
    // R4 security.html and SMART: a request without credentials is refused with 401, a Bearer challenge
    // (RFC 6750 §3) and, as every FHIR error, an OperationOutcome.
    let exchange = ctx.send(Call::get("Patient?_count=1").without_credentials()).await?;
    ensure!(exchange.status == 401, "{}: expected 401 without credentials", exchange.label());
    let challenge = exchange.header("www-authenticate").unwrap_or_default();
    ensure!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "{}: the 401 carries no Bearer challenge (WWW-Authenticate: {challenge:?})",
        exchange.label()
    );
    let body = exchange.json_or_fail()?;
    ensure!(
        body["resourceType"] == "OperationOutcome",
        "{}: the 401 answered a {}",
        exchange.label(),
        body["resourceType"]
    );
    Ok(())
}
