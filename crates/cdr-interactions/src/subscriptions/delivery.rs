//! The engine's side of delivering notifications: which notification a dispatcher sends next (the oldest
//! undelivered events of the subscription that has waited longest, or a heartbeat), rendered as the request
//! to make, and what its outcome does to the subscription (the next event, a retry after a backoff with
//! jitter, or, past the retry horizon, the Subscription's `error` status, written as a new version).

use std::time::Duration;

use cdr_model::{Instant, LogicalId, Resource};
use cdr_store::{ClaimedSubscription, DeliveryAttempt, OutboxEvent, WriteMethod};
use serde_json::{Value, json};

use super::definition::{Definition, Payload, SubscriptionKind};
use super::operations::{NotificationType, notification_bundle};
use super::{Change, SUBSCRIPTION};
use crate::write::write_version;
use crate::{Engine, InteractionError};

/// Most events a claim reads (a topic subscription sends at most its `max-count` of them at once).
const CLAIM_BATCH: i64 = 100;

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after a first failure; it doubles with each further one (each wait drawn between half of
    /// it and all of it).
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// How long a subscription may keep failing before the server sets it to `error` and stops trying.
    pub horizon: Duration,
    /// How long to wait for a receiver's answer when its Subscription does not say.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 s doubling to at most 10 minutes, for 24 hours; receivers answer within 30 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(600),
            horizon: Duration::from_secs(24 * 60 * 60),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One request to a receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `POST` (a topic notification, a classic one without payload) or `PUT` (a classic one with the
    /// resource, to `[endpoint]/[type]/[id]`).
    pub method: &'static str,
    pub url: String,
    /// The Subscription's `channel.header`s.
    pub headers: Vec<(String, String)>,
    /// `application/fhir+json` text, if any.
    pub body: Option<String>,
}

/// A notification a dispatcher has claimed and must send, then report with
/// [`Engine::notification_sent`] or [`Engine::notification_failed`].
#[derive(Debug, Clone)]
pub struct Notification {
    pub subscription: LogicalId,
    pub delivery: Delivery,
    /// How long to wait for the receiver.
    pub timeout: Duration,
    /// The events it carries (`0..=0` for a heartbeat).
    pub first_event: i64,
    pub last_event: i64,
    failing_since: Option<Instant>,
    attempts: i32,
    base: String,
}

impl Engine {
    /// Claims the next notification to send for `worker`, under a lease of `lease`; `None` when nothing is
    /// due.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn next_notification(
        &self,
        worker: &str,
        lease: Duration,
        policy: &RetryPolicy,
    ) -> Result<Option<Notification>, InteractionError> {
        loop {
            let now = Instant::now();
            let until = later(now, lease);
            let Some(claimed) =
                self.store.claim_subscription(worker, now, until, CLAIM_BATCH).await?
            else {
                return Ok(None);
            };
            match self.render(&claimed, policy).await {
                Ok(notification) => return Ok(Some(notification)),
                Err(reason) => {
                    // A subscription the server cannot deliver for (its definition no longer reads) is put in
                    // error at once; the next one is tried.
                    let notification = Notification {
                        subscription: claimed.id.clone(),
                        delivery: Delivery {
                            method: "POST",
                            url: String::new(),
                            headers: Vec::new(),
                            body: None,
                        },
                        timeout: policy.timeout,
                        first_event: claimed.events.first().map_or(0, |event| event.number),
                        last_event: claimed.events.last().map_or(0, |event| event.number),
                        failing_since: Some(Instant::from_millis(0)),
                        attempts: claimed.attempts,
                        base: claimed.base.clone(),
                    };
                    self.notification_failed(&notification, worker, None, &reason, policy).await?;
                }
            }
        }
    }

    /// Extends the claim while the receiver is being waited for; `false` when it was lost.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn renew_notification(
        &self,
        notification: &Notification,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, InteractionError> {
        let until = later(Instant::now(), lease);
        Ok(self.store.renew_subscription(notification.subscription.as_str(), worker, until).await?)
    }

    /// Records that the receiver acknowledged the notification with `status` (2xx); `false` when the claim
    /// had been lost (another dispatcher will send it again).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn notification_sent(
        &self,
        notification: &Notification,
        worker: &str,
        status: u16,
    ) -> Result<bool, InteractionError> {
        let attempt = DeliveryAttempt {
            at: Instant::now(),
            first_event: notification.first_event,
            last_event: notification.last_event,
            http_status: Some(status),
            error: None,
        };
        Ok(self
            .store
            .subscription_delivered(notification.subscription.as_str(), worker, &attempt)
            .await?)
    }

    /// Records a failed attempt (`status` when the receiver answered, and why it failed): the subscription is
    /// due again after a backoff, or, once it has failed for longer than the horizon, set to `error`.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn notification_failed(
        &self,
        notification: &Notification,
        worker: &str,
        status: Option<u16>,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<bool, InteractionError> {
        let now = Instant::now();
        let attempt = DeliveryAttempt {
            at: now,
            first_event: notification.first_event,
            last_event: notification.last_event,
            http_status: status,
            error: Some(error.to_owned()),
        };
        let failing_since = notification.failing_since.unwrap_or(now);
        let failing_for = u64::try_from(now.millis() - failing_since.millis()).unwrap_or(0);
        if u128::from(failing_for) >= policy.horizon.as_millis() {
            return self.give_up(notification, worker, &attempt).await;
        }
        let next = later(now, backoff(policy, notification.attempts));
        Ok(self
            .store
            .subscription_failed(notification.subscription.as_str(), worker, &attempt, next)
            .await?)
    }

    /// Sets a subscription that kept failing to `error`: its row, and a new version of the Subscription
    /// with `status` error and the last failure in `error`, in one transaction (the Subscription's row
    /// locked first, as a client's update of it does).
    async fn give_up(
        &self,
        notification: &Notification,
        worker: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, InteractionError> {
        let mut tx = self.store.begin().await?;
        let id = &notification.subscription;
        let current = tx.current_version(SUBSCRIPTION, id).await?;
        if !tx.give_up_subscription(id.as_str(), worker, attempt).await? {
            return Ok(false);
        }
        let live = current.filter(|stored| !stored.deleted);
        if let Some((version, body)) = live.and_then(|stored| Some((stored.version, stored.body?)))
        {
            let resource = Resource::from_slice(body.as_bytes())
                .map_err(|error| InteractionError::invalid(error.to_string()))?;
            let mut json = resource.into_json();
            json.insert("status".to_owned(), json!("error"));
            let text = attempt.error.clone().unwrap_or_default();
            json.insert("error".to_owned(), Value::String(text));
            let resource = Resource::from_value(Value::Object(json))
                .map_err(|error| InteractionError::invalid(error.to_string()))?;
            let written = write_version(
                &mut tx,
                &self.registry,
                SUBSCRIPTION,
                id,
                resource,
                version.next(),
                WriteMethod::Update,
            )
            .await?;
            let change = Change { resource_type: SUBSCRIPTION, id, body: written.body.as_deref() };
            self.record_subscriptions(&mut tx, &[change], &notification.base).await?;
        }
        self.commit(tx).await?;
        tracing::warn!(subscription = %id, error = ?attempt.error, "subscription set to error");
        Ok(true)
    }

    /// The notification a claimed subscription is due; the reason when it cannot be made.
    async fn render(
        &self,
        claimed: &ClaimedSubscription,
        policy: &RetryPolicy,
    ) -> Result<Notification, String> {
        let stored = self
            .store
            .read(SUBSCRIPTION, &claimed.id)
            .await
            .map_err(|error| format!("reading the Subscription: {error}"))?;
        let body = stored
            .filter(|stored| !stored.deleted)
            .and_then(|stored| stored.body)
            .ok_or_else(|| "the Subscription no longer exists".to_owned())?;
        let resource = Resource::from_slice(body.as_bytes()).map_err(|error| error.to_string())?;
        let definition = self.definition(resource.json()).map_err(|error| error.to_string())?;
        if let Some(reason) = self.endpoint_refusal(&definition.channel.endpoint) {
            return Err(reason);
        }
        let count = usize::try_from(definition.channel.max_count).unwrap_or(1);
        let events: Vec<&OutboxEvent> = claimed.events.iter().take(count).collect();
        let delivery = match definition.kind {
            SubscriptionKind::Criteria => {
                let Some(event) = events.first() else {
                    return Err("a classic subscription has no heartbeat".to_owned());
                };
                self.classic_delivery(&definition, event).await?
            }
            SubscriptionKind::Topic => {
                let kind = if events.is_empty() {
                    NotificationType::Heartbeat
                } else {
                    NotificationType::EventNotification
                };
                let bodies = self.focus_bodies(&definition, &events).await?;
                let bundle = notification_bundle(
                    &claimed.base,
                    &claimed.id,
                    &definition,
                    kind,
                    claimed.events_total,
                    &events.iter().copied().zip(bodies).collect::<Vec<_>>(),
                    None,
                );
                Delivery {
                    method: "POST",
                    url: definition.channel.endpoint.clone(),
                    headers: definition.channel.headers.clone(),
                    body: Some(bundle.to_string()),
                }
            }
        };
        let timeout =
            definition.channel.timeout_seconds.map_or(policy.timeout, Duration::from_secs);
        Ok(Notification {
            subscription: claimed.id.clone(),
            delivery,
            timeout,
            first_event: events.first().map_or(0, |event| event.number),
            last_event: events.last().map_or(0, |event| event.number),
            failing_since: claimed.failing_since,
            attempts: claimed.attempts,
            base: claimed.base.clone(),
        })
    }

    /// R4 rest-hook: a POST with no body, or with the resource, a PUT of it to `[endpoint]/[type]/[id]`.
    async fn classic_delivery(
        &self,
        definition: &Definition,
        event: &OutboxEvent,
    ) -> Result<Delivery, String> {
        let channel = &definition.channel;
        if channel.payload == Payload::Empty {
            return Ok(Delivery {
                method: "POST",
                url: channel.endpoint.clone(),
                headers: channel.headers.clone(),
                body: None,
            });
        }
        let body = self.version_body(event).await?;
        Ok(Delivery {
            method: "PUT",
            url: format!(
                "{}/{}/{}",
                channel.endpoint.trim_end_matches('/'),
                event.res_type,
                event.res_id
            ),
            headers: channel.headers.clone(),
            body: Some(body),
        })
    }

    /// The versions' bodies when the notification carries them.
    async fn focus_bodies(
        &self,
        definition: &Definition,
        events: &[&OutboxEvent],
    ) -> Result<Vec<Option<String>>, String> {
        let mut bodies = Vec::with_capacity(events.len());
        for event in events {
            bodies.push(if definition.channel.payload == Payload::Full {
                Some(self.version_body(event).await?)
            } else {
                None
            });
        }
        Ok(bodies)
    }

    /// The body of the version an event is about.
    pub(crate) async fn version_body(&self, event: &OutboxEvent) -> Result<String, String> {
        let stored = self
            .store
            .vread(event.res_type, &event.res_id, event.version)
            .await
            .map_err(|error| format!("reading {}/{}: {error}", event.res_type, event.res_id))?;
        stored.and_then(|stored| stored.body).ok_or_else(|| {
            format!("{}/{}/_history/{} is not stored", event.res_type, event.res_id, event.version)
        })
    }
}

/// The wait before the next attempt after `attempts` failures in a row: the first delay doubled per earlier
/// failure, at most the longest delay, drawn between half of it and all of it (so receivers that came back
/// are not met by every subscription at once).
fn backoff(policy: &RetryPolicy, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let full = policy.first_delay.saturating_mul(1 << doublings).min(policy.max_delay);
    let half = full / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    let jitter = u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(spread)).unwrap_or(0);
    half + Duration::from_millis(jitter)
}

fn later(now: Instant, by: Duration) -> Instant {
    Instant::from_millis(
        now.millis().saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RetryPolicy, backoff};

    #[test]
    fn backoff_doubles_within_its_bounds_with_jitter() {
        let policy = RetryPolicy {
            first_delay: Duration::from_secs(4),
            max_delay: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        for (attempts, full) in [(0, 4), (1, 8), (2, 16), (3, 32), (4, 60), (30, 60)] {
            for _ in 0..50 {
                let wait = backoff(&policy, attempts);
                assert!(wait >= Duration::from_secs(full) / 2, "{attempts}: {wait:?}");
                assert!(wait <= Duration::from_secs(full), "{attempts}: {wait:?}");
            }
        }
    }
}
