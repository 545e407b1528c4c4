//! Drives a running imaging-cdr with the `fhir-sdk` Rust client (crates.io, async, on reqwest).
//!
//! fhir-sdk has no R4 models, only STU3, R4B and R5. Its R4B client speaks to R4 servers: the major version
//! it checks in each response's `fhirVersion` is the same (4), and it sends `application/fhir+json;
//! fhirVersion=4.3`, which an R4 server must accept. So the checks keep to resources whose R4B and R4
//! shapes agree (Patient, ImagingStudy, DiagnosticReport, Bundle, OperationOutcome) and to the elements of
//! the CapabilityStatement that R4B did not change.
//!
//! fhir-sdk takes the id and version of a create from `Location`, the version of an update from `ETag`,
//! maps 404 and 410 on read to "none", follows `next` links only to the base URL's origin, and retries a
//! request once with the `Authorization` header of its login callback when the server answers 401. The
//! checks read the CapabilityStatement, create, read, vread, update (plain, with `If-Match`, and with a
//! stale `If-Match`: 412), read the history, search (by identifier with `_total=accurate`, and
//! ImagingStudies sorted and paged two at a time), post a transaction (creates cross-referenced by
//! `urn:uuid`, an `If-Match` update and a read) and delete, asserting ids, versions, totals, the entries'
//! responses, and that a deleted resource is gone (410) and no longer found.
//!
//! Usage: check-fhir-sdk BASE_URL [ACCESS_TOKEN]   (e.g. http://127.0.0.1:8080/fhir)
//! With an access token, the login callback hands it out as a bearer token, and the server must have
//! asked for it exactly once (401 on the first request that needs it). Prints one line per check and a
//! closing 'N passed, N failed' line; exits 1 on any failure, 2 on bad arguments.

use std::{
    convert::Infallible,
    fmt::Debug,
    process::ExitCode,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use fhir_sdk::{
    Date, DateTime, HeaderValue, HttpClient, StatusCode, TryStreamExt, Url,
    client::{Client, Error, RequestSettings, ResourceWrite, SearchParameters, TokenSearch},
    header,
    r4b::{
        codes::{BundleType, DiagnosticReportStatus, ImagingStudyStatus, SearchEntryMode},
        resources::{
            Bundle, BundleEntry, DiagnosticReport, ImagingStudy, Patient, Resource, ResourceType,
        },
        types::{CodeableConcept, Coding, HumanName, Identifier, Meta, Reference},
    },
    version::FhirR4B,
};

const MRN: &str = "https://fhir.hospital.example/mrn";
const LOINC: &str = "http://loinc.org";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// Why a check failed: a client error or an answer that is not the expected one.
struct Failure(String);

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self(format!("fhir-sdk: {error}"))
    }
}

type Outcome = Result<(), Failure>;

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(Failure(message())) }
}

fn same<T: PartialEq + Debug + ?Sized>(what: &str, got: &T, want: &T) -> Outcome {
    ensure(got == want, || format!("{what}: got {got:?}, expected {want:?}"))
}

fn found<T>(what: &str, value: Option<T>) -> Result<T, Failure> {
    value.ok_or_else(|| Failure(format!("{what}: missing")))
}

/// The resources of this run, made by one check and used by the later ones.
#[derive(Default)]
struct State {
    /// Values of this run only, so that the search totals count what this run made.
    mrn: String,
    patient: Option<Patient>,
    studies: Vec<String>,
    /// The Patient, ImagingStudy and DiagnosticReport ids the transaction created.
    transaction: Option<[String; 3]>,
}

impl State {
    fn patient(&self) -> Result<&Patient, Failure> {
        found("the Patient of an earlier check", self.patient.as_ref())
    }
}

fn patient_id(patient: &Patient) -> Result<String, Failure> {
    found("Patient.id", patient.id.clone())
}

fn version(meta: Option<&Meta>) -> Option<&str> {
    meta.and_then(|meta| meta.version_id.as_deref())
}

fn loinc(code: &str, display: &str) -> Result<CodeableConcept, Failure> {
    let coding = Coding::builder()
        .system(LOINC.to_owned())
        .code(code.to_owned())
        .display(display.to_owned())
        .build();
    build(CodeableConcept::builder().coding(vec![Some(build(coding)?)]).build())
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, Failure> {
    built.map_err(|error| Failure(format!("building a resource: {error}")))
}

fn new_patient(mrn: &str, family: &str) -> Result<Patient, Failure> {
    build(
        Patient::builder()
            .identifier(vec![Some(build(
                Identifier::builder().system(MRN.to_owned()).value(mrn.to_owned()).build(),
            )?)])
            .name(vec![Some(build(
                HumanName::builder()
                    .family(family.to_owned())
                    .given(vec![Some("Béatrice".to_owned())])
                    .build(),
            )?)])
            .birth_date(build(Date::from_str("1968-02-29"))?)
            .active(false)
            .build(),
    )
}

fn study(subject: Reference, started: &str) -> Result<ImagingStudy, Failure> {
    build(
        ImagingStudy::builder()
            .status(ImagingStudyStatus::Available)
            .modality(vec![Some(build(
                Coding::builder().system(DICOM.to_owned()).code("CT".to_owned()).build(),
            )?)])
            .subject(subject)
            .started(build(DateTime::from_str(started))?)
            .number_of_series(1)
            .description("CT abdomen".to_owned())
            .build(),
    )
}

/// The status code and the `Type/id` of a transaction entry's response.
fn entry_response(entry: &BundleEntry) -> Result<(String, Option<(String, String)>), Failure> {
    let response = found("a transaction entry's response", entry.response.as_ref())?;
    let code = response.status.split(' ').next().unwrap_or_default().to_owned();
    let target = response.location.as_deref().and_then(|location| {
        let mut segments = location.split('/');
        Some((segments.next()?.to_owned(), segments.next()?.to_owned()))
    });
    Ok((code, target))
}

async fn capabilities(client: &Client<FhirR4B>) -> Outcome {
    let statement = client.capabilities().await?;
    same("fhirVersion", statement.fhir_version.as_ref(), "4.0.1")?;
    let rest = found("rest", statement.rest.iter().flatten().next())?;
    let types: Vec<&str> =
        rest.resource.iter().flatten().map(|resource| resource.r#type.as_ref()).collect();
    for wanted in ["Patient", "ImagingStudy", "DiagnosticReport"] {
        ensure(types.contains(&wanted), || format!("the statement does not declare {wanted}"))?;
    }
    Ok(())
}

async fn create(client: &Client<FhirR4B>, state: &mut State) -> Outcome {
    let mut patient = new_patient(&state.mrn, "Gagnon")?;
    let id = patient.create(client).await?;
    ensure(!id.is_empty(), || "the server assigned no id".to_owned())?;
    same("Patient.id after create", &patient.id.as_deref(), &Some(id.as_str()))?;
    same("version of the create (Location)", &version(patient.meta.as_ref()), &Some("1"))?;
    state.patient = Some(patient);
    Ok(())
}

async fn read(client: &Client<FhirR4B>, state: &State) -> Outcome {
    let id = patient_id(state.patient()?)?;
    let read: Patient = found("the Patient", client.read(&id).await?)?;
    same("Patient.id", &read.id.as_deref(), &Some(id.as_str()))?;
    same("meta.versionId", &version(read.meta.as_ref()), &Some("1"))?;
    same("birthDate", &read.birth_date, &Some(build(Date::from_str("1968-02-29"))?))?;
    let identifier = found("identifier", read.identifier.iter().flatten().next())?;
    same("identifier.value", &identifier.value.as_deref(), &Some(state.mrn.as_str()))?;
    let name = found("name", read.name.iter().flatten().next())?;
    same("name.family", &name.family.as_deref(), &Some("Gagnon"))?;
    same("name.given", &name.given.first().cloned().flatten(), &Some("Béatrice".to_owned()))?;
    let first: Patient = found("version 1", client.read_version(&id, "1").await?)?;
    same("vread meta.versionId", &version(first.meta.as_ref()), &Some("1"))?;
    let missing: Option<Patient> = client.read("not-there").await?;
    ensure(missing.is_none(), || "a Patient that was never created was read".to_owned())
}

async fn update(client: &Client<FhirR4B>, state: &mut State) -> Outcome {
    let mut patient = state.patient()?.clone();
    patient.active = Some(true);
    let created = patient.update(false, client).await?;
    ensure(!created, || "the update created the Patient anew".to_owned())?;
    same("version of the update (ETag)", &version(patient.meta.as_ref()), &Some("2"))?;
    patient.active = Some(false);
    patient.update(true, client).await?;
    same("version of the If-Match update", &version(patient.meta.as_ref()), &Some("3"))?;
    let mut stale = patient.clone();
    stale.meta = Some(build(Meta::builder().version_id("1".to_owned()).build())?);
    match stale.update(true, client).await {
        Err(Error::OperationOutcomeR4B(status, _)) => {
            same("status of a stale If-Match", &status, &StatusCode::PRECONDITION_FAILED)?;
        }
        other => {
            return Err(Failure(format!(
                "a stale If-Match: expected a 412 OperationOutcome, got {other:?}"
            )));
        }
    }
    let read: Patient = found("the Patient", client.read(&patient_id(&patient)?).await?)?;
    same("the current version", &version(read.meta.as_ref()), &Some("3"))?;
    same("active", &read.active, &Some(false))?;
    state.patient = Some(patient);
    Ok(())
}

async fn history(client: &Client<FhirR4B>, state: &State) -> Outcome {
    let id = patient_id(state.patient()?)?;
    let page = client.history::<Patient>(Some(&id)).await?;
    same("Bundle.type", &page.bundle().r#type, &BundleType::History)?;
    let versions: Vec<&str> = page
        .entries()
        .map(|resource| match resource {
            Resource::Patient(patient) => version(patient.meta.as_ref()).unwrap_or("none"),
            _ => "not a Patient",
        })
        .collect();
    same("the versions, newest first", &versions, &vec!["3", "2", "1"])
}

async fn search_by_identifier(
    client: &Client<FhirR4B>,
    identifier: &str,
) -> Result<(Option<u32>, Vec<String>), Failure> {
    let page = client
        .search::<Patient>(
            SearchParameters::empty()
                .and(TokenSearch::Standard {
                    name: "identifier",
                    system: Some(MRN),
                    code: Some(identifier),
                    not: false,
                })
                .and_raw("_total", "accurate"),
        )
        .await?;
    same("Bundle.type", &page.bundle().r#type, &BundleType::Searchset)?;
    let ids = page.matches().filter_map(|patient| patient.id.clone()).collect();
    Ok((page.total(), ids))
}

async fn search(client: &Client<FhirR4B>, state: &State) -> Outcome {
    let id = patient_id(state.patient()?)?;
    let (total, ids) = search_by_identifier(client, &state.mrn).await?;
    same("total by identifier", &total, &Some(1))?;
    same("the matches by identifier", &ids, &vec![id])?;
    let (total, ids) = search_by_identifier(client, &format!("{}-nobody", state.mrn)).await?;
    same("total of a search that finds nothing", &total, &Some(0))?;
    same("its matches", &ids, &Vec::<String>::new())
}

async fn search_pages(client: &Client<FhirR4B>, state: &mut State) -> Outcome {
    let id = patient_id(state.patient()?)?;
    let mut created = Vec::new();
    // Created out of order: the search sorts them.
    for day in ["03", "01", "02"] {
        let mut study = study(
            Reference::relative(ResourceType::Patient, &id),
            &format!("2024-07-{day}T08:30:00Z"),
        )?;
        created.push((day, study.create(client).await?));
    }
    created.sort_unstable();
    state.studies = created.into_iter().map(|(_, id)| id).collect();
    let first = client
        .search::<ImagingStudy>(
            SearchParameters::empty()
                .and_raw("patient", format!("Patient/{id}"))
                .and_raw("_sort", "started")
                .and_raw("_count", 2)
                .and_raw("_total", "accurate"),
        )
        .await?;
    same("total of the ImagingStudies", &first.total(), &Some(3))?;
    let modes: Vec<Option<SearchEntryMode>> = first
        .bundle()
        .entry
        .iter()
        .flatten()
        .map(|entry| entry.search.as_ref().and_then(|search| search.mode))
        .collect();
    same(
        "search.mode of the first page's entries",
        &modes,
        &vec![Some(SearchEntryMode::Match); 2],
    )?;
    ensure(first.next_page_url().is_some(), || "the first page has no next link".to_owned())?;
    let all: Vec<ImagingStudy> = first.all_matches().try_collect().await?;
    let ids: Vec<String> = all.iter().filter_map(|study| study.id.clone()).collect();
    same("the ImagingStudies across pages, by started", &ids, &state.studies)?;
    let series = all.first().and_then(|study| study.number_of_series);
    same("numberOfSeries", &series, &Some(1))
}

async fn transaction(client: &Client<FhirR4B>, state: &mut State) -> Outcome {
    let mut patient = state.patient()?.clone();
    let id = patient_id(&patient)?;
    let mut transaction = client.transaction();
    let other = transaction.create(new_patient(&format!("{}-2", state.mrn), "Tremblay")?);
    let other = build(Reference::builder().reference(other).build())?;
    let study = transaction.create(study(other.clone(), "2024-07-04T09:00:00Z")?);
    transaction.create(build(
        DiagnosticReport::builder()
            .status(DiagnosticReportStatus::Final)
            .code(loinc("24558-9", "CT Abdomen")?)
            .subject(other)
            .imaging_study(vec![Some(build(Reference::builder().reference(study).build())?)])
            .build(),
    )?);
    patient.active = Some(true);
    transaction.update(patient, true)?;
    transaction.read(ResourceType::Patient, &id);
    let answer: Bundle = transaction.send().await?;
    same("Bundle.type", &answer.r#type, &BundleType::TransactionResponse)?;
    let entries: Vec<&BundleEntry> = answer.entry.iter().flatten().collect();
    let responses =
        entries.iter().map(|entry| entry_response(entry)).collect::<Result<Vec<_>, _>>()?;
    let codes: Vec<&str> = responses.iter().map(|(code, _)| code.as_str()).collect();
    same("the entries' statuses", &codes, &vec!["201", "201", "201", "200", "200"])?;
    let targets: Vec<(String, String)> =
        responses.into_iter().map(|(_, target)| target.unwrap_or_default()).collect();
    let types: Vec<&str> =
        targets.iter().map(|(resource_type, _)| resource_type.as_str()).collect();
    same(
        "the entries' locations",
        &types,
        &vec!["Patient", "ImagingStudy", "DiagnosticReport", "Patient", "Patient"],
    )?;
    same("the updated Patient's id", &targets[3].1, &id)?;
    let Some(Resource::Patient(read)) = entries[4].resource.as_ref() else {
        return Err(Failure("the read entry holds no Patient".to_owned()));
    };
    same("the read sees the update: version", &version(read.meta.as_ref()), &Some("4"))?;
    same("the read sees the update: active", &read.active, &Some(true))?;

    let [other, study, report] = [0, 1, 2].map(|index| targets[index].1.clone());
    let read: DiagnosticReport = found("the DiagnosticReport", client.read(&report).await?)?;
    let subject = read.subject.as_ref().and_then(|subject| subject.reference.as_deref());
    same("DiagnosticReport.subject", &subject, &Some(format!("Patient/{other}").as_str()))?;
    let imaging =
        read.imaging_study.iter().flatten().next().and_then(|study| study.reference.as_deref());
    same(
        "DiagnosticReport.imagingStudy",
        &imaging,
        &Some(format!("ImagingStudy/{study}").as_str()),
    )?;
    state.transaction = Some([other, study, report]);
    Ok(())
}

/// The status of a plain read, which `Client::read` folds into "none" for both 404 and 410.
async fn read_status(client: &Client<FhirR4B>, path: &str) -> Result<StatusCode, Failure> {
    let mut url = client.base_url().clone();
    url.path_segments_mut()
        .map_err(|()| Failure("the base URL cannot be a base".to_owned()))?
        .extend(path.split('/'));
    let response = client
        .send_custom_request(|http| http.get(url).header(header::ACCEPT, "application/fhir+json"))
        .await?;
    Ok(response.status())
}

async fn delete(client: &Client<FhirR4B>, state: &State) -> Outcome {
    let id = patient_id(state.patient()?)?;
    let [other, study, report] =
        found("the resources of the transaction", state.transaction.clone())?;
    client.delete(ResourceType::DiagnosticReport, &report).await?;
    for study in state.studies.iter().chain([&study]) {
        client.delete(ResourceType::ImagingStudy, study).await?;
    }
    client.delete(ResourceType::Patient, &other).await?;
    state.patient()?.clone().delete(client).await?;
    let read: Option<Patient> = client.read(&id).await?;
    ensure(read.is_none(), || "the deleted Patient is still read".to_owned())?;
    same(
        "status of reading the deleted Patient",
        &read_status(client, &format!("Patient/{id}")).await?,
        &StatusCode::GONE,
    )?;
    let (total, ids) = search_by_identifier(client, &state.mrn).await?;
    same("total by identifier after the delete", &total, &Some(0))?;
    same("the matches after the delete", &ids, &Vec::<String>::new())
}

/// The client, with a login callback that hands out `token` when the server asks for one (401).
fn client(
    base: Url,
    token: Option<String>,
    logins: &Arc<AtomicUsize>,
) -> Result<Client<FhirR4B>, Failure> {
    let builder = Client::<FhirR4B>::builder()
        .base_url(base)
        .request_settings(RequestSettings::default().timeout(Some(Duration::from_secs(30))));
    let Some(token) = token else {
        return Ok(builder.build()?);
    };
    let value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|error| Failure(format!("the access token: {error}")))?;
    let logins = Arc::clone(logins);
    let login = move |_: HttpClient| {
        logins.fetch_add(1, Ordering::SeqCst);
        let value = value.clone();
        async move { Ok::<_, Infallible>(value) }
    };
    Ok(builder.auth_callback(login).build()?)
}

/// The checks run so far: one line each as they end.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn record(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(Failure(message)) => {
                self.failed += 1;
                println!("FAIL {name}: {message}");
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut arguments = std::env::args().skip(1);
    let (Some(base), token) = (arguments.next(), arguments.next()) else {
        eprintln!("usage: check-fhir-sdk BASE_URL [ACCESS_TOKEN]");
        return ExitCode::from(2);
    };
    let Ok(base) = Url::parse(&base) else {
        eprintln!("check-fhir-sdk: not a URL: {base}");
        return ExitCode::from(2);
    };
    let with_token = token.is_some();
    let logins = Arc::new(AtomicUsize::new(0));
    let client = match client(base, token, &logins) {
        Ok(client) => client,
        Err(Failure(message)) => {
            eprintln!("check-fhir-sdk: {message}");
            return ExitCode::from(2);
        }
    };
    let mut state = State { mrn: format!("MRN-SDK-{}", uuid::Uuid::new_v4()), ..State::default() };
    let mut report = Report::default();
    report.record(
        "the CapabilityStatement is R4 and declares the types used here",
        capabilities(&client).await,
    );
    report.record(
        "create a Patient: id and version 1 from Location",
        create(&client, &mut state).await,
    );
    report.record(
        "read and vread the Patient; a Patient never created reads as none",
        read(&client, &state).await,
    );
    report.record(
        "update: version 2, If-Match version 3, a stale If-Match 412",
        update(&client, &mut state).await,
    );
    report.record("the Patient's history has its three versions", history(&client, &state).await);
    report.record(
        "search by identifier: one match, and none for another",
        search(&client, &state).await,
    );
    report.record(
        "ImagingStudies sorted by started, in pages of two",
        search_pages(&client, &mut state).await,
    );
    report.record(
        "a transaction: creates by urn:uuid, an If-Match update and a read",
        transaction(&client, &mut state).await,
    );
    report.record(
        "delete: the Patient is gone (410) and no longer found",
        delete(&client, &state).await,
    );
    if with_token {
        let asked = logins.load(Ordering::SeqCst);
        report
            .record("the server asked once for the bearer token (401)", same("logins", &asked, &1));
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
