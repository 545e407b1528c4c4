//! Subscription delivery over HTTP and the Subscription operations.
//!
//! - [`SubscriptionDispatcher`] (the server runs `--subscription-dispatchers` of them) takes the next notification from the
//!   engine's outbox, sends it to the receiver (R4 rest-hook: `POST [endpoint]`, or `PUT
//!   [endpoint]/[type]/[id]` with the resource; a topic subscription's `history` Bundle by `POST`), renews its
//!   claim while it waits, and reports the outcome: a 2xx answer acknowledges the events, anything else
//!   (another status, no connection, no answer within the timeout) is a failed attempt the engine retries
//!   later. It wakes when this process commits events, and looks every `poll_interval` for other processes'.
//! - `GET [base]/Subscription/[id]/$status`, `$events` (`eventsSinceNumber`, `eventsUntilNumber`,
//!   `content`), `$deliveries`, and `POST [base]/Subscription/[id]/$resend?eventsSinceNumber=n`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use cdr_interactions::{Engine, EventsQuery, InteractionError, Notification, RetryPolicy};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::AppState;
use crate::auth::Scoped;
use crate::error::ApiError;
use crate::extract::FhirPath;
use crate::links::BaseUrl;
use crate::respond::fhir_json;

/// How notifications are delivered.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// Retries, the horizon and the receiver timeout.
    pub retry: RetryPolicy,
    /// How long a dispatcher's claim of a subscription lasts unless renewed (every third of it while it
    /// waits for the receiver): a subscription of a process that died is delivered by another once it passes.
    pub lease: Duration,
    /// How often an idle dispatcher looks for events other processes recorded.
    pub poll_interval: Duration,
}

impl Default for DeliveryConfig {
    /// The [`RetryPolicy`] defaults, 60 s leases, a look every second.
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Delivers notifications; see the module documentation.
#[derive(Debug, Clone)]
pub struct SubscriptionDispatcher {
    engine: Engine,
    config: DeliveryConfig,
    id: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AppState {
    /// A dispatcher of this application's engine, with its own id.
    #[must_use]
    pub fn subscription_dispatcher(&self) -> SubscriptionDispatcher {
        SubscriptionDispatcher {
            engine: self.engine.clone(),
            config: self.config.subscriptions,
            id: uuid::Uuid::new_v4().to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl SubscriptionDispatcher {
    /// Delivers until the task is dropped.
    pub async fn run(self) {
        let signal = self.engine.outbox_signal();
        loop {
            // Registered before draining, so events committed meanwhile wake the next wait.
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.drain().await;
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Sends every notification due now, until one fails (its retry waits for a later round); returns how
    /// many were attempted.
    pub async fn drain(&self) -> usize {
        let mut attempted = 0;
        loop {
            let next = self
                .engine
                .next_notification(&self.id, self.config.lease, &self.config.retry)
                .await;
            match next {
                Ok(Some(notification)) => {
                    attempted += 1;
                    if !self.deliver(&notification).await {
                        return attempted;
                    }
                }
                Ok(None) => return attempted,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the subscription outbox");
                    return attempted;
                }
            }
        }
    }

    /// Sends one notification and records its outcome; whether it was delivered.
    async fn deliver(&self, notification: &Notification) -> bool {
        let sending = tokio::time::timeout(notification.timeout, self.send(notification));
        tokio::pin!(sending);
        let renew_every = self.config.lease / 3;
        let outcome = loop {
            tokio::select! {
                outcome = &mut sending => break outcome,
                () = tokio::time::sleep(renew_every) => {
                    match self.engine.renew_notification(notification, &self.id, self.config.lease).await {
                        Ok(true) => {}
                        Ok(false) => return false,
                        Err(error) => tracing::warn!(%error, "cannot renew a subscription claim"),
                    }
                }
            }
        };
        let delivered = matches!(outcome, Ok(Ok(status)) if (200..300).contains(&status));
        let reported = match outcome {
            Ok(Ok(status)) if delivered => {
                self.engine.notification_sent(notification, &self.id, status).await
            }
            Ok(Ok(status)) => {
                let error = format!("the endpoint answered {status}");
                self.failed(notification, Some(status), &error).await
            }
            Ok(Err(error)) => self.failed(notification, None, &error).await,
            Err(_) => {
                let error = format!(
                    "the endpoint did not answer within {} s",
                    notification.timeout.as_secs_f64()
                );
                self.failed(notification, None, &error).await
            }
        };
        match reported {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(subscription = %notification.subscription, "subscription claim lost");
            }
            Err(error) => tracing::warn!(%error, "cannot record a delivery attempt"),
        }
        delivered
    }

    async fn failed(
        &self,
        notification: &Notification,
        status: Option<u16>,
        error: &str,
    ) -> Result<bool, InteractionError> {
        tracing::info!(subscription = %notification.subscription, error, "notification not delivered");
        self.engine
            .notification_failed(notification, &self.id, status, error, &self.config.retry)
            .await
    }

    /// Makes the request; the receiver's status, or why there was none.
    async fn send(&self, notification: &Notification) -> Result<u16, String> {
        let delivery = &notification.delivery;
        let method = Method::from_bytes(delivery.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = Request::builder().method(method).uri(&delivery.url);
        for (name, value) in &delivery.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request =
            request.header(header::USER_AGENT, concat!("imaging-cdr/", env!("CARGO_PKG_VERSION")));
        let body = match &delivery.body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/fhir+json");
                Bytes::from(body.clone())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|error| format!("the notification cannot be made: {error}"))?;
        let response = self.client.request(request).await.map_err(|error| {
            format!("the endpoint could not be reached: {}", crate::error_chain(&error))
        })?;
        Ok(response.status().as_u16())
    }
}

fn subscription_only(type_name: &str, operation: &str) -> Result<(), ApiError> {
    if type_name == "Subscription" {
        return Ok(());
    }
    Err(InteractionError::NotSupported(format!(
        "{operation} is an operation on Subscription, not on {type_name}"
    ))
    .into())
}

/// A query's value of `name`, parsed as an event number.
fn event_number(query: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = query.and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }) else {
        return Ok(None);
    };
    value.parse::<i64>().ok().filter(|number| *number >= 0).map(Some).ok_or_else(|| {
        InteractionError::invalid(format!("{name} must be an event number, not '{value}'")).into()
    })
}

pub(crate) async fn status(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    BaseUrl(base): BaseUrl,
) -> Result<Response, ApiError> {
    subscription_only(&type_name, "$status")?;
    let bundle = state.engine.subscription_status(&id, &base).await?;
    Ok(fhir_json(StatusCode::OK, bundle.to_string()))
}

pub(crate) async fn events(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    subscription_only(&type_name, "$events")?;
    let query = query.as_deref();
    let content = query.and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "content")
            .map(|(_, value)| value.into_owned())
    });
    let full_resource = match content.as_deref() {
        None => None,
        Some("full-resource") => Some(true),
        Some("id-only" | "empty") => Some(false),
        Some(other) => {
            return Err(InteractionError::invalid(format!(
                "content must be empty, id-only or full-resource, not '{other}'"
            ))
            .into());
        }
    };
    let request = EventsQuery {
        since: event_number(query, "eventsSinceNumber")?,
        until: event_number(query, "eventsUntilNumber")?,
        full_resource,
    };
    let bundle = state.engine.subscription_events(&id, request, &base).await?;
    Ok(fhir_json(StatusCode::OK, bundle.to_string()))
}

pub(crate) async fn deliveries(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
) -> Result<Response, ApiError> {
    subscription_only(&type_name, "$deliveries")?;
    let bundle = state.engine.subscription_deliveries(&id).await?;
    Ok(fhir_json(StatusCode::OK, bundle.to_string()))
}

pub(crate) async fn resend(
    Scoped(state): Scoped,
    FhirPath((type_name, id)): FhirPath<(String, String)>,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    subscription_only(&type_name, "$resend")?;
    let Some(since) = event_number(query.as_deref(), "eventsSinceNumber")? else {
        return Err(InteractionError::invalid(
            "$resend needs eventsSinceNumber, the first event to send again",
        )
        .into());
    };
    let bundle = state.engine.resend_events(&id, since, &base).await?;
    Ok(fhir_json(StatusCode::OK, bundle.to_string()))
}
