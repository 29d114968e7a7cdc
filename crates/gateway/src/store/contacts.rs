//! Incoming messages and the contacts they come from: profile name, WhatsApp id, the last inbound
//! time (which opens the 24-hour customer service window) and the opt-out flag (STOP / START).

use super::rows::{int, opt_int, opt_text, text};
use super::{Store, StoreError};
use crate::domain::status::UnixMillis;
use crate::domain::{MessageId, PhoneNumber};

/// An incoming WhatsApp message, as parsed from Twilio's webhook.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// Twilio's SID.
    pub sid: String,
    /// The user who wrote.
    pub from: PhoneNumber,
    /// Our number they wrote to (E.164 when it parses, else as received).
    pub to: String,
    /// Text.
    pub body: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
    /// WhatsApp id (the number without `+`).
    pub wa_id: Option<String>,
    /// When we received it.
    pub received_at: UnixMillis,
}

/// A change of consent carried by an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptChange {
    /// No keyword.
    None,
    /// STOP and its synonyms.
    OptOut,
    /// START and its synonyms.
    OptIn,
}

impl OptChange {
    /// Reads the opt-out / opt-in keywords Twilio honours (the whole body, case-insensitive).
    pub fn from_body(body: Option<&str>) -> Self {
        let word = body.unwrap_or_default().trim().to_ascii_uppercase();
        match word.as_str() {
            "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE" => Self::OptOut,
            "START" | "YES" | "UNSTOP" | "OPTIN" => Self::OptIn,
            _ => Self::None,
        }
    }

    fn code(self) -> i64 {
        match self {
            Self::None => 0,
            Self::OptOut => 1,
            Self::OptIn => 2,
        }
    }
}

/// Someone who wrote to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Their number.
    pub phone: String,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
    /// WhatsApp id.
    pub wa_id: Option<String>,
    /// When they last wrote (opens the 24-hour window).
    pub last_inbound_at: Option<UnixMillis>,
    /// Whether they asked us to stop.
    pub opted_out: bool,
}

/// What storing an incoming message did.
#[derive(Debug, Clone)]
pub struct InboundOutcome {
    /// Our id of the stored message.
    pub message_id: MessageId,
    /// The same SID was already stored: nothing was changed.
    pub duplicate: bool,
    /// The contact after the update.
    pub contact: Contact,
}

impl Store {
    /// Stores an incoming message (once per SID) and updates its contact, in one transaction.
    pub async fn record_inbound(&self, msg: &InboundMessage, opt: OptChange) -> Result<InboundOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let id = MessageId::new();
        let media = (!msg.media_urls.is_empty()).then(|| serde_json::to_string(&msg.media_urls).unwrap_or_default());
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO messages (id, message_sid, direction, from_addr, to_addr, body, media_urls, status, priority, \
             created_at, last_status_at) VALUES ($1, $2, 'inbound', $3, $4, $5, $6, 'received', 5, $7, $7) \
             ON CONFLICT (message_sid) DO NOTHING RETURNING id",
        )
        .bind(id.to_string())
        .bind(msg.sid.clone())
        .bind(msg.from.as_e164().to_owned())
        .bind(msg.to.clone())
        .bind(msg.body.clone())
        .bind(media)
        .bind(msg.received_at)
        .fetch_optional(&mut *tx)
        .await?;
        let (message_id, duplicate) = match inserted {
            Some(_) => (id, false),
            None => {
                let existing: String =
                    sqlx::query_scalar("SELECT id FROM messages WHERE message_sid = $1").bind(msg.sid.clone()).fetch_one(&mut *tx).await?;
                (existing.parse().map_err(|_| StoreError::Corrupt(existing))?, true)
            }
        };
        if !duplicate {
            sqlx::query(
                "INSERT INTO contacts (phone, profile_name, wa_id, last_inbound_at, opted_out, opted_out_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, CASE WHEN $5 = 1 THEN 1 ELSE 0 END, CASE WHEN $5 = 1 THEN $4 ELSE NULL END, $4, $4) \
                 ON CONFLICT (phone) DO UPDATE SET profile_name = COALESCE(excluded.profile_name, contacts.profile_name), \
                 wa_id = COALESCE(excluded.wa_id, contacts.wa_id), \
                 last_inbound_at = CASE WHEN contacts.last_inbound_at IS NULL OR contacts.last_inbound_at < excluded.last_inbound_at \
                     THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END, \
                 opted_out = CASE WHEN $5 = 1 THEN 1 WHEN $5 = 2 THEN 0 ELSE contacts.opted_out END, \
                 opted_out_at = CASE WHEN $5 = 1 THEN $4 WHEN $5 = 2 THEN NULL ELSE contacts.opted_out_at END, \
                 updated_at = $4",
            )
            .bind(msg.from.as_e164().to_owned())
            .bind(msg.profile_name.clone())
            .bind(msg.wa_id.clone())
            .bind(msg.received_at)
            .bind(opt.code())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let contact = self.contact(msg.from.as_e164()).await?.ok_or_else(|| StoreError::Corrupt("contact vanished".into()))?;
        Ok(InboundOutcome { message_id, duplicate, contact })
    }

    /// A contact by phone number.
    pub async fn contact(&self, phone: &str) -> Result<Option<Contact>, StoreError> {
        let row = sqlx::query("SELECT phone, profile_name, wa_id, last_inbound_at, opted_out FROM contacts WHERE phone = $1")
            .bind(phone.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Contact {
                phone: text(&row, "phone")?,
                profile_name: opt_text(&row, "profile_name")?,
                wa_id: opt_text(&row, "wa_id")?,
                last_inbound_at: opt_int(&row, "last_inbound_at")?,
                opted_out: int(&row, "opted_out")? != 0,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::OptChange;

    #[test]
    fn keywords_are_whole_bodies_case_insensitive() {
        assert_eq!(OptChange::from_body(Some(" stop ")), OptChange::OptOut);
        assert_eq!(OptChange::from_body(Some("Unsubscribe")), OptChange::OptOut);
        assert_eq!(OptChange::from_body(Some("START")), OptChange::OptIn);
        assert_eq!(OptChange::from_body(Some("please stop sending")), OptChange::None);
        assert_eq!(OptChange::from_body(None), OptChange::None);
    }
}
