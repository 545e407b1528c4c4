//! The Subscriptions Backport IG's notification shapes and operations: the `history` Bundle whose first
//! entry is the `Parameters` status (`backport-subscription-status-r4`), `$status`, `$events` (replay from an
//! event number), and this server's `$deliveries` (the delivery attempts, for the sender's operator) and
//! `$resend` (queue events again from a number).

use cdr_model::{Instant, LogicalId, Resource};
use cdr_store::{OutboxEvent, SubscriptionState};
use serde_json::{Value, json};

use super::SUBSCRIPTION;
use super::definition::{BACKPORT, Definition, Payload, SubscriptionKind};
use crate::{Engine, InteractionError, parse_id};

/// Most events one `$events` answer holds.
const MAX_EVENTS: i64 = 1_000;

/// Most delivery attempts `$deliveries` lists.
const MAX_ATTEMPTS: i64 = 1_000;

/// The backport's `notification-type` codes this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotificationType {
    EventNotification,
    Heartbeat,
    QueryStatus,
    QueryEvent,
}

impl NotificationType {
    fn code(self) -> &'static str {
        match self {
            NotificationType::EventNotification => "event-notification",
            NotificationType::Heartbeat => "heartbeat",
            NotificationType::QueryStatus => "query-status",
            NotificationType::QueryEvent => "query-event",
        }
    }
}

/// The range and content of a `$events` request.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsQuery {
    /// `eventsSinceNumber`: the first event (1 when absent).
    pub since: Option<i64>,
    /// `eventsUntilNumber`: the last event (the latest when absent).
    pub until: Option<i64>,
    /// `content`: `full-resource` to carry the resources; else the Subscription's own payload.
    pub full_resource: Option<bool>,
}

/// The status `Parameters` of a subscription (`backport-subscription-status-r4`).
fn status_parameters(
    base: &str,
    id: &LogicalId,
    definition: &Definition,
    kind: NotificationType,
    events_total: i64,
    events: &[(&OutboxEvent, Option<String>)],
    error: Option<&str>,
) -> Value {
    let mut parameters = vec![
        json!({"name": "subscription", "valueReference": {"reference": format!("{base}/Subscription/{id}")}}),
    ];
    if let Some(topic) = definition.topic {
        parameters.push(json!({"name": "topic", "valueCanonical": topic}));
    }
    parameters.push(json!({"name": "status", "valueCode": definition.status}));
    parameters.push(json!({"name": "type", "valueCode": kind.code()}));
    parameters.push(
        json!({"name": "events-since-subscription-start", "valueString": events_total.to_string()}),
    );
    for (event, _) in events {
        let mut parts = vec![
            json!({"name": "event-number", "valueString": event.number.to_string()}),
            json!({"name": "timestamp", "valueInstant": event.recorded.to_fhir()}),
        ];
        if definition.channel.payload != Payload::Empty || kind == NotificationType::QueryEvent {
            parts.push(json!({"name": "focus", "valueReference": {"reference": format!(
                "{base}/{}/{}/_history/{}", event.res_type, event.res_id, event.version
            )}}));
        }
        parameters.push(json!({"name": "notification-event", "part": parts}));
    }
    if let Some(error) = error {
        parameters.push(json!({"name": "error", "valueCodeableConcept": {"text": error}}));
    }
    json!({
        "resourceType": "Parameters",
        "meta": {"profile": [format!("{BACKPORT}backport-subscription-status-r4")]},
        "parameter": parameters,
    })
}

/// A notification Bundle (`history`): the status, then an entry per event's resource when the payload
/// names them (with the resource itself for `full-resource`).
pub(crate) fn notification_bundle(
    base: &str,
    id: &LogicalId,
    definition: &Definition,
    kind: NotificationType,
    events_total: i64,
    events: &[(&OutboxEvent, Option<String>)],
    error: Option<&str>,
) -> Value {
    let status = status_parameters(base, id, definition, kind, events_total, events, error);
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": status,
        "request": {"method": "GET", "url": format!("{base}/Subscription/{id}/$status")},
        "response": {"status": "200"},
    })];
    let with_focus =
        definition.channel.payload != Payload::Empty || kind == NotificationType::QueryEvent;
    for (event, body) in events.iter().filter(|_| with_focus) {
        let mut entry = json!({
            "fullUrl": format!("{base}/{}/{}", event.res_type, event.res_id),
            "request": {
                "method": if event.version.get() == 1 { "POST" } else { "PUT" },
                "url": if event.version.get() == 1 {
                    event.res_type.to_string()
                } else {
                    format!("{}/{}", event.res_type, event.res_id)
                },
            },
            "response": {"status": if event.version.get() == 1 { "201" } else { "200" }},
        });
        if let Some(resource) =
            body.as_deref().and_then(|body| serde_json::from_str::<Value>(body).ok())
        {
            entry["resource"] = resource;
        }
        entries.push(entry);
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "history",
        "timestamp": Instant::now().to_fhir(),
        "entry": entries,
    })
}

impl Engine {
    /// The stored Subscription `id` and what it asks for.
    async fn stored_subscription(
        &self,
        id: &str,
    ) -> Result<(LogicalId, Definition), InteractionError> {
        let id = parse_id(id)?;
        let stored = self.store.read(SUBSCRIPTION, &id).await?;
        // Under a patient's confinement no Subscription is visible (none is in a patient's compartment).
        let Some(body) = stored
            .filter(|stored| !stored.deleted)
            .and_then(|stored| stored.body)
            .filter(|body| self.visible(SUBSCRIPTION, &id, body))
        else {
            return Err(InteractionError::NotFound(format!("Subscription/{id}")));
        };
        let resource = Resource::from_slice(body.as_bytes())
            .map_err(|error| InteractionError::invalid(error.to_string()))?;
        let definition = self.definition(resource.json())?;
        Ok((id, definition))
    }

    /// `GET [base]/Subscription/[id]/$status`: a `searchset` Bundle holding the status `Parameters`
    /// (`query-status`), with the last failure's text while the subscription fails.
    ///
    /// # Errors
    /// Unknown Subscription, or storage failure.
    pub async fn subscription_status(
        &self,
        id: &str,
        base: &str,
    ) -> Result<Value, InteractionError> {
        let (id, definition) = self.stored_subscription(id).await?;
        let status = self.store.subscription_status(&id).await?;
        let (events_total, error) = match &status {
            Some(status) => (status.events_total, status.error.as_deref()),
            None => (0, None),
        };
        let parameters = status_parameters(
            base,
            &id,
            &definition,
            NotificationType::QueryStatus,
            events_total,
            &[],
            error,
        );
        Ok(json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "searchset",
            "total": 1,
            "entry": [{
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": parameters,
                "search": {"mode": "match"},
            }],
        }))
    }

    /// `GET [base]/Subscription/[id]/$events`: the events numbered `since..=until` (at most 1,000, from
    /// `since`), as a `history` Bundle like a notification's, of type `query-event`.
    ///
    /// # Errors
    /// Unknown Subscription, a range that is not one, or storage failure.
    pub async fn subscription_events(
        &self,
        id: &str,
        query: EventsQuery,
        base: &str,
    ) -> Result<Value, InteractionError> {
        let (id, mut definition) = self.stored_subscription(id).await?;
        let status = self.store.subscription_status(&id).await?;
        let events_total = status.as_ref().map_or(0, |status| status.events_total);
        let since = query.since.unwrap_or(1).max(1);
        let until = query.until.unwrap_or(events_total);
        if until < since && query.until.is_some() {
            return Err(InteractionError::invalid(format!(
                "eventsUntilNumber {until} is before eventsSinceNumber {since}"
            )));
        }
        if let Some(full) = query.full_resource {
            definition.channel.payload = if full { Payload::Full } else { Payload::IdOnly };
        }
        let events = self.store.subscription_events(&id, since, until, MAX_EVENTS).await?;
        let mut with_bodies = Vec::with_capacity(events.len());
        for event in &events {
            let body = if definition.channel.payload == Payload::Full {
                Some(self.version_body(event).await.map_err(|error| {
                    InteractionError::Internal(cdr_store::StoreError::Corrupt(error))
                })?)
            } else {
                None
            };
            with_bodies.push((event, body));
        }
        Ok(notification_bundle(
            base,
            &id,
            &definition,
            NotificationType::QueryEvent,
            events_total,
            &with_bodies,
            None,
        ))
    }

    /// `GET [base]/Subscription/[id]/$deliveries`: the latest delivery attempts, newest first, as a
    /// `collection` Bundle of `Parameters` (`time`, `first-event`, `last-event`, `outcome` delivered or
    /// failed, `http-status`, `error`), after a `Parameters` of the delivery state (`state`, `events`,
    /// `delivered-through`, `attempts`, `failing-since`, `next-attempt`, `error`).
    ///
    /// # Errors
    /// Unknown Subscription, or storage failure.
    pub async fn subscription_deliveries(&self, id: &str) -> Result<Value, InteractionError> {
        let (id, definition) = self.stored_subscription(id).await?;
        let mut entries = Vec::new();
        if let Some(status) = self.store.subscription_status(&id).await? {
            let mut parameters = vec![
                json!({"name": "subscription", "valueReference": {"reference": format!("Subscription/{id}")}}),
                json!({"name": "kind", "valueCode": if definition.kind == SubscriptionKind::Topic { "topic" } else { "criteria" }}),
                json!({"name": "state", "valueCode": status.state.as_str()}),
                json!({"name": "events", "valueString": status.events_total.to_string()}),
                json!({"name": "delivered-through", "valueString": status.delivered.to_string()}),
                json!({"name": "attempts", "valueInteger": status.attempts}),
            ];
            if status.state == SubscriptionState::Active && status.delivered < status.events_total {
                parameters.push(
                    json!({"name": "next-attempt", "valueInstant": status.next_attempt.to_fhir()}),
                );
            }
            if let Some(since) = status.failing_since {
                parameters.push(json!({"name": "failing-since", "valueInstant": since.to_fhir()}));
            }
            if let Some(error) = &status.error {
                parameters.push(json!({"name": "error", "valueString": error}));
            }
            entries
                .push(json!({"resource": {"resourceType": "Parameters", "parameter": parameters}}));
        }
        for attempt in self.store.subscription_attempts(&id, MAX_ATTEMPTS).await? {
            let mut parameters = vec![
                json!({"name": "time", "valueInstant": attempt.at.to_fhir()}),
                json!({"name": "first-event", "valueString": attempt.first_event.to_string()}),
                json!({"name": "last-event", "valueString": attempt.last_event.to_string()}),
                json!({"name": "outcome", "valueCode": if attempt.error.is_none() { "delivered" } else { "failed" }}),
            ];
            if let Some(status) = attempt.http_status {
                parameters.push(json!({"name": "http-status", "valueInteger": status}));
            }
            if let Some(error) = &attempt.error {
                parameters.push(json!({"name": "error", "valueString": error}));
            }
            entries
                .push(json!({"resource": {"resourceType": "Parameters", "parameter": parameters}}));
        }
        Ok(json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "collection",
            "timestamp": Instant::now().to_fhir(),
            "entry": entries,
        }))
    }

    /// `POST [base]/Subscription/[id]/$resend?eventsSinceNumber=n`: the events from `n` on are delivered
    /// again, in order, starting now (a subscription in error must first be set `active` again by its
    /// client). Answers the `$status` Bundle.
    ///
    /// # Errors
    /// Unknown Subscription, or storage failure.
    pub async fn resend_events(
        &self,
        id: &str,
        since: i64,
        base: &str,
    ) -> Result<Value, InteractionError> {
        let (logical, _) = self.stored_subscription(id).await?;
        if !self.store.resend_subscription(&logical, since, Instant::now()).await? {
            return Err(InteractionError::NotFound(format!("Subscription/{logical}")));
        }
        self.subscription_status(id, base).await
    }
}
