//! What the emulator has seen and done, for tests to assert on ("exactly one create per
//! message", "every callback answered 2xx").

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::behaviour::lock;

/// A snapshot of the counters. Sender and recipient keys are E.164 numbers without the
/// `whatsapp:` prefix (a Messaging Service SID for a sender when `From` was not given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Messages created (answered 201).
    pub messages_created: u64,
    /// Messages created, per sender.
    pub created_by_sender: BTreeMap<String, u64>,
    /// The most messages created from each sender in any one second (by the clock's seconds).
    pub busiest_second_by_sender: BTreeMap<String, u64>,
    /// Messages created, per recipient.
    pub created_by_recipient: BTreeMap<String, u64>,
    /// Messages created in each second of the clock (Unix seconds; all senders together; the
    /// last ten minutes).
    #[serde(default)]
    pub created_by_second: BTreeMap<u64, u64>,
    /// Create requests answered 429 (throttle, rate cap, concurrency cap).
    pub creates_rejected_429: u64,
    /// Create requests answered 500 (injected).
    pub creates_rejected_500: u64,
    /// Create requests answered another 4xx (auth, validation, injected REST errors).
    pub creates_rejected_4xx: u64,
    /// Status callback HTTP attempts, retries and duplicates included.
    pub callbacks_attempted: u64,
    /// Callback attempts answered 2xx.
    pub callbacks_answered_2xx: u64,
    /// Callback attempts answered with another status.
    pub callbacks_answered_non_2xx: u64,
    /// Callback attempts that got no answer (connection refused, timeout…).
    pub callbacks_failed_to_connect: u64,
    /// Callbacks answered 2xx, per `MessageStatus`.
    pub callbacks_delivered_by_status: BTreeMap<String, u64>,
    /// Inbound messages injected.
    pub inbound_injected: u64,
    /// Typing indicators shown (`POST /v2/Indicators/Typing.json`), per incoming message SID.
    #[serde(default)]
    pub typing_indicators: BTreeMap<String, u64>,
}

impl Counters {
    /// Messages created to `recipient` (E.164, a `whatsapp:` prefix is ignored).
    pub fn created_to(&self, recipient: &str) -> u64 {
        self.created_by_recipient.get(crate::model::strip_channel(recipient)).copied().unwrap_or(0)
    }

    /// Callbacks with `status` that were answered 2xx.
    pub fn delivered_callbacks(&self, status: &str) -> u64 {
        self.callbacks_delivered_by_status.get(status).copied().unwrap_or(0)
    }
}

/// How one callback attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Answered2xx,
    AnsweredOther,
    NoAnswer,
}

/// The live counters behind [`Counters`].
#[derive(Debug, Default)]
pub(crate) struct CounterSet {
    inner: Mutex<Counters>,
    /// Creates per sender per Unix second (seconds older than a minute are dropped).
    seconds: Mutex<HashMap<String, BTreeMap<u64, u64>>>,
}

impl CounterSet {
    pub fn snapshot(&self) -> Counters {
        lock(&self.inner).clone()
    }

    pub fn reset(&self) {
        *lock(&self.inner) = Counters::default();
        lock(&self.seconds).clear();
    }

    pub fn created(&self, sender: &str, recipient: &str) {
        let mut c = lock(&self.inner);
        c.messages_created += 1;
        *c.created_by_sender.entry(sender.to_owned()).or_default() += 1;
        let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut seconds = lock(&self.seconds);
        let counts = seconds.entry(sender.to_owned()).or_default();
        let count = counts.entry(second).or_default();
        *count += 1;
        let busiest = c.busiest_second_by_sender.entry(sender.to_owned()).or_default();
        *busiest = (*busiest).max(*count);
        counts.retain(|s, _| s + 60 >= second);
        *c.created_by_second.entry(second).or_default() += 1;
        c.created_by_second.retain(|s, _| s + 600 >= second);
        *c.created_by_recipient.entry(recipient.to_owned()).or_default() += 1;
    }

    pub fn create_rejected(&self, http_status: u16) {
        let mut c = lock(&self.inner);
        match http_status {
            429 => c.creates_rejected_429 += 1,
            500..=599 => c.creates_rejected_500 += 1,
            _ => c.creates_rejected_4xx += 1,
        }
    }

    pub fn callback_attempt(&self, status: &str, outcome: AttemptOutcome) {
        let mut c = lock(&self.inner);
        c.callbacks_attempted += 1;
        match outcome {
            AttemptOutcome::Answered2xx => {
                c.callbacks_answered_2xx += 1;
                *c.callbacks_delivered_by_status.entry(status.to_owned()).or_default() += 1;
            }
            AttemptOutcome::AnsweredOther => c.callbacks_answered_non_2xx += 1,
            AttemptOutcome::NoAnswer => c.callbacks_failed_to_connect += 1,
        }
    }

    pub fn inbound_injected(&self) {
        lock(&self.inner).inbound_injected += 1;
    }

    pub fn typing(&self, sid: &str) {
        *lock(&self.inner).typing_indicators.entry(sid.to_owned()).or_default() += 1;
    }
}
