//! Event endpoints as the application manages them (create, list, change, disable, rotate the
//! secret, redrive) and the events and attempts it can look at; and the endpoints the
//! configuration names (`EVENTS_URL`, `INBOUND_FORWARD_URL`, the inbound handlers).

use super::error::GatewayError;
use super::gateway::Gateway;
use crate::config::{EventsConfig, InboundConfig};
use crate::domain::{EventType, EventTypes, UnixMillis, now_ms};
use crate::security::WebhookSecret;
use crate::store::events::{
    DeliveryRecord, EndpointPatch, EndpointRecord, EventAttemptRecord, EventFilter, EventRecord, HANDLERS_ENDPOINT, NewEndpoint,
    ORIGIN_API, ORIGIN_CONFIG, ORIGIN_INTERNAL,
};

/// The id of the `EVENTS_URL` endpoint.
pub const CONFIG_EVENTS_ENDPOINT: &str = "config-events";
/// The id of the `INBOUND_FORWARD_URL` endpoint.
pub const CONFIG_FORWARD_ENDPOINT: &str = "config-inbound-forward";

/// An event with its deliveries and their attempts.
#[derive(Debug, Clone)]
pub struct EventDetail {
    /// The event.
    pub event: EventRecord,
    /// One per endpoint it went to.
    pub deliveries: Vec<DeliveryRecord>,
    /// Every attempt, newest first.
    pub attempts: Vec<EventAttemptRecord>,
}

impl Gateway {
    /// Makes the stored configured endpoints match the configuration, then loads the routes.
    pub async fn configure_endpoints(&self, events: &EventsConfig, inbound: &InboundConfig) -> Result<(), GatewayError> {
        let store = self.store();
        let now = now_ms();
        let configured = super::dispatch::configured_secret(events);
        let mut keep = Vec::new();
        let mut upsert = async |id: &'static str, url: &str, types: EventTypes, description: &str, origin: &'static str| {
            let secret = configured.clone().unwrap_or_else(|| WebhookSecret::generate().to_text());
            let endpoint = NewEndpoint {
                id: id.to_owned(),
                url: url.to_owned(),
                description: Some(description.to_owned()),
                event_types: types,
                secret,
                origin,
            };
            keep.push(id);
            store.upsert_config_endpoint(&endpoint, configured.is_some(), now).await
        };
        if let Some(url) = &events.url {
            upsert(CONFIG_EVENTS_ENDPOINT, url, EventTypes::all(), "EVENTS_URL", ORIGIN_CONFIG).await?;
        }
        if let Some(url) = &inbound.forward_url {
            let types = EventTypes::none().with(EventType::MessageReceived);
            upsert(CONFIG_FORWARD_ENDPOINT, url, types, "INBOUND_FORWARD_URL", ORIGIN_CONFIG).await?;
        }
        if self.handlers_active() {
            let types = EventTypes::none().with(EventType::MessageReceived);
            upsert(HANDLERS_ENDPOINT, "", types, "the gateway's inbound handlers and auto-reply", ORIGIN_INTERNAL).await?;
        }
        store.retire_config_endpoints(&keep, now).await?;
        store.refresh_event_routes().await?;
        Ok(())
    }

    /// Adds an endpoint; without a secret, one is generated (the answer shows it).
    pub async fn create_endpoint(
        &self,
        url: String,
        description: Option<String>,
        event_types: EventTypes,
        secret: Option<WebhookSecret>,
    ) -> Result<EndpointRecord, GatewayError> {
        self.check_destination(&url)?;
        let endpoint = NewEndpoint {
            id: format!("ep_{}", uuid::Uuid::now_v7().simple()),
            url,
            description,
            event_types,
            secret: secret.unwrap_or_else(WebhookSecret::generate).to_text(),
            origin: ORIGIN_API,
        };
        Ok(self.store().create_endpoint(&endpoint, now_ms()).await?)
    }

    /// Refuses a URL whose host is plainly inside the gateway's network (a loopback, private or
    /// link-local address, `localhost`) unless `EVENTS_ALLOW_PRIVATE_URLS`; a name that resolves
    /// to one is refused at each delivery attempt.
    fn check_destination(&self, url: &str) -> Result<(), GatewayError> {
        if self.events_config().allow_private_urls {
            return Ok(());
        }
        let parsed = reqwest::Url::parse(url).ok();
        let host = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let internal = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => crate::security::destination::is_internal(ip),
            Err(_) => host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost"),
        };
        if internal {
            return Err(GatewayError::Refused {
                field: "url",
                reason: format!(
                    "points inside the gateway's own network ({url}): refused unless EVENTS_ALLOW_PRIVATE_URLS=true (an endpoint \
                     from EVENTS_URL may point anywhere)"
                ),
            });
        }
        Ok(())
    }

    /// The endpoints (the gateway's internal one left out).
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, GatewayError> {
        Ok(self.store().endpoints().await?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<EndpointRecord, GatewayError> {
        self.store()
            .endpoint(id)
            .await?
            .filter(|e| e.origin != ORIGIN_INTERNAL)
            .ok_or_else(|| GatewayError::NotFound(format!("no event endpoint with id {id}")))
    }

    /// Changes an endpoint (enabling it again forgets its failures).
    pub async fn update_endpoint(&self, id: &str, patch: &EndpointPatch) -> Result<EndpointRecord, GatewayError> {
        let current = self.endpoint(id).await?;
        if current.origin == ORIGIN_CONFIG && (patch.url.is_some() || patch.event_types.is_some()) {
            return Err(GatewayError::Refused {
                field: if patch.url.is_some() { "url" } else { "event_types" },
                reason: format!("{id} comes from the configuration ({}): change it there", current.description.unwrap_or_default()),
            });
        }
        if let Some(url) = &patch.url {
            self.check_destination(url)?;
        }
        self.store()
            .update_endpoint(id, patch, now_ms())
            .await?
            .ok_or_else(|| GatewayError::NotFound(format!("no event endpoint with id {id}")))
    }

    /// Gives an endpoint a new secret (`secret`, or a generated one); the old one signs beside it
    /// for `grace_ms` (default `EVENTS_ROTATION_GRACE_MS`), so the application can switch over.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &str,
        secret: Option<WebhookSecret>,
        grace_ms: Option<i64>,
    ) -> Result<EndpointRecord, GatewayError> {
        let current = self.endpoint(id).await?;
        if current.origin == ORIGIN_CONFIG && super::dispatch::configured_secret(self.events_config()).is_some() {
            return Err(GatewayError::Refused {
                field: "secret",
                reason: format!("{id} is signed with EVENTS_SECRET: rotate it in the configuration"),
            });
        }
        let now = now_ms();
        let grace = grace_ms.unwrap_or_else(|| i64::try_from(self.events_config().rotation_grace.as_millis()).unwrap_or(i64::MAX / 4));
        let secret = secret.unwrap_or_else(WebhookSecret::generate).to_text();
        self.store()
            .rotate_endpoint_secret(id, &secret, now.saturating_add(grace), now)
            .await?
            .ok_or_else(|| GatewayError::NotFound(format!("no event endpoint with id {id}")))
    }

    /// Delivers again every failed delivery to an endpoint; returns how many.
    pub async fn redrive_endpoint(&self, id: &str) -> Result<u64, GatewayError> {
        self.endpoint(id).await?;
        Ok(self.store().redrive_endpoint(id, now_ms()).await?)
    }

    /// Events matching `filter`, newest first, with their deliveries.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<(EventRecord, Vec<DeliveryRecord>)>, GatewayError> {
        let events = self.store().list_events(filter).await?;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let mut deliveries = self.store().deliveries(&ids).await?;
        Ok(events
            .into_iter()
            .map(|e| {
                let mine = deliveries.extract_if(.., |d| d.event_id == e.id).collect();
                (e, mine)
            })
            .collect())
    }

    /// One event, its deliveries and every attempt.
    pub async fn event(&self, id: &str) -> Result<EventDetail, GatewayError> {
        let event = self.store().event(id).await?.ok_or_else(|| GatewayError::NotFound(format!("no event with id {id}")))?;
        let deliveries = self.store().deliveries(std::slice::from_ref(&event.id)).await?;
        let attempts = self.store().event_attempts(Some(id), None, 1000).await?;
        Ok(EventDetail { event, deliveries, attempts })
    }

    /// Delivers an event again (to one endpoint, or every one it failed at); returns how many
    /// deliveries were redriven.
    pub async fn redrive_event(&self, id: &str, endpoint_id: Option<&str>) -> Result<u64, GatewayError> {
        let detail = self.event(id).await?;
        if let Some(endpoint) = endpoint_id
            && !detail.deliveries.iter().any(|d| d.endpoint_id == endpoint)
        {
            return Err(GatewayError::NotFound(format!("event {id} was not for endpoint {endpoint}")));
        }
        Ok(self.store().redrive_event(id, endpoint_id, now_ms()).await?)
    }

    /// An endpoint's latest delivery attempts, newest first.
    pub async fn endpoint_attempts(&self, id: &str, limit: i64) -> Result<Vec<EventAttemptRecord>, GatewayError> {
        self.endpoint(id).await?;
        Ok(self.store().event_attempts(None, Some(id), limit).await?)
    }
}

/// When a previous secret stops signing, if it still does at `now`.
pub fn previous_secret_until(endpoint: &EndpointRecord, now: UnixMillis) -> Option<UnixMillis> {
    endpoint.previous_secret_until.filter(|until| *until > now && endpoint.previous_secret.is_some())
}
