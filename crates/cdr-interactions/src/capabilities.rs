//! The CapabilityStatement, generated from what this build implements.

use cdr_model::Instant;
use serde_json::{Value, json};

use crate::{Engine, SERVED_TYPES};

/// The definition of the `$validate` operation every served type supports.
const VALIDATE_DEFINITION: &str = "http://hl7.org/fhir/OperationDefinition/Resource-validate";

/// The type-level interactions every served type supports.
const TYPE_INTERACTIONS: [&str; 7] =
    ["read", "vread", "update", "delete", "history-instance", "history-type", "create"];

impl Engine {
    /// The server's CapabilityStatement; `base` is the FHIR base URL.
    #[must_use]
    pub fn capabilities(&self, base: &str) -> Value {
        let interactions: Vec<Value> =
            TYPE_INTERACTIONS.iter().map(|code| json!({ "code": code })).collect();
        let validate_operation = json!({ "name": "validate", "definition": VALIDATE_DEFINITION });
        let resources: Vec<Value> = SERVED_TYPES
            .iter()
            .map(|resource_type| {
                let mut resource = json!({
                    "type": resource_type,
                    "profile": format!("http://hl7.org/fhir/StructureDefinition/{resource_type}"),
                });
                // Declared only when its definition is loaded, since only then is it enforced.
                if let Some(url) = self.profiles.loaded_for_type(resource_type) {
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
                    "operation": [validate_operation],
                });
                if let (Value::Object(resource), Value::Object(rest)) = (&mut resource, rest) {
                    resource.extend(rest);
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
            "format": ["json", "application/fhir+json", "application/json"],
            "rest": [{
                "mode": "server",
                "resource": resources,
                "interaction": [{ "code": "history-system" }],
                "operation": [validate_operation],
            }],
        })
    }
}
