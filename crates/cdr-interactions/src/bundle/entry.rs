//! A posted Bundle read into [`Entry`] values: each entry's method, target, resource and conditions, checked
//! for the shape R4 requires (http.html#transaction) before anything is looked up.

use cdr_model::{ETag, Instant, LogicalId, Resource, ResourceType, VersionId};
use serde_json::{Map, Value};

use super::{BundleKind, in_entry, resource_relative};
use crate::write::{check_update_id, invalid_at, parse_value};
use crate::{Engine, InteractionError};

/// The HTTP verb of an entry's `request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Method {
    // Declared in R4's processing order (http.html#trules): deletes, creates, updates, then reads.
    Delete,
    Post,
    Put,
    Patch,
    Get,
    Head,
}

/// What an entry's `request.url` addresses.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `T`, or `T?criteria` (criteria without the `?`; empty for none).
    Type(ResourceType, String),
    /// `T/id`.
    Instance(ResourceType, LogicalId),
    /// `T/id/_history/v`.
    Version(ResourceType, LogicalId, String),
    /// `?criteria` on the whole server (criteria without the `?`).
    System(String),
}

/// One entry of a transaction or batch.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Its position in the Bundle, counted from 0 as `Bundle.entry[n]` counts.
    pub(crate) index: usize,
    pub(crate) full_url: Option<String>,
    pub(crate) method: Method,
    pub(crate) target: Target,
    pub(crate) resource: Option<Resource>,
    pub(crate) if_none_exist: Option<String>,
    pub(crate) if_match: Option<VersionId>,
    pub(crate) if_none_match: Option<Vec<String>>,
    pub(crate) if_modified_since: Option<Instant>,
}

/// A posted Bundle: its kind and entries.
#[derive(Debug)]
pub(crate) struct PostedBundle {
    pub(crate) kind: BundleKind,
    /// Each entry, or why it is malformed (located at `Bundle.entry[n]`).
    pub(crate) entries: Vec<Result<Entry, InteractionError>>,
}

impl Engine {
    /// Reads a posted Bundle. `base` is this server's FHIR base URL: entry URLs may be given relative to it
    /// or as absolute URLs under it.
    pub(crate) fn parse_bundle(
        &self,
        body: &[u8],
        base: &str,
    ) -> Result<PostedBundle, InteractionError> {
        let bundle = parse_value(body)?;
        if bundle.resource_type().as_str() != "Bundle" {
            return Err(invalid_at(
                format!(
                    "the body is a {}, but [base] takes a transaction or batch Bundle",
                    bundle.resource_type()
                ),
                "resourceType",
            ));
        }
        let kind = match bundle.json().get("type").and_then(Value::as_str) {
            Some("transaction") => BundleKind::Transaction,
            Some("batch") => BundleKind::Batch,
            Some(other) => {
                return Err(invalid_at(
                    format!(
                        "a Bundle of type '{other}' cannot be processed: post a transaction or a batch (other Bundles are stored with POST [base]/Bundle)"
                    ),
                    "Bundle.type",
                ));
            }
            None => return Err(invalid_at("the Bundle has no type", "Bundle.type")),
        };
        let entries = match bundle.json().get("entry") {
            None => Vec::new(),
            Some(Value::Array(entries)) => entries.iter().collect(),
            Some(_) => return Err(invalid_at("Bundle.entry must be an array", "Bundle.entry")),
        };
        if entries.len() > self.limits.max_bundle_entries {
            return Err(InteractionError::ResourceTooCostly(format!(
                "the Bundle has {} entries; this server processes at most {} in one Bundle",
                entries.len(),
                self.limits.max_bundle_entries
            )));
        }
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                self.parse_entry(index, entry, base).map_err(|error| in_entry(index, error))
            })
            .collect();
        Ok(PostedBundle { kind, entries })
    }

    fn parse_entry(
        &self,
        index: usize,
        entry: &Value,
        base: &str,
    ) -> Result<Entry, InteractionError> {
        let Some(entry) = entry.as_object() else {
            return Err(entry_invalid("an entry must be a JSON object", ""));
        };
        let full_url = match entry.get("fullUrl") {
            None => None,
            Some(Value::String(url)) if !url.is_empty() => Some(url.clone()),
            Some(_) => return Err(entry_invalid("fullUrl must be a non-empty string", "fullUrl")),
        };
        let Some(request) = entry.get("request").and_then(Value::as_object) else {
            return Err(entry_invalid(
                "every entry of a transaction or batch needs a request",
                "request",
            ));
        };
        let method = match text(request, "method")? {
            Some("GET") => Method::Get,
            Some("HEAD") => Method::Head,
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("DELETE") => Method::Delete,
            Some("PATCH") => Method::Patch,
            Some(other) => {
                return Err(entry_invalid(
                    format!("'{other}' is not an HTTP verb of FHIR"),
                    "request.method",
                ));
            }
            None => return Err(entry_invalid("the request has no method", "request.method")),
        };
        let Some(url) = text(request, "url")? else {
            return Err(entry_invalid("the request has no url", "request.url"));
        };
        let target = self.parse_target(url, base)?;
        let resource = match entry.get("resource") {
            None => None,
            Some(resource) => Some(Resource::from_value(resource.clone()).map_err(|error| {
                entry_invalid(format!("the resource is not a FHIR resource: {error}"), "resource")
            })?),
        };
        let if_match = text(request, "ifMatch")?
            .map(|tag| {
                ETag::parse(tag).map(ETag::version).map_err(|_| {
                    entry_invalid(
                        format!("ifMatch '{tag}' is not a version tag such as W/\"3\""),
                        "request.ifMatch",
                    )
                })
            })
            .transpose()?;
        let if_modified_since = text(request, "ifModifiedSince")?
            .map(|since| {
                Instant::parse_fhir(since).map_err(|_| {
                    entry_invalid(
                        format!("ifModifiedSince '{since}' is not a FHIR instant"),
                        "request.ifModifiedSince",
                    )
                })
            })
            .transpose()?;
        let parsed = Entry {
            index,
            full_url,
            method,
            target,
            resource,
            if_none_exist: text(request, "ifNoneExist")?.map(str::to_owned),
            if_match,
            if_none_match: text(request, "ifNoneMatch")?
                .map(|tags| tags.split(',').map(|tag| tag.trim().to_owned()).collect()),
            if_modified_since,
        };
        parsed.check_shape()?;
        if let Target::Type(resource_type, _)
        | Target::Instance(resource_type, _)
        | Target::Version(resource_type, ..) = &parsed.target
            && !matches!(parsed.method, Method::Get | Method::Head)
        {
            self.refuse_audit_write(*resource_type)?;
        }
        Ok(parsed)
    }

    /// Reads `request.url`: relative to the base, or absolute under it.
    fn parse_target(&self, url: &str, base: &str) -> Result<Target, InteractionError> {
        let relative = match url.strip_prefix(base) {
            Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                rest.strip_prefix('/').unwrap_or(rest)
            }
            _ if url.split('?').next().is_some_and(|path| path.contains("://")) => {
                return Err(entry_invalid(
                    format!("request.url '{url}' is not under this server's base {base}"),
                    "request.url",
                ));
            }
            _ => url.strip_prefix('/').unwrap_or(url),
        };
        let (path, query) = match relative.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (relative, None),
        };
        let segments: Vec<&str> =
            if path.is_empty() { Vec::new() } else { path.split('/').collect() };
        if segments.iter().any(|segment| segment.starts_with('$')) {
            return Err(InteractionError::NotSupported(format!(
                "operations such as '{url}' are not supported in a transaction or batch"
            )));
        }
        let target = match (segments.as_slice(), query) {
            ([], Some(query)) => Target::System(query.to_owned()),
            ([type_name], query) => {
                Target::Type(self.served_type(type_name)?, query.unwrap_or_default().to_owned())
            }
            ([type_name, id], None) => {
                Target::Instance(self.served_type(type_name)?, crate::parse_id(id)?)
            }
            ([type_name, id, "_history", version], None) => Target::Version(
                self.served_type(type_name)?,
                crate::parse_id(id)?,
                (*version).to_owned(),
            ),
            _ => {
                return Err(entry_invalid(
                    format!("request.url '{url}' addresses nothing this server serves"),
                    "request.url",
                ));
            }
        };
        Ok(target)
    }
}

impl Entry {
    /// The resource type the entry writes or reads, if it names one.
    pub(crate) fn resource_type(&self) -> Option<ResourceType> {
        match &self.target {
            Target::Type(resource_type, _)
            | Target::Instance(resource_type, _)
            | Target::Version(resource_type, _, _) => Some(*resource_type),
            Target::System(_) => None,
        }
    }

    /// Checks that the method, URL and resource go together (R4 http.html#transaction).
    fn check_shape(&self) -> Result<(), InteractionError> {
        let needs_resource = matches!(self.method, Method::Post | Method::Put | Method::Patch);
        match (&self.resource, needs_resource) {
            (None, true) => {
                return Err(entry_invalid(
                    "a POST, PUT or PATCH entry needs a resource (for PATCH, the patch document)",
                    "resource",
                ));
            }
            (Some(_), false) => {
                return Err(entry_invalid(
                    "a GET, HEAD or DELETE entry carries no resource",
                    "resource",
                ));
            }
            _ => {}
        }
        if let (Some(resource), Some(resource_type)) = (&self.resource, self.resource_type())
            && resource.resource_type() != resource_type
            && self.method != Method::Patch
        {
            return Err(entry_invalid(
                format!(
                    "the resource is a {}, but request.url is for {resource_type}",
                    resource.resource_type()
                ),
                "resource.resourceType",
            ));
        }
        let shape_ok = match (self.method, &self.target) {
            (Method::Post, Target::Type(_, query)) => query.is_empty(),
            (Method::Put | Method::Patch | Method::Delete, Target::Type(_, query)) => {
                !query.is_empty()
            }
            (Method::Put | Method::Patch | Method::Delete, Target::Instance(..)) => true,
            (Method::Get | Method::Head, _) => true,
            _ => false,
        };
        if !shape_ok {
            let verb = format!("{:?}", self.method).to_uppercase();
            return Err(entry_invalid(
                format!(
                    "{verb} does not go with this request.url (R4: POST [type], PUT, PATCH and DELETE [type]/[id] or [type]?criteria, GET any)"
                ),
                "request.url",
            ));
        }
        if self.if_none_exist.is_some() && self.method != Method::Post {
            return Err(entry_invalid(
                "ifNoneExist belongs to POST (create) entries",
                "request.ifNoneExist",
            ));
        }
        if self.if_match.is_some() && !matches!(self.method, Method::Put | Method::Patch) {
            return Err(entry_invalid(
                "ifMatch belongs to PUT (update) and PATCH entries",
                "request.ifMatch",
            ));
        }
        if let (Method::Put, Target::Instance(resource_type, id), Some(resource)) =
            (self.method, &self.target, &self.resource)
        {
            check_update_id(resource, id)
                .map_err(|error| resource_relative(*resource_type, error))?;
        }
        Ok(())
    }
}

/// The text of a request field; an error when it is there but not a string.
fn text<'a>(
    request: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, InteractionError> {
    match request.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(entry_invalid(
            format!("request.{name} must be a string"),
            &format!("request.{name}"),
        )),
    }
}

/// An invalid-entry error located relative to the entry (`in_entry` adds `Bundle.entry[n]`).
fn entry_invalid(diagnostics: impl Into<String>, expression: &str) -> InteractionError {
    invalid_at(diagnostics, expression)
}
