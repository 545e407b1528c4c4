//! The library half of imaging-cdr (the binary is `main.rs`): loading the conformance resources from disk
//! and building the search parameter registry from them ([`profiles`]). The server, the end-to-end tests
//! and the benchmark all load `profiles/` through it, so they see the same resources.
//!
//! Architecture Invariant: the only code that reads profiles from disk.

pub mod profiles;
