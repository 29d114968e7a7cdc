//! Every path the gateway serves, in one place (the routers, the rate limiter, the OpenAPI
//! document and the `StatusCallback` URL all name them from here).

/// `POST`: send one message.
pub const SEND: &str = "/api/v1/whatsapp/send";
/// `POST`: send up to 1,000 messages, one result each.
pub const SEND_BATCH: &str = "/api/v1/whatsapp/send/batch";
/// `GET`: a message, its history and attempts.
pub const DELIVERY_STATUS: &str = "/api/v1/whatsapp/delivery-status";
/// `GET`: delivery metrics.
pub const DELIVERY_METRICS: &str = "/api/v1/whatsapp/delivery-metrics";
/// `GET`: list messages.
pub const MESSAGES: &str = "/api/v1/whatsapp/messages";
/// `GET`: one message.
pub const MESSAGE: &str = "/api/v1/whatsapp/messages/{id}";
/// `POST`: redrive one dead-lettered message.
pub const MESSAGE_RETRY: &str = "/api/v1/whatsapp/messages/{id}/retry";
/// `POST`: withdraw a message Twilio does not have yet.
pub const MESSAGE_CANCEL: &str = "/api/v1/whatsapp/messages/{id}/cancel";
/// `POST`: redrive the dead-lettered messages a filter matches.
pub const MESSAGES_RETRY: &str = "/api/v1/whatsapp/messages/retry";
/// `GET`: one phone's performance.
pub const PHONE_PERFORMANCE: &str = "/api/v1/whatsapp/phones/{phone}/performance";
/// `GET`: each sender's pace, counts and health.
pub const SENDERS: &str = "/api/v1/whatsapp/senders";
/// `POST`: show an incoming message's sender that we are typing (and mark it read).
pub const MESSAGE_TYPING: &str = "/api/v1/whatsapp/messages/{id}/typing";
/// `GET`, `POST`: the application's event endpoints.
pub const EVENT_ENDPOINTS: &str = "/api/v1/events/endpoints";
/// `GET`, `PATCH`: one event endpoint.
pub const EVENT_ENDPOINT: &str = "/api/v1/events/endpoints/{endpoint_id}";
/// `GET`: an endpoint's signing secrets.
pub const EVENT_ENDPOINT_SECRET: &str = "/api/v1/events/endpoints/{endpoint_id}/secret";
/// `POST`: give an endpoint a new secret.
pub const EVENT_ENDPOINT_ROTATE: &str = "/api/v1/events/endpoints/{endpoint_id}/rotate-secret";
/// `POST`: deliver an endpoint's failed events again.
pub const EVENT_ENDPOINT_REDRIVE: &str = "/api/v1/events/endpoints/{endpoint_id}/redrive";
/// `GET`: an endpoint's delivery attempts.
pub const EVENT_ENDPOINT_ATTEMPTS: &str = "/api/v1/events/endpoints/{endpoint_id}/attempts";
/// `GET`: events.
pub const EVENTS: &str = "/api/v1/events";
/// `GET`: one event, its deliveries and attempts.
pub const EVENT: &str = "/api/v1/events/{event_id}";
/// `POST`: deliver one event again.
pub const EVENT_REDRIVE: &str = "/api/v1/events/{event_id}/redrive";
/// `POST`: Twilio's status callbacks.
pub const STATUS_CALLBACK: &str = "/api/v1/whatsapp/status";
/// `POST`: Twilio's incoming-message webhook.
pub const INBOUND_WEBHOOK: &str = "/api/v1/whatsapp/webhook";
/// Liveness.
pub const HEALTHZ: &str = "/healthz";
/// Readiness.
pub const READYZ: &str = "/readyz";
/// Prometheus.
pub const METRICS: &str = "/metrics";
/// The OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";
/// The rendered API reference.
pub const DOCS: &str = "/docs";
/// The API reference's renderer (RapiDoc; the version is in the name, so it is cached for good).
pub const DOCS_RENDERER: &str = "/docs/rapidoc-9.3.8.min.js";
/// The dashboard page, its script and its style sheet.
pub const DASHBOARD: &str = "/dashboard";
/// The dashboard's script.
pub const DASHBOARD_SCRIPT: &str = "/dashboard.js";
/// The dashboard's style sheet.
pub const DASHBOARD_STYLE: &str = "/dashboard.css";

/// Whether `path` is one of Twilio's webhooks (authenticated by signature, not by token).
pub fn is_webhook(path: &str) -> bool {
    path == STATUS_CALLBACK || path == INBOUND_WEBHOOK
}
