//! Where events go: the enabled endpoints and the types each wants, as the writers read them at
//! each batch, and the bell they ring for the dispatcher when a batch with events is committed.

use std::sync::{Arc, RwLock};

use crate::domain::{EventType, EventTypes};

/// The enabled endpoints and the events each wants, as the writers route them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRoutes {
    /// Endpoint id and its event types.
    pub endpoints: Vec<(String, EventTypes)>,
}

impl EventRoutes {
    /// The endpoints that want `t`.
    pub fn wanting(&self, t: EventType) -> Vec<String> {
        self.endpoints.iter().filter(|(_, types)| types.contains(t)).map(|(id, _)| id.clone()).collect()
    }

    /// Whether any endpoint wants `t`.
    pub fn wants(&self, t: EventType) -> bool {
        self.endpoints.iter().any(|(_, types)| types.contains(t))
    }
}

/// The routes the writers read at each batch; the store replaces them when endpoints change.
pub type RoutesCell = Arc<RwLock<Arc<EventRoutes>>>;

/// What the writers share with the dispatcher: the routes they read, and the bell they ring when
/// a batch with events is committed.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    routes: RoutesCell,
    wake: Arc<tokio::sync::Notify>,
    /// Counts the changes to endpoints made through this process (a new secret, a new URL), so
    /// that its dispatcher uses them from its next round.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Outbox {
    /// The routes now.
    pub fn routes(&self) -> Arc<EventRoutes> {
        self.routes.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replaces the routes (the endpoints changed).
    pub fn set_routes(&self, routes: EventRoutes) {
        if let Ok(mut cell) = self.routes.write() {
            *cell = Arc::new(routes);
        }
    }

    /// Rings the bell if a batch just committed wrote events.
    pub(super) fn committed(&self, wrote_events: bool) {
        if wrote_events {
            self.wake.notify_one();
        }
    }

    /// An endpoint changed (created, changed, its secret rotated).
    pub fn endpoints_changed(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many times endpoints changed through this process.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Rings the bell (deliveries became due outside a batch: a redrive).
    pub fn ring(&self) {
        self.wake.notify_one();
    }

    /// Waits for the bell.
    pub async fn rung(&self) {
        self.wake.notified().await;
    }
}
