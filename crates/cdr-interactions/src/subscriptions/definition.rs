//! What a Subscription resource asks for: R4 classic (`criteria` is a search, channel `rest-hook`) or
//! topic-based after the Subscriptions Backport IG (`criteria` is the canonical of a topic this server
//! defines, narrowed by `backport-filter-criteria`), read from the resource and checked before it is written.

use cdr_model::{Issue, IssueType, OperationOutcome, Resource, ResourceType};
use serde_json::{Map, Value};

use super::topic::{IMAGING_REPORT_TOPIC, Topic};
use crate::InteractionError;

/// The Subscriptions Backport IG's extension and profile URLs.
pub(crate) const BACKPORT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

/// How a subscription is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// R4 `Subscription.criteria` is a search.
    Criteria,
    /// `criteria` names a topic (Subscriptions Backport).
    Topic,
}

impl SubscriptionKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubscriptionKind::Criteria => "criteria",
            SubscriptionKind::Topic => "topic",
        }
    }
}

/// What a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Nothing: classic `payload` absent, topic `empty`.
    Empty,
    /// The focus resources' addresses (topic `id-only`).
    IdOnly,
    /// The resources themselves (classic `application/fhir+json`, topic `full-resource`).
    Full,
}

/// Where and how notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// An absolute `http` URL.
    pub endpoint: String,
    /// `channel.header`, each split at its first colon.
    pub headers: Vec<(String, String)>,
    pub payload: Payload,
    /// Topic subscriptions: seconds between heartbeats when nothing else is sent.
    pub heartbeat_seconds: Option<u64>,
    /// Topic subscriptions: seconds to wait for the receiver (`backport-timeout`).
    pub timeout_seconds: Option<u64>,
    /// Topic subscriptions: most events in one notification (`backport-max-count`); 1 for classic ones.
    pub max_count: u32,
}

/// A Subscription as the server acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub kind: SubscriptionKind,
    /// The topic's canonical, for a topic subscription.
    pub topic: Option<&'static str>,
    /// The type whose changes it is told of.
    pub res_type: ResourceType,
    /// The search a change must match (a query string without the type): the classic criteria, or the
    /// topic's trigger followed by the subscriber's filters.
    pub criteria: String,
    /// `Subscription.status` as stored.
    pub status: String,
    pub channel: Channel,
}

/// Reads a Subscription's definition; `served` says whether a type is one this server stores.
///
/// # Errors
/// [`InteractionError::Unprocessable`] naming the element that asks for what the server cannot do.
pub(crate) fn read_definition(
    json: &Map<String, Value>,
    served: impl Fn(&str) -> Option<ResourceType>,
) -> Result<Definition, InteractionError> {
    let status = json.get("status").and_then(Value::as_str).unwrap_or_default().to_owned();
    let criteria = json.get("criteria").and_then(Value::as_str).unwrap_or_default();
    let channel = json.get("channel").and_then(Value::as_object);
    let (kind, topic, res_type, criteria) = if let Some(topic) = Topic::by_canonical(criteria) {
        let filters = filter_criteria(json, topic)?;
        let mut query = topic.trigger.to_owned();
        for filter in filters {
            query.push('&');
            query.push_str(&filter);
        }
        (SubscriptionKind::Topic, Some(topic.canonical), topic.resource_type, query)
    } else {
        let Some((type_name, query)) = criteria.split_once('?') else {
            return Err(refused(
                format!(
                    "criteria must be a search such as 'DiagnosticReport?status=final', or the topic \
                     '{IMAGING_REPORT_TOPIC}'"
                ),
                "Subscription.criteria",
            ));
        };
        if type_name == "AuditEvent" {
            return Err(refused(
                "AuditEvents are read with a scope of their own: no Subscription may be told of them",
                "Subscription.criteria",
            ));
        }
        let Some(res_type) = served(type_name) else {
            return Err(refused(
                format!("criteria search '{type_name}', a type this server does not serve"),
                "Subscription.criteria",
            ));
        };
        (SubscriptionKind::Criteria, None, res_type, query.to_owned())
    };
    let channel = read_channel(channel, kind)?;
    Ok(Definition { kind, topic, res_type, criteria, status, channel })
}

/// The subscriber's filters of a topic subscription, each a query string of the topic's type using only the
/// parameters the topic can filter by.
fn filter_criteria(
    json: &Map<String, Value>,
    topic: &Topic,
) -> Result<Vec<String>, InteractionError> {
    let url = format!("{BACKPORT}backport-filter-criteria");
    let mut filters = Vec::new();
    for (index, value) in extensions(json.get("_criteria"), &url).enumerate() {
        let location = format!("Subscription.criteria.extension[{index}]");
        let Some(text) = value.get("valueString").and_then(Value::as_str) else {
            return Err(refused("a filter criteria extension needs a valueString", &location));
        };
        let query = match text.split_once('?') {
            Some((type_name, query)) if type_name == topic.resource_type.as_str() => query,
            Some((type_name, _)) => {
                return Err(refused(
                    format!("the topic filters {}, not {type_name}", topic.resource_type),
                    &location,
                ));
            }
            None => text,
        };
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            let base = name.split(['.', ':']).next().unwrap_or_default();
            if !topic.filters.contains(&base) {
                return Err(refused(
                    format!(
                        "the topic cannot filter by '{name}'; it filters by {}",
                        topic.filters.join(", ")
                    ),
                    &location,
                ));
            }
        }
        filters.push(query.to_owned());
    }
    Ok(filters)
}

fn read_channel(
    channel: Option<&Map<String, Value>>,
    kind: SubscriptionKind,
) -> Result<Channel, InteractionError> {
    let Some(channel) = channel else {
        return Err(refused("a Subscription needs a channel", "Subscription.channel"));
    };
    let channel_type = channel.get("type").and_then(Value::as_str).unwrap_or_default();
    if channel_type != "rest-hook" {
        return Err(InteractionError::Unprocessable(OperationOutcome::single(
            Issue::error(
                IssueType::NotSupported,
                format!("channel type '{channel_type}' is not supported; this server delivers by rest-hook"),
            )
            .at("Subscription.channel.type"),
        )));
    }
    let endpoint = channel.get("endpoint").and_then(Value::as_str).unwrap_or_default();
    if !endpoint.starts_with("http://") || endpoint.len() <= "http://".len() {
        return Err(refused(
            "a rest-hook endpoint must be an absolute http:// URL",
            "Subscription.channel.endpoint",
        ));
    }
    if endpoint.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        return Err(refused(
            "the rest-hook endpoint is not a valid URL",
            "Subscription.channel.endpoint",
        ));
    }
    let mut headers = Vec::new();
    for (index, header) in
        channel.get("header").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let location = format!("Subscription.channel.header[{index}]");
        let Some((name, value)) = header.as_str().and_then(|header| header.split_once(':')) else {
            return Err(refused("a channel header must read 'Name: value'", &location));
        };
        let name = name.trim();
        if name.is_empty()
            || !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte))
        {
            return Err(refused(format!("'{name}' is not an HTTP header name"), &location));
        }
        if value.bytes().any(|byte| byte < 0x20 && byte != b'\t') {
            return Err(refused(
                "a channel header value must not hold control characters",
                &location,
            ));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mime = channel.get("payload").and_then(Value::as_str);
    let payload = match kind {
        SubscriptionKind::Criteria => match mime {
            None => Payload::Empty,
            Some("application/fhir+json" | "application/json") => Payload::Full,
            Some(other) => return Err(unsupported_payload(other)),
        },
        SubscriptionKind::Topic => {
            if let Some(other) =
                mime.filter(|mime| !["application/fhir+json", "application/json"].contains(mime))
            {
                return Err(unsupported_payload(other));
            }
            let url = format!("{BACKPORT}backport-payload-content");
            let content = extensions(channel.get("_payload"), &url)
                .find_map(|extension| extension.get("valueCode").and_then(Value::as_str));
            match content {
                None | Some("id-only") => Payload::IdOnly,
                Some("empty") => Payload::Empty,
                Some("full-resource") => Payload::Full,
                Some(other) => {
                    return Err(refused(
                        format!(
                            "payload content '{other}' is not one of empty, id-only, full-resource"
                        ),
                        "Subscription.channel.payload",
                    ));
                }
            }
        }
    };
    let unsigned = |name: &str, field: &str| {
        let url = format!("{BACKPORT}{name}");
        extensions(Some(&Value::Object(channel.clone())), &url)
            .find_map(|extension| extension.get(field).and_then(Value::as_u64))
    };
    let (heartbeat_seconds, timeout_seconds, max_count) = match kind {
        SubscriptionKind::Criteria => (None, None, 1),
        SubscriptionKind::Topic => (
            unsigned("backport-heartbeat-period", "valueUnsignedInt")
                .filter(|seconds| *seconds > 0),
            unsigned("backport-timeout", "valueUnsignedInt").filter(|seconds| *seconds > 0),
            unsigned("backport-max-count", "valuePositiveInt")
                .map_or(1, |count| u32::try_from(count.clamp(1, 100)).unwrap_or(100)),
        ),
    };
    Ok(Channel {
        endpoint: endpoint.to_owned(),
        headers,
        payload,
        heartbeat_seconds,
        timeout_seconds,
        max_count,
    })
}

/// The extensions with `url` of an element (or of a primitive's `_element` object).
fn extensions<'a>(
    element: Option<&'a Value>,
    url: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    element
        .and_then(|element| element.get("extension"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |extension| extension.get("url").and_then(Value::as_str) == Some(url))
}

/// The Subscription with a `requested` status made `active`: the server sets every subscription it accepts
/// up at once (R4: "requested: the client has requested the subscription, and the server has not yet set it
/// up"). An `active` one that the server had put in error answers its client's wish to resume.
pub(crate) fn activate(resource: Resource) -> Result<Resource, InteractionError> {
    let mut json = resource.into_json();
    if json.get("status").and_then(Value::as_str) == Some("requested") {
        json.insert("status".to_owned(), Value::String("active".to_owned()));
    }
    if json.get("status").and_then(Value::as_str) == Some("active") {
        json.remove("error");
    }
    Resource::from_value(Value::Object(json))
        .map_err(|error| InteractionError::invalid(error.to_string()))
}

fn unsupported_payload(mime: &str) -> InteractionError {
    InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(
            IssueType::NotSupported,
            format!("payload '{mime}' is not supported; this server sends application/fhir+json"),
        )
        .at("Subscription.channel.payload"),
    ))
}

pub(crate) fn refused(diagnostics: impl Into<String>, expression: &str) -> InteractionError {
    InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(IssueType::Processing, diagnostics).at(expression),
    ))
}
