//! Asking Twilio what became of an attempt whose answer was lost (a timeout, a dead worker),
//! before anything is sent again (invariant 3).

use time::OffsetDateTime;

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

/// The message Twilio created for `previous`, if it did: the newest message to the same number
/// from the same sender, created at most 5 minutes before the attempt started, with the same body
/// (when it has one), whose SID no message of ours has yet.
pub async fn find_lost_attempt(
    twilio: &TwilioClient,
    store: &Store,
    message: &MessageRecord,
    previous: &AttemptRecord,
) -> Result<Option<TwilioMessage>, ReconcileError> {
    let to = message.to.whatsapp_address();
    let from = message.from.whatsapp_address();
    // Newest first; DateSent is not used because a message still queued at Twilio has none.
    let candidates = twilio.list_messages(&to, &from).await?;
    let earliest = previous.started_at - 5 * 60_000;
    for candidate in candidates {
        let created = candidate
            .date_created
            .as_deref()
            .and_then(|d| OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok())
            .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64);
        let same_content = message.body.is_none() || candidate.body == message.body;
        if created.is_some_and(|c| c >= earliest) && same_content && store.message_by_sid(&candidate.sid).await?.is_none() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}
