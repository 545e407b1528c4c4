//! The Bundle envelope the server builds for history, search and transaction responses.

use serde_json::{Map, Value, json};

/// `Bundle.type` values the server produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleType {
    History,
    Searchset,
    TransactionResponse,
    BatchResponse,
}

impl BundleType {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            BundleType::History => "history",
            BundleType::Searchset => "searchset",
            BundleType::TransactionResponse => "transaction-response",
            BundleType::BatchResponse => "batch-response",
        }
    }
}

/// One `Bundle.link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLink {
    pub relation: &'static str,
    pub url: String,
}

/// One `Bundle.entry`; each part is already FHIR JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleEntry {
    pub full_url: Option<String>,
    pub resource: Option<Value>,
    pub search: Option<Value>,
    pub request: Option<Value>,
    pub response: Option<Value>,
}

/// A Bundle under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub bundle_type: BundleType,
    pub id: Option<String>,
    pub last_updated: Option<String>,
    pub total: Option<u64>,
    pub links: Vec<BundleLink>,
    pub entries: Vec<BundleEntry>,
}

impl Bundle {
    #[must_use]
    pub fn new(bundle_type: BundleType) -> Bundle {
        Bundle {
            bundle_type,
            id: None,
            last_updated: None,
            total: None,
            links: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The Bundle resource JSON, elements in the order of the R4 definition.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut bundle = Map::new();
        bundle.insert("resourceType".into(), Value::from("Bundle"));
        if let Some(id) = &self.id {
            bundle.insert("id".into(), Value::from(id.as_str()));
        }
        if let Some(last_updated) = &self.last_updated {
            bundle.insert("meta".into(), json!({ "lastUpdated": last_updated }));
        }
        bundle.insert("type".into(), Value::from(self.bundle_type.code()));
        if let Some(total) = self.total {
            bundle.insert("total".into(), Value::from(total));
        }
        if !self.links.is_empty() {
            let links =
                self.links.iter().map(|link| json!({"relation": link.relation, "url": link.url}));
            bundle.insert("link".into(), Value::Array(links.collect()));
        }
        if !self.entries.is_empty() {
            bundle.insert(
                "entry".into(),
                Value::Array(self.entries.iter().map(BundleEntry::to_json).collect()),
            );
        }
        Value::Object(bundle)
    }
}

impl BundleEntry {
    /// The `Bundle.entry` JSON, elements in the order of the R4 definition.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        let parts = [
            ("fullUrl", self.full_url.clone().map(Value::from)),
            ("resource", self.resource.clone()),
            ("search", self.search.clone()),
            ("request", self.request.clone()),
            ("response", self.response.clone()),
        ];
        for (name, part) in parts {
            if let Some(part) = part {
                object.insert(name.into(), part);
            }
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_history_bundle() {
        let mut bundle = Bundle::new(BundleType::History);
        bundle.total = Some(0);
        bundle.links.push(BundleLink { relation: "self", url: "http://x/fhir/_history".into() });
        assert_eq!(
            bundle.to_json().to_string(),
            r#"{"resourceType":"Bundle","type":"history","total":0,"link":[{"relation":"self","url":"http://x/fhir/_history"}]}"#
        );
    }
}
