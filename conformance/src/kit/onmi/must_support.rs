//! Must-support coverage, as the US Core kit checks it: every element the Ontario MI profile of a type marks
//! `mustSupport` (its differential, slices included) is present in at least one resource the group's searches
//! and reads returned. A slice's members are recognised by the slicing's discriminators (R4
//! profiling.html#discriminator: `value` and `pattern` on a path, `$this`, an extension's `url`), read from
//! the profile's snapshot; a re-slice (`JHN/ONHCN`) is a member of each level.

use cdr_validation::ConformanceKind;
use serde_json::Value;

use super::support::ONTARIO_PROFILES;
use crate::context::{Ctx, Mode};
use crate::matcher::elements;
use crate::model::{Outcome, Stop};

/// The test of a group: in write mode a missing element fails (the kit's fixtures carry every one; of the
/// index entries, which the server makes, those the guide names), in read-only mode it skips with the list
/// (the server's data may just lack them).
pub(crate) async fn coverage(ctx: &mut Ctx, resource_type: &str) -> Outcome {
    let Some((_, profile)) = ONTARIO_PROFILES.iter().find(|(ty, _)| *ty == resource_type) else {
        return Err(Stop::error(format!("no Ontario MI profile of {resource_type}")));
    };
    let Some(definition) = ctx.profiles.resource(ConformanceKind::StructureDefinition, profile)
    else {
        return Err(Stop::skip(format!(
            "the profile {profile} is not loaded (see --profiles-dir)"
        )));
    };
    let snapshot = ctx.profiles.snapshot(profile).map_err(|error| {
        Stop::error(format!("the snapshot of {profile} cannot be made: {error}"))
    })?;
    let returned = ctx.returned.get(resource_type).cloned().unwrap_or_default();
    if returned.is_empty() {
        return Err(Stop::skip(format!(
            "the group's searches returned no {resource_type} (run the whole group)"
        )));
    }
    let elements = must_support_ids(&definition);
    let missing = missing(&snapshot, &elements, &returned);
    ctx.info(format!(
        "{} must-support elements over {} {resource_type} resources",
        elements.len(),
        returned.len()
    ));
    if missing.is_empty() {
        return Ok(());
    }
    let message = format!(
        "no returned {resource_type} has {} (of {} resources)",
        missing.join(", "),
        returned.len()
    );
    // The index entries are the server's, made from the fixtures: write mode can require only what the
    // guide says they carry.
    let required = |id: &String| {
        resource_type != "DocumentReference" || INDEX_ENTRY_ELEMENTS.contains(&id.as_str())
    };
    match ctx.mode {
        Mode::Write if missing.iter().any(required) => Err(Stop::fail(message)),
        Mode::Write | Mode::ReadOnly => Err(Stop::skip(message)),
    }
}

/// What the guide says an index entry made from a submitted order, study or report carries (ONTARIO-MI.md
/// §2 business rule 19: subject, identifier, date, category and type, `context.event`, `docStatus`,
/// `content.attachment.url`), and the link to its source (`context.related`).
const INDEX_ENTRY_ELEMENTS: [&str; 10] = [
    "DocumentReference.identifier",
    "DocumentReference.status",
    "DocumentReference.docStatus",
    "DocumentReference.type",
    "DocumentReference.category",
    "DocumentReference.subject",
    "DocumentReference.date",
    "DocumentReference.content.attachment.url",
    "DocumentReference.context.event",
    "DocumentReference.context.related",
];

/// The ids of the elements a profile's differential marks `mustSupport`, in order.
pub(crate) fn must_support_ids(definition: &Value) -> Vec<String> {
    definition["differential"]["element"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|element| element["mustSupport"] == true)
        .filter_map(|element| element["id"].as_str().map(str::to_owned))
        .collect()
}

/// The element ids (of `ids`) that no resource has.
pub(crate) fn missing(snapshot: &[Value], ids: &[String], resources: &[Value]) -> Vec<String> {
    ids.iter()
        .filter(|id| !resources.iter().any(|resource| present(snapshot, id, resource)))
        .cloned()
        .collect()
}

/// Whether the element `id` (`Type.name:slice.child…`) has a value in the resource.
fn present(snapshot: &[Value], id: &str, resource: &Value) -> bool {
    let mut segments = id.split('.');
    let Some(root) = segments.next() else { return false };
    let mut current = vec![resource];
    let mut path = root.to_owned();
    for segment in segments {
        let (name, slice) = match segment.split_once(':') {
            Some((name, slice)) => (name, Some(slice)),
            None => (segment, None),
        };
        path = format!("{path}.{name}");
        let mut next: Vec<&Value> =
            current.iter().flat_map(|value| elements(value, name)).collect();
        if let Some(slice) = slice {
            next.retain(|item| in_slice(snapshot, &path, slice, item));
            path = format!("{path}:{slice}");
        }
        if next.is_empty() {
            return false;
        }
        current = next;
    }
    true
}

/// Whether `item`, a repetition of the element `sliced` (an id), belongs to `slice` (`a` or a re-slice
/// `a/b`): at each level it fits every discriminator of the slicing.
fn in_slice(snapshot: &[Value], sliced: &str, slice: &str, item: &Value) -> bool {
    let mut slicing_id = sliced.to_owned();
    let mut name = String::new();
    for part in slice.split('/') {
        if !name.is_empty() {
            name.push('/');
        }
        name.push_str(part);
        let slice_id = format!("{sliced}:{name}");
        let discriminators = element(snapshot, &slicing_id)
            .and_then(|element| element["slicing"]["discriminator"].as_array())
            .cloned()
            .unwrap_or_default();
        for discriminator in discriminators {
            let Some(at) = discriminator["path"].as_str() else { continue };
            let target = if at == "$this" { slice_id.clone() } else { format!("{slice_id}.{at}") };
            let Some(wanted) = constraint(snapshot, &slice_id, &target, at) else { continue };
            let values: Vec<&Value> = if at == "$this" { vec![item] } else { elements(item, at) };
            if !values.iter().any(|value| contains(value, &wanted)) {
                return false;
            }
        }
        slicing_id = slice_id;
    }
    true
}

/// The value a discriminator path of a slice must have: the target element's `pattern[x]` or `fixed[x]`,
/// or for an extension's `url` the slice's extension profile.
fn constraint(snapshot: &[Value], slice_id: &str, target: &str, at: &str) -> Option<Value> {
    let fixed = element(snapshot, target).and_then(|element| {
        element.as_object()?.iter().find_map(|(key, value)| {
            (key.starts_with("pattern") || key.starts_with("fixed")).then(|| value.clone())
        })
    });
    if fixed.is_some() || at != "url" {
        return fixed;
    }
    element(snapshot, slice_id)?["type"][0]["profile"][0].as_str().map(Value::from)
}

fn element<'a>(snapshot: &'a [Value], id: &str) -> Option<&'a Value> {
    snapshot.iter().find(|element| element["id"] == id)
}

/// Whether `value` holds `pattern` (R4 profiling: every element of the pattern is in the value; a repeated
/// pattern element matches some repetition).
fn contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(value), Value::Object(pattern)) => pattern
            .iter()
            .all(|(key, wanted)| value.get(key).is_some_and(|found| contains(found, wanted))),
        (Value::Array(values), Value::Array(patterns)) => {
            patterns.iter().all(|wanted| values.iter().any(|found| contains(found, wanted)))
        }
        (value, pattern) => value == pattern,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cdr_validation::ProfileSet;
    use serde_json::json;

    use super::*;
    use crate::kit::onmi::support::FIXTURE_KEYS;

    /// The R4 core and `profiles/`, loaded as `imaging-cdr conformance run` loads them.
    fn profiles() -> ProfileSet {
        let args = cdr_server::profiles::ProfileArgs {
            profiles_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles")),
            packages: Vec::new(),
        };
        cdr_server::profiles::load(&args).unwrap().0
    }

    fn fixtures() -> Vec<Value> {
        let text = include_str!("../../../fixtures/submission.json");
        let bundle: Value = serde_json::from_str(text).unwrap();
        assert_eq!(bundle["entry"].as_array().unwrap().len(), FIXTURE_KEYS.len());
        bundle["entry"].as_array().unwrap().iter().map(|entry| entry["resource"].clone()).collect()
    }

    fn missing_in(set: &ProfileSet, resource_type: &str, resources: &[Value]) -> Vec<String> {
        let (_, profile) = ONTARIO_PROFILES.iter().find(|(ty, _)| *ty == resource_type).unwrap();
        let definition = set.resource(ConformanceKind::StructureDefinition, profile).unwrap();
        let snapshot = set.snapshot(profile).unwrap();
        let of_type: Vec<Value> =
            resources.iter().filter(|r| r["resourceType"] == resource_type).cloned().collect();
        missing(&snapshot, &must_support_ids(&definition), &of_type)
    }

    #[test]
    fn the_fixtures_cover_every_must_support_element_but_the_index_entries() {
        let set = profiles();
        let fixtures = fixtures();
        let missing: Vec<String> = ONTARIO_PROFILES
            .iter()
            .filter(|(resource_type, _)| *resource_type != "DocumentReference")
            .flat_map(|(resource_type, _)| missing_in(&set, resource_type, &fixtures))
            .collect();
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn slices_are_told_apart_by_their_discriminators() {
        let set = profiles();
        let acsn = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]});
        // Identifiers sliced by the pattern of their type: an accession alone leaves placer and filler missing.
        let order = json!({"resourceType": "ServiceRequest",
            "identifier": [{"type": acsn, "system": "urn:a", "value": "1"}]});
        let missing = missing_in(&set, "ServiceRequest", &[order]);
        assert!(!missing.iter().any(|id| id.starts_with("ServiceRequest.identifier:accession")));
        for id in ["ServiceRequest.identifier:placer", "ServiceRequest.identifier:filler.value"] {
            assert!(missing.contains(&id.to_owned()), "{id}: {missing:?}");
        }
        // The accession slice needs its type: a value under another type is not an accession.
        let other = json!({"resourceType": "ServiceRequest",
            "identifier": [{"type": {"text": "other"}, "system": "urn:a", "value": "1"}]});
        assert!(
            missing_in(&set, "ServiceRequest", &[other])
                .contains(&"ServiceRequest.identifier:accession".to_owned())
        );
        // A re-slice (JHN/ONHCN: type JHN, then the Ontario system) and its extension, by url.
        let hcn = json!({"resourceType": "Patient", "identifier": [{
            "extension": [{"url": "http://hl7.org/fhir/ca/baseline/StructureDefinition/ext-identifierversion", "valueString": "AB"}],
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "JHN"}]},
            "system": "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn", "value": "1"}]});
        let missing = missing_in(&set, "Patient", std::slice::from_ref(&hcn));
        assert!(!missing.iter().any(|id| id.contains("JHN/ONHCN")), "{missing:?}");
        let mut unversioned = hcn.clone();
        unversioned["identifier"][0]["extension"][0]["url"] = json!("http://example.org/other");
        assert!(
            missing_in(&set, "Patient", &[unversioned])
                .contains(&"Patient.identifier:JHN/ONHCN.extension:versionCode".to_owned())
        );
        let mut quebec = hcn;
        quebec["identifier"][0]["system"] =
            json!("https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-hcn");
        assert!(
            missing_in(&set, "Patient", &[quebec])
                .contains(&"Patient.identifier:JHN/ONHCN".to_owned())
        );
        // An extension slice, by url.
        let addendum = json!({"resourceType": "DiagnosticReport", "extension": [{
            "url": "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of",
            "valueReference": {"reference": "DiagnosticReport/1"}}]});
        let missing = missing_in(&set, "DiagnosticReport", &[addendum]);
        assert!(!missing.contains(&"DiagnosticReport.extension:addendumOf".to_owned()));
        let unrelated = json!({"resourceType": "DiagnosticReport", "extension": [{
            "url": "http://example.org/other", "valueString": "x"}]});
        assert!(
            missing_in(&set, "DiagnosticReport", &[unrelated])
                .contains(&"DiagnosticReport.extension:addendumOf".to_owned())
        );
    }

    #[test]
    fn one_resource_with_an_element_is_enough() {
        let set = profiles();
        let bare = json!({"resourceType": "ImagingStudy"});
        let referred =
            json!({"resourceType": "ImagingStudy", "referrer": {"reference": "Practitioner/1"}});
        assert!(
            missing_in(&set, "ImagingStudy", std::slice::from_ref(&bare))
                .contains(&"ImagingStudy.referrer".to_owned())
        );
        assert!(
            !missing_in(&set, "ImagingStudy", &[bare, referred])
                .contains(&"ImagingStudy.referrer".to_owned())
        );
    }
}
