//! Asking Twilio what became of an attempt whose answer was lost (a timeout, a dead worker),
//! before anything is sent again (invariant 3).

use crate::domain::Origin;
use crate::store::{AttemptRecord, MessageRecord, Store, StoreError};
use crate::twilio::{SendError, TwilioClient, TwilioMessage};

/// Why Twilio could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Twilio did not answer the list request.
    #[error("cannot list messages at Twilio")]
    Twilio(#[from] SendError),
    /// The store could not say whether a candidate's SID is already recorded.
    #[error("cannot look up a candidate's SID")]
    Store(#[from] StoreError),
}

/// What asking Twilio about a lost attempt came to.
#[derive(Debug)]
pub enum Lost {
    /// Twilio has exactly one message that can be this attempt's, and no other message of ours
    /// could be its owner: adopt it.
    Found(Box<TwilioMessage>),
    /// Twilio has no message that can be this attempt's: it never got there.
    NotFound,
    /// More than one message at Twilio could be this attempt's, or another message of ours with
    /// a lost answer could own the one found: picking would be a guess (two messages in flight to
    /// one number could swap SIDs). The status callbacks, which carry our message id, settle it;
    /// until then, ask again later.
    Ambiguous {
        /// Messages at Twilio that fit.
        candidates: usize,
        /// Other messages of ours that could own them.
        rivals: i64,
    },
}

/// What became of `previous` at Twilio: the messages to the same number from the same sender,
/// created at most 5 minutes before the attempt started, with the same body (when it has one),
/// whose SID no message of ours has yet — adopted only when the match is unambiguous.
pub async fn find_lost_attempt(
    twilio: &TwilioClient,
    store: &Store,
    message: &MessageRecord,
    previous: &AttemptRecord,
) -> Result<Lost, ReconcileError> {
    let to = message.to.whatsapp_address();
    // Through a Messaging Service the number is Twilio's choice: list by recipient, keep the
    // service's own.
    let (from, service) = match &message.from {
        Origin::Number(number) => (Some(number.whatsapp_address()), None),
        Origin::Service(sid) => (None, Some(sid.as_str())),
    };
    // Newest first; DateSent is not used because a message still queued at Twilio has none.
    let listed = twilio.list_messages(&to, from.as_deref()).await?;
    let earliest = previous.started_at - 5 * 60_000;
    let mut candidates = Vec::new();
    for candidate in listed {
        let created = candidate.created_at_ms();
        let same_content = message.body.is_none() || candidate.body == message.body;
        let same_sender = service.is_none_or(|sid| candidate.messaging_service_sid.as_deref() == Some(sid));
        if created.is_some_and(|c| c >= earliest) && same_content && same_sender && store.message_by_sid(&candidate.sid).await?.is_none() {
            candidates.push(candidate);
        }
    }
    if candidates.is_empty() {
        return Ok(Lost::NotFound);
    }
    let rivals = store.lost_attempt_rivals(message, earliest).await?;
    if candidates.len() == 1 && rivals == 0 {
        return Ok(Lost::Found(Box::new(candidates.remove(0))));
    }
    Ok(Lost::Ambiguous { candidates: candidates.len(), rivals })
}
