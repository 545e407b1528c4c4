//! `Resource`: a FHIR resource held as its own JSON, losslessly.
//!
//! The workspace builds `serde_json` with `arbitrary_precision` (numbers keep their text, so `1.50` stays
//! `1.50`) and `preserve_order` (elements keep the order the client sent), so parsing and serialising a
//! resource changes nothing but what the server deliberately sets.

use serde_json::{Map, Value};

use crate::id::{IdError, LogicalId};
use crate::resource_type::ResourceType;

/// Why a body is not a FHIR resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The body is empty.
    #[error("the body is empty")]
    Empty,
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
    /// The body is not well-formed JSON (or nests too deeply).
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// The JSON is not an object.
    #[error("a resource must be a JSON object")]
    NotAnObject,
    /// `resourceType` is absent or not a string.
    #[error("the resource has no resourceType")]
    MissingResourceType,
    /// `resourceType` names no FHIR R4 resource.
    #[error(transparent)]
    UnknownType(IdError),
    /// `id` is present but not a valid id string.
    #[error("invalid resource id: {0}")]
    InvalidId(String),
}

/// A parsed resource: a JSON object whose `resourceType` is a known R4 type.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    resource_type: ResourceType,
    /// Always an object whose `resourceType` equals `resource_type`.
    json: Map<String, Value>,
}

impl Resource {
    /// Parses a request or database body.
    ///
    /// # Errors
    /// When the bytes are not a JSON object with a known `resourceType` and, if present, a valid `id`.
    pub fn from_slice(bytes: &[u8]) -> Result<Resource, ResourceError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ResourceError::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ResourceError::InvalidUtf8)?;
        let value: Value = serde_json::from_str(text)
            .map_err(|error| ResourceError::Malformed(error.to_string()))?;
        Resource::from_value(value)
    }

    /// # Errors
    /// When the value is not a JSON object with a known `resourceType` and, if present, a valid `id`.
    pub fn from_value(value: Value) -> Result<Resource, ResourceError> {
        let Value::Object(json) = value else {
            return Err(ResourceError::NotAnObject);
        };
        let Some(Value::String(type_name)) = json.get("resourceType") else {
            return Err(ResourceError::MissingResourceType);
        };
        let resource_type = ResourceType::parse(type_name).map_err(ResourceError::UnknownType)?;
        match json.get("id") {
            None => {}
            Some(Value::String(id)) => {
                LogicalId::parse(id)
                    .map_err(|error| ResourceError::InvalidId(error.to_string()))?;
            }
            Some(other) => {
                return Err(ResourceError::InvalidId(format!("id must be a string, not {other}")));
            }
        }
        Ok(Resource { resource_type, json })
    }

    #[must_use]
    pub fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    /// The `id` element, if any (valid by construction).
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.json.get("id").and_then(Value::as_str)
    }

    #[must_use]
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    #[must_use]
    pub fn into_json(self) -> Map<String, Value> {
        self.json
    }

    /// Sets the server-owned `id`, placing it right after `resourceType` when it was absent.
    pub fn set_id(&mut self, id: &LogicalId) {
        if let Some(slot) = self.json.get_mut("id") {
            *slot = Value::String(id.as_str().to_owned());
            return;
        }
        let old = std::mem::take(&mut self.json);
        let mut json = Map::with_capacity(old.len() + 1);
        for (key, value) in old {
            let is_type = key == "resourceType";
            json.insert(key, value);
            if is_type {
                json.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
            }
        }
        self.json = json;
    }

    /// Sets the server-owned `meta.versionId` and `meta.lastUpdated`, keeping every other meta element.
    pub fn set_meta(&mut self, version_id: &str, last_updated: &str) {
        let meta = self.json.entry("meta").or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = meta {
            meta.insert("versionId".to_owned(), Value::String(version_id.to_owned()));
            meta.insert("lastUpdated".to_owned(), Value::String(last_updated.to_owned()));
        }
    }

    /// Whether `self` and `other` hold the same content but for what the server sets on each version
    /// (`meta.versionId`, `meta.lastUpdated`): an update with such a body changes nothing. Elements compare
    /// as JSON values (object member order does not matter; decimals compare as written).
    #[must_use]
    pub fn same_content(&self, other: &Resource) -> bool {
        fn without_version(meta: Option<&Value>) -> Option<Map<String, Value>> {
            let mut meta = match meta {
                None => Map::new(),
                Some(Value::Object(meta)) => meta.clone(),
                Some(_) => return None,
            };
            meta.remove("versionId");
            meta.remove("lastUpdated");
            Some(meta)
        }
        let (left, right) = (&self.json, &other.json);
        let keys_match = |from: &Map<String, Value>, to: &Map<String, Value>| {
            from.iter().all(|(key, value)| key == "meta" || to.get(key) == Some(value))
        };
        keys_match(left, right)
            && keys_match(right, left)
            && match (without_version(left.get("meta")), without_version(right.get("meta"))) {
                (Some(left), Some(right)) => left == right,
                _ => left.get("meta") == right.get("meta"),
            }
    }

    /// The JSON text, exactly as stored and served.
    #[must_use]
    pub fn to_json_string(&self) -> String {
        Value::Object(self.json.clone()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_order_survive() {
        let text = r#"{"resourceType":"Observation","status":"final","valueQuantity":{"value":72.50,"unit":"kg"},"_status":{"extension":[{"url":"u","valueDecimal":1.0}]}}"#;
        let resource = Resource::from_slice(text.as_bytes()).unwrap();
        assert_eq!(resource.to_json_string(), text);
    }

    #[test]
    fn set_id_goes_after_resource_type() {
        let mut resource =
            Resource::from_slice(br#"{"resourceType":"Patient","active":true}"#).unwrap();
        resource.set_id(&LogicalId::parse("p1").unwrap());
        resource.set_meta("2", "2026-01-01T00:00:00Z");
        assert_eq!(
            resource.to_json_string(),
            r#"{"resourceType":"Patient","id":"p1","active":true,"meta":{"versionId":"2","lastUpdated":"2026-01-01T00:00:00Z"}}"#
        );
    }

    #[test]
    fn rejects_bad_bodies() {
        type Expect = fn(&ResourceError) -> bool;
        let cases: [(&[u8], Expect); 7] = [
            (b"", |e| matches!(e, ResourceError::Empty)),
            (b"\xff\xfe", |e| matches!(e, ResourceError::InvalidUtf8)),
            (b"{\"resourceType\":", |e| matches!(e, ResourceError::Malformed(_))),
            (b"[1]", |e| matches!(e, ResourceError::NotAnObject)),
            (b"{\"id\":\"x\"}", |e| matches!(e, ResourceError::MissingResourceType)),
            (b"{\"resourceType\":\"Nope\"}", |e| matches!(e, ResourceError::UnknownType(_))),
            (b"{\"resourceType\":\"Patient\",\"id\":\"a b\"}", |e| {
                matches!(e, ResourceError::InvalidId(_))
            }),
        ];
        for (body, expected) in cases {
            let error = Resource::from_slice(body).unwrap_err();
            assert!(expected(&error), "{error:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(Resource::from_slice(body.as_bytes()), Err(ResourceError::Malformed(_))));
    }

    #[test]
    fn same_content_ignores_only_the_version_stamp() {
        let parse = |text: &str| Resource::from_slice(text.as_bytes()).unwrap();
        let stored = parse(
            r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-01-01T00:00:00Z"},"active":true,"name":[{"family":"Roe"}]}"#,
        );
        assert!(
            parse(
                r#"{"resourceType":"Patient","name":[{"family":"Roe"}],"id":"p1","active":true}"#
            )
            .same_content(&stored)
        );
        assert!(stored.same_content(&parse(r#"{"resourceType":"Patient","id":"p1","meta":{},"active":true,"name":[{"family":"Roe"}]}"#)));
        assert!(
            !parse(
                r#"{"resourceType":"Patient","id":"p1","active":false,"name":[{"family":"Roe"}]}"#
            )
            .same_content(&stored)
        );
        assert!(
            !parse(r#"{"resourceType":"Patient","id":"p1","active":true}"#).same_content(&stored)
        );
        assert!(
            !parse(
                r#"{"resourceType":"Patient","id":"p2","active":true,"name":[{"family":"Roe"}]}"#
            )
            .same_content(&stored)
        );
        assert!(!parse(r#"{"resourceType":"Patient","id":"p1","meta":{"tag":[{"code":"x"}]},"active":true,"name":[{"family":"Roe"}]}"#).same_content(&stored));
        assert!(!parse(r#"{"resourceType":"Observation","id":"p1","status":"final","valueQuantity":{"value":1.50}}"#)
            .same_content(&parse(r#"{"resourceType":"Observation","id":"p1","status":"final","valueQuantity":{"value":1.5}}"#)));
    }
}
