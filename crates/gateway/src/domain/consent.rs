//! Consent carried by an incoming message: STOP and START, as Twilio honours them.

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

    /// The opted-out flag after this change, given the flag before.
    pub fn apply(self, opted_out: bool) -> bool {
        match self {
            Self::None => opted_out,
            Self::OptOut => true,
            Self::OptIn => false,
        }
    }

    /// What the webhook answers to the keyword, if it is one.
    pub fn reply(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::OptOut => Some("You have been unsubscribed and will receive no more messages. Reply START to subscribe again."),
            Self::OptIn => Some("You have been subscribed again. Reply STOP to unsubscribe."),
        }
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

    #[test]
    fn a_keyword_sets_the_flag_and_anything_else_keeps_it() {
        assert!(OptChange::OptOut.apply(false));
        assert!(!OptChange::OptIn.apply(true));
        assert!(OptChange::None.apply(true));
        assert!(!OptChange::None.apply(false));
    }
}
