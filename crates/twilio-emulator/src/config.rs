//! Emulator configuration: one typed struct, filled from defaults and then from `EMULATOR_*`
//! environment variables, validated once when loaded.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// The account SID used when `EMULATOR_ACCOUNT_SID` is unset: a fixed development value.
pub const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The auth token used when `EMULATOR_AUTH_TOKEN` is unset.
pub const DEFAULT_AUTH_TOKEN: &str = "emulator-token";
/// The business WhatsApp number used when an inbound message names no `To` and as the sender
/// a Messaging Service "picks" (Twilio's WhatsApp sandbox number).
pub const DEFAULT_BUSINESS_NUMBER: &str = "+14155238886";

/// When an outbound message changes status, counted from the moment it was created.
///
/// Each delay is an offset from creation, not from the previous status; a delay shorter than the
/// one before it is treated as equal to it, so the order `sent → delivered → read` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleDelays {
    /// Creation → `sent` (or `failed`). Default 50 ms.
    pub to_sent: Duration,
    /// Creation → `delivered` (or `undelivered`). Default 150 ms.
    pub to_delivered: Duration,
    /// Creation → `read`. Default 300 ms.
    pub to_read: Duration,
}

impl Default for LifecycleDelays {
    fn default() -> Self {
        Self { to_sent: Duration::from_millis(50), to_delivered: Duration::from_millis(150), to_read: Duration::from_millis(300) }
    }
}

impl LifecycleDelays {
    /// The same delay `step` between each status: `sent` after `step`, `delivered` after
    /// `2 × step`, `read` after `3 × step`. Handy for tests.
    pub fn uniform(step: Duration) -> Self {
        Self { to_sent: step, to_delivered: step * 2, to_read: step * 3 }
    }
}

/// Everything the emulator can be told at start. Per-recipient overrides are
/// [`Behaviour`](crate::Behaviour)s set at run time.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The one account this emulator serves: `AC` + 32 hex digits (HTTP Basic user name).
    pub account_sid: String,
    /// The account's auth token: HTTP Basic password and the key that signs webhooks.
    pub auth_token: String,
    /// When messages move through `sent`, `delivered` and `read`.
    pub delays: LifecycleDelays,
    /// Enforce WhatsApp's 24-hour customer service window: a free-form message (no `ContentSid`)
    /// to a number that sent no inbound message in the last 24 h ends `undelivered` with 63016.
    pub enforce_window: bool,
    /// Recipients have read receipts on, so delivered messages go on to `read`.
    pub read_receipts: bool,
    /// Create requests allowed per second per sender (`From`, or the Messaging Service); excess
    /// requests get 429 / 20429. 0 turns the cap off.
    pub sender_rate_per_sec: u32,
    /// Create requests allowed in flight at once for the account; excess requests get
    /// 429 / 20429. 0 means unlimited.
    pub max_concurrent_requests: u32,
    /// Share (0.0–1.0) of create requests answered 500 at random, before anything is stored.
    pub error_500_share: f64,
    /// Added before replying to a create, after the message is stored (its lifecycle has begun).
    pub latency: Duration,
    /// Where injected inbound messages are POSTed, unless an injection names its own URL.
    pub inbound_webhook_url: Option<String>,
    /// Attempts per status callback (the first try included) when the receiver answers non-2xx
    /// or cannot be reached. Default 3.
    pub callback_max_attempts: u32,
    /// Wait before the first callback retry; doubled before each further one. Default 100 ms.
    pub callback_retry_backoff: Duration,
    /// Time limit for one webhook request (connect and answer). Default 5 s.
    pub webhook_timeout: Duration,
    /// The business number (E.164) that receives injected inbound messages by default and sends
    /// for a Messaging Service.
    pub business_number: String,
    /// The Messaging Service SID the emulator reports for messages and inbound webhooks that name
    /// none (`EMULATOR_MESSAGING_SERVICE_SID`); default a random `MG…`.
    pub messaging_service_sid: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            account_sid: DEFAULT_ACCOUNT_SID.to_owned(),
            auth_token: DEFAULT_AUTH_TOKEN.to_owned(),
            delays: LifecycleDelays::default(),
            enforce_window: true,
            read_receipts: true,
            sender_rate_per_sec: 80,
            max_concurrent_requests: 0,
            error_500_share: 0.0,
            latency: Duration::ZERO,
            inbound_webhook_url: None,
            callback_max_attempts: 3,
            callback_retry_backoff: Duration::from_millis(100),
            webhook_timeout: Duration::from_secs(5),
            business_number: DEFAULT_BUSINESS_NUMBER.to_owned(),
            messaging_service_sid: None,
        }
    }
}

impl EmulatorConfig {
    /// Defaults overridden by the `EMULATOR_*` environment variables that are set.
    ///
    /// Read: `EMULATOR_ACCOUNT_SID`, `EMULATOR_AUTH_TOKEN`, `EMULATOR_DELAY_SENT_MS`,
    /// `EMULATOR_DELAY_DELIVERED_MS`, `EMULATOR_DELAY_READ_MS`, `EMULATOR_ENFORCE_WINDOW`,
    /// `EMULATOR_READ_RECEIPTS`, `EMULATOR_SENDER_RATE`, `EMULATOR_MAX_CONCURRENT`,
    /// `EMULATOR_ERROR_500_SHARE`, `EMULATOR_LATENCY_MS`, `EMULATOR_INBOUND_WEBHOOK_URL`,
    /// `EMULATOR_CALLBACK_MAX_ATTEMPTS`, `EMULATOR_BUSINESS_NUMBER`, `EMULATOR_MESSAGING_SERVICE_SID`. A value that does not
    /// parse fails with an error naming the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        if let Some(sid) = var("EMULATOR_ACCOUNT_SID") {
            config.account_sid = sid.trim().to_owned();
        }
        if let Some(token) = var("EMULATOR_AUTH_TOKEN") {
            config.auth_token = token;
        }
        let millis = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            var(name).map_or(Ok(default), |v| parse_number::<u64>(name, &v).map(Duration::from_millis))
        };
        config.delays.to_sent = millis("EMULATOR_DELAY_SENT_MS", config.delays.to_sent)?;
        config.delays.to_delivered = millis("EMULATOR_DELAY_DELIVERED_MS", config.delays.to_delivered)?;
        config.delays.to_read = millis("EMULATOR_DELAY_READ_MS", config.delays.to_read)?;
        config.latency = millis("EMULATOR_LATENCY_MS", config.latency)?;
        if let Some(v) = var("EMULATOR_ENFORCE_WINDOW") {
            config.enforce_window = parse_bool("EMULATOR_ENFORCE_WINDOW", &v)?;
        }
        if let Some(v) = var("EMULATOR_READ_RECEIPTS") {
            config.read_receipts = parse_bool("EMULATOR_READ_RECEIPTS", &v)?;
        }
        if let Some(v) = var("EMULATOR_SENDER_RATE") {
            config.sender_rate_per_sec = parse_number("EMULATOR_SENDER_RATE", &v)?;
        }
        if let Some(v) = var("EMULATOR_MAX_CONCURRENT") {
            config.max_concurrent_requests = parse_number("EMULATOR_MAX_CONCURRENT", &v)?;
        }
        if let Some(v) = var("EMULATOR_ERROR_500_SHARE") {
            config.error_500_share = parse_number("EMULATOR_ERROR_500_SHARE", &v)?;
        }
        if let Some(v) = var("EMULATOR_CALLBACK_MAX_ATTEMPTS") {
            config.callback_max_attempts = parse_number("EMULATOR_CALLBACK_MAX_ATTEMPTS", &v)?;
        }
        config.inbound_webhook_url = var("EMULATOR_INBOUND_WEBHOOK_URL").map(|v| v.trim().to_owned());
        if let Some(v) = var("EMULATOR_BUSINESS_NUMBER") {
            config.business_number = v.trim().to_owned();
        }
        config.messaging_service_sid = var("EMULATOR_MESSAGING_SERVICE_SID").map(|v| v.trim().to_owned());
        config.validate().context("invalid emulator configuration")?;
        Ok(config)
    }

    /// Checks the values that have a required shape; the variable name is given for each.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !is_sid(&self.account_sid, "AC") {
            bail!("EMULATOR_ACCOUNT_SID must be AC followed by 32 hex digits, got {:?}", self.account_sid);
        }
        if self.auth_token.is_empty() {
            bail!("EMULATOR_AUTH_TOKEN must not be empty");
        }
        if !(0.0..=1.0).contains(&self.error_500_share) {
            bail!("EMULATOR_ERROR_500_SHARE must be between 0.0 and 1.0, got {}", self.error_500_share);
        }
        if self.callback_max_attempts == 0 {
            bail!("EMULATOR_CALLBACK_MAX_ATTEMPTS must be at least 1");
        }
        if let Some(url) = &self.inbound_webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("EMULATOR_INBOUND_WEBHOOK_URL must be an http(s) URL, got {url:?}");
        }
        if let Some(sid) = &self.messaging_service_sid
            && !is_sid(sid, "MG")
        {
            bail!("EMULATOR_MESSAGING_SERVICE_SID must be MG followed by 32 hex digits, got {sid:?}");
        }
        if crate::model::parse_e164(&self.business_number).is_none() {
            bail!("EMULATOR_BUSINESS_NUMBER must be an E.164 number, got {:?}", self.business_number);
        }
        Ok(())
    }
}

/// `prefix` followed by exactly 32 hex digits.
pub(crate) fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == prefix.len() + 32 && value.starts_with(prefix) && value[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.trim().parse().with_context(|| format!("{name}: cannot parse {value:?} as a number"))
}

fn parse_bool(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name}: expected true or false, got {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<EmulatorConfig> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        EmulatorConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.account_sid, DEFAULT_ACCOUNT_SID);
        assert_eq!(config.auth_token, DEFAULT_AUTH_TOKEN);
        assert_eq!(config.delays, LifecycleDelays::default());
        assert!(config.enforce_window && config.read_receipts);
        assert_eq!(config.sender_rate_per_sec, 80);
        assert_eq!(config.callback_max_attempts, 3);
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let config = load(&[
            ("EMULATOR_DELAY_SENT_MS", "5"),
            ("EMULATOR_ENFORCE_WINDOW", "false"),
            ("EMULATOR_ERROR_500_SHARE", "0.25"),
            ("EMULATOR_INBOUND_WEBHOOK_URL", "http://127.0.0.1:9/in"),
        ])
        .unwrap();
        assert_eq!(config.delays.to_sent, Duration::from_millis(5));
        assert!(!config.enforce_window);
        assert!((config.error_500_share - 0.25).abs() < f64::EPSILON);
        assert_eq!(config.inbound_webhook_url.as_deref(), Some("http://127.0.0.1:9/in"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("EMULATOR_SENDER_RATE", "fast"),
            ("EMULATOR_READ_RECEIPTS", "maybe"),
            ("EMULATOR_ACCOUNT_SID", "AC123"),
            ("EMULATOR_ERROR_500_SHARE", "2"),
        ] {
            let err = format!("{:#}", load(&[(name, value)]).unwrap_err());
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
