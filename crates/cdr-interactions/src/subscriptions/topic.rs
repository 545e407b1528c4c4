//! The subscription topics this server defines (Subscriptions Backport IG). R4 has no SubscriptionTopic
//! resource: each topic is described for people in `profiles/SubscriptionTopic-*.json` (in R5's shape),
//! which the tests hold this table to, and named in the CapabilityStatement.

use cdr_model::ResourceType;

/// The canonical of the imaging report topic.
pub const IMAGING_REPORT_TOPIC: &str = "urn:imaging-cdr:subscription-topic:imaging-report";

/// A topic: which changes of which type it reports, and what a subscriber may narrow it by.
#[derive(Debug)]
pub struct Topic {
    pub canonical: &'static str,
    pub resource_type: ResourceType,
    /// The search a version must match to be an event (its query string).
    pub trigger: &'static str,
    /// The search parameters a subscriber's filter criteria may use (with their chains and modifiers).
    pub filters: &'static [&'static str],
}

/// Every topic of this server.
pub const TOPICS: [Topic; 1] = [Topic {
    canonical: IMAGING_REPORT_TOPIC,
    resource_type: ResourceType::known("DiagnosticReport"),
    trigger: "status=final,amended,corrected,appended,entered-in-error",
    filters: &["recipient", "patient", "status"],
}];

impl Topic {
    /// The topic with this canonical (a version suffix `|x` is ignored).
    #[must_use]
    pub fn by_canonical(canonical: &str) -> Option<&'static Topic> {
        let canonical = canonical.split('|').next().unwrap_or_default();
        TOPICS.iter().find(|topic| topic.canonical == canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::TOPICS;

    /// Each topic says what its description in `profiles/` says.
    #[test]
    fn topics_match_their_descriptions() {
        for topic in &TOPICS {
            let name = topic.canonical.rsplit(':').next().unwrap_or_default();
            let path = format!(
                "{}/../../profiles/SubscriptionTopic-{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["url"], topic.canonical);
            let trigger = &json["resourceTrigger"][0];
            assert_eq!(
                trigger["queryCriteria"]["current"],
                format!("{}?{}", topic.resource_type, topic.trigger)
            );
            let filters: Vec<&str> = json["canFilterBy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|filter| filter["filterParameter"].as_str().unwrap())
                .collect();
            assert_eq!(filters, topic.filters);
        }
    }
}
