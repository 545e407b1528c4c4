//! What the `onmi` tests share: the CapabilityStatement, the fixtures (one transaction Bundle of the guide's
//! resources, tagged and identified by the run id), searches followed to their last page, OperationOutcome
//! checks and profile validation.

use std::collections::{BTreeMap, BTreeSet};

use cdr_validation::{ConformanceKind, validate};
use hyper::Method;
use serde_json::{Value, json};

use crate::client::{Call, Exchange};
use crate::context::{Ctx, Mode};
use crate::matcher;
use crate::model::{Outcome, Stop, ensure};

/// The fixtures' transaction Bundle; `${RUN}` and `${RUNDIGITS}` are replaced by the run id.
const SUBMISSION: &str = include_str!("../../../fixtures/submission.json");

/// The tag system of everything the kit writes (the code is the run id).
pub(crate) const TAG_SYSTEM: &str = "urn:imaging-cdr:conformance";
pub(crate) const RUN_SYSTEM: &str = "urn:imaging-cdr:conformance:run";
pub(crate) const MRN_SYSTEM: &str =
    "http://ehealthontario.ca/fhir/NamingSystem/example-hospital-mrn";
pub(crate) const ACCESSION_SYSTEM: &str =
    "http://ehealthontario.ca/fhir/NamingSystem/example-hospital-accession";
pub(crate) const PROCEDURE: &str = "urn:oid:2.16.840.1.113883.3.239.99.1|CTHEADWO";

/// The fixture keys, in the order of the submission's entries.
pub(crate) const FIXTURE_KEYS: [&str; 9] = [
    "patient",
    "practitioner",
    "organization",
    "order",
    "study",
    "report",
    "decoy-order",
    "study2",
    "addendum",
];

/// The Ontario MI profile of each type (the guide's §2.6 and the profiles shipped in `profiles/`).
pub(crate) const ONTARIO_PROFILES: [(&str, &str); 7] = [
    (
        "DiagnosticReport",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-diagnosticReport",
    ),
    (
        "DocumentReference",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-documentReference",
    ),
    (
        "ImagingStudy",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-imagingStudy",
    ),
    (
        "Organization",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-organization",
    ),
    ("Patient", "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-patient"),
    (
        "Practitioner",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-practitioner",
    ),
    (
        "ServiceRequest",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-serviceRequest",
    ),
];

/// The submission Bundle of this run, with `suffix` appended to the run id (so a test can submit a copy
/// of its own).
pub(crate) fn submission(ctx: &Ctx, suffix: &str) -> Result<Value, Stop> {
    let run = format!("{}{suffix}", ctx.run_id);
    // An OID component: digits without a leading zero.
    let digits: String =
        std::iter::once('1').chain(run.bytes().map(|byte| char::from(b'0' + byte % 10))).collect();
    serde_json::from_str(&SUBMISSION.replace("${RUNDIGITS}", &digits).replace("${RUN}", &run))
        .map_err(|error| {
            Stop::error(format!("the kit's submission fixture does not parse: {error}"))
        })
}

/// The CapabilityStatement, read once.
pub(crate) async fn capabilities(ctx: &mut Ctx) -> Result<Value, Stop> {
    if let Some(capabilities) = &ctx.capabilities {
        return Ok(capabilities.clone());
    }
    let exchange = ctx.get("metadata").await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let capabilities = exchange.json_or_fail()?;
    ensure!(
        capabilities["resourceType"] == "CapabilityStatement",
        "GET metadata answered a {} instead of a CapabilityStatement",
        capabilities["resourceType"]
    );
    ctx.capabilities = Some(capabilities.clone());
    Ok(capabilities)
}

/// The `rest.resource` entry of a type.
pub(crate) fn resource_capability<'a>(
    capabilities: &'a Value,
    resource_type: &str,
) -> Option<&'a Value> {
    capabilities["rest"].as_array()?.iter().find(|rest| rest["mode"] == "server").and_then(|rest| {
        rest["resource"].as_array()?.iter().find(|resource| resource["type"] == resource_type)
    })
}

/// The `code`s of a list of interactions.
pub(crate) fn interaction_codes(interactions: &Value) -> BTreeSet<String> {
    interactions
        .as_array()
        .map(|items| {
            items.iter().filter_map(|item| item["code"].as_str()).map(str::to_owned).collect()
        })
        .unwrap_or_default()
}

/// The fixtures, submitted on first use (write mode); in read-only mode a skip.
pub(crate) async fn fixtures(ctx: &mut Ctx) -> Result<BTreeMap<String, Value>, Stop> {
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("needs the kit's fixtures: write mode only"));
    }
    if let Some(fixtures) = &ctx.fixtures {
        return Ok(fixtures.clone());
    }
    if let Some(error) = &ctx.fixtures_error {
        return Err(Stop::skip(format!("the fixtures could not be submitted: {error}")));
    }
    match submit_fixtures(ctx).await {
        Ok(fixtures) => {
            ctx.fixtures = Some(fixtures.clone());
            Ok(fixtures)
        }
        Err(stop) => {
            ctx.fixtures_error = Some(stop.message.clone());
            Err(stop)
        }
    }
}

async fn submit_fixtures(ctx: &mut Ctx) -> Result<BTreeMap<String, Value>, Stop> {
    let bundle = submission(ctx, "")?;
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    ctx.submission = Some(exchange.clone());
    ensure!(
        exchange.status == 200,
        "{}: the fixtures' transaction was not accepted: {}",
        exchange.label(),
        diagnostics(&exchange)
    );
    let response = exchange.json_or_fail()?;
    ensure!(
        response["type"] == "transaction-response",
        "the answer to a transaction is a Bundle of type {} instead of transaction-response",
        response["type"]
    );
    let entries = response["entry"].as_array().cloned().unwrap_or_default();
    ensure!(
        entries.len() == FIXTURE_KEYS.len(),
        "the transaction-response has {} entries for the {} submitted",
        entries.len(),
        FIXTURE_KEYS.len()
    );
    let mut fixtures = BTreeMap::new();
    for (key, entry) in FIXTURE_KEYS.iter().zip(&entries) {
        let location = entry["response"]["location"].as_str().unwrap_or_default();
        let Some(reference) = type_and_id(location) else {
            return Err(Stop::fail(format!(
                "the {key} entry's response has no location Type/id: {location:?}"
            )));
        };
        // The Organization (the example's UPI) is shared by every run: it is never cleaned up.
        if *key != "organization"
            && entry["response"]["status"].as_str().is_some_and(|status| status.starts_with("201"))
        {
            ctx.created.push(reference.clone());
        }
        let resource = match entry.get("resource") {
            Some(resource) if resource.is_object() => resource.clone(),
            _ => {
                let read = ctx.get(reference.clone()).await?;
                ensure!(read.status == 200, "{}: the stored {key} cannot be read", read.label());
                read.json_or_fail()?
            }
        };
        fixtures.insert((*key).to_owned(), resource);
    }
    Ok(fixtures)
}

/// The first issue's diagnostics of an OperationOutcome answer.
pub(crate) fn diagnostics(exchange: &Exchange) -> String {
    exchange
        .json()
        .and_then(|body| body["issue"][0]["diagnostics"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `Type/id` of a location or reference (`Patient/1/_history/2`, absolute or not).
pub(crate) fn type_and_id(location: &str) -> Option<String> {
    let location = match location.find("/_history/") {
        Some(at) => &location[..at],
        None => location,
    };
    let mut segments = location.rsplit('/');
    let id = segments.next().filter(|id| !id.is_empty())?;
    let ty = segments.next().filter(|ty| ty.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some(format!("{ty}/{id}"))
}

/// The `Type/id` of a resource.
pub(crate) fn key_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    )
}

/// A fixture's `Type/id`.
pub(crate) fn fixture_key(fixtures: &BTreeMap<String, Value>, name: &str) -> Result<String, Stop> {
    fixtures.get(name).map(key_of).ok_or_else(|| Stop::error(format!("no fixture {name}")))
}

/// That the answer has the status and an OperationOutcome body (R4 http.html: errors carry one).
pub(crate) fn expect_outcome(exchange: &Exchange, statuses: &[u16]) -> Outcome {
    ensure!(statuses.contains(&exchange.status), "{}: expected {statuses:?}", exchange.label());
    let body = exchange.json();
    ensure!(
        body.as_ref().is_some_and(|body| body["resourceType"] == "OperationOutcome"),
        "{}: the error has no OperationOutcome body",
        exchange.label()
    );
    Ok(())
}

/// The query string of name/value pairs.
pub(crate) fn query(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// A search's every page, followed through `next` links to the end.
#[derive(Debug, Default)]
pub(crate) struct Searched {
    /// The `match` entries, in order.
    pub(crate) matches: Vec<Value>,
    /// The `include` entries.
    pub(crate) includes: Vec<Value>,
    /// Each page's Bundle.
    pub(crate) pages: Vec<Value>,
}

impl Searched {
    pub(crate) fn match_keys(&self) -> Vec<String> {
        self.matches.iter().map(key_of).collect()
    }
}

/// The Bundle of a search answer: 200, `application/fhir+json`, a searchset.
pub(crate) fn searchset(exchange: &Exchange) -> Result<Value, Stop> {
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    ensure!(
        exchange.is_fhir_json(),
        "{}: Content-Type {:?} is not application/fhir+json",
        exchange.label(),
        exchange.header("content-type")
    );
    let bundle = exchange.json_or_fail()?;
    ensure!(
        bundle["resourceType"] == "Bundle" && bundle["type"] == "searchset",
        "{}: not a searchset Bundle",
        exchange.label()
    );
    Ok(bundle)
}

/// The URL of a Bundle's link of a relation.
pub(crate) fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|link| link["relation"] == relation)?["url"]
        .as_str()
        .map(str::to_owned)
}

/// Most pages a search may have before the kit calls it a loop.
const MAX_PAGES: usize = 200;

/// Runs a search from its first answer and follows `next` to the end: a page seen twice, or an entry
/// matched on two pages, fails.
pub(crate) async fn search_from(ctx: &mut Ctx, first: Exchange) -> Result<Searched, Stop> {
    let mut searched = Searched::default();
    let mut seen_pages = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut exchange = first;
    loop {
        let bundle = searchset(&exchange)?;
        ensure!(
            seen_pages.insert(exchange.url.clone()),
            "the next link leads back to a page already read: {}",
            exchange.url
        );
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let resource = entry["resource"].clone();
            if entry["search"]["mode"] == "include" {
                searched.includes.push(resource);
                continue;
            }
            let key = key_of(&resource);
            ensure!(
                seen.insert(key.clone()),
                "{key} is matched on two pages (at {})",
                exchange.url
            );
            searched.matches.push(resource);
        }
        let next = link(&bundle, "next");
        searched.pages.push(bundle);
        match next {
            Some(next) => {
                ensure!(
                    searched.pages.len() < MAX_PAGES,
                    "more than {MAX_PAGES} pages: the next links do not end"
                );
                exchange = ctx.get(next).await?;
            }
            None => return Ok(searched),
        }
    }
}

/// `GET [base]/{resource_type}?{pairs}`, every page.
pub(crate) async fn search(
    ctx: &mut Ctx,
    resource_type: &str,
    pairs: &[(String, String)],
) -> Result<Searched, Stop> {
    let first = ctx.get(format!("{resource_type}?{}", query(pairs))).await?;
    search_from(ctx, first).await
}

/// The `Patient/id`s that an identifier names (for re-checking a chained `patient.identifier`).
pub(crate) async fn patients_with(
    ctx: &mut Ctx,
    identifier: &str,
) -> Result<BTreeSet<String>, Stop> {
    let found = search(ctx, "Patient", &[("identifier".to_owned(), identifier.to_owned())]).await?;
    Ok(found.match_keys().into_iter().collect())
}

/// Re-checks each match against every parameter the matcher knows; `patient.identifier` by the Patients it
/// names.
pub(crate) async fn recheck(
    ctx: &mut Ctx,
    resource_type: &str,
    pairs: &[(String, String)],
    searched: &Searched,
) -> Outcome {
    for (name, value) in pairs {
        if name == "patient.identifier" {
            let patients = patients_with(ctx, value).await?;
            for resource in &searched.matches {
                let references = matcher::references(resource, "patient");
                ensure!(
                    references.iter().any(|reference| patients.contains(reference)),
                    "{} does not belong to a Patient with identifier {value} (its patient: {references:?})",
                    key_of(resource)
                );
            }
            continue;
        }
        if name == "_include" || name == "_revinclude" {
            recheck_include(ctx, name == "_revinclude", value, searched)?;
            continue;
        }
        if name.starts_with('_')
            && matcher::param(resource_type, name.split(':').next().unwrap_or_default()).is_none()
        {
            ctx.info(format!("{name}={value} is not re-checked on the matches"));
            continue;
        }
        if let Some((link, tail)) = name.split_once('.') {
            recheck_chain(ctx, link, tail, value, searched).await?;
            continue;
        }
        for resource in &searched.matches {
            ensure!(
                resource["resourceType"] == resource_type,
                "a {} is matched in a search of {resource_type}",
                resource["resourceType"]
            );
            match matcher::matches(resource, name, value) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Stop::fail(format!(
                        "{} does not match {name}={value}",
                        key_of(resource)
                    )));
                }
                Err(reason) => ctx.info(format!("{name}={value} is not re-checked: {reason}")),
            }
        }
    }
    Ok(())
}

/// Re-checks `_include=Source:param` (each included resource is referenced by a match through `param`) or
/// `_revinclude=Source:param` (each included `Source` references a match through `param`), R4
/// search.html#include.
fn recheck_include(ctx: &mut Ctx, reverse: bool, value: &str, searched: &Searched) -> Outcome {
    let mut parts = value.split(':');
    let (Some(source), Some(param)) = (parts.next(), parts.next()) else {
        ctx.info(format!("{value} is not re-checked: not Source:param"));
        return Ok(());
    };
    let matches: BTreeSet<String> = searched.match_keys().into_iter().collect();
    if reverse {
        for included in
            searched.includes.iter().filter(|resource| resource["resourceType"] == source)
        {
            let references = matcher::references(included, param);
            ensure!(
                references.iter().any(|reference| matches.contains(reference)),
                "the included {} references no match through {param} ({references:?})",
                key_of(included)
            );
        }
        return Ok(());
    }
    let referenced: BTreeSet<String> =
        searched.matches.iter().flat_map(|resource| matcher::references(resource, param)).collect();
    if matcher::param(source, param).is_none() {
        ctx.info(format!(
            "_include={value} is not re-checked: the matcher does not know {source}?{param}"
        ));
        return Ok(());
    }
    for included in &searched.includes {
        let key = key_of(included);
        ensure!(
            referenced.contains(&key),
            "{key} is included, but no match references it through {param}"
        );
    }
    Ok(())
}

/// Re-checks a chained parameter (`based-on:ServiceRequest.code=…`): some resource each match references
/// through `link` (of the type its modifier names, if any) matches `tail=value`. The referenced resources are
/// read once a run.
async fn recheck_chain(
    ctx: &mut Ctx,
    link: &str,
    tail: &str,
    value: &str,
    searched: &Searched,
) -> Outcome {
    let (link, target_type) = match link.split_once(':') {
        Some((link, target_type)) => (link, Some(target_type)),
        None => (link, None),
    };
    for resource in &searched.matches {
        let references: Vec<String> = matcher::references(resource, link)
            .into_iter()
            .filter(|reference| {
                target_type.is_none_or(|ty| reference.starts_with(&format!("{ty}/")))
            })
            .collect();
        let mut found = false;
        for reference in &references {
            let target = match ctx.reads.get(reference) {
                Some(target) => target.clone(),
                None => {
                    let read = ctx.get(reference.clone()).await?;
                    ensure!(
                        read.status == 200,
                        "{}: a reference of {} does not resolve",
                        read.label(),
                        key_of(resource)
                    );
                    let target = read.json_or_fail()?;
                    ctx.reads.insert(reference.clone(), target.clone());
                    target
                }
            };
            match matcher::matches(&target, tail, value) {
                Ok(matched) => found |= matched,
                Err(reason) => {
                    ctx.info(format!("{link}.{tail}={value} is not re-checked: {reason}"));
                    return Ok(());
                }
            }
        }
        ensure!(
            found,
            "{} references no resource with {tail}={value} through {link} ({references:?})",
            key_of(resource)
        );
    }
    Ok(())
}

/// Validates a resource against its type's Ontario profile (and its `meta.profile`); fails with the first
/// errors.
pub(crate) fn conforms(ctx: &Ctx, resource: &Value) -> Outcome {
    let resource_type = resource["resourceType"].as_str().unwrap_or_default();
    let Some((_, profile)) = ONTARIO_PROFILES.iter().find(|(ty, _)| *ty == resource_type) else {
        return Ok(());
    };
    if ctx.profiles.resource(ConformanceKind::StructureDefinition, profile).is_none() {
        return Err(Stop::skip(format!(
            "the profile {profile} is not loaded (see --profiles-dir)"
        )));
    }
    let report = validate(resource, &ctx.profiles, &[profile]);
    let errors: Vec<String> = report
        .errors()
        .take(3)
        .map(|issue| format!("{}: {}", issue.expression, issue.message))
        .collect();
    ensure!(
        errors.is_empty(),
        "{} does not conform to {profile}: {}",
        key_of(resource),
        errors.join("; ")
    );
    Ok(())
}

/// A plain resource for the REST tests: a Patient of its own, identified by the run id and `label`.
pub(crate) fn rest_patient(ctx: &Ctx, label: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": ctx.run_id}]},
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": MRN_SYSTEM, "value": format!("MRN-{}-{label}", ctx.run_id)},
            {"system": RUN_SYSTEM, "value": ctx.run_id}
        ],
        "name": [{"family": "Conformance", "given": [label]}],
        "gender": "other",
        "birthDate": "1980-05-06"
    })
}
