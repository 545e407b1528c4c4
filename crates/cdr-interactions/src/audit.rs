//! The audit trail: one AuditEvent per interaction, shaped after IHE BALP (Basic Audit Log Patterns), stored
//! as an ordinary resource so that the one search engine serves `AuditEvent?patient=…&agent=…&date=…`.
//!
//! Durable, not best effort. A write's events go in the `StoreTx` of the write, just before it commits
//! ([`Engine::commit_audited`]; a transaction Bundle's, one per entry, in the Bundle's transaction), so a
//! rolled-back write leaves no event claiming success. Every other event (reads, searches, refusals, failed
//! writes, the Bundle request itself) goes through the [`AuditLog`]: a background writer (four on
//! PostgreSQL, taking requests in turn) gathers the pending events of concurrent requests, writes them in one
//! transaction with multi-row statements, and only then releases each waiting request, so no response
//! leaves before its event is committed and a failed audit write fails the request
//! ([`InteractionError::AuditUnavailable`]).
//!
//! The caller of an engine describes its request with an [`AuditRequest`] (who, from where, which
//! interaction) and hands it to [`Engine::audited`], which returns the engine that records it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_store::{AuditRow, Store, StoreTx};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::{Engine, InteractionError, VersionedResource};

/// The type every AuditEvent has, and that clients may neither write nor read without its own scope.
pub const AUDIT_EVENT: ResourceType = cdr_store::AUDIT_EVENT;

/// Most events the writer puts in one transaction.
const EVENTS_PER_COMMIT: usize = 500;

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const USER_AGENT_TYPES: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes";
/// BALP: a token's `jti` in `agent.policy` carries this prefix.
const JTI_PREFIX: &str = "urn:ietf:params:oauth:jti:";

/// What was done: the FHIR restful interaction (`subtype`, http://hl7.org/fhir/restful-interaction) or, for
/// a token request, a login (DICOM 110114 User Authentication / 110122 Login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSubtype {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Create,
    SearchType,
    SearchSystem,
    Transaction,
    Batch,
    Operation,
    Login,
}

impl AuditSubtype {
    /// The code of the subtype.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            AuditSubtype::Read => "read",
            AuditSubtype::Vread => "vread",
            AuditSubtype::Update => "update",
            AuditSubtype::Patch => "patch",
            AuditSubtype::Delete => "delete",
            AuditSubtype::HistoryInstance => "history-instance",
            AuditSubtype::HistoryType => "history-type",
            AuditSubtype::HistorySystem => "history-system",
            AuditSubtype::Create => "create",
            AuditSubtype::SearchType => "search-type",
            AuditSubtype::SearchSystem => "search-system",
            AuditSubtype::Transaction => "transaction",
            AuditSubtype::Batch => "batch",
            AuditSubtype::Operation => "operation",
            AuditSubtype::Login => "110122",
        }
    }

    /// `AuditEvent.action` (BALP): C create, R read and vread, U update and patch, D delete, E the rest
    /// (searches and history are queries, which BALP records as executions).
    #[must_use]
    pub fn action(self) -> &'static str {
        match self {
            AuditSubtype::Create => "C",
            AuditSubtype::Read | AuditSubtype::Vread => "R",
            AuditSubtype::Update | AuditSubtype::Patch => "U",
            AuditSubtype::Delete => "D",
            _ => "E",
        }
    }

    /// Whether this interaction writes (its success is recorded in the write's own transaction).
    #[must_use]
    pub fn writes(self) -> bool {
        matches!(
            self,
            AuditSubtype::Create
                | AuditSubtype::Update
                | AuditSubtype::Patch
                | AuditSubtype::Delete
        )
    }
}

/// Who made a request: the user (`fhirUser`), the client (issuer and `client_id`), the token (`jti`) and the
/// network peer; all `None` but the peer under `--auth none`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditAgents {
    /// The `fhirUser` of the token (a reference to a Practitioner, PractitionerRole, Patient, ...).
    pub user: Option<String>,
    /// The token's issuer and client id.
    pub client: Option<(String, String)>,
    /// The token's `jti`.
    pub token_id: Option<String>,
    /// The network address of the peer.
    pub address: Option<String>,
}

/// One request as the audit trail sees it, handed to [`Engine::audited`].
#[derive(Debug)]
pub struct AuditRequest {
    /// `source.observer`: the name of this server in the trail.
    pub observer: String,
    pub agents: AuditAgents,
    pub subtype: AuditSubtype,
    /// Set once an event of this request committed with its write.
    recorded: AtomicBool,
}

impl AuditRequest {
    #[must_use]
    pub fn new(observer: String, agents: AuditAgents, subtype: AuditSubtype) -> AuditRequest {
        AuditRequest { observer, agents, subtype, recorded: AtomicBool::new(false) }
    }

    /// The request as an asynchronous job keeps it (its observer and agents, as JSON), for the worker that
    /// runs the job ([`AuditRequest::from_stored`]).
    #[must_use]
    pub fn to_stored(&self) -> String {
        json!({ "observer": self.observer, "agents": self.agents }).to_string()
    }

    /// The request an asynchronous job was submitted with ([`AuditRequest::to_stored`]): its entries are
    /// recorded as parts of a batch (each with its own subtype).
    #[must_use]
    pub fn from_stored(stored: &str) -> Option<AuditRequest> {
        #[derive(serde::Deserialize)]
        struct Stored {
            observer: String,
            agents: AuditAgents,
        }
        let stored: Stored = serde_json::from_str(stored).ok()?;
        Some(AuditRequest::new(stored.observer, stored.agents, AuditSubtype::Batch))
    }

    /// Whether a write recorded this request's event in its own transaction, which committed.
    #[must_use]
    pub fn recorded_with_write(&self) -> bool {
        self.recorded.load(Ordering::Acquire)
    }
}

/// `AuditEvent.outcome`: 0 success, 4 minor failure (the client's: 4xx), 8 serious failure (the
/// server's: 5xx), with the description of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    Minor(String),
    Serious(String),
}

impl AuditOutcome {
    /// The `outcome` code and the `outcomeDesc` of a failure.
    fn coded(&self) -> (&'static str, Option<&str>) {
        match self {
            AuditOutcome::Success => ("0", None),
            AuditOutcome::Minor(text) => ("4", Some(text)),
            AuditOutcome::Serious(text) => ("8", Some(text)),
        }
    }
}

/// What an event is about: the resource touched (`Type/id`, with its version when known), the patient whose
/// record it is, and for a search or history the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntities {
    pub resource: Option<String>,
    pub patient: Option<String>,
    pub query: Option<String>,
}

impl AuditEntities {
    /// The entities of a written or read version: the resource with its version, and its patient.
    #[must_use]
    pub fn of_version(version: &VersionedResource) -> AuditEntities {
        let reference =
            format!("{}/{}/_history/{}", version.resource_type, version.id, version.version);
        let patient = version
            .body
            .as_deref()
            .and_then(|body| patient_of(version.resource_type, &version.id, body.as_bytes()));
        AuditEntities { resource: Some(reference), patient, query: None }
    }
}

/// The patient whose record a resource is: the Patient itself, else its `subject` or `patient` reference
/// when that names a Patient (as `Patient/id` whatever base it has).
#[must_use]
pub fn patient_of(resource_type: ResourceType, id: &LogicalId, body: &[u8]) -> Option<String> {
    if resource_type.as_str() == "Patient" {
        return Some(format!("Patient/{id}"));
    }
    #[derive(serde::Deserialize)]
    struct Reference {
        reference: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Subjects {
        subject: Option<Reference>,
        patient: Option<Reference>,
    }
    let subjects: Subjects = serde_json::from_slice(body).ok()?;
    [subjects.subject, subjects.patient]
        .into_iter()
        .flatten()
        .filter_map(|reference| reference.reference)
        .find_map(|reference| patient_reference(&reference))
}

/// `Patient/id` from a reference to a Patient (relative or absolute, versioned or not).
#[must_use]
pub fn patient_reference(reference: &str) -> Option<String> {
    let start = if reference.starts_with("Patient/") {
        0
    } else {
        reference.rfind("/Patient/").map(|at| at + 1)?
    };
    let id = reference[start + "Patient/".len()..].split('/').next()?;
    LogicalId::parse(id).ok().map(|id| format!("Patient/{id}"))
}

/// One AuditEvent to record, as [`audit_event`] describes it: serialized once, with its id, into the trail's
/// row ([`AuditEvent::into_row`]).
#[derive(Debug, Clone)]
pub struct AuditEvent {
    observer: String,
    agents: AuditAgents,
    subtype: AuditSubtype,
    outcome: AuditOutcome,
    entities: AuditEntities,
    recorded: Instant,
}

/// The AuditEvent of one interaction, recorded at `recorded`.
#[must_use]
pub fn audit_event(
    request: &AuditRequest,
    subtype: AuditSubtype,
    outcome: &AuditOutcome,
    entities: &AuditEntities,
    recorded: Instant,
) -> AuditEvent {
    AuditEvent {
        observer: request.observer.clone(),
        agents: request.agents.clone(),
        subtype,
        outcome: outcome.clone(),
        entities: entities.clone(),
        recorded,
    }
}

/// The JSON of an AuditEvent (BALP's shape), written by serde from borrowed parts: no `Value` tree is built.
mod shape {
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Event<'a> {
        pub(super) resource_type: &'static str,
        pub(super) id: &'a str,
        pub(super) meta: Meta<'a>,
        #[serde(rename = "type")]
        pub(super) event_type: Coding<'a>,
        pub(super) subtype: [Coding<'a>; 1],
        pub(super) action: &'a str,
        pub(super) recorded: &'a str,
        pub(super) outcome: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) outcome_desc: Option<&'a str>,
        pub(super) agent: Vec<Agent<'a>>,
        pub(super) source: Source<'a>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub(super) entity: Vec<Entity<'a>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Meta<'a> {
        pub(super) version_id: &'a str,
        pub(super) last_updated: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct Coding<'a> {
        pub(super) system: &'a str,
        pub(super) code: &'a str,
        pub(super) display: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct Concept<'a> {
        pub(super) coding: [Coding<'a>; 1],
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Agent<'a> {
        #[serde(rename = "type")]
        pub(super) agent_type: Concept<'a>,
        pub(super) who: Who<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) alt_id: Option<&'a str>,
        pub(super) requestor: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) policy: Option<[&'a str; 1]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) network: Option<Network<'a>>,
    }

    #[derive(Serialize, Default)]
    pub(super) struct Who<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) identifier: Option<Identifier<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) display: Option<&'a str>,
    }

    #[derive(Serialize)]
    pub(super) struct Identifier<'a> {
        pub(super) system: &'a str,
        pub(super) value: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct Network<'a> {
        pub(super) address: &'a str,
        #[serde(rename = "type")]
        pub(super) kind: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct Source<'a> {
        pub(super) observer: Display<'a>,
        #[serde(rename = "type")]
        pub(super) kind: [Coding<'a>; 1],
    }

    #[derive(Serialize)]
    pub(super) struct Display<'a> {
        pub(super) display: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct Entity<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) what: Option<Reference<'a>>,
        #[serde(rename = "type")]
        pub(super) entity_type: Coding<'a>,
        pub(super) role: Coding<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(super) query: Option<&'a str>,
    }

    #[derive(Serialize)]
    pub(super) struct Reference<'a> {
        pub(super) reference: &'a str,
    }
}

impl AuditSubtype {
    /// `AuditEvent.type` and the one `AuditEvent.subtype`: system, code and display.
    fn codings(self) -> ((&'static str, &'static str, &'static str), (&'static str, &'static str)) {
        match self {
            AuditSubtype::Login => ((DICOM, "110114", "User Authentication"), (DICOM, "110122")),
            other => (
                (AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
                (RESTFUL_INTERACTION, other.code()),
            ),
        }
    }
}

impl AuditEvent {
    /// The JSON of this event as the AuditEvent `id`, version 1 stamped at its `recorded`.
    fn to_json(&self, id: &str) -> String {
        let recorded = self.recorded.to_fhir();
        let ((type_system, type_code, type_display), (subtype_system, subtype_code)) =
            self.subtype.codings();
        let subtype_display =
            if self.subtype == AuditSubtype::Login { "Login" } else { subtype_code };
        let (outcome, outcome_desc) = self.outcome.coded();
        let query = self
            .entities
            .query
            .as_ref()
            .map(|query| base64::engine::general_purpose::STANDARD.encode(query));
        let coding = |system, code, display| shape::Coding { system, code, display };
        let mut entity = Vec::new();
        if let Some(patient) = &self.entities.patient {
            entity.push(shape::Entity {
                what: Some(shape::Reference { reference: patient }),
                entity_type: coding(ENTITY_TYPE, "1", "Person"),
                role: coding(OBJECT_ROLE, "1", "Patient"),
                query: None,
            });
        }
        if let Some(resource) = &self.entities.resource {
            entity.push(shape::Entity {
                what: Some(shape::Reference { reference: resource }),
                entity_type: coding(ENTITY_TYPE, "2", "System Object"),
                role: coding(OBJECT_ROLE, "4", "Domain Resource"),
                query: None,
            });
        }
        if let Some(query) = &query {
            entity.push(shape::Entity {
                what: None,
                entity_type: coding(ENTITY_TYPE, "2", "System Object"),
                role: coding(OBJECT_ROLE, "24", "Query"),
                query: Some(query),
            });
        }
        let policy = self.agents.token_id.as_ref().map(|jti| format!("{JTI_PREFIX}{jti}"));
        let event = shape::Event {
            resource_type: "AuditEvent",
            id,
            meta: shape::Meta { version_id: "1", last_updated: &recorded },
            event_type: coding(type_system, type_code, type_display),
            subtype: [coding(subtype_system, subtype_code, subtype_display)],
            action: self.subtype.action(),
            recorded: &recorded,
            outcome,
            outcome_desc,
            agent: self.agent_shapes(policy.as_deref()),
            source: shape::Source {
                observer: shape::Display { display: &self.observer },
                kind: [coding(SOURCE_TYPE, "4", "Application Server")],
            },
            entity,
        };
        serde_json::to_string(&event).unwrap_or_default()
    }

    /// BALP's agents: the user (requestor, with the token's `jti` as policy), the client application (source
    /// role, with the network address; the requestor when no user is named) and this server (destination
    /// role).
    fn agent_shapes<'a>(&'a self, policy: Option<&'a str>) -> Vec<shape::Agent<'a>> {
        let agents = &self.agents;
        let concept = |system, code, display| shape::Concept {
            coding: [shape::Coding { system, code, display }],
        };
        let mut list = Vec::with_capacity(3);
        if let Some(user) = &agents.user {
            list.push(shape::Agent {
                agent_type: concept(
                    USER_AGENT_TYPES,
                    "UserOauthAgent",
                    "User OAuth Agent participant",
                ),
                who: shape::Who { reference: Some(user), ..shape::Who::default() },
                alt_id: None,
                requestor: true,
                policy: policy.map(|policy| [policy]),
                network: None,
            });
        }
        let (who, alt_id) = match &agents.client {
            Some((issuer, client_id)) => (
                shape::Who {
                    identifier: Some(shape::Identifier { system: issuer, value: client_id }),
                    ..shape::Who::default()
                },
                Some(client_id.as_str()),
            ),
            None => (
                shape::Who { display: Some("unauthenticated client"), ..shape::Who::default() },
                None,
            ),
        };
        list.push(shape::Agent {
            agent_type: concept(DICOM, "110153", "Source Role ID"),
            who,
            alt_id,
            requestor: agents.user.is_none(),
            policy: policy.filter(|_| agents.user.is_none()).map(|policy| [policy]),
            network: agents.address.as_deref().map(|address| shape::Network { address, kind: "2" }),
        });
        list.push(shape::Agent {
            agent_type: concept(DICOM, "110152", "Destination Role ID"),
            who: shape::Who { display: Some(&self.observer), ..shape::Who::default() },
            alt_id: None,
            requestor: false,
            policy: None,
            network: None,
        });
        list
    }

    /// This event's row in the trail, under a new id: its JSON and the values its searches filter on, taken
    /// from the parts the JSON is written from.
    fn into_row(self) -> AuditRow {
        // Time-ordered (UUID version 7), so that the trail's id index grows at its end as its rows do.
        let text = uuid::Uuid::now_v7().to_string();
        let id =
            LogicalId::parse(&text).unwrap_or_else(|_| unreachable!("a UUID is a valid FHIR id"));
        let body = self.to_json(id.as_str());
        let ((type_system, type_code, _), (subtype_system, subtype_code)) = self.subtype.codings();
        let owned = |(system, code): (&str, &str)| Some((system.to_owned(), code.to_owned()));
        let AuditEvent { agents, outcome, entities, recorded, subtype, .. } = self;
        let outcome = outcome.coded().0;
        AuditRow {
            id,
            recorded,
            event_type: owned((type_system, type_code)),
            subtype: owned((subtype_system, subtype_code)),
            action: Some(subtype.action().to_owned()),
            outcome: Some(outcome.to_owned()),
            patient: entities
                .patient
                .map(|reference| reference.trim_start_matches("Patient/").to_owned()),
            agent: agents.user.as_deref().map(local_reference),
            entity: entities.resource.map(|reference| match reference.split_once("/_history/") {
                Some((resource, version)) => (resource.to_owned(), Some(version.to_owned())),
                None => (reference, None),
            }),
            policy: agents.token_id.map(|jti| format!("{JTI_PREFIX}{jti}")),
            address: agents.address,
            altid: agents.client.as_ref().map(|(_, client_id)| client_id.clone()),
            client_issuer: agents.client.map(|(issuer, _)| issuer),
            body,
        }
    }
}

/// The rows of new AuditEvents.
fn new_rows(events: Vec<AuditEvent>) -> Vec<AuditRow> {
    events.into_iter().map(AuditEvent::into_row).collect()
}

/// The row of an AuditEvent (`event`, whose JSON is `body`) recorded at `recorded`: the values its searches
/// filter on, read from the BALP shape [`audit_event`] gives it.
fn row_of(id: LogicalId, recorded: Instant, event: &Value, body: String) -> AuditRow {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let coding = |value: &Value| Some((text(&value["system"])?, text(&value["code"])?));
    let list = |name: &str| event[name].as_array().map(Vec::as_slice).unwrap_or_default();
    let role_of = |entity: &Value| entity["role"]["code"].as_str().map(str::to_owned);
    let what = |role: &str| {
        list("entity")
            .iter()
            .find(|entity| role_of(entity).as_deref() == Some(role))
            .and_then(|entity| entity["what"]["reference"].as_str())
    };
    let patient = what("1")
        .and_then(patient_reference)
        .map(|reference| reference.trim_start_matches("Patient/").to_owned());
    let entity = what("4").map(|reference| match reference.split_once("/_history/") {
        Some((resource, version)) => (resource.to_owned(), Some(version.to_owned())),
        None => (reference.to_owned(), None),
    });
    let agent = list("agent")
        .iter()
        .find(|agent| agent["requestor"].as_bool() == Some(true))
        .and_then(|agent| agent["who"]["reference"].as_str())
        .map(local_reference);
    let altid = list("agent").iter().find_map(|agent| text(&agent["altId"]));
    let client_issuer =
        list("agent").iter().find_map(|agent| text(&agent["who"]["identifier"]["system"]));
    let policy = list("agent").iter().find_map(|agent| text(&agent["policy"][0]));
    let address = list("agent").iter().find_map(|agent| text(&agent["network"]["address"]));
    AuditRow {
        id,
        recorded,
        event_type: coding(&event["type"]),
        subtype: list("subtype").first().and_then(coding),
        action: text(&event["action"]),
        outcome: text(&event["outcome"]),
        patient,
        agent,
        entity,
        altid,
        client_issuer,
        policy,
        address,
        body,
    }
}

/// `Type/id` of a reference that ends so (relative, or absolute with any base), else the reference as written.
fn local_reference(reference: &str) -> String {
    let mut parts = reference.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(type_name))
            if ResourceType::parse(type_name).is_ok() && LogicalId::parse(id).is_ok() =>
        {
            format!("{type_name}/{id}")
        }
        _ => reference.to_owned(),
    }
}

/// Events waiting for the writer (their rows made by the request's task, so that the writer only writes), and
/// where to say they are committed.
struct Pending {
    rows: Vec<AuditRow>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Writers of the group commit on PostgreSQL, whose rounds (mostly waiting: round trips and the commit's sync)
/// run side by side on their own connections; SQLite has one writer at a time anyway, so one there.
const POSTGRES_WRITERS: usize = 4;

/// The group commit of events recorded outside a write: started at its first use as background tasks per
/// engine (and its clones) sharing one queue, from which whichever writer is idle takes every event waiting,
/// so an event never waits behind a busy writer while another is free.
#[derive(Debug, Default)]
pub(crate) struct AuditLog {
    sender: OnceLock<mpsc::UnboundedSender<Pending>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Pending").field("events", &self.rows.len()).finish()
    }
}

impl AuditLog {
    fn sender(&self, store: &Store) -> &mpsc::UnboundedSender<Pending> {
        self.sender.get_or_init(|| {
            let writers = match store.backend() {
                cdr_store::Backend::Postgres => POSTGRES_WRITERS,
                cdr_store::Backend::Sqlite => 1,
            };
            let (sender, receiver) = mpsc::unbounded_channel();
            let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
            for _ in 0..writers {
                tokio::spawn(run_writer(store.clone(), Arc::clone(&receiver)));
            }
            sender
        })
    }
}

/// A writer: once idle, takes every event waiting (up to [`EVENTS_PER_COMMIT`]; the first it waits for),
/// writes them in one transaction and tells each request the result; events that arrive meanwhile go to
/// another idle writer, or wait for the next round.
async fn run_writer(
    store: Store,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
) {
    loop {
        let (batch, rows) = {
            let mut receiver = queue.lock().await;
            let Some(mut first) = receiver.recv().await else { return };
            let mut rows: Vec<AuditRow> = std::mem::take(&mut first.rows);
            let mut batch = vec![first];
            while rows.len() < EVENTS_PER_COMMIT
                && let Ok(mut next) = receiver.try_recv()
            {
                rows.append(&mut next.rows);
                batch.push(next);
            }
            (batch, rows)
        };
        let started = std::time::Instant::now();
        let result = store.append_audit(&rows).await.map_err(|error| error_text(&error));
        match &result {
            Err(error) => tracing::error!(%error, events = rows.len(), "audit events not written"),
            Ok(()) => tracing::debug!(
                events = rows.len(),
                micros = started.elapsed().as_micros(),
                "audit events committed"
            ),
        }
        for pending in batch {
            // A request that gave up waiting (its deadline passed) has no one to tell.
            let _ = pending.done.send(result.clone());
        }
    }
}

/// An error and its sources, for the log and the requests that waited.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Moves the AuditEvents that an earlier version of the server stored as ordinary resources into the
/// trail's own table (a no-op once none are left); returns how many moved. Their `meta.lastUpdated`
/// becomes their `recorded`, as the trail serves it.
///
/// # Errors
/// On database failure.
pub async fn adopt_audit_resources(store: &Store) -> Result<u64, cdr_store::StoreError> {
    store
        .adopt_audit_resources(|id, last_updated, body| {
            let Ok(mut event) = serde_json::from_str::<Value>(&body) else {
                return row_of(id, last_updated, &Value::Null, body);
            };
            let recorded = event["recorded"]
                .as_str()
                .and_then(|text| Instant::parse_fhir(text).ok())
                .unwrap_or(last_updated);
            if let Some(meta) = event.get_mut("meta").and_then(Value::as_object_mut) {
                meta.insert("lastUpdated".into(), Value::String(recorded.to_fhir()));
            }
            let body = event.to_string();
            row_of(id, recorded, &event, body)
        })
        .await
}

impl Engine {
    /// This engine recording the events of `request`: its writes record theirs in their own transaction
    /// ([`AuditRequest::recorded_with_write`] says when one did).
    #[must_use]
    pub fn audited(&self, request: Arc<AuditRequest>) -> Engine {
        let mut engine = self.clone();
        engine.audit = Some(request);
        engine
    }

    /// Records `events` durably through the group commit, returning once they are committed.
    ///
    /// # Errors
    /// [`InteractionError::AuditUnavailable`] when they could not be written.
    pub async fn record_audit(&self, events: Vec<AuditEvent>) -> Result<(), InteractionError> {
        let rows = new_rows(events);
        let (done, wait) = oneshot::channel();
        self.audit_log
            .sender(&self.store)
            .send(Pending { rows, done })
            .map_err(|_| InteractionError::AuditUnavailable("the audit writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(InteractionError::AuditUnavailable(error)),
            Err(_) => Err(InteractionError::AuditUnavailable("the audit writer stopped".into())),
        }
    }

    /// Records, through the group commit, the refusal of parts of the audited request (the entries of a
    /// batch its scopes refuse): one event each, with its subtype, entities and reason. A no-op on an engine
    /// that records no request.
    ///
    /// # Errors
    /// [`InteractionError::AuditUnavailable`] when they could not be written.
    pub async fn record_audit_refusals(
        &self,
        refusals: &[(AuditSubtype, AuditEntities, String)],
    ) -> Result<(), InteractionError> {
        let Some(request) = &self.audit else { return Ok(()) };
        if refusals.is_empty() {
            return Ok(());
        }
        let recorded = Instant::now();
        let events = refusals
            .iter()
            .map(|(subtype, entities, reason)| {
                let outcome = AuditOutcome::Minor(reason.clone());
                audit_event(request, *subtype, &outcome, entities, recorded)
            })
            .collect();
        self.record_audit(events).await
    }

    /// Commits `tx`, after writing in it the events of the audited request for `written` (each with its
    /// subtype, or the request's); marks the request recorded once the commit succeeded.
    pub(crate) async fn commit_audited(
        &self,
        mut tx: StoreTx,
        written: &[(Option<AuditSubtype>, AuditEntities)],
    ) -> Result<(), InteractionError> {
        let Some(request) = &self.audit else {
            return self.commit(tx).await;
        };
        self.write_audit_in(&mut tx, request, written).await?;
        self.commit(tx).await?;
        request.recorded.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes in `tx` the successful events of the audited request (if any) for `written`.
    pub(crate) async fn write_audit_in(
        &self,
        tx: &mut StoreTx,
        request: &AuditRequest,
        written: &[(Option<AuditSubtype>, AuditEntities)],
    ) -> Result<(), InteractionError> {
        let recorded = Instant::now();
        let mut events = Vec::with_capacity(written.len());
        for (subtype, entities) in written {
            let subtype = subtype.unwrap_or(request.subtype);
            let mut entities = entities.clone();
            if subtype == AuditSubtype::Delete && entities.patient.is_none() {
                entities.patient =
                    self.patient_before_deletion(entities.resource.as_deref()).await?;
            }
            events.push(audit_event(request, subtype, &AuditOutcome::Success, &entities, recorded));
        }
        tx.append_audit(&new_rows(events)).await?;
        Ok(())
    }

    /// The patient of the version a deletion (`Type/id/_history/n`, the deletion's own version) followed: a
    /// deletion has no body to name it. Earlier versions are committed and never change, so they are read
    /// outside the write's transaction.
    async fn patient_before_deletion(
        &self,
        deletion: Option<&str>,
    ) -> Result<Option<String>, InteractionError> {
        let parsed = deletion.and_then(|reference| {
            let mut parts = reference.split('/');
            let (type_name, id, _, version) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let version = version.parse::<i64>().ok()?.checked_sub(1)?;
            Some((
                ResourceType::parse(type_name).ok()?,
                LogicalId::parse(id).ok()?,
                VersionId::from_number(version).ok()?,
            ))
        });
        let Some((resource_type, id, previous)) = parsed else { return Ok(None) };
        let before = self.store.vread(resource_type, &id, previous).await?;
        Ok(before
            .and_then(|version| version.body)
            .and_then(|body| patient_of(resource_type, &id, body.as_bytes())))
    }

    /// Refuses a client's write of an AuditEvent: the trail is append-only, written by the server alone.
    pub(crate) fn refuse_audit_write(
        &self,
        resource_type: ResourceType,
    ) -> Result<(), InteractionError> {
        if resource_type == AUDIT_EVENT {
            return Err(InteractionError::NotAllowed(
                "AuditEvents are written by this server alone and never changed: create, update, patch and delete are not allowed".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_are_found_in_subject_or_patient_references() {
        let id = LogicalId::parse("r1").unwrap();
        let report = ResourceType::parse("DiagnosticReport").unwrap();
        let body = br#"{"resourceType":"DiagnosticReport","subject":{"reference":"http://x/fhir/Patient/p-1/_history/2"}}"#;
        assert_eq!(patient_of(report, &id, body).as_deref(), Some("Patient/p-1"));
        let body = br#"{"resourceType":"DiagnosticReport","subject":{"reference":"Group/g"}}"#;
        assert_eq!(patient_of(report, &id, body), None);
        let patient = ResourceType::parse("Patient").unwrap();
        assert_eq!(patient_of(patient, &id, b"{}").as_deref(), Some("Patient/r1"));
        assert_eq!(patient_reference("Patient/").as_deref(), None);
    }

    #[test]
    fn a_failed_search_records_its_query_and_outcome() {
        let agents = AuditAgents {
            user: Some("Practitioner/dr".into()),
            client: Some(("https://idp".into(), "viewer".into())),
            token_id: Some("t-1".into()),
            address: Some("10.0.0.1".into()),
        };
        let request = AuditRequest::new("cdr".into(), agents, AuditSubtype::SearchType);
        let entities = AuditEntities { query: Some("a=b".into()), ..AuditEntities::default() };
        let event = audit_event(
            &request,
            AuditSubtype::SearchType,
            &AuditOutcome::Minor("bad".into()),
            &entities,
            Instant::from_millis(0),
        );
        let row = event.into_row();
        assert_eq!(
            (row.outcome.as_deref(), row.policy.as_deref()),
            (Some("4"), Some("urn:ietf:params:oauth:jti:t-1"))
        );
        assert_eq!(row.agent.as_deref(), Some("Practitioner/dr"));
        let event: Value = serde_json::from_str(&row.body).unwrap();
        assert_eq!(event["id"], row.id.as_str());
        assert_eq!(event["meta"]["lastUpdated"], "1970-01-01T00:00:00.000Z");
        assert_eq!(event["outcome"], "4");
        assert_eq!(event["outcomeDesc"], "bad");
        assert_eq!(event["action"], "E");
        assert_eq!(event["entity"][0]["query"], "YT1i");
        assert_eq!(event["agent"][0]["policy"][0], "urn:ietf:params:oauth:jti:t-1");
        assert_eq!(event["agent"][1]["network"]["address"], "10.0.0.1");
        assert_eq!(event["agent"][1]["requestor"], false);
    }
}
