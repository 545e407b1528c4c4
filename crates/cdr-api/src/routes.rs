//! The one list of the routes the application serves: [`app`](crate::app) mounts its routers from
//! [`ROUTES`], and `/openapi.json` (`openapi.rs`) describes the same list, so neither can name a route the
//! other lacks.

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::{
    AppState, auth, bundle, docs, health, history, jobs, metadata, metrics, openapi, resource,
    viewer,
};
use crate::{patch as patching, search, subscriptions, validate};

/// An HTTP method a route answers (`GET` routes answer `HEAD` too, as axum does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// Where a route is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mount {
    /// Below the FHIR base `/fhir`, behind its layers (metrics, bounds, negotiation, authorization).
    Fhir,
    /// `/metrics`, served when `ApiConfig::metrics` is on.
    Metrics,
    /// `/auth/…`, answering only under `--auth smart`.
    Auth,
    /// The other routes outside `/fhir`: health, the OpenAPI document and its page, the viewer and its assets.
    Root,
}

/// What a route does: its handler, and what the OpenAPI document says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Read,
    Vread,
    Update,
    ConditionalUpdate,
    Patch,
    ConditionalPatch,
    Delete,
    ConditionalDelete,
    Create,
    SearchType,
    SearchTypePost,
    SearchSystem,
    SearchSystemPost,
    Bundle,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Capabilities,
    ValidateSystem,
    ValidateType,
    ValidateInstance,
    AsyncStatus,
    AsyncCancel,
    SubscriptionStatus,
    SubscriptionEvents,
    SubscriptionDeliveries,
    SubscriptionResend,
    SmartConfiguration,
    Livez,
    Readyz,
    Metrics,
    Token,
    Jwks,
    OpenApi,
    Docs,
    Viewer,
    ViewerScript,
    ViewerStyle,
}

/// One route: its method, its path below its mount (`{type}` is any served type), and what it does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub(crate) verb: Verb,
    pub(crate) mount: Mount,
    pub(crate) path: &'static str,
    pub(crate) endpoint: Endpoint,
}

const fn route(verb: Verb, mount: Mount, path: &'static str, endpoint: Endpoint) -> Route {
    Route { verb, mount, path, endpoint }
}

use Endpoint as E;
use Mount::{Auth, Fhir, Root};
use Verb::{Delete, Get, Patch, Post, Put};

/// Every route, in the order the OpenAPI document lists them.
pub(crate) const ROUTES: [Route; 39] = [
    route(Get, Fhir, "/metadata", E::Capabilities),
    route(Get, Fhir, "/", E::SearchSystem),
    route(Post, Fhir, "/", E::Bundle),
    route(Post, Fhir, "/Bundle", E::Bundle),
    route(Post, Fhir, "/_search", E::SearchSystemPost),
    route(Get, Fhir, "/_history", E::HistorySystem),
    route(Post, Fhir, "/$validate", E::ValidateSystem),
    route(Get, Fhir, "/_async/{id}", E::AsyncStatus),
    route(Delete, Fhir, "/_async/{id}", E::AsyncCancel),
    route(Get, Fhir, "/.well-known/smart-configuration", E::SmartConfiguration),
    route(Get, Fhir, "/{type}", E::SearchType),
    route(Post, Fhir, "/{type}", E::Create),
    route(Put, Fhir, "/{type}", E::ConditionalUpdate),
    route(Patch, Fhir, "/{type}", E::ConditionalPatch),
    route(Delete, Fhir, "/{type}", E::ConditionalDelete),
    route(Post, Fhir, "/{type}/_search", E::SearchTypePost),
    route(Get, Fhir, "/{type}/_history", E::HistoryType),
    route(Post, Fhir, "/{type}/$validate", E::ValidateType),
    route(Get, Fhir, "/{type}/{id}", E::Read),
    route(Put, Fhir, "/{type}/{id}", E::Update),
    route(Patch, Fhir, "/{type}/{id}", E::Patch),
    route(Delete, Fhir, "/{type}/{id}", E::Delete),
    route(Get, Fhir, "/{type}/{id}/_history", E::HistoryInstance),
    route(Get, Fhir, "/{type}/{id}/_history/{version}", E::Vread),
    route(Post, Fhir, "/{type}/{id}/$validate", E::ValidateInstance),
    route(Get, Fhir, "/{type}/{id}/$status", E::SubscriptionStatus),
    route(Get, Fhir, "/{type}/{id}/$events", E::SubscriptionEvents),
    route(Get, Fhir, "/{type}/{id}/$deliveries", E::SubscriptionDeliveries),
    route(Post, Fhir, "/{type}/{id}/$resend", E::SubscriptionResend),
    route(Get, Root, "/livez", E::Livez),
    route(Get, Root, "/readyz", E::Readyz),
    route(Get, Mount::Metrics, "/metrics", E::Metrics),
    route(Post, Auth, "/auth/token", E::Token),
    route(Get, Auth, "/auth/jwks", E::Jwks),
    route(Get, Root, "/openapi.json", E::OpenApi),
    route(Get, Root, "/docs", E::Docs),
    route(Get, Root, "/", E::Viewer),
    route(Get, Root, "/viewer.js", E::ViewerScript),
    route(Get, Root, "/viewer.css", E::ViewerStyle),
];

/// The router of the routes mounted at `mount`, handlers from [`handler`].
pub(crate) fn router(mount: Mount) -> Router<AppState> {
    ROUTES
        .iter()
        .filter(|route| route.mount == mount)
        .fold(Router::new(), |router, route| router.route(route.path, handler(route.endpoint)))
}

/// The handler of an endpoint, under its one method.
fn handler(endpoint: Endpoint) -> MethodRouter<AppState> {
    match endpoint {
        E::Read => get(resource::read),
        E::Vread => get(resource::vread),
        E::Update => put(resource::update),
        E::ConditionalUpdate => put(resource::conditional_update),
        E::Patch => patch(patching::patch_resource),
        E::ConditionalPatch => patch(patching::conditional_patch_resource),
        E::Delete => delete(resource::delete),
        E::ConditionalDelete => delete(resource::conditional_delete),
        E::Create => post(resource::create),
        E::SearchType => get(search::type_search),
        E::SearchTypePost => post(search::type_search_post),
        E::SearchSystem => get(search::system_search),
        E::SearchSystemPost => post(search::system_search_post),
        E::Bundle => post(bundle::bundle),
        E::HistoryInstance => get(history::instance_history),
        E::HistoryType => get(history::type_history),
        E::HistorySystem => get(history::system_history),
        E::Capabilities => get(metadata::metadata),
        E::ValidateSystem => post(validate::validate_any),
        E::ValidateType => post(validate::validate_type),
        E::ValidateInstance => post(validate::validate_instance),
        E::SubscriptionStatus => get(subscriptions::status),
        E::SubscriptionEvents => get(subscriptions::events),
        E::SubscriptionDeliveries => get(subscriptions::deliveries),
        E::SubscriptionResend => post(subscriptions::resend),
        E::AsyncStatus => get(jobs::status),
        E::AsyncCancel => delete(jobs::cancel),
        E::SmartConfiguration => get(auth::smart_configuration),
        E::Livez => get(health::livez),
        E::Readyz => get(health::readyz),
        E::Metrics => get(metrics::metrics),
        E::Token => post(auth::token),
        E::Jwks => get(auth::jwks),
        E::OpenApi => get(openapi::document),
        E::Docs => get(docs::page),
        E::Viewer => get(viewer::page),
        E::ViewerScript => get(viewer::script),
        E::ViewerStyle => get(viewer::style),
    }
}
