//! The viewer queries against a running server over HTTP, with parameter values sampled deterministically
//! from the loaded data set, measured one query after the other.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use hyper::Method;
use serde_json::Value;

use crate::BenchError;
use crate::dataset::{IdMap, read_resources};
use crate::generate::DataFile;
use crate::http::{HttpClient, normalize_base};
use crate::rng::Rng;
use crate::stats::{QueryStats, Sample};
use crate::workers::{Budget, run_workers};

/// The queries a viewer issues, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    ReadPatient,
    ReadStudy,
    StudiesByPatientIdentifier,
    ReportsByPatient,
    StudiesByModality,
    OrderByAccession,
    PatientByMrn,
    PatientByName,
}

impl QueryKind {
    pub const ALL: [QueryKind; 8] = [
        QueryKind::ReadPatient,
        QueryKind::ReadStudy,
        QueryKind::StudiesByPatientIdentifier,
        QueryKind::ReportsByPatient,
        QueryKind::StudiesByModality,
        QueryKind::OrderByAccession,
        QueryKind::PatientByMrn,
        QueryKind::PatientByName,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        self.labels()[0]
    }

    /// The report rows a query produces: its own, and for the paged query one more for the next pages.
    #[must_use]
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            QueryKind::ReadPatient => &["read-patient"],
            QueryKind::ReadStudy => &["read-study"],
            QueryKind::StudiesByPatientIdentifier => &["study-by-patient-identifier"],
            QueryKind::ReportsByPatient => &["reports-by-patient"],
            QueryKind::StudiesByModality => {
                &["studies-by-modality", "studies-by-modality:next-page"]
            }
            QueryKind::OrderByAccession => &["order-by-accession"],
            QueryKind::PatientByMrn => &["patient-by-mrn"],
            QueryKind::PatientByName => &["patient-by-name"],
        }
    }

    /// Parses a comma-separated list of query names; empty means all.
    ///
    /// # Errors
    /// On an unknown name, listing the known ones.
    pub fn parse_list(list: &str) -> Result<Vec<QueryKind>, BenchError> {
        if list.trim().is_empty() {
            return Ok(QueryKind::ALL.to_vec());
        }
        list.split(',')
            .map(|name| {
                QueryKind::ALL.into_iter().find(|kind| kind.name() == name.trim()).ok_or_else(
                    || {
                        let known: Vec<&str> =
                            QueryKind::ALL.iter().map(|kind| kind.name()).collect();
                        BenchError::Data(format!(
                            "unknown query {name:?}; known: {}",
                            known.join(", ")
                        ))
                    },
                )
            })
            .collect()
    }
}

/// How a measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub concurrency: usize,
    pub budget: Budget,
    /// Seeds the choice of parameter values.
    pub seed: u64,
}

/// A patient as the queries need it.
#[derive(Debug, Clone)]
pub struct PatientValues {
    pub server_id: String,
    pub mrn_system: String,
    pub mrn_value: String,
    pub family: String,
}

/// Parameter values drawn from the loaded data set.
#[derive(Debug, Clone, Default)]
pub struct QueryValues {
    pub patients: Vec<PatientValues>,
    pub study_ids: Vec<String>,
    /// Server patient id and the date (YYYY-MM-DD) one of their reports was issued.
    pub report_dates: Vec<(String, String)>,
    /// The dates CT studies started.
    pub ct_study_dates: Vec<String>,
    /// Accession identifiers (system, value) of the orders.
    pub accessions: Vec<(String, String)>,
}

impl QueryValues {
    /// Reads the data set and the id map the load wrote.
    ///
    /// # Errors
    /// When the data set cannot be read, was never loaded, or is empty.
    pub fn from_data_set(data_dir: &Path, ids: &IdMap) -> Result<QueryValues, BenchError> {
        let server_id = |res_type: &str, resource: &Value| -> Result<String, BenchError> {
            let local = format!("{res_type}/{}", resource["id"].as_str().unwrap_or_default());
            ids.get(&local).map(str::to_owned).ok_or_else(|| {
                BenchError::Data(format!("{local} is not in the id map: load the data set first"))
            })
        };
        let mut values = QueryValues::default();
        for patient in read_resources(data_dir, DataFile::Patient)? {
            let mrn = &patient["identifier"][0];
            values.patients.push(PatientValues {
                server_id: server_id("Patient", &patient)?,
                mrn_system: text(&mrn["system"]),
                mrn_value: text(&mrn["value"]),
                family: text(&patient["name"][0]["family"]),
            });
        }
        for study in read_resources(data_dir, DataFile::ImagingStudy)? {
            values.study_ids.push(server_id("ImagingStudy", &study)?);
            let modalities = study["modality"].as_array().map(Vec::as_slice).unwrap_or_default();
            if modalities.iter().any(|coding| coding["code"] == "CT") {
                values.ct_study_dates.push(date_part(&study["started"]));
            }
        }
        for order in read_resources(data_dir, DataFile::ServiceRequest)? {
            let accession = &order["identifier"][0];
            values.accessions.push((text(&accession["system"]), text(&accession["value"])));
        }
        for report in read_resources(data_dir, DataFile::DiagnosticReport)? {
            let patient_local = text(&report["subject"]["reference"]);
            let Some(patient_id) = ids.get(&patient_local) else {
                return Err(BenchError::Data(format!("{patient_local} is not in the id map")));
            };
            values.report_dates.push((patient_id.to_owned(), date_part(&report["issued"])));
        }
        let empty = values.patients.is_empty()
            || values.study_ids.is_empty()
            || values.report_dates.is_empty()
            || values.ct_study_dates.is_empty()
            || values.accessions.is_empty();
        if empty {
            return Err(BenchError::Data(
                "the data set is too small: generate more patients".into(),
            ));
        }
        Ok(values)
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn date_part(value: &Value) -> String {
    value.as_str().unwrap_or_default().chars().take(10).collect()
}

/// A search as the viewer issues it, for both the HTTP run and the direct one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchSpec {
    pub(crate) res_type: &'static str,
    /// Name/value pairs, unencoded.
    pub(crate) params: Vec<(String, String)>,
    /// The data set guarantees at least one match (of the first page).
    pub(crate) expect_match: bool,
    /// Up to five `next` pages follow the first, timed under the query's second label.
    pub(crate) paged: bool,
}

impl SearchSpec {
    /// The search `kind` issues for the values `rng` draws; `None` for the reads.
    pub(crate) fn for_kind(
        kind: QueryKind,
        rng: &mut Rng,
        values: &QueryValues,
    ) -> Option<SearchSpec> {
        let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
        };
        let (res_type, params, expect_match, paged) = match kind {
            QueryKind::ReadPatient | QueryKind::ReadStudy => return None,
            QueryKind::StudiesByPatientIdentifier => {
                let patient = rng.pick(&values.patients);
                let identifier = format!("{}|{}", patient.mrn_system, patient.mrn_value);
                ("ImagingStudy", pairs(&[("patient.identifier", &identifier)]), true, false)
            }
            QueryKind::ReportsByPatient => {
                let (patient_id, date) = rng.pick(&values.report_dates);
                let params = pairs(&[
                    ("patient", &format!("Patient/{patient_id}")),
                    ("issued", &format!("ge{date}")),
                    ("status", "final"),
                    ("_include", "DiagnosticReport:based-on"),
                ]);
                ("DiagnosticReport", params, false, false)
            }
            QueryKind::StudiesByModality => {
                let started = format!("ge{}", rng.pick(&values.ct_study_dates));
                let params = pairs(&[
                    ("modality", "CT"),
                    ("started", &started),
                    ("_sort", "-started"),
                    ("_count", "20"),
                ]);
                ("ImagingStudy", params, true, true)
            }
            QueryKind::OrderByAccession => {
                let (system, value) = rng.pick(&values.accessions);
                (
                    "ServiceRequest",
                    pairs(&[("identifier", &format!("{system}|{value}"))]),
                    true,
                    false,
                )
            }
            QueryKind::PatientByMrn => {
                let patient = rng.pick(&values.patients);
                let identifier = format!("{}|{}", patient.mrn_system, patient.mrn_value);
                ("Patient", pairs(&[("identifier", &identifier)]), true, false)
            }
            QueryKind::PatientByName => {
                let family = &rng.pick(&values.patients).family;
                ("Patient", pairs(&[("name", family)]), true, false)
            }
        };
        Some(SearchSpec { res_type, params, expect_match, paged })
    }
}

/// What a query's work item returns: one sample per request it made.
pub(crate) type Samples = Vec<Sample>;
/// One work item of a query, by index.
pub(crate) type Operation =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Samples> + Send>> + Send + Sync>;

/// Runs each query in turn for the whole budget and returns one row per label.
pub(crate) async fn measure(
    queries: &[(QueryKind, Option<Operation>)],
    config: RunConfig,
    not_measured_reason: &str,
) -> Vec<QueryStats> {
    let mut rows = Vec::new();
    for (kind, operation) in queries {
        let Some(operation) = operation.clone() else {
            rows.extend(
                kind.labels()
                    .iter()
                    .map(|label| QueryStats::not_measured(label, not_measured_reason)),
            );
            continue;
        };
        let (results, elapsed) =
            run_workers(config.concurrency, config.budget, move |item| operation(item)).await;
        let mut by_label: HashMap<&str, Vec<&Sample>> = HashMap::new();
        for sample in results.iter().flatten() {
            by_label.entry(sample.label).or_default().push(sample);
        }
        for label in kind.labels() {
            let samples = by_label.remove(label).unwrap_or_default();
            if samples.is_empty() {
                let reason = if *label == kind.name() {
                    "no request was made within the budget"
                } else {
                    "no response had a next link"
                };
                rows.push(QueryStats::not_measured(label, reason));
                continue;
            }
            rows.push(QueryStats::from_samples(label, &samples, elapsed));
        }
    }
    rows
}

/// Runs `queries` against the server at `base` with the data set in `data_dir` (loaded there before).
///
/// # Errors
/// When the data set or its id map cannot be read, or was loaded into another server.
pub async fn run(
    base: &str,
    data_dir: &Path,
    queries: &[QueryKind],
    config: RunConfig,
) -> Result<Vec<QueryStats>, BenchError> {
    let base = normalize_base(base)?;
    let ids = IdMap::load(data_dir)?;
    if ids.base != base {
        return Err(BenchError::Data(format!(
            "the data set was loaded into {}, not {base}: run `cdr-bench load --base {base}` first",
            ids.base
        )));
    }
    let context = Arc::new(HttpContext {
        client: HttpClient::new(config.concurrency),
        base,
        values: QueryValues::from_data_set(data_dir, &ids)?,
        seed: config.seed,
    });
    let operations: Vec<(QueryKind, Option<Operation>)> = queries
        .iter()
        .map(|kind| {
            let context = Arc::clone(&context);
            let kind = *kind;
            let operation: Operation = Arc::new(move |item| {
                let context = Arc::clone(&context);
                Box::pin(async move { context.execute(kind, item).await })
            });
            (kind, Some(operation))
        })
        .collect();
    Ok(measure(&operations, config, "").await)
}

struct HttpContext {
    client: HttpClient,
    base: String,
    values: QueryValues,
    seed: u64,
}

/// What a response must show to count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200 with the resource.
    Resource,
    /// 200 with a searchset Bundle.
    Bundle,
    /// 200 with a searchset Bundle holding at least one match: the data set has one.
    Match,
}

impl HttpContext {
    async fn execute(&self, kind: QueryKind, item: u64) -> Samples {
        let mut rng = Rng::for_item(self.seed, item);
        let values = &self.values;
        let base = &self.base;
        let (url, expect) = match kind {
            QueryKind::ReadPatient => (
                format!("{base}/Patient/{}", rng.pick(&values.patients).server_id),
                Expect::Resource,
            ),
            QueryKind::ReadStudy => {
                (format!("{base}/ImagingStudy/{}", rng.pick(&values.study_ids)), Expect::Resource)
            }
            _ => {
                let Some(search) = SearchSpec::for_kind(kind, &mut rng, values) else {
                    return Vec::new();
                };
                let params: Vec<(&str, &str)> = search
                    .params
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let url = search_url(base, search.res_type, &params);
                if search.paged {
                    return self.paged(&url).await;
                }
                (url, if search.expect_match { Expect::Match } else { Expect::Bundle })
            }
        };
        let (sample, _) = self.get(kind.labels()[0], &url, expect).await;
        vec![sample]
    }

    /// The first page, then up to five `next` pages, each timed on its own.
    async fn paged(&self, first_url: &str) -> Samples {
        let labels = QueryKind::StudiesByModality.labels();
        let (sample, mut next) = self.get(labels[0], first_url, Expect::Match).await;
        let mut samples = vec![sample];
        for _ in 0..5 {
            let Some(url) = next else { break };
            let (sample, following) = self.get(labels[1], &url, Expect::Bundle).await;
            samples.push(sample);
            next = following;
        }
        samples
    }

    /// One GET, checked against `expect`; returns the sample and the Bundle's `next` link, if any.
    async fn get(
        &self,
        label: &'static str,
        url: &str,
        expect: Expect,
    ) -> (Sample, Option<String>) {
        let started = Instant::now();
        let result = self.client.send(Method::GET, url, &[], None).await;
        let latency = started.elapsed();
        let (error, next) = match result {
            Err(error) => (Some(error), None),
            Ok(response) if response.status != 200 => (Some(response.describe()), None),
            Ok(response) => match serde_json::from_slice::<Value>(&response.body) {
                Err(error) => (Some(format!("the body is not JSON: {error}")), None),
                Ok(body) => check_body(&body, expect),
            },
        };
        (Sample { label, latency, error }, next)
    }
}

fn check_body(body: &Value, expect: Expect) -> (Option<String>, Option<String>) {
    if expect == Expect::Resource {
        return match body["resourceType"].as_str() {
            Some("OperationOutcome") | None => (Some(format!("not a resource: {body}")), None),
            Some(_) => (None, None),
        };
    }
    if body["resourceType"] != "Bundle" || body["type"] != "searchset" {
        return (Some("the response is not a searchset Bundle".to_owned()), None);
    }
    let entries = body["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    let n_matches = entries
        .iter()
        .filter(|entry| entry["search"]["mode"].as_str().unwrap_or("match") == "match")
        .count();
    let next = body["link"]
        .as_array()
        .and_then(|links| links.iter().find(|link| link["relation"] == "next"))
        .and_then(|link| link["url"].as_str())
        .map(str::to_owned);
    if expect == Expect::Match && n_matches == 0 {
        return (Some("no match, yet the data set has one".to_owned()), next);
    }
    (None, next)
}

fn search_url(base: &str, res_type: &str, params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{base}/{res_type}?{query}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn search_responses_are_checked_and_next_links_followed() {
        let page = json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{ "relation": "self", "url": "s" }, { "relation": "next", "url": "http://h/fhir/ImagingStudy?_cursor=2" }],
            "entry": [
                { "resource": {}, "search": { "mode": "match" } },
                { "resource": {}, "search": { "mode": "include" } },
            ],
        });
        let next = Some("http://h/fhir/ImagingStudy?_cursor=2".to_owned());
        assert_eq!(check_body(&page, Expect::Match), (None, next.clone()));
        let only_includes = json!({
            "resourceType": "Bundle", "type": "searchset",
            "entry": [{ "resource": {}, "search": { "mode": "include" } }],
        });
        assert_eq!(check_body(&only_includes, Expect::Bundle), (None, None));
        assert_eq!(
            check_body(&only_includes, Expect::Match).0.as_deref(),
            Some("no match, yet the data set has one")
        );
        let history = json!({ "resourceType": "Bundle", "type": "history" });
        assert!(check_body(&history, Expect::Bundle).0.is_some());
        let outcome = json!({ "resourceType": "OperationOutcome" });
        assert!(check_body(&outcome, Expect::Resource).0.is_some());
        assert_eq!(
            check_body(&json!({ "resourceType": "Patient" }), Expect::Resource),
            (None, None)
        );
    }

    #[test]
    fn search_values_are_percent_encoded() {
        let url = search_url(
            "http://h/fhir",
            "Patient",
            &[("identifier", "https://a.example/mrn|0012"), ("name", "Côté")],
        );
        assert_eq!(
            url,
            "http://h/fhir/Patient?identifier=https%3A%2F%2Fa.example%2Fmrn%7C0012&name=C%C3%B4t%C3%A9"
        );
    }

    #[test]
    fn query_lists_parse_by_name() {
        assert_eq!(QueryKind::parse_list("").unwrap(), QueryKind::ALL.to_vec());
        assert_eq!(
            QueryKind::parse_list("read-study, patient-by-name").unwrap(),
            vec![QueryKind::ReadStudy, QueryKind::PatientByName]
        );
        assert!(QueryKind::parse_list("read-everything").is_err());
    }
}
