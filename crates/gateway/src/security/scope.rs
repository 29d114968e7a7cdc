//! Token scopes: what a bearer token may do. A token's `scope` claim is a space-separated list
//! (RFC 8693 / OAuth style); a token without the claim keeps full access, so tokens minted before
//! scopes existed go on working. `admin` includes every other scope.

use std::fmt;
use std::str::FromStr;

/// One thing a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send messages (single and batch), and redrive or cancel them.
    MessagesSend,
    /// Read messages, their status, history and attempts.
    MessagesRead,
    /// Read delivery metrics and phone performance.
    MetricsRead,
    /// Manage event endpoints, and read events and their delivery attempts.
    EventsManage,
    /// Everything.
    Admin,
}

impl Scope {
    /// Every scope, in the order the docs list them.
    pub const ALL: [Self; 5] = [Self::MessagesSend, Self::MessagesRead, Self::MetricsRead, Self::EventsManage, Self::Admin];

    /// The scope's name in the `scope` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessagesSend => "messages:send",
            Self::MessagesRead => "messages:read",
            Self::MetricsRead => "metrics:read",
            Self::EventsManage => "events:manage",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a scope the gateway knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?} (known: messages:send, messages:read, metrics:read, events:manage, admin)")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// Parses a space-separated scope list, refusing unknown names (for minting: a typo must not
/// silently mint a token that can do nothing).
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, UnknownScope> {
    list.split_whitespace().map(str::parse).collect()
}

/// Whether a token whose claim is `claim` may act with `scope` (no claim: full access; unknown
/// names in a claim grant nothing).
pub fn grants(claim: Option<&str>, scope: Scope) -> bool {
    match claim {
        None => true,
        Some(list) => list.split_whitespace().any(|name| name == scope.as_str() || name == Scope::Admin.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_grants_its_scopes_admin_grants_all_and_no_claim_keeps_full_access() {
        assert!(grants(None, Scope::MessagesSend));
        assert!(grants(Some("messages:read metrics:read"), Scope::MetricsRead));
        assert!(!grants(Some("messages:read metrics:read"), Scope::MessagesSend));
        assert!(grants(Some("admin"), Scope::MessagesSend));
        assert!(!grants(Some(""), Scope::MessagesRead), "an empty claim grants nothing");
        assert!(!grants(Some("messages:sendx messages"), Scope::MessagesSend), "names match whole");
    }

    #[test]
    fn minting_refuses_unknown_names() {
        assert_eq!(parse_scopes(" messages:send  admin ").unwrap(), [Scope::MessagesSend, Scope::Admin]);
        assert_eq!(parse_scopes("messages:write").unwrap_err(), UnknownScope("messages:write".into()));
    }
}
