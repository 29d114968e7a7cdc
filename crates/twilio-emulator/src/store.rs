//! The in-memory message store: insertion order (for newest-first lists) and status changes.

use std::collections::HashMap;

use crate::model::{Message, Status, now};

/// Messages by SID, plus the order they were created in.
#[derive(Debug, Default)]
pub(crate) struct Store {
    messages: HashMap<String, Message>,
    order: Vec<String>,
}

/// One status change the lifecycle applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub status: Status,
    pub error_code: Option<u32>,
}

impl Store {
    pub fn insert(&mut self, message: Message) {
        self.order.push(message.sid.clone());
        self.messages.insert(message.sid.clone(), message);
    }

    pub fn get(&self, sid: &str) -> Option<&Message> {
        self.messages.get(sid)
    }

    pub fn get_mut(&mut self, sid: &str) -> Option<&mut Message> {
        self.messages.get_mut(sid)
    }

    pub fn remove(&mut self, sid: &str) -> Option<Message> {
        let removed = self.messages.remove(sid)?;
        self.order.retain(|s| s != sid);
        Some(removed)
    }

    /// Messages, newest first, that `keep` accepts.
    pub fn newest_first<'a>(&'a self, keep: impl Fn(&Message) -> bool + 'a) -> impl Iterator<Item = &'a Message> + 'a {
        self.order.iter().rev().filter_map(|sid| self.messages.get(sid)).filter(move |m| keep(m))
    }

    /// Moves `sid` to the transition's status and returns the updated snapshot; `None` when the
    /// message is gone or already final (canceled, deleted…), which ends its lifecycle.
    pub fn apply(&mut self, sid: &str, transition: Transition) -> Option<Message> {
        let message = self.messages.get_mut(sid)?;
        if message.status.is_final() {
            return None;
        }
        let at = now();
        message.status = transition.status;
        if message.from.is_none() {
            message.from = message.pending_from.take();
        }
        message.date_updated = at;
        if transition.status == Status::Sent {
            message.date_sent = Some(at);
        }
        if let Some(code) = transition.error_code {
            message.error_code = Some(code);
            message.error_message = Some(crate::error::error_text(code).to_owned());
        }
        Some(message.clone())
    }
}
