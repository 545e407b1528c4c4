//! Loading a data set into a server: conditional creates in dependency order, then report amendments as
//! versioned updates. Re-running a load writes nothing new: creates match on the first identifier
//! (`If-None-Exist`) and each amendment is conditional on the version before it (`If-Match`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cdr_model::VersionId;
use hyper::Method;
use serde_json::{Value, json};

use crate::BenchError;
use crate::dataset::{IdMap, read_resources};
use crate::generate::DataFile;
use crate::http::{HttpClient, HttpResponse, normalize_base};
use crate::workers::{Budget, run_workers};

/// What one phase of the load did.
#[derive(Debug, Clone)]
pub struct LoadPhase {
    pub name: String,
    pub resources: u64,
    /// 201: created now.
    pub created: u64,
    /// 200 on a conditional create: the server already held it.
    pub existing: u64,
    /// 200 on an amendment.
    pub updated: u64,
    /// 412 on an amendment: that version was applied by an earlier load.
    pub already_applied: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Every phase of a load.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub phases: Vec<LoadPhase>,
}

enum ItemOutcome {
    Created { local_reference: String, server_id: String },
    Existing { local_reference: String, server_id: String },
    Updated,
    AlreadyApplied,
}

impl LoadReport {
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.phases.iter().map(|phase| phase.errors).sum()
    }

    /// The aligned table of phases, with throughput in resources per second.
    ///
    /// # Errors
    /// When `out` fails.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>12}",
            "phase",
            "resources",
            "created",
            "existing",
            "updated",
            "applied",
            "errors",
            "seconds",
            "resources/s"
        )?;
        let mut total = 0;
        let mut total_seconds = 0.0;
        for phase in &self.phases {
            let seconds = phase.elapsed.as_secs_f64();
            total += phase.resources;
            total_seconds += seconds;
            writeln!(
                out,
                "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9.2} {:>12.0}",
                phase.name,
                phase.resources,
                phase.created,
                phase.existing,
                phase.updated,
                phase.already_applied,
                phase.errors,
                seconds,
                phase.resources as f64 / seconds.max(1e-9),
            )?;
        }
        writeln!(
            out,
            "{:<28} {total:>9} {:>67.2} {:>12.0}",
            "total",
            total_seconds,
            total as f64 / f64::max(total_seconds, 1e-9)
        )?;
        for phase in &self.phases {
            if let Some(error) = &phase.first_error {
                writeln!(out, "first error in {}: {error}", phase.name)?;
            }
        }
        Ok(())
    }
}

/// Loads the data set in `data_dir` into the server at `base`, saves the id map next to the data, and
/// reports each phase.
///
/// # Errors
/// When the data set cannot be read or the id map written; failed requests are counted, not returned.
pub async fn load(
    base: &str,
    data_dir: &Path,
    concurrency: usize,
) -> Result<LoadReport, BenchError> {
    let base = normalize_base(base)?;
    let client = HttpClient::new(concurrency);
    let mut ids = IdMap::new(&base);
    let mut report = LoadReport::default();
    for file in DataFile::ALL {
        let resources = read_resources(data_dir, file)?;
        if file == DataFile::DiagnosticReportAmendment {
            let mut by_version: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for resource in resources {
                let version = resource["meta"]["versionId"].as_str().unwrap_or("?").to_owned();
                by_version.entry(version).or_default().push(resource);
            }
            for (version, amendments) in by_version {
                let name = format!("DiagnosticReport v{version}");
                let phase =
                    load_phase(&client, &base, &ids, name, amendments, concurrency, true).await;
                report.phases.push(phase.0);
            }
            continue;
        }
        let name = file.resource_type().to_owned();
        let (phase, new_ids) =
            load_phase(&client, &base, &ids, name, resources, concurrency, false).await;
        for (local_reference, server_id) in new_ids {
            ids.insert(local_reference, server_id);
        }
        report.phases.push(phase);
    }
    ids.save(data_dir)?;
    Ok(report)
}

async fn load_phase(
    client: &HttpClient,
    base: &str,
    ids: &IdMap,
    name: String,
    resources: Vec<Value>,
    concurrency: usize,
    amendments: bool,
) -> (LoadPhase, Vec<(String, String)>) {
    let n_resources = resources.len() as u64;
    let resources = Arc::new(resources);
    let shared = Arc::new((client.clone(), base.to_owned(), ids.clone()));
    let (outcomes, elapsed) =
        run_workers(concurrency, Budget::Requests(n_resources), move |item| {
            let resources = Arc::clone(&resources);
            let shared = Arc::clone(&shared);
            async move {
                let (client, base, ids) = &*shared;
                let resource = resources[item as usize].clone();
                if amendments {
                    amend(client, base, ids, resource).await
                } else {
                    create(client, base, ids, resource).await
                }
            }
        })
        .await;
    let mut phase = LoadPhase {
        name,
        resources: n_resources,
        created: 0,
        existing: 0,
        updated: 0,
        already_applied: 0,
        errors: 0,
        first_error: None,
        elapsed,
    };
    let mut new_ids = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(ItemOutcome::Created { local_reference, server_id }) => {
                phase.created += 1;
                new_ids.push((local_reference, server_id));
            }
            Ok(ItemOutcome::Existing { local_reference, server_id }) => {
                phase.existing += 1;
                new_ids.push((local_reference, server_id));
            }
            Ok(ItemOutcome::Updated) => phase.updated += 1,
            Ok(ItemOutcome::AlreadyApplied) => phase.already_applied += 1,
            Err(error) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(error);
            }
        }
    }
    (phase, new_ids)
}

/// `POST [base]/T` with `If-None-Exist: identifier=system|value` (the resource's first identifier).
async fn create(
    client: &HttpClient,
    base: &str,
    ids: &IdMap,
    mut resource: Value,
) -> Result<ItemOutcome, String> {
    let (res_type, local_id) = type_and_id(&resource)?;
    let local_reference = format!("{res_type}/{local_id}");
    let identifier = &resource["identifier"][0];
    let (Some(system), Some(value)) = (identifier["system"].as_str(), identifier["value"].as_str())
    else {
        return Err(format!("{local_reference} has no identifier to create it conditionally"));
    };
    let criteria = form_urlencoded::Serializer::new(String::new())
        .append_pair("identifier", &format!("{system}|{value}"))
        .finish();
    prepare_body(&mut resource, ids, None)?;
    let url = format!("{base}/{res_type}");
    let response = client
        .send(
            Method::POST,
            &url,
            &[("If-None-Exist", &criteria), ("Prefer", "return=minimal")],
            Some(resource.to_string().into_bytes()),
        )
        .await?;
    let server_id = match response.status {
        200 | 201 => server_id_of(&response, &res_type)?,
        _ => return Err(format!("create {local_reference}: {}", response.describe())),
    };
    match response.status {
        201 => Ok(ItemOutcome::Created { local_reference, server_id }),
        _ => Ok(ItemOutcome::Existing { local_reference, server_id }),
    }
}

/// `PUT [base]/T/{id}` with `If-Match` on the version before the one the amendment becomes.
async fn amend(
    client: &HttpClient,
    base: &str,
    ids: &IdMap,
    mut resource: Value,
) -> Result<ItemOutcome, String> {
    let (res_type, local_id) = type_and_id(&resource)?;
    let local_reference = format!("{res_type}/{local_id}");
    let version = resource["meta"]["versionId"]
        .as_str()
        .and_then(|version| VersionId::parse(version).ok())
        .filter(|version| *version > VersionId::FIRST)
        .ok_or_else(|| {
            format!("amendment of {local_reference} without a meta.versionId of 2 or more")
        })?;
    let replaced = VersionId::from_number(version.get() - 1).map_err(|error| error.to_string())?;
    let Some(server_id) = ids.get(&local_reference).map(str::to_owned) else {
        return Err(format!("amendment of {local_reference}, which was not loaded"));
    };
    prepare_body(&mut resource, ids, Some(&server_id))?;
    let url = format!("{base}/{res_type}/{server_id}");
    let if_match = replaced.etag().to_string();
    let response = client
        .send(
            Method::PUT,
            &url,
            &[("If-Match", &if_match), ("Prefer", "return=minimal")],
            Some(resource.to_string().into_bytes()),
        )
        .await?;
    match response.status {
        200 => Ok(ItemOutcome::Updated),
        412 => Ok(ItemOutcome::AlreadyApplied),
        _ => Err(format!("update {local_reference}: {}", response.describe())),
    }
}

fn type_and_id(resource: &Value) -> Result<(String, String), String> {
    match (resource["resourceType"].as_str(), resource["id"].as_str()) {
        (Some(res_type), Some(id)) => Ok((res_type.to_owned(), id.to_owned())),
        _ => Err(format!("not a resource with a type and an id: {resource}")),
    }
}

/// Drops the generator's `id` and `meta` (or sets the server's id for an update) and rewrites every
/// `reference` to the server's ids.
fn prepare_body(resource: &mut Value, ids: &IdMap, server_id: Option<&str>) -> Result<(), String> {
    let Some(object) = resource.as_object_mut() else {
        return Err("not a JSON object".to_owned());
    };
    object.remove("meta");
    match server_id {
        Some(server_id) => {
            object.insert("id".to_owned(), json!(server_id));
        }
        None => {
            object.remove("id");
        }
    }
    rewrite_references(resource, ids)
}

/// Rewrites `{"reference": "T/local"}` to `{"reference": "T/server"}` everywhere in `value`.
fn rewrite_references(value: &mut Value, ids: &IdMap) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("reference") {
                let Some(server_id) = ids.get(reference) else {
                    return Err(format!("unresolved reference {reference}"));
                };
                let res_type = reference.split('/').next().unwrap_or_default();
                *reference = format!("{res_type}/{server_id}");
            }
            map.values_mut().try_for_each(|child| rewrite_references(child, ids))
        }
        Value::Array(items) => {
            items.iter_mut().try_for_each(|child| rewrite_references(child, ids))
        }
        _ => Ok(()),
    }
}

/// The id in `Location: [base]/T/{id}/_history/{v}`.
fn server_id_of(response: &HttpResponse, res_type: &str) -> Result<String, String> {
    let Some(location) = &response.location else {
        return Err(format!("no Location header: {}", response.describe()));
    };
    let mut segments = location.split('/').skip_while(|segment| *segment != res_type).skip(1);
    match segments.next() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(format!("no {res_type} id in Location {location}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_rewritten_and_unknown_ones_rejected() {
        let mut ids = IdMap::new("http://x/fhir");
        ids.insert("Patient/pat-1".to_owned(), "abc".to_owned());
        let mut resource = json!({
            "resourceType": "ImagingStudy", "id": "is-1", "meta": { "versionId": "1" },
            "subject": { "reference": "Patient/pat-1" },
            "basedOn": [{ "reference": "Patient/pat-1", "display": "x" }],
        });
        prepare_body(&mut resource, &ids, None).unwrap();
        assert_eq!(
            resource,
            json!({
                "resourceType": "ImagingStudy",
                "subject": { "reference": "Patient/abc" },
                "basedOn": [{ "reference": "Patient/abc", "display": "x" }],
            })
        );
        let mut dangling = json!({ "subject": { "reference": "Patient/pat-2" } });
        assert_eq!(
            rewrite_references(&mut dangling, &ids).unwrap_err(),
            "unresolved reference Patient/pat-2"
        );
    }
}
