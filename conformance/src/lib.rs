//! The conformance kits of imaging-cdr and their runner: black-box tests of a FHIR R4 server over HTTP,
//! modelled on Inferno (suites of groups of tests; results pass, omit, skip, fail, error, rolled up by
//! priority), with JSON, HTML and JUnit reports. The `onmi` kit checks the Ontario MI interactions. The
//! binary (`imaging-cdr conformance`) hands in the arguments and the conformance resources it loaded.

mod cli;
mod client;
mod context;
mod kit;
mod matcher;
mod model;
mod report;
mod run;

pub use cli::{ListArgs, RunArgs, list, run};
pub use context::Mode;
pub use model::Verdict;
