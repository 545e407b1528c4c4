//! Submission Bundles built from a data set, as an acquisition or reporting system would send them: every
//! entry a conditional `PUT` by business identifier, references between entries through `urn:uuid:`
//! `fullUrl`s.
//!
//! Two shapes ([`Shape`]):
//! - `imaging`: one transaction per order, holding the patient, the referrer and the radiologist
//!   (Practitioner, once when they are the same), the hospital (Organization), the ServiceRequest, its
//!   ImagingStudy widened to 3 to 5 series and about 100 instances, and the DiagnosticReport (its first
//!   version) with a 100 KB PDF in `presentedForm`;
//! - `small`: patients with their orders (ServiceRequest), packed into transactions of at most
//!   `entries_per_bundle` entries (a patient never apart from its orders); the references to resources
//!   outside the Bundle (`Patient.managingOrganization`, `ServiceRequest.requester`) are left out, so the
//!   shape runs on an empty database.
//!
//! A Bundle depends on the data set, the seed and its index only: the extra series and instances, the SOP
//! instance UIDs, the PDF bytes and the `urn:uuid:`s are drawn from `Rng::for_item(seed, index)`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::BenchError;
use crate::dataset::read_resources;
use crate::generate::{DataFile, base64};
use crate::rng::Rng;

/// The size of the PDF of each imaging report, before base64.
pub const PDF_BYTES: usize = 100 * 1024;

/// Which Bundles a submission sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One transaction per order: patient, practitioners, hospital, order, study (about 100 instances)
    /// and report (100 KB PDF).
    Imaging,
    /// Transactions of patients with their orders, up to the entry count.
    Small,
}

impl Shape {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Shape::Imaging => "imaging",
            Shape::Small => "small",
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct SubmissionConfig {
    pub shape: Shape,
    /// The most entries of a `small` Bundle.
    pub entries_per_bundle: usize,
    /// Seeds what the data set does not hold (extra series and instances, PDFs, `urn:uuid:`s).
    pub seed: u64,
}

/// The data set, indexed to build any of its Bundles on demand (the imaging Bundles of a data set of
/// 2,000 patients hold about 600 MB of JSON, so they are not kept).
#[derive(Debug)]
pub struct Submissions {
    config: SubmissionConfig,
    /// By local reference (`Patient/pat-7`).
    resources: HashMap<String, Value>,
    orders: Vec<Value>,
    /// `small`: the patients (by local reference) of each Bundle, with their orders' indexes.
    groups: Vec<Vec<(String, Vec<usize>)>>,
}

impl Submissions {
    /// Reads the data set in `data_dir` (the output of `generate`).
    ///
    /// # Errors
    /// When the data set cannot be read or has no order.
    pub fn from_data_set(
        data_dir: &Path,
        config: SubmissionConfig,
    ) -> Result<Submissions, BenchError> {
        let mut resources = HashMap::new();
        let mut patients = Vec::new();
        for file in [
            DataFile::Organization,
            DataFile::Practitioner,
            DataFile::Patient,
            DataFile::ImagingStudy,
            DataFile::DiagnosticReport,
        ] {
            for resource in read_resources(data_dir, file)? {
                let reference = local_reference(&resource)?;
                if file == DataFile::Patient {
                    patients.push(reference.clone());
                }
                resources.insert(reference, resource);
            }
        }
        let orders = read_resources(data_dir, DataFile::ServiceRequest)?;
        if orders.is_empty() {
            return Err(BenchError::Data(format!(
                "{} holds no order: generate a data set first",
                data_dir.display()
            )));
        }
        let groups = match config.shape {
            Shape::Imaging => Vec::new(),
            Shape::Small => pack(&patients, &orders, config.entries_per_bundle.max(1)),
        };
        Ok(Submissions { config, resources, orders, groups })
    }

    /// How many Bundles the data set gives.
    #[must_use]
    pub fn len(&self) -> usize {
        match self.config.shape {
            Shape::Imaging => self.orders.len(),
            Shape::Small => self.groups.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn shape(&self) -> Shape {
        self.config.shape
    }

    /// The transaction Bundle number `index` (from 0).
    ///
    /// # Errors
    /// When `index` is past the end, or the data set's references do not resolve within it.
    pub fn bundle(&self, index: usize) -> Result<Value, String> {
        let mut rng = Rng::for_item(self.config.seed, index as u64);
        let mut builder = BundleBuilder { entries: Vec::new(), full_urls: HashMap::new() };
        match self.config.shape {
            Shape::Imaging => {
                let order = self.orders.get(index).ok_or_else(|| past_end(index, self.len()))?;
                self.imaging(order, &mut rng, &mut builder)?;
            }
            Shape::Small => {
                let group = self.groups.get(index).ok_or_else(|| past_end(index, self.len()))?;
                for (patient, order_indexes) in group {
                    let mut patient = self.resource(patient)?.clone();
                    remove(&mut patient, "managingOrganization");
                    builder.add(patient, &mut rng)?;
                    for order_index in order_indexes {
                        let mut order = self.orders[*order_index].clone();
                        remove(&mut order, "requester");
                        builder.add(order, &mut rng)?;
                    }
                }
            }
        }
        builder.finish()
    }

    fn resource(&self, reference: &str) -> Result<&Value, String> {
        self.resources.get(reference).ok_or_else(|| format!("{reference} is not in the data set"))
    }

    /// The entries of one order's Bundle, referenced resources first.
    fn imaging(
        &self,
        order: &Value,
        rng: &mut Rng,
        builder: &mut BundleBuilder,
    ) -> Result<(), String> {
        let order_id = order["id"].as_str().unwrap_or_default();
        let number = order_id.strip_prefix("sr-").unwrap_or(order_id);
        let patient = self.resource(reference_text(&order["subject"]))?;
        let study = self.resource(&format!("ImagingStudy/is-{number}"))?;
        let report = self.resource(&format!("DiagnosticReport/dr-{number}"))?;
        builder
            .add(self.resource(reference_text(&patient["managingOrganization"]))?.clone(), rng)?;
        let referrer = reference_text(&order["requester"]);
        let radiologist = reference_text(&report["resultsInterpreter"][0]);
        builder.add(self.resource(referrer)?.clone(), rng)?;
        if radiologist != referrer {
            builder.add(self.resource(radiologist)?.clone(), rng)?;
        }
        builder.add(patient.clone(), rng)?;
        builder.add(order.clone(), rng)?;
        builder.add(widen_study(study, rng), rng)?;
        builder.add(with_pdf(report, rng), rng)
    }
}

/// The entries of a Bundle being built, and the `urn:uuid:` of each local reference added so far.
struct BundleBuilder {
    entries: Vec<Value>,
    full_urls: HashMap<String, String>,
}

impl BundleBuilder {
    /// Adds `resource` as a conditional `PUT` on its first identifier, its references (to resources added
    /// before it) rewritten to their `urn:uuid:`s.
    fn add(&mut self, mut resource: Value, rng: &mut Rng) -> Result<(), String> {
        let reference = local_reference(&resource).map_err(|error| error.to_string())?;
        let res_type = resource["resourceType"].as_str().unwrap_or_default().to_owned();
        let identifier = &resource["identifier"][0];
        let (Some(system), Some(value)) =
            (identifier["system"].as_str(), identifier["value"].as_str())
        else {
            return Err(format!("{reference} has no identifier to put it conditionally"));
        };
        let criteria = form_urlencoded::Serializer::new(String::new())
            .append_pair("identifier", &format!("{system}|{value}"))
            .finish();
        let url = format!("{res_type}?{criteria}");
        if let Some(object) = resource.as_object_mut() {
            object.remove("id");
            object.remove("meta");
        }
        replace_references(&mut resource, &self.full_urls)?;
        let full_url = urn_uuid(rng);
        self.full_urls.insert(reference, full_url.clone());
        self.entries.push(json!({
            "fullUrl": full_url,
            "resource": resource,
            "request": { "method": "PUT", "url": url },
        }));
        Ok(())
    }

    fn finish(self) -> Result<Value, String> {
        if self.entries.is_empty() {
            return Err("a Bundle without entries".to_owned());
        }
        Ok(json!({ "resourceType": "Bundle", "type": "transaction", "entry": self.entries }))
    }
}

/// Rewrites every `reference` found in `targets` to its target, everywhere in `value`; a reference not
/// found is an error.
///
/// # Errors
/// The first reference not in `targets`.
pub fn replace_references(
    value: &mut Value,
    targets: &HashMap<String, String>,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("reference") {
                let Some(target) = targets.get(reference.as_str()) else {
                    return Err(format!("the reference {reference} is not in the Bundle"));
                };
                target.clone_into(reference);
            }
            map.values_mut().try_for_each(|child| replace_references(child, targets))
        }
        Value::Array(items) => {
            items.iter_mut().try_for_each(|child| replace_references(child, targets))
        }
        _ => Ok(()),
    }
}

/// The entries of a Bundle as (`fullUrl`, resource type, resource).
#[must_use]
pub fn entries(bundle: &Value) -> Vec<(&str, &str, &Map<String, Value>)> {
    let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    entries
        .iter()
        .filter_map(|entry| {
            let resource = entry["resource"].as_object()?;
            let res_type = resource.get("resourceType")?.as_str()?;
            Some((entry["fullUrl"].as_str().unwrap_or_default(), res_type, resource))
        })
        .collect()
}

/// `small`: consecutive patients with their orders, at most `max_entries` entries a Bundle (a patient with
/// more orders than that goes alone).
fn pack(
    patients: &[String],
    orders: &[Value],
    max_entries: usize,
) -> Vec<Vec<(String, Vec<usize>)>> {
    let mut orders_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (order_index, order) in orders.iter().enumerate() {
        orders_of.entry(reference_text(&order["subject"])).or_default().push(order_index);
    }
    let mut bundles = Vec::new();
    let mut current: Vec<(String, Vec<usize>)> = Vec::new();
    let mut n_entries = 0;
    for patient in patients {
        let order_indexes = orders_of.remove(patient.as_str()).unwrap_or_default();
        let size = 1 + order_indexes.len();
        if n_entries + size > max_entries && !current.is_empty() {
            bundles.push(std::mem::take(&mut current));
            n_entries = 0;
        }
        n_entries += size;
        current.push((patient.clone(), order_indexes));
    }
    if !current.is_empty() {
        bundles.push(current);
    }
    bundles
}

/// The study with 3 to 5 series (the data set's, then copies of them with new UIDs) and 96 to 104
/// instances shared among them, each with a fresh SOP instance UID (`2.25.` and a 128-bit number: an
/// `id`, so without the `urn:oid:` of the study's identifier).
fn widen_study(study: &Value, rng: &mut Rng) -> Value {
    let mut study = study.clone();
    let study_uid = study["identifier"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("urn:oid:")
        .to_owned();
    let templates = study["series"].as_array().cloned().unwrap_or_default();
    if templates.is_empty() {
        return study;
    }
    let n_series = (rng.between(3, 5) as usize).max(templates.len());
    let n_instances = rng.between(96, 104) as usize;
    let mut series = Vec::with_capacity(n_series);
    for series_index in 0..n_series {
        let template = &templates[series_index % templates.len()];
        let uid = match template["uid"].as_str() {
            Some(uid) if series_index < templates.len() => uid.to_owned(),
            _ => format!("{study_uid}.{}", series_index + 1),
        };
        let count = n_instances / n_series + usize::from(series_index < n_instances % n_series);
        let instances: Vec<Value> = (1..=count)
            .map(|number| {
                json!({
                    "uid": format!("2.25.{}", rng.next_u128()),
                    "sopClass": template["instance"][0]["sopClass"],
                    "number": number,
                })
            })
            .collect();
        series.push(json!({
            "uid": uid,
            "number": series_index + 1,
            "modality": template["modality"],
            "numberOfInstances": count,
            "instance": instances,
        }));
    }
    study["numberOfSeries"] = json!(n_series);
    study["numberOfInstances"] = json!(n_instances);
    study["series"] = Value::Array(series);
    study
}

/// The report with its text replaced by a PDF of [`PDF_BYTES`] pseudo-random bytes (a PDF header and
/// trailer around them), in base64.
fn with_pdf(report: &Value, rng: &mut Rng) -> Value {
    let mut report = report.clone();
    let header = b"%PDF-1.4\n";
    let trailer = b"\n%%EOF\n";
    let mut pdf = Vec::with_capacity(PDF_BYTES);
    pdf.extend_from_slice(header);
    while pdf.len() < PDF_BYTES - trailer.len() {
        pdf.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    pdf.truncate(PDF_BYTES - trailer.len());
    pdf.extend_from_slice(trailer);
    let title = report["presentedForm"][0]["title"].clone();
    report["presentedForm"] = json!([{
        "contentType": "application/pdf",
        "language": "en-CA",
        "data": base64(&pdf),
        "title": title,
    }]);
    report
}

/// A version 4 UUID drawn from `rng`, as a `urn:uuid:`.
fn urn_uuid(rng: &mut Rng) -> String {
    // The version nibble (4) and the variant bits (10) of RFC 4122.
    let bits = (rng.next_u128() & !(0xF << 76) & !(0xC << 60)) | (0x4 << 76) | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn local_reference(resource: &Value) -> Result<String, BenchError> {
    match (resource["resourceType"].as_str(), resource["id"].as_str()) {
        (Some(res_type), Some(id)) => Ok(format!("{res_type}/{id}")),
        _ => Err(BenchError::Data(format!("not a resource with a type and an id: {resource}"))),
    }
}

fn reference_text(reference: &Value) -> &str {
    reference["reference"].as_str().unwrap_or_default()
}

fn remove(resource: &mut Value, element: &str) {
    if let Some(object) = resource.as_object_mut() {
        object.remove(element);
    }
}

fn past_end(index: usize, len: usize) -> String {
    format!("there is no Bundle {index}: the data set gives {len}")
}

#[cfg(test)]
mod tests;
