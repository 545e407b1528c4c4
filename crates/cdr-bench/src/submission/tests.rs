//! Submission Bundles: determinism, conditional PUTs, references within the Bundle, the widened study and
//! the PDF, and the packing of small Bundles.

use std::collections::HashSet;
use std::path::PathBuf;

use super::*;
use crate::GenerateConfig;
use crate::dataset::write_data_set;

/// A data set of `patients` in a fresh temporary folder, removed on drop.
struct DataSet(PathBuf);

impl DataSet {
    fn new(patients: u64) -> DataSet {
        let dir =
            std::env::temp_dir().join(format!("cdr-bench-submission-{}", uuid::Uuid::new_v4()));
        write_data_set(&dir, GenerateConfig { patients, seed: 3 }).unwrap();
        DataSet(dir)
    }

    fn submissions(&self, shape: Shape, entries_per_bundle: usize, seed: u64) -> Submissions {
        let config = SubmissionConfig { shape, entries_per_bundle, seed };
        Submissions::from_data_set(&self.0, config).unwrap()
    }
}

impl Drop for DataSet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every entry is a conditional PUT on its first identifier, and every reference is the fullUrl of
/// another entry.
fn check_entries(bundle: &Value) {
    assert_eq!(bundle["type"], "transaction");
    let full_urls: HashSet<&str> =
        entries(bundle).iter().map(|(full_url, _, _)| *full_url).collect();
    for entry in bundle["entry"].as_array().unwrap() {
        let resource = &entry["resource"];
        assert!(resource.get("id").is_none() && resource.get("meta").is_none(), "{resource}");
        let identifier = &resource["identifier"][0];
        let criteria = form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "identifier",
                &format!(
                    "{}|{}",
                    identifier["system"].as_str().unwrap(),
                    identifier["value"].as_str().unwrap()
                ),
            )
            .finish();
        assert_eq!(entry["request"]["method"], "PUT");
        assert_eq!(
            entry["request"]["url"],
            format!("{}?{criteria}", resource["resourceType"].as_str().unwrap())
        );
        assert!(entry["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        let mut references = Vec::new();
        collect_references(resource, &mut references);
        for reference in references {
            assert!(full_urls.contains(reference.as_str()), "{reference} in {resource}");
        }
    }
    assert_eq!(full_urls.len(), bundle["entry"].as_array().unwrap().len());
}

fn collect_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("reference") {
                found.push(reference.clone());
            }
            map.values().for_each(|child| collect_references(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_references(child, found)),
        _ => {}
    }
}

#[test]
fn imaging_bundles_hold_an_order_with_its_study_and_report() {
    let data = DataSet::new(12);
    let submissions = data.submissions(Shape::Imaging, 100, 1);
    let n_orders = read_resources(&data.0, DataFile::ServiceRequest).unwrap().len();
    assert_eq!(submissions.len(), n_orders);
    let mut instance_uids = HashSet::new();
    for index in 0..submissions.len() {
        let bundle = submissions.bundle(index).unwrap();
        check_entries(&bundle);
        let types: Vec<&str> = entries(&bundle).iter().map(|(_, res_type, _)| *res_type).collect();
        let expected_with = |practitioners: usize| {
            let mut expected = vec!["Organization"];
            expected.extend(std::iter::repeat_n("Practitioner", practitioners));
            expected.extend(["Patient", "ServiceRequest", "ImagingStudy", "DiagnosticReport"]);
            expected
        };
        assert!(types == expected_with(1) || types == expected_with(2), "{types:?}");

        let study = &bundle["entry"][types.len() - 2]["resource"];
        let series = study["series"].as_array().unwrap();
        assert!((3..=5).contains(&series.len()), "{} series", series.len());
        let mut n_instances = 0;
        for one_series in series {
            for instance in one_series["instance"].as_array().unwrap() {
                let uid = instance["uid"].as_str().unwrap();
                assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
                assert!(uid[5..].bytes().all(|byte| byte.is_ascii_digit()), "{uid}");
                assert!(instance_uids.insert(uid.to_owned()), "{uid} twice");
                n_instances += 1;
            }
            assert_eq!(
                one_series["numberOfInstances"],
                one_series["instance"].as_array().unwrap().len()
            );
        }
        assert!((96..=104).contains(&n_instances), "{n_instances} instances");
        assert_eq!(study["numberOfInstances"], n_instances);
        assert_eq!(study["numberOfSeries"], series.len());

        let report = &bundle["entry"][types.len() - 1]["resource"];
        let form = &report["presentedForm"].as_array().unwrap()[..];
        assert_eq!(form.len(), 1);
        assert_eq!(form[0]["contentType"], "application/pdf");
        let data = form[0]["data"].as_str().unwrap();
        assert_eq!(data.len(), PDF_BYTES.div_ceil(3) * 4);
        assert!(data.starts_with(&base64(b"%PDF-1.4\n")[..12]), "{}", &data[..12]);
    }
}

#[test]
fn bundles_depend_on_the_seed_and_their_index_only() {
    let data = DataSet::new(6);
    for shape in [Shape::Imaging, Shape::Small] {
        let first = data.submissions(shape, 5, 1);
        let again = data.submissions(shape, 5, 1);
        let other_seed = data.submissions(shape, 5, 2);
        // Built in another order, the Bundles are the same.
        let forwards: Vec<String> =
            (0..first.len()).map(|index| first.bundle(index).unwrap().to_string()).collect();
        let backwards: Vec<String> =
            (0..again.len()).rev().map(|index| again.bundle(index).unwrap().to_string()).collect();
        assert_eq!(forwards, backwards.into_iter().rev().collect::<Vec<_>>());
        assert_ne!(forwards[0], other_seed.bundle(0).unwrap().to_string());
        assert!(first.bundle(first.len()).is_err());
    }
}

#[test]
fn small_bundles_pack_patients_with_their_orders() {
    let data = DataSet::new(30);
    let submissions = data.submissions(Shape::Small, 10, 1);
    let n_patients = read_resources(&data.0, DataFile::Patient).unwrap().len();
    let n_orders = read_resources(&data.0, DataFile::ServiceRequest).unwrap().len();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut identifiers = HashSet::new();
    for index in 0..submissions.len() {
        let bundle = submissions.bundle(index).unwrap();
        check_entries(&bundle);
        let entries = entries(&bundle);
        assert!(entries.len() <= 10 && !entries.is_empty());
        assert_eq!(entries[0].1, "Patient");
        for (_, res_type, resource) in entries {
            *counts.entry(res_type.to_owned()).or_default() += 1;
            assert!(identifiers.insert(resource["identifier"][0]["value"].to_string()));
            assert!(
                !resource.contains_key("managingOrganization")
                    && !resource.contains_key("requester")
            );
        }
    }
    assert_eq!(counts["Patient"], n_patients);
    assert_eq!(counts["ServiceRequest"], n_orders);
    assert!(submissions.len() < n_patients, "several patients a Bundle");
}
