//! End-to-end tests: the whole application, driven through HTTP requests, on both storage backends.
//! Every test in `backend_tests!` runs once on SQLite and once on PostgreSQL (`TEST_DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`, else a throwaway cluster: `cdr_test_postgres::admin_url`), each
//! on a fresh database or schema.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

mod helpers;

mod async_submission;
mod audit;
mod audit_search;
mod auth;
mod bounds;
mod budget;
mod compartment;
mod concurrency;
mod conditional;
mod content_type;
mod errors;
mod feed;
mod history;
mod http;
mod links;
mod micdr;
mod openapi;
mod patch;
mod rest;
mod routing;
mod search;
mod search_near;
mod search_results;
mod search_terminology;
mod subscriptions;
mod transaction;
mod validation;
mod viewer;
mod xml;
