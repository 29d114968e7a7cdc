//! What arrives from Twilio: status reports and incoming messages (with their contact).

use super::db::{Store, on_pool};
use super::error::StoreError;
use super::messages::unexpected;
use super::records::Contact;
use super::write::command::{ApplyOutcome, Command, InboundOutcome, PollPick, PollTarget, Reply, StatusReport};
use crate::domain::{InboundMessage, OptChange, PhoneNumber};

impl Store {
    /// Applies a status report (usually a Twilio callback) to the message it names. A callback
    /// whose status the message has had a callback for already is a [`ApplyOutcome::Duplicate`].
    pub async fn apply_status(&self, report: StatusReport) -> Result<ApplyOutcome, StoreError> {
        match self.submit(Command::Status(report)).await? {
            Reply::Applied(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Reserves the messages whose news stopped coming that are due to be asked about (at most
    /// `pick.limit`, most overdue first), and sets when each is asked about next: every instance's
    /// poller gets messages of its own.
    pub async fn claim_polls(&self, pick: PollPick) -> Result<Vec<PollTarget>, StoreError> {
        match self.submit(Command::ClaimPolls(pick)).await? {
            Reply::Polls(targets) => Ok(targets),
            other => Err(unexpected(&other)),
        }
    }

    /// Stores an incoming message (once per SID) and updates its contact.
    pub async fn record_inbound(&self, message: InboundMessage, opt: OptChange) -> Result<InboundOutcome, StoreError> {
        match self.submit(Command::Inbound { message: Box::new(message), opt }).await? {
            Reply::Received(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// A contact by phone number.
    pub async fn contact(&self, phone: &PhoneNumber) -> Result<Option<Contact>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM contacts WHERE phone = $1").bind(phone).fetch_optional(pool).await?))
    }
}
