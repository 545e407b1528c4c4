//! The CapabilityStatement, generated from what this build implements.

use cdr_model::Instant;
use serde_json::{Value, json};

use crate::{Engine, SERVED_TYPES};

/// The type-level interactions every served type supports.
const TYPE_INTERACTIONS: [&str; 7] =
    ["read", "vread", "update", "delete", "history-instance", "history-type", "create"];

impl Engine {
    /// The server's CapabilityStatement; `base` is the FHIR base URL.
    #[must_use]
    pub fn capabilities(&self, base: &str) -> Value {
        let interactions: Vec<Value> =
            TYPE_INTERACTIONS.iter().map(|code| json!({ "code": code })).collect();
        let resources: Vec<Value> = SERVED_TYPES
            .iter()
            .map(|resource_type| {
                json!({
                    "type": resource_type,
                    "interaction": interactions,
                    "versioning": "versioned-update",
                    "readHistory": true,
                    "updateCreate": self.config.update_create,
                    "conditionalCreate": true,
                    "conditionalRead": "not-supported",
                    "conditionalUpdate": true,
                    "conditionalDelete": "single",
                })
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
            "format": ["json", "application/fhir+json", "application/json"],
            "rest": [{
                "mode": "server",
                "resource": resources,
                "interaction": [{ "code": "history-system" }],
            }],
        })
    }
}
