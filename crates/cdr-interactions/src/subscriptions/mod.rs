//! Subscriptions: R4 classic (`criteria` a search, channel `rest-hook`) and topic-based after the R4
//! Subscriptions Backport IG, delivered from a durable outbox.
//!
//! - A Subscription is checked before it is written (`definition.rs`: criteria parse as a search of a served
//!   type, or name a topic of `topic.rs` with filters it allows; a `rest-hook` channel to an `http` endpoint),
//!   and a `requested` one is stored `active`. Its delivery state is a row of the store's `subscription`
//!   table, written in the transaction of its version ([`Engine::record_subscriptions`]).
//! - Every write records, in its own transaction just before it commits ([`Engine::record_events`], from
//!   `Engine::commit`, after the routing rows), one event per subscription whose criteria a written version
//!   matches: the criteria and the written ids are matched by the store's search compiler in that
//!   transaction (so chains see what the transaction wrote), and the events are numbered per subscription in
//!   commit order (`cdr_store`'s `subscriptions.rs`). Deletions match nothing (R4 criteria select live
//!   resources).
//! - `delivery.rs` hands the dispatcher (cdr-api, which speaks HTTP) the next notification to send, and takes
//!   its outcome: retries with exponential backoff and jitter up to a horizon, then the Subscription's
//!   `error` status. `operations.rs` serves `$status`, `$events`, `$deliveries` and `$resend`.

mod definition;
mod delivery;
mod operations;
mod topic;

use cdr_model::{LogicalId, Resource, ResourceType, VersionId};
use cdr_store::{StoreTx, SubscriptionDef, SubscriptionState};
use serde_json::Value;

pub use crate::subscriptions::definition::{Channel, Definition, Payload, SubscriptionKind};
pub use crate::subscriptions::delivery::{Delivery, Notification, RetryPolicy};
pub use crate::subscriptions::operations::EventsQuery;
pub use crate::subscriptions::topic::{IMAGING_REPORT_TOPIC, TOPICS, Topic};

use crate::conditional::parse_criteria;
use crate::terminology::expand_terminology;
use crate::{Engine, InteractionError};

/// The type of Subscription resources.
pub(crate) const SUBSCRIPTION: ResourceType = ResourceType::known("Subscription");

/// Most ids one matching statement names (each an `_id` value of the criteria).
const IDS_PER_MATCH: usize = 50;

/// A version written in a transaction, as the subscriptions' delivery state sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub(crate) resource_type: ResourceType,
    pub(crate) id: &'a LogicalId,
    /// The body written; `None` for a deletion.
    pub(crate) body: Option<&'a str>,
}

impl Engine {
    /// A Subscription about to be written, checked (its criteria, topic and channel) and set up
    /// (`requested` becomes `active`); other resources pass unchanged.
    ///
    /// # Errors
    /// [`InteractionError::Unprocessable`] when the server cannot serve what it asks for.
    pub(crate) fn prepare_subscription(
        &self,
        resource: Resource,
    ) -> Result<Resource, InteractionError> {
        if resource.resource_type() != SUBSCRIPTION {
            return Ok(resource);
        }
        let definition = self.definition(resource.json())?;
        let mut criteria = parse_criteria(
            &self.registry,
            &self.query_limits,
            definition.res_type,
            &definition.criteria,
        )
        .map_err(|error| match error {
            InteractionError::Invalid(outcome) => InteractionError::Unprocessable(outcome),
            other => other,
        })?;
        expand_terminology(&mut criteria.query, self.profiles.set())?;
        if let Some(reason) = self.endpoint_refusal(&definition.channel.endpoint) {
            return Err(definition::refused(reason, "Subscription.channel.endpoint"));
        }
        definition::activate(resource)
    }

    /// Why the server will not deliver to `endpoint`, if it will not: it starts with none of the allowed
    /// prefixes.
    pub(crate) fn endpoint_refusal(&self, endpoint: &str) -> Option<String> {
        let allowed = &self.subscription_endpoints;
        if allowed.is_empty() || allowed.iter().any(|prefix| endpoint.starts_with(prefix.as_str()))
        {
            return None;
        }
        Some(format!(
            "this server delivers only to endpoints starting with {}",
            allowed.iter().map(|prefix| format!("'{prefix}'")).collect::<Vec<_>>().join(", ")
        ))
    }

    /// What a stored Subscription asks for.
    pub(crate) fn definition(
        &self,
        json: &serde_json::Map<String, Value>,
    ) -> Result<Definition, InteractionError> {
        definition::read_definition(json, |name| self.served_type(name).ok())
    }

    /// Writes the delivery state of each Subscription among a transaction's versions, in that transaction.
    /// `base` is the FHIR base URL of the request, for the addresses its notifications will carry.
    ///
    /// # Errors
    /// On storage failure, or a stored Subscription the server can no longer read.
    pub(crate) async fn record_subscriptions(
        &self,
        tx: &mut StoreTx,
        changes: &[Change<'_>],
        base: &str,
    ) -> Result<(), InteractionError> {
        let now = cdr_model::Instant::now();
        for change in changes.iter().filter(|change| change.resource_type == SUBSCRIPTION) {
            let Some(body) = change.body else {
                tx.remove_subscription(change.id).await?;
                continue;
            };
            let resource = Resource::from_slice(body.as_bytes())
                .map_err(|error| InteractionError::invalid(error.to_string()))?;
            let definition = self.definition(resource.json())?;
            let state = match definition.status.as_str() {
                "active" => SubscriptionState::Active,
                "off" => SubscriptionState::Off,
                _ => SubscriptionState::Error,
            };
            let heartbeat_ms = definition
                .channel
                .heartbeat_seconds
                .and_then(|seconds| i64::try_from(seconds.saturating_mul(1_000)).ok());
            tx.put_subscription(&SubscriptionDef {
                id: change.id,
                kind: definition.kind.as_str(),
                res_type: definition.res_type,
                criteria: &definition.criteria,
                base,
                state,
                heartbeat_ms,
                now,
            })
            .await?;
        }
        Ok(())
    }

    /// Records, in `tx` before it commits, one event per subscription that a live version the transaction
    /// wrote matches ([`StoreTx::written`]; a resource written twice counts once, as its last version).
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn record_events(&self, tx: &mut StoreTx) -> Result<(), InteractionError> {
        let now = cdr_model::Instant::now();
        // The one statement a write pays when nothing subscribes to what it wrote.
        let mut types: Vec<ResourceType> =
            tx.written().iter().map(|(res_type, _)| *res_type).collect();
        types.sort_unstable();
        types.dedup();
        let subscriptions = tx.matching_subscriptions(&types).await?;
        if subscriptions.is_empty() {
            return Ok(());
        }
        let mut last: std::collections::HashMap<(ResourceType, LogicalId), usize> =
            std::collections::HashMap::new();
        let written: Vec<(ResourceType, LogicalId, VersionId, bool)> = tx
            .written()
            .iter()
            .zip(tx.written_versions())
            .map(|((res_type, id), (version, deleted))| (*res_type, id.clone(), *version, *deleted))
            .collect();
        for (position, (res_type, id, _, _)) in written.iter().enumerate() {
            last.insert((*res_type, id.clone()), position);
        }
        let live: Vec<&(ResourceType, LogicalId, VersionId, bool)> = written
            .iter()
            .enumerate()
            .filter(|(position, (res_type, id, _, deleted))| {
                !deleted && last.get(&(*res_type, id.clone())) == Some(position)
            })
            .map(|(_, change)| change)
            .collect();
        for subscription in subscriptions {
            let candidates: Vec<&&(ResourceType, LogicalId, VersionId, bool)> =
                live.iter().filter(|change| change.0 == subscription.res_type).collect();
            let mut matched = Vec::new();
            for chunk in candidates.chunks(IDS_PER_MATCH) {
                let ids: Vec<&str> = chunk.iter().map(|change| change.1.as_str()).collect();
                let query = format!("{}&_id={}", subscription.criteria, ids.join(","));
                // Criteria that no longer parse (a search parameter was removed since) match nothing: one
                // subscription must not stop every write of its type.
                let parsed = parse_criteria(
                    &self.registry,
                    &self.query_limits,
                    subscription.res_type,
                    &query,
                )
                .and_then(|mut criteria| {
                    expand_terminology(&mut criteria.query, self.profiles.set())?;
                    Ok(criteria)
                });
                let criteria = match parsed {
                    Ok(criteria) => criteria,
                    Err(error) => {
                        tracing::warn!(subscription = %subscription.id, %error, "criteria no longer parse");
                        break;
                    }
                };
                let now_micros = now.millis() * 1_000;
                let limit = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                let found =
                    tx.find(&criteria.query, &[subscription.res_type], now_micros, limit).await?;
                matched.extend(
                    chunk
                        .iter()
                        .filter(|change| found.contains(&change.1))
                        .map(|change| (change.0, &change.1, change.2)),
                );
            }
            tx.record_events(&subscription.id, &matched, now).await?;
        }
        Ok(())
    }
}
