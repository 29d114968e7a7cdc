//! Why the store refused a new message: its recipient's row says it cannot be sent as asked.

use crate::domain::UnixMillis;

/// Why a new message was refused (its recipient's row says it cannot be sent as asked); each
/// reads as the reason a person is given, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Free-form content for a contact whose 24-hour window is closed, and no fallback template.
    #[error(
        "{}: free-form content would not be delivered; send an approved template (`content_sid`), or give a `fallback` \
         template to send instead",
        crate::domain::outside_window(*last_inbound_at)
    )]
    OutsideWindow {
        /// When the contact last wrote, if ever.
        last_inbound_at: Option<UnixMillis>,
    },
    /// Twilio refused the recipient's number for good with `code` at `since`, and the message is
    /// not forced.
    #[error(
        "is suppressed: Twilio refused this number with {code} ({}) at {}; it stays suppressed until the contact writes, \
         or send with `\"force\": true` to try it anyway",
        crate::domain::error_codes::describe(*code),
        crate::domain::rfc3339_seconds(*since)
    )]
    Suppressed {
        /// The Twilio error.
        code: i64,
        /// When.
        since: UnixMillis,
    },
}
