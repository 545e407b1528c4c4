//! `cdr-bench`: a synthetic Ontario imaging data set, a bulk loader, and a load-test harness for
//! imaging-cdr, speaking only the standard FHIR REST API (plus a `direct` mode that times the same reads and
//! searches straight on the store, as the floor the server's overhead is measured against).
//!
//! - [`generate`]: the deterministic data set ([`GenerateConfig`] → ndjson files, one per resource type).
//! - [`load`]: conditional creates (`If-None-Exist` on the first identifier) in dependency order, with
//!   references rewritten to the server's ids and report amendments applied as updates (`If-Match`).
//! - [`run`]: the viewer queries with concurrent keep-alive clients, reported per query as throughput,
//!   latency percentiles and errors ([`stats`]).
//! - [`direct`]: the same reads and searches through `cdr_store::Store` (`read`, `search`, `include`).
//! - [`submission`]: transaction Bundles built from the data set (conditional `PUT`s by business
//!   identifier, `urn:uuid:` references), posted by [`ingest`] and written straight on the store, without
//!   the server's work, by [`ingest_direct`].
//! - [`notify`]: Subscription delivery under load, to a receiver of its own: notifications per second and
//!   the latency from a report's commit to its notification's receipt.

pub mod catalog;
pub mod dataset;
pub mod direct;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod ingest_direct;
pub mod load;
pub mod notify;
pub mod rng;
pub mod run;
pub mod stats;
pub mod submission;
mod workers;

use std::path::PathBuf;

pub use crate::generate::{DataFile, GenerateConfig, ResourceSink, generate};
pub use crate::workers::Budget;

/// A failure that stops a command. Failed requests are not errors of this kind: they are counted.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: not JSON")]
    Json {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The data set or the id map is not what this command needs.
    #[error("{0}")]
    Data(String),
    /// A URL or request that could not even be built.
    #[error("bad request: {0}")]
    Request(String),
    #[error("store error")]
    Store(#[from] cdr_store::StoreError),
    /// The server's conformance resources (for their SearchParameters) do not load.
    #[error("cannot load the conformance resources")]
    Conformance(#[from] cdr_server::profiles::ConformanceError),
}
