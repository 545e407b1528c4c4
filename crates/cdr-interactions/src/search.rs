//! search at type and system level: parse with `cdr-search`, run through the store's query compiler, and
//! assemble a searchset Bundle with keyset paging links, `_include`/`_revinclude`, `_total`, `_summary` and
//! `_elements`. Under patient confinement the query carries the compartment, which the store applies to every
//! match, to what chains and `_has` walk over, to the total and to what `_include` and `_revinclude` add.

use cdr_model::{
    Bundle, BundleEntry, BundleLink, BundleType, Instant, Issue, IssueType, LogicalId,
    OperationOutcome, ResourceType,
};
use cdr_search::{
    ContainedMode, Criterion, Include, SearchError, SearchQuery, SearchValue, SummaryMode,
    TokenSystem, TokenValue, TotalMode, parse_query_with_limits,
};
use cdr_store::{FoundResource, PageDirection, SearchRequest};
use serde_json::{Value, json};

use crate::audit::AUDIT_EVENT;
use crate::shape::{Cursor, decode_cursor, encode_cursor, shape_resource};
use crate::terminology::expand_terminology;
use crate::{Engine, InteractionError, SERVED_TYPES};

/// How to treat parameters the server does not know (`Prefer: handling=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    /// Unknown parameters are an error (400).
    Strict,
    /// Unknown parameters, and `_include`s of another type than the searched one without `:iterate`, are
    /// ignored and left out of the `self` link.
    #[default]
    Lenient,
}

/// The paging token parameter in `next`/`prev` links.
const CURSOR_PARAMETER: &str = "_cursor";

/// Most rounds of `:iterate`.
const MAX_ITERATIONS: usize = 4;

impl Engine {
    /// A searchset Bundle for `[base]/type_name?params` (or `[base]?params` when `type_name` is `None`).
    ///
    /// # Errors
    /// Unknown type; invalid values, or unknown parameters under [`Handling::Strict`]; criteria the store
    /// cannot serve; storage failures.
    pub async fn search(
        &self,
        base: &str,
        type_name: Option<&str>,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Value, InteractionError> {
        let resource_type = type_name.map(|name| self.served_type(name)).transpose()?;
        let mut cursor = None;
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(params.len());
        for (name, value) in params {
            match name.as_str() {
                CURSOR_PARAMETER => cursor = Some(value.as_str()),
                "_format" | "_pretty" => {}
                _ => pairs.push((name.clone(), value.clone())),
            }
        }
        if pairs.iter().any(|(name, value)| name.contains('\0') || value.contains('\0')) {
            return Err(InteractionError::invalid(
                "search parameters must not contain NUL characters",
            ));
        }
        let parsed =
            parse_query_with_limits(resource_type, &pairs, &self.registry, &self.query_limits);
        let ignored = check_errors(&parsed.errors, handling)?;
        let used: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(name, value)| !ignored.iter().any(|ignored| ignored.covers(name, value)))
            .collect();
        let mut query = parsed.query;
        query.compartment.clone_from(&self.confinement);
        expand_terminology(&mut query, self.profiles.set())?;
        check_supported(&query)?;
        if self.config.require_patient_identifier
            && let Some(resource_type) = resource_type
        {
            check_patient_identifier(resource_type, &query)?;
        }
        let types: Vec<ResourceType> = match resource_type {
            Some(resource_type) => vec![resource_type],
            // A system search without _type leaves the audit trail out: AuditEvents are asked for by name.
            None if query.types.is_empty() => {
                SERVED_TYPES.into_iter().filter(|served| *served != AUDIT_EVENT).collect()
            }
            None => query.types.clone(),
        };
        for name in &types {
            self.served_type(name.as_str())?;
        }
        let compartment = self.confinement.as_ref();
        let page = cursor.map(|cursor| decode_cursor(cursor, compartment)).transpose()?;
        let count_only = query.summary == Some(SummaryMode::Count) || query.count == Some(0);
        let now_micros = Instant::now().millis() * 1_000;
        let count = self.page_size(query.count);
        // A poll in `_lastUpdated` order or range reads the resources stamped before the feed horizon of its
        // first page, as history does: every page of the walk then comes from one fixed set, and a change an
        // older transaction commits late is stamped after the horizon, so the next poll finds it.
        let horizon = match (page.as_ref(), polls_last_updated(&query)) {
            (_, false) => None,
            (Some(cursor), true) => cursor.horizon,
            (None, true) => Some(self.store.feed_horizon().await?),
        };

        let mut bundle = Bundle::new(BundleType::Searchset);
        bundle.id = Some(uuid::Uuid::new_v4().to_string());
        bundle.last_updated = Some(horizon.unwrap_or_else(Instant::now).to_fhir());
        let wants_total =
            count_only || matches!(query.total, Some(TotalMode::Accurate | TotalMode::Estimate));
        if wants_total {
            let total = self.store.count(&query, &types, now_micros).await?;
            bundle.total = Some(u64::try_from(total).unwrap_or(0));
        }
        let path = match resource_type {
            Some(resource_type) => format!("{base}/{resource_type}"),
            None => base.to_owned(),
        };
        let link = |cursor: Option<String>| page_url(&path, &used, cursor.as_deref());
        bundle.links.push(BundleLink { relation: "self", url: link(cursor.map(str::to_owned)) });
        if count_only {
            return Ok(bundle.to_json());
        }
        let request = SearchRequest {
            query: &query,
            types: &types,
            count,
            page: page.as_ref().map(|cursor| (cursor.direction, &cursor.key)),
            now_micros,
            horizon,
        };
        let result = self.store.search(&request).await?;
        bundle.links.push(BundleLink { relation: "first", url: link(None) });
        let direction = page.as_ref().map(|cursor| cursor.direction);
        let (first, last) = (result.resources.first(), result.resources.last());
        let has_next = match direction {
            Some(PageDirection::Before) => true,
            _ => result.more,
        };
        let has_previous = match direction {
            None => false,
            Some(PageDirection::After) => true,
            Some(PageDirection::Before) => result.more,
        };
        if let (true, Some(last)) = (has_next, last) {
            let next = encode_cursor(
                &Cursor { direction: PageDirection::After, key: last.key.clone(), horizon },
                compartment,
            );
            bundle.links.push(BundleLink { relation: "next", url: link(Some(next)) });
        }
        if let (true, Some(first)) = (has_previous, first) {
            let previous = encode_cursor(
                &Cursor { direction: PageDirection::Before, key: first.key.clone(), horizon },
                compartment,
            );
            bundle.links.push(BundleLink { relation: "previous", url: link(Some(previous)) });
        }
        for resource in &result.resources {
            bundle.entries.push(entry(base, resource, "match", &query)?);
        }
        for resource in self.included(&query, &result.resources).await? {
            bundle.entries.push(entry(base, &resource, "include", &query)?);
        }
        Ok(bundle.to_json())
    }

    /// The resources `_include` and `_revinclude` add to a page of matches, without repeats.
    async fn included(
        &self,
        query: &SearchQuery,
        matches: &[FoundResource],
    ) -> Result<Vec<FoundResource>, InteractionError> {
        let mut seen: Vec<(ResourceType, LogicalId)> =
            matches.iter().map(|resource| (resource.res_type, resource.res_id.clone())).collect();
        let mut included: Vec<FoundResource> = Vec::new();
        let mut sources = seen.clone();
        let directives: Vec<(&Include, bool)> = query
            .includes
            .iter()
            .map(|include| (include, false))
            .chain(query.revincludes.iter().map(|include| (include, true)))
            .collect();
        for round in 0..MAX_ITERATIONS {
            let mut added = Vec::new();
            for (include, reverse) in &directives {
                if round > 0 && !include.iterate {
                    continue;
                }
                let remaining = i64::from(self.config.limits.max_included)
                    - i64::try_from(included.len()).unwrap_or(0);
                if remaining <= 0 || sources.is_empty() {
                    break;
                }
                for resource in self
                    .store
                    .include(&sources, include, *reverse, remaining, self.confinement.as_ref())
                    .await?
                {
                    let address = (resource.res_type, resource.res_id.clone());
                    if !seen.contains(&address) {
                        seen.push(address.clone());
                        added.push(address);
                        included.push(resource);
                    }
                }
            }
            if added.is_empty() || !directives.iter().any(|(include, _)| include.iterate) {
                break;
            }
            sources = added;
        }
        Ok(included)
    }
}

/// Refuses what the store does not search: contained resources, and AuditEvents as revincluded resources
/// (the audit trail is searched on its own).
fn check_supported(query: &SearchQuery) -> Result<(), InteractionError> {
    if matches!(query.contained, Some(ContainedMode::True | ContainedMode::Both))
        || query.contained_type.is_some()
    {
        return Err(InteractionError::NotSupported(
            "searching contained resources (_contained, _containedType) is not supported"
                .to_owned(),
        ));
    }
    if query.revincludes.iter().any(|include| include.source_type == Some(AUDIT_EVENT)) {
        return Err(InteractionError::NotSupported(
            "AuditEvents cannot be revincluded: search AuditEvent by patient, agent or entity"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Whether a search reads like a poll for changes: a `_lastUpdated` criterion of the searched resources, or
/// a sort on `_lastUpdated`.
fn polls_last_updated(query: &SearchQuery) -> bool {
    query.sort.iter().any(|key| key.param.code == "_lastUpdated")
        || query.clauses.iter().any(|clause| {
            matches!(&clause.criterion, Criterion::Param(filter) if filter.param.code == "_lastUpdated")
        })
}

/// A parameter lenient handling ignores: every value of an unknown name, or one inapplicable `name=value`.
#[derive(Debug, Clone, Copy)]
struct Ignored<'a> {
    name: &'a str,
    value: Option<&'a str>,
}

impl Ignored<'_> {
    fn covers(&self, name: &str, value: &str) -> bool {
        self.name == name && self.value.is_none_or(|ignored| ignored == value)
    }
}

/// Turns parser errors into a 400 (a query over its cost budget is `too-costly`), except unknown parameters and
/// inapplicable `_include`s under lenient handling, which are returned so the `self` link can leave them out.
fn check_errors(
    errors: &[SearchError],
    handling: Handling,
) -> Result<Vec<Ignored<'_>>, InteractionError> {
    let lenient = handling == Handling::Lenient;
    let mut ignored = Vec::new();
    let mut issues = Vec::new();
    for error in errors {
        match error {
            SearchError::Unknown { name } if lenient => {
                ignored.push(Ignored { name, value: None });
            }
            SearchError::Inapplicable { name, value, .. } if lenient => {
                ignored.push(Ignored { name, value: Some(value) });
            }
            SearchError::Unknown { .. } => {
                issues.push(Issue::error(IssueType::NotSupported, error.to_string()));
            }
            SearchError::Invalid { .. } | SearchError::Inapplicable { .. } => {
                issues.push(Issue::error(IssueType::Invalid, error.to_string()));
            }
            SearchError::LimitExceeded { .. } => {
                issues.push(Issue::error(IssueType::TooCostly, error.to_string()));
            }
        }
    }
    if issues.is_empty() {
        return Ok(ignored);
    }
    Err(InteractionError::Invalid(OperationOutcome::new(issues)))
}

/// The types whose searches the Ontario MI guide scopes to one patient.
const PATIENT_SCOPED_TYPES: [&str; 4] =
    ["DiagnosticReport", "DocumentReference", "ImagingStudy", "ServiceRequest"];

/// The Ontario MI rule: a search on a patient-scoped type names the patient by `patient.identifier` with both
/// system and value.
fn check_patient_identifier(
    resource_type: ResourceType,
    query: &SearchQuery,
) -> Result<(), InteractionError> {
    if !PATIENT_SCOPED_TYPES.contains(&resource_type.as_str()) {
        return Ok(());
    }
    let names_patient = query.clauses.iter().any(|clause| {
        let Criterion::Chain { inner, .. } = &clause.criterion else { return false };
        let Criterion::Param(filter) = inner.as_ref() else { return false };
        let scoped = matches!(
            clause.canonical_name.as_str(),
            "patient.identifier" | "patient:Patient.identifier" | "subject:Patient.identifier"
        );
        scoped
            && filter.modifier.is_none()
            && filter.values.iter().all(|value| {
                matches!(
                    value,
                    SearchValue::Token(TokenValue { system: TokenSystem::Is(_), code: Some(_) })
                )
            })
    });
    if names_patient {
        return Ok(());
    }
    Err(InteractionError::Invalid(OperationOutcome::single(Issue::error(
        IssueType::Required,
        format!(
            "searches on {resource_type} must include patient.identifier=system|value (Ontario MI)"
        ),
    ))))
}

/// `path?used-parameters[&_cursor=…]`, form-encoded.
fn page_url(path: &str, used: &[(String, String)], cursor: Option<&str>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in used {
        serializer.append_pair(name, value);
    }
    if let Some(cursor) = cursor {
        serializer.append_pair(CURSOR_PARAMETER, cursor);
    }
    let query = serializer.finish();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

fn entry(
    base: &str,
    resource: &FoundResource,
    mode: &str,
    query: &SearchQuery,
) -> Result<BundleEntry, InteractionError> {
    let body: Value = serde_json::from_str(&resource.body).map_err(|error| {
        InteractionError::Internal(cdr_store::StoreError::Corrupt(error.to_string()))
    })?;
    let body = match mode {
        "match" => shape_resource(body, query),
        _ => body,
    };
    Ok(BundleEntry {
        full_url: Some(format!("{base}/{}/{}", resource.res_type, resource.res_id)),
        resource: Some(body),
        search: Some(json!({ "mode": mode })),
        request: None,
        response: None,
    })
}
