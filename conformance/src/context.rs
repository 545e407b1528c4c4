//! What a test sees while it runs: the client (whose exchanges are recorded on the running test), the inputs,
//! the mode, the run id, what earlier tests found (the CapabilityStatement, the fixtures) and the profiles.

use std::collections::BTreeMap;

use cdr_validation::ProfileSet;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Call, Exchange, Http};
use crate::model::Stop;

/// Whether the kit may write to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Submit the kit's own fixtures (tagged with the run id) and test against them.
    Write,
    /// Only read: the data to search for comes from `--input`.
    ReadOnly,
}

/// A message a test logged, as in Inferno (the kits log `info`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Message {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

/// The run's state.
#[derive(Debug)]
pub(crate) struct Ctx {
    http: Http,
    pub(crate) mode: Mode,
    /// Unique per run: tags and identifiers of the fixtures carry it.
    pub(crate) run_id: String,
    pub(crate) inputs: BTreeMap<String, String>,
    pub(crate) profiles: ProfileSet,
    /// The CapabilityStatement, once read.
    pub(crate) capabilities: Option<Value>,
    /// Fixture key (`order`, `study`, …) → the stored resource, once submitted.
    pub(crate) fixtures: Option<BTreeMap<String, Value>>,
    /// Why the fixtures could not be made, once tried.
    pub(crate) fixtures_error: Option<String>,
    /// Values tests hand to later tests (the id of a resource one created).
    pub(crate) state: BTreeMap<String, String>,
    /// Resources read to re-check chained searches, by `Type/id`.
    pub(crate) reads: BTreeMap<String, Value>,
    /// What the resource groups' searches and reads returned, by type (each resource once, as first
    /// returned), for the must-support coverage tests.
    pub(crate) returned: BTreeMap<String, Vec<Value>>,
    /// The answer to the submission that made the fixtures.
    pub(crate) submission: Option<Exchange>,
    /// Resources the run created, as `Type/id`, for `--cleanup`.
    pub(crate) created: Vec<String>,
    /// The running test's requests and messages.
    pub(crate) exchanges: Vec<Exchange>,
    pub(crate) messages: Vec<Message>,
}

impl Ctx {
    pub(crate) fn new(
        http: Http,
        mode: Mode,
        run_id: String,
        inputs: BTreeMap<String, String>,
        profiles: ProfileSet,
    ) -> Ctx {
        Ctx {
            http,
            mode,
            run_id,
            inputs,
            profiles,
            capabilities: None,
            fixtures: None,
            fixtures_error: None,
            state: BTreeMap::new(),
            submission: None,
            reads: BTreeMap::new(),
            returned: BTreeMap::new(),
            created: Vec::new(),
            exchanges: Vec::new(),
            messages: Vec::new(),
        }
    }

    pub(crate) fn base(&self) -> &str {
        self.http.base()
    }

    /// Sends a call and records it on the running test; no answer is an error of the test.
    pub(crate) async fn send(&mut self, call: Call) -> Result<Exchange, Stop> {
        let (exchange, unreachable) = self.http.send(call).await;
        self.exchanges.push(exchange.clone());
        match unreachable {
            Some(reason) => Err(Stop::error(reason.0)),
            None => Ok(exchange),
        }
    }

    pub(crate) async fn get(&mut self, target: impl Into<String>) -> Result<Exchange, Stop> {
        self.send(Call::get(target)).await
    }

    pub(crate) fn info(&mut self, message: impl Into<String>) {
        self.messages.push(Message { kind: "info", message: message.into() });
    }

    /// An input, or a skip naming it.
    pub(crate) fn input(&self, name: &str) -> Result<String, Stop> {
        self.inputs
            .get(name)
            .cloned()
            .ok_or_else(|| Stop::skip(format!("needs the input {name} (--input {name}=…)")))
    }

    /// Keeps a returned resource for the must-support coverage of its type (once per `Type/id`).
    pub(crate) fn returned(&mut self, resource: &Value) {
        let resource_type = resource["resourceType"].as_str().unwrap_or_default().to_owned();
        let kept = self.returned.entry(resource_type).or_default();
        if !kept.iter().any(|seen| seen["id"] == resource["id"]) {
            kept.push(resource.clone());
        }
    }

    /// Takes the running test's record, leaving it empty for the next test.
    pub(crate) fn take_record(&mut self) -> (Vec<Exchange>, Vec<Message>) {
        (std::mem::take(&mut self.exchanges), std::mem::take(&mut self.messages))
    }
}
