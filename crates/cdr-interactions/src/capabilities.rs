//! The CapabilityStatement, generated from what this build implements.

use cdr_model::{Instant, ResourceType};
use cdr_search::SearchParamType;
use serde_json::{Value, json};

use crate::audit::AUDIT_EVENT;
use crate::subscriptions::TOPICS;
use crate::{Engine, SERVED_TYPES};

/// The definition of the `$validate` operation every served type supports.
const VALIDATE_DEFINITION: &str = "http://hl7.org/fhir/OperationDefinition/Resource-validate";

/// The type-level interactions every served type supports.
const TYPE_INTERACTIONS: [&str; 9] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

impl Engine {
    /// The server's CapabilityStatement; `base` is the FHIR base URL.
    #[must_use]
    pub fn capabilities(&self, base: &str) -> Value {
        let interactions: Vec<Value> =
            TYPE_INTERACTIONS.iter().map(|code| json!({ "code": code })).collect();
        // R4's CapabilityStatement has no level per operation: Resource-validate declares all three, and the
        // documentation says which this server answers.
        let validate_operation = json!({
            "name": "validate",
            "definition": VALIDATE_DEFINITION,
            "documentation": "POST [base]/[type]/$validate and POST [base]/[type]/[id]/$validate (instance level): the resource as the body, or a Parameters with resource, mode and profile; mode and profile may also be URL parameters. mode create, update (the resource's id is the URL's and the resource must exist unless update as create is on) or delete (instance level; no resource needed), and profile. The answer is 200 with an OperationOutcome whenever the validation ran.",
        });
        let system_validate = json!({
            "name": "validate",
            "definition": VALIDATE_DEFINITION,
            "documentation": "POST [base]/$validate: the resource's own type; modes as at type level.",
        });
        let resources: Vec<Value> = SERVED_TYPES
            .into_iter()
            .map(|resource_type| {
                let (search_params, includes, revincludes) =
                    self.search_capabilities(resource_type);
                let mut resource = json!({
                    "type": resource_type.as_str(),
                    "profile": format!("http://hl7.org/fhir/StructureDefinition/{resource_type}"),
                });
                // Declared only when its definition is loaded, since only then is it enforced.
                if let Some(url) = self.profiles.loaded_for_type(resource_type.as_str()) {
                    resource["supportedProfile"] = json!([url]);
                }
                let rest = json!({
                    "interaction": interactions,
                    "versioning": "versioned-update",
                    "readHistory": true,
                    "updateCreate": self.config.update_create,
                    "conditionalCreate": true,
                    "conditionalRead": "not-supported",
                    "conditionalUpdate": true,
                    "conditionalDelete": "single",
                    "searchInclude": includes,
                    "searchRevInclude": revincludes,
                    "searchParam": search_params,
                    "operation": [validate_operation],
                });
                if let (Value::Object(resource), Value::Object(rest)) = (&mut resource, rest) {
                    resource.extend(rest);
                }
                if resource_type.as_str() == "Subscription" {
                    subscription_capabilities(&mut resource);
                }
                if resource_type == AUDIT_EVENT {
                    append_only(&mut resource);
                }
                resource
            })
            .collect();
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": Instant::now().to_fhir(),
            "publisher": "imaging-cdr",
            "kind": "instance",
            "software": { "name": "imaging-cdr", "version": env!("CARGO_PKG_VERSION") },
            "implementation": { "description": "imaging-cdr FHIR R4 imaging repository", "url": base },
            "fhirVersion": "4.0.1",
            "format": ["json", "application/fhir+json", "application/json", "xml", "application/fhir+xml", "application/xml"],
            "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
            "rest": [{
                "mode": "server",
                "resource": resources,
                "interaction": [
                    { "code": "transaction", "documentation": "POST [base] (or [base]/Bundle) with a transaction Bundle: every entry or none, in R4 order; references between entries and conditional references are resolved. With Prefer: respond-async the Bundle is queued durably and answered 202 with Content-Location of a status URL ([base]/_async/{id}): GET answers 202 with X-Progress until it has run, then the response the synchronous request would have had; DELETE cancels it or deletes its record." },
                    { "code": "batch", "documentation": "POST [base] (or [base]/Bundle) with a batch Bundle: each entry on its own. Prefer: respond-async is supported as for transactions; each entry is run exactly once." },
                    { "code": "history-system" },
                    { "code": "search-system" }
                ],
                "operation": [system_validate],
            }],
        })
    }
}

/// What the Subscription entry adds: the topics (Subscriptions Backport's
/// `capabilitystatement-subscriptiontopic-canonical`) and the operations.
fn subscription_capabilities(resource: &mut Value) {
    let backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
    resource["extension"] = TOPICS
        .iter()
        .map(|topic| {
            json!({
                "url": format!("{backport}capabilitystatement-subscriptiontopic-canonical"),
                "valueCanonical": topic.canonical,
            })
        })
        .collect();
    resource["documentation"] = json!(
        "R4 classic subscriptions (criteria a search of a served type; channel rest-hook to an http endpoint; payload none or application/fhir+json, which PUTs the resource to [endpoint]/[type]/[id]) and topic-based subscriptions of the R4 Subscriptions Backport IG (criteria the topic canonical, filters in backport-filter-criteria, payload content empty, id-only or full-resource, heartbeats). A requested Subscription is stored active. Events are recorded with the change that causes them and delivered in order, at least once, with retries up to the server's horizon, after which the Subscription's status becomes error."
    );
    let operations = resource["operation"].as_array_mut();
    if let Some(operations) = operations {
        operations.extend([
            json!({"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status", "documentation": "GET [base]/Subscription/[id]/$status"}),
            json!({"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events", "documentation": "GET [base]/Subscription/[id]/$events?eventsSinceNumber=&eventsUntilNumber=&content="}),
            json!({"name": "deliveries", "definition": "urn:imaging-cdr:operation:subscription-deliveries", "documentation": "GET [base]/Subscription/[id]/$deliveries: the delivery state and the latest attempts (time, events, HTTP status, error)"}),
            json!({"name": "resend", "definition": "urn:imaging-cdr:operation:subscription-resend", "documentation": "POST [base]/Subscription/[id]/$resend?eventsSinceNumber=n: deliver the events from n on again, in order"}),
        ]);
    }
}

impl Engine {
    /// The `searchParam`, `searchInclude` and `searchRevInclude` of one served type.
    fn search_capabilities(
        &self,
        resource_type: ResourceType,
    ) -> (Vec<Value>, Vec<String>, Vec<String>) {
        let mut params = self.registry.params_for(resource_type);
        params.sort_by(|left, right| left.code.cmp(&right.code));
        let search_params = params
            .iter()
            .filter(|def| def.is_searchable())
            .map(|def| {
                json!({
                    "name": def.code,
                    "definition": def.url,
                    "type": def.param_type.as_str(),
                })
            })
            .collect();
        let mut includes = vec!["*".to_owned()];
        includes.extend(
            params
                .iter()
                .filter(|def| def.param_type == SearchParamType::Reference)
                .map(|def| format!("{resource_type}:{}", def.code)),
        );
        let mut revincludes = vec!["*".to_owned()];
        // The audit trail's events are searched on their own, never revincluded.
        for source in SERVED_TYPES.into_iter().filter(|source| *source != AUDIT_EVENT) {
            let mut source_params = self.registry.params_for(source);
            source_params.sort_by(|left, right| left.code.cmp(&right.code));
            revincludes.extend(
                source_params
                    .iter()
                    .filter(|def| {
                        def.param_type == SearchParamType::Reference
                            && (def.targets.is_empty() || def.targets.contains(&resource_type))
                    })
                    .map(|def| format!("{source}:{}", def.code)),
            );
        }
        (search_params, includes, revincludes)
    }
}

/// The AuditEvent entry: written by the server alone (one event per interaction), never changed, so read,
/// search and history only.
fn append_only(resource: &mut Value) {
    let Value::Object(resource) = resource else { return };
    resource.insert(
        "interaction".into(),
        json!([
            { "code": "read" },
            { "code": "vread" },
            { "code": "history-instance" },
            { "code": "history-type" },
            { "code": "search-type" }
        ]),
    );
    // The trail's table serves these parameters (`cdr_store`'s audit module), no includes.
    const SEARCHED: [&str; 13] = [
        "_id",
        "_lastUpdated",
        "date",
        "type",
        "subtype",
        "action",
        "outcome",
        "altid",
        "address",
        "policy",
        "patient",
        "agent",
        "entity",
    ];
    if let Some(Value::Array(params)) = resource.get_mut("searchParam") {
        params.retain(|param| param["name"].as_str().is_some_and(|name| SEARCHED.contains(&name)));
    }
    // No includes from the trail, and none of it into other searches (FHIR has no empty arrays).
    resource.remove("searchInclude");
    resource.remove("searchRevInclude");
    for key in ["updateCreate", "conditionalCreate", "conditionalUpdate"] {
        resource.insert(key.into(), Value::Bool(false));
    }
    resource.insert("conditionalDelete".into(), json!("not-supported"));
    resource.insert(
        "documentation".into(),
        json!("The audit trail (IHE BALP): one AuditEvent per interaction, written by this server; create, update, patch and delete answer 405. Reading them needs a scope naming AuditEvent (system/AuditEvent.rs); they are left out of system history and of searches without _type, and are searched on their own (by _id, _lastUpdated, date, type, subtype, action, outcome, altid, address, policy, patient, agent and entity, with chains on patient, agent and entity; sorted by date) with no includes."),
    );
}
