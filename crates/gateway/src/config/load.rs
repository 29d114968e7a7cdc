//! Loading the configuration: from the environment (and a `.env` file if present), validated
//! once at start. A bad value fails with one message naming the variable.
//!
//! Every secret can also be given as a file (`TWILIO_AUTH_TOKEN_FILE=/run/secrets/token`), and is
//! held as a [`SecretString`] so that it never reaches a log or a `Debug` print.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::model::{Config, ConfigError, DatabaseConfig, EventsConfig, InboundConfig, PollConfig, RateLimits, TwilioConfig, WorkerConfig};
use crate::domain::{Origin, PhoneNumber, Senders, ServiceSid};

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, reason: reason.into() }
}

/// Where configuration values come from: the process environment, or a map.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// Reads a variable, treating an empty value as unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Reads a secret from `NAME`, or from the file named by `NAME_FILE`.
    fn secret(&self, name: &'static str, file_var: &'static str) -> Result<Option<SecretString>, ConfigError> {
        if let Some(value) = self.var(name) {
            return Ok(Some(SecretString::from(value)));
        }
        let Some(path) = self.var(file_var) else { return Ok(None) };
        let text = std::fs::read_to_string(&path).map_err(|e| invalid(file_var, format!("cannot read {path}: {e}")))?;
        // An empty secret would be a real one: a webhook signed with an empty key would pass.
        match text.trim() {
            "" => Err(invalid(file_var, format!("{path} is empty; remove the variable rather than mount an empty secret"))),
            secret => Ok(Some(SecretString::from(secret.to_owned()))),
        }
    }

    fn parsed<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            Some(text) => text.parse().map_err(|e| invalid(name, format!("{text:?}: {e}"))),
            None => Ok(default),
        }
    }

    fn millis(&self, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default_ms).map(Duration::from_millis)
    }
}

fn http_url(name: &'static str, value: String) -> Result<String, ConfigError> {
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || value.len() < 8 {
        return Err(invalid(name, format!("{value:?} is not an http(s) URL")));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl Config {
    /// Reads the configuration from the environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::load(&Vars(&|name: &str| std::env::var(name).ok()))
    }

    /// Reads the configuration from `vars` only (the environment is ignored): for tests and for
    /// applications that embed the gateway.
    pub fn from_vars(vars: &std::collections::HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::load(&Vars(&|name: &str| vars.get(name).cloned()))
    }

    fn load(v: &Vars<'_>) -> Result<Self, ConfigError> {
        let twilio_timeout = v.millis("TWILIO_TIMEOUT_MS", 15_000)?;
        let twilio = Self::twilio(v, twilio_timeout)?;
        let senders = senders(v, twilio.is_some())?;
        let database_url =
            v.secret("DATABASE_URL", "DATABASE_URL_FILE")?.unwrap_or_else(|| SecretString::from("sqlite://data/gateway.db".to_owned()));
        check_database_url(database_url.expose_secret())?;
        let jwt_public_key_pem = match v.var("JWT_PUBLIC_KEY_FILE") {
            Some(path) => {
                Some(std::fs::read_to_string(&path).map_err(|e| invalid("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}")))?)
            }
            None => None,
        };
        let tls = match (v.var("TLS_CERT_FILE"), v.var("TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => {
                for (name, path) in [("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &key)] {
                    if !Path::new(path).is_file() {
                        return Err(invalid(name, format!("{path} is not a readable file")));
                    }
                }
                Some((PathBuf::from(cert), PathBuf::from(key)))
            }
            (Some(_), None) => return Err(invalid("TLS_KEY_FILE", "is required with TLS_CERT_FILE")),
            (None, Some(_)) => return Err(invalid("TLS_CERT_FILE", "is required with TLS_KEY_FILE")),
            (None, None) => None,
        };
        let redis_url = v.secret("REDIS_URL", "REDIS_URL_FILE")?;
        if let Some(url) = &redis_url
            && !(url.expose_secret().starts_with("redis://") || url.expose_secret().starts_with("rediss://"))
        {
            return Err(invalid("REDIS_URL", "must start with redis:// or rediss://"));
        }
        let api_per_min = v.parsed("RATE_LIMIT_API_PER_MIN", 1000u32)?;
        let rate_limits = RateLimits {
            webhook_per_min: v.parsed("RATE_LIMIT_WEBHOOK_PER_MIN", 200u32)?,
            api_per_min,
            send_per_min: v.parsed("RATE_LIMIT_SEND_PER_MIN", api_per_min)?,
            burst: v.parsed("RATE_LIMIT_BURST", 0u32)?,
        };
        for (name, value) in [
            ("RATE_LIMIT_WEBHOOK_PER_MIN", rate_limits.webhook_per_min),
            ("RATE_LIMIT_API_PER_MIN", rate_limits.api_per_min),
            ("RATE_LIMIT_SEND_PER_MIN", rate_limits.send_per_min),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        let (jwt_secret, jwt_secret_generated) = match v.secret("JWT_SECRET", "JWT_SECRET_FILE")? {
            Some(s) if s.expose_secret().len() < 16 => return Err(invalid("JWT_SECRET", "must be at least 16 characters")),
            Some(s) => (s, false),
            None => (development_jwt_secret(Path::new("data"))?, true),
        };
        let database = DatabaseConfig {
            max_connections: v.parsed("DATABASE_MAX_CONNECTIONS", 8u32)?,
            acquire_timeout: v.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 5_000)?,
            max_batch: v.parsed("WRITER_MAX_BATCH", 512usize)?,
            writers: v.parsed("WRITER_CONNECTIONS", 3usize)?,
        };
        if database.writers == 0 || database.writers > 64 {
            return Err(invalid("WRITER_CONNECTIONS", "must be from 1 to 64"));
        }
        if database.max_connections == 0 {
            return Err(invalid("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if database.max_batch == 0 {
            return Err(invalid("WRITER_MAX_BATCH", "must be at least 1"));
        }
        let worker = WorkerConfig {
            concurrency: v.parsed("WORKER_CONCURRENCY", 4usize)?,
            max_attempts: v.parsed("MAX_ATTEMPTS", 5u32)?,
            retry_base: v.millis("RETRY_BASE_MS", 1_000)?,
            retry_max: v.millis("RETRY_MAX_MS", 300_000)?,
            lease: v.millis("WORKER_LEASE_MS", 60_000)?,
            sender_rate_per_sec: v.parsed("SENDER_RATE_PER_SEC", 80u32)?,
            sender_rates: sender_rates(v, &senders)?,
            poll_interval: v.millis("WORKER_POLL_MS", 1_000)?,
            sweep_interval: v.millis("SWEEPER_INTERVAL_MS", 5_000)?,
            window_check: v.parsed("WHATSAPP_WINDOW_CHECK", true)?,
        };
        if worker.concurrency == 0 || worker.concurrency > 1024 {
            return Err(invalid("WORKER_CONCURRENCY", "must be from 1 to 1024"));
        }
        if worker.max_attempts == 0 {
            return Err(invalid("MAX_ATTEMPTS", "must be at least 1"));
        }
        if worker.sender_rate_per_sec == 0 {
            return Err(invalid("SENDER_RATE_PER_SEC", "must be at least 1"));
        }
        if worker.lease <= twilio_timeout {
            return Err(invalid("WORKER_LEASE_MS", "must be longer than TWILIO_TIMEOUT_MS, or a slow send could be sent twice"));
        }
        let poll = PollConfig {
            after: v.millis("POLL_AFTER_MS", 10 * 60_000)?,
            max_interval: v.millis("POLL_MAX_INTERVAL_MS", 24 * 60 * 60_000)?,
            max_age: v.millis("POLL_MAX_AGE_MS", 3 * 24 * 60 * 60_000)?,
            rate_per_sec: v.parsed("POLL_RATE_PER_SEC", 5u32)?,
        };
        if poll.after.is_zero() {
            return Err(invalid("POLL_AFTER_MS", "must be at least 1"));
        }
        if poll.max_interval < poll.after {
            return Err(invalid("POLL_MAX_INTERVAL_MS", "must be at least POLL_AFTER_MS"));
        }
        let events = EventsConfig {
            url: v.var("EVENTS_URL").map(|v| http_url("EVENTS_URL", v)).transpose()?,
            secret: v.secret("EVENTS_SECRET", "EVENTS_SECRET_FILE")?,
            concurrency: v.parsed("EVENTS_CONCURRENCY", 64usize)?.max(1),
            timeout: v.millis("EVENTS_TIMEOUT_MS", 10_000)?,
            retry_base: v.millis("EVENTS_RETRY_BASE_MS", 5_000)?,
            retry_max: v.millis("EVENTS_RETRY_MAX_MS", 3_600_000)?,
            max_age: v.millis("EVENTS_MAX_AGE_MS", 24 * 3_600_000)?,
            disable_after: v.millis("EVENTS_DISABLE_AFTER_MS", 5 * 24 * 3_600_000)?,
            rotation_grace: v.millis("EVENTS_ROTATION_GRACE_MS", 24 * 3_600_000)?,
            handler_grace: v.millis("EVENTS_HANDLER_GRACE_MS", 30_000)?,
            allow_private_urls: v.parsed("EVENTS_ALLOW_PRIVATE_URLS", false)?,
        };
        if events.timeout.is_zero() {
            return Err(invalid("EVENTS_TIMEOUT_MS", "must be at least 1"));
        }
        if events.retry_max < events.retry_base {
            return Err(invalid("EVENTS_RETRY_MAX_MS", "must be at least EVENTS_RETRY_BASE_MS"));
        }
        Ok(Self {
            database_url,
            database,
            bind_addr: v.parsed("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            public_base_url: v.var("PUBLIC_BASE_URL").map(|v| http_url("PUBLIC_BASE_URL", v)).transpose()?,
            twilio,
            senders,
            twilio_timeout,
            jwt_secret,
            jwt_secret_generated,
            jwt_public_key_pem,
            jwt_audience: v.var("JWT_AUDIENCE"),
            jwt_issuer: v.var("JWT_ISSUER"),
            redis_url,
            redis_prefix: v.var("REDIS_KEY_PREFIX").unwrap_or_else(|| "whatsapp-gateway".into()),
            redis_cluster: v.parsed("REDIS_CLUSTER", false)?,
            tls,
            require_https: v.parsed("REQUIRE_HTTPS", false)?,
            trust_proxy: v.parsed("TRUST_PROXY", false)?,
            rate_limits,
            worker,
            poll,
            events,
            inbound: InboundConfig {
                auto_reply: v.var("AUTO_REPLY_TEXT"),
                forward_url: v.var("INBOUND_FORWARD_URL").map(|v| http_url("INBOUND_FORWARD_URL", v)).transpose()?,
            },
            log_json: v.var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
        })
    }

    fn twilio(v: &Vars<'_>, request_timeout: Duration) -> Result<Option<TwilioConfig>, ConfigError> {
        let account_sid = v.var("TWILIO_ACCOUNT_SID");
        let auth_token = v.secret("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_FILE")?;
        let (account_sid, auth_token) = match (account_sid, auth_token) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(invalid("TWILIO_AUTH_TOKEN", "is required when TWILIO_ACCOUNT_SID is set")),
            (None, Some(_)) => return Err(invalid("TWILIO_ACCOUNT_SID", "is required when TWILIO_AUTH_TOKEN is set")),
            (Some(sid), Some(token)) => (sid, token),
        };
        if !(account_sid.len() == 34 && account_sid.starts_with("AC") && account_sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(invalid("TWILIO_ACCOUNT_SID", "must be AC followed by 32 hex digits"));
        }
        if v.var("TWILIO_WHATSAPP_FROM").is_none() && v.var("TWILIO_MESSAGING_SERVICE_SID").is_none() {
            return Err(invalid(
                "TWILIO_WHATSAPP_FROM",
                "is required with Twilio credentials (your WhatsApp sender, whatsapp:+…), unless TWILIO_MESSAGING_SERVICE_SID is set",
            ));
        }
        let api_base_url =
            http_url("TWILIO_API_BASE_URL", v.var("TWILIO_API_BASE_URL").unwrap_or_else(|| "https://api.twilio.com".into()))?;
        if api_base_url.contains("twilio.com") && v.var("PUBLIC_BASE_URL").is_none() {
            return Err(invalid(
                "PUBLIC_BASE_URL",
                "is required with real Twilio credentials: it is the URL Twilio posts status callbacks and incoming messages to",
            ));
        }
        Ok(Some(TwilioConfig {
            account_sid,
            auth_token,
            secondary_auth_token: v.secret("TWILIO_SECONDARY_AUTH_TOKEN", "TWILIO_SECONDARY_AUTH_TOKEN_FILE")?,
            api_base_url,
            request_timeout,
        }))
    }
}

/// `TWILIO_WHATSAPP_FROM` (a comma-separated list of numbers; the sandbox number with the
/// emulator when unset) and `TWILIO_MESSAGING_SERVICE_SID`.
fn senders(v: &Vars<'_>, real_twilio: bool) -> Result<Senders, ConfigError> {
    let service = v
        .var("TWILIO_MESSAGING_SERVICE_SID")
        .map(|sid| ServiceSid::parse(sid.trim()).map_err(|e| invalid("TWILIO_MESSAGING_SERVICE_SID", e.to_string())))
        .transpose()?;
    let numbers = match v.var("TWILIO_WHATSAPP_FROM") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| PhoneNumber::parse(item).map_err(|e| invalid("TWILIO_WHATSAPP_FROM", format!("{item:?} {e}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None if real_twilio || service.is_some() => Vec::new(),
        None => vec![PhoneNumber::parse("+14155238886").expect("the sandbox number is valid")],
    };
    Senders::new(numbers, service).ok_or_else(|| invalid("TWILIO_WHATSAPP_FROM", "lists no number"))
}

/// `SENDER_RATES`: `sender=rate` pairs, comma-separated, each sender a configured number or the
/// Messaging Service.
fn sender_rates(v: &Vars<'_>, senders: &Senders) -> Result<BTreeMap<String, u32>, ConfigError> {
    let mut rates = BTreeMap::new();
    let Some(list) = v.var("SENDER_RATES") else { return Ok(rates) };
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |why: &str| invalid("SENDER_RATES", format!("{item:?} {why}"));
        let (sender, rate) = item.split_once('=').ok_or_else(|| bad("is not sender=messages-per-second"))?;
        let origin = Origin::parse(sender).map_err(|e| bad(&e.to_string()))?;
        if !senders.contains(&origin) {
            return Err(bad("names a sender that is neither in TWILIO_WHATSAPP_FROM nor TWILIO_MESSAGING_SERVICE_SID"));
        }
        let rate: u32 = rate.trim().parse().ok().filter(|r| *r > 0).ok_or_else(|| bad("needs a rate of at least 1 per second"))?;
        rates.insert(origin.as_str().to_owned(), rate);
    }
    Ok(rates)
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" | "postgres" | "postgresql" => Ok(()),
        other => Err(invalid("DATABASE_URL", format!("unsupported scheme {other:?}: use sqlite://… or postgres://…"))),
    }
}

/// A development JWT secret kept in `dir/jwt-secret`, created on first use, so that `serve` and
/// `token` agree without any configuration.
pub fn development_jwt_secret(dir: &Path) -> Result<SecretString, ConfigError> {
    let path: PathBuf = dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= 16
    {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    let generated = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&path, &generated))
        .map_err(|e| invalid("JWT_SECRET", format!("unset, and the development secret {} cannot be written: {e}", path.display())))?;
    Ok(SecretString::from(generated))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use secrecy::ExposeSecret;

    use super::Config;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_empty_secret_file_is_refused_not_taken_for_a_secret() {
        let path = std::env::temp_dir().join(format!("wg-empty-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, "\n").unwrap();
        let path = path.display().to_string();
        let error = Config::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_SECONDARY_AUTH_TOKEN_FILE", &path),
            ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
            ("PUBLIC_BASE_URL", "https://wa.example.com"),
        ]))
        .unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(error.variable, "TWILIO_SECONDARY_AUTH_TOKEN_FILE");
        assert!(error.reason.contains("is empty"), "{}", error.reason);
    }

    #[test]
    fn secrets_can_come_from_files_and_never_show_in_debug() {
        let dir = std::env::temp_dir().join(format!("wg-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, value: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            path.display().to_string()
        };
        let config = Config::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN_FILE", &file("token", "tok-from-file-123")),
            ("TWILIO_SECONDARY_AUTH_TOKEN_FILE", &file("token2", "second-from-file-456")),
            ("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886"),
            ("PUBLIC_BASE_URL", "https://wa.example.com"),
            ("JWT_SECRET_FILE", &file("jwt", "jwt-secret-from-file-789")),
            ("DATABASE_URL_FILE", &file("db", "postgres://app:db-password-000@db/gw")),
            ("REDIS_URL_FILE", &file("redis", "rediss://:redis-password-111@cache:6380")),
        ]))
        .unwrap();
        let twilio = config.twilio.as_ref().unwrap();
        assert_eq!(twilio.auth_token.expose_secret(), "tok-from-file-123");
        assert_eq!(twilio.secondary_auth_token.as_ref().unwrap().expose_secret(), "second-from-file-456");
        assert_eq!(config.jwt_secret.expose_secret(), "jwt-secret-from-file-789");
        let debug = format!("{config:?}");
        for secret in ["tok-from-file-123", "second-from-file-456", "jwt-secret-from-file-789", "db-password-000", "redis-password-111"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (vec![("JWT_SECRET", "short")], "JWT_SECRET"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("BIND_ADDR", "nowhere")], "BIND_ADDR"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("TWILIO_ACCOUNT_SID", "AC1")], "TWILIO_AUTH_TOKEN"),
            (
                vec![("JWT_SECRET", "long-enough-secret-123"), ("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", "t")],
                "TWILIO_ACCOUNT_SID",
            ),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("WORKER_CONCURRENCY", "0")], "WORKER_CONCURRENCY"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("WORKER_LEASE_MS", "1000")], "WORKER_LEASE_MS"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("REDIS_URL", "http://x")], "REDIS_URL"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("TLS_CERT_FILE", "/nonexistent")], "TLS_KEY_FILE"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("PUBLIC_BASE_URL", "ftp://x")], "PUBLIC_BASE_URL"),
            (vec![("JWT_SECRET", "long-enough-secret-123"), ("TWILIO_WHATSAPP_FROM", "+1")], "TWILIO_WHATSAPP_FROM"),
            (
                vec![
                    ("JWT_SECRET", "long-enough-secret-123"),
                    ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
                    ("TWILIO_AUTH_TOKEN", "t"),
                    ("TWILIO_WHATSAPP_FROM", "+14155238886"),
                ],
                "PUBLIC_BASE_URL",
            ),
        ];
        for (pairs, variable) in cases {
            let error = Config::from_vars(&vars(&pairs)).unwrap_err();
            assert_eq!(error.variable, variable, "{pairs:?}: {error}");
            assert!(error.to_string().starts_with(&format!("invalid configuration: {variable}: ")));
        }
    }

    #[test]
    fn senders_are_a_list_of_numbers_and_a_messaging_service_each_with_an_optional_rate() {
        const MG: &str = "MG0123456789abcdef0123456789abcdef";
        let base = [("JWT_SECRET", "long-enough-secret-123")];
        let config = Config::from_vars(&vars(
            &[&base[..], &[("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886, +14155238887"), ("TWILIO_MESSAGING_SERVICE_SID", MG)]].concat(),
        ))
        .unwrap();
        let numbers: Vec<&str> = config.senders.numbers().iter().map(|n| n.as_e164()).collect();
        assert_eq!(numbers, ["+14155238886", "+14155238887"]);
        assert_eq!(config.senders.service().map(|s| s.as_str()), Some(MG));
        // A service alone is enough, with Twilio credentials too.
        let service_only = Config::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_MESSAGING_SERVICE_SID", MG),
            ("TWILIO_API_BASE_URL", "http://127.0.0.1:9"),
        ]))
        .unwrap();
        assert!(service_only.senders.numbers().is_empty());
        let rates = Config::from_vars(&vars(
            &[
                &base[..],
                &[
                    ("TWILIO_WHATSAPP_FROM", "+14155238886"),
                    ("TWILIO_MESSAGING_SERVICE_SID", MG),
                    ("SENDER_RATES", &format!("+14155238886=40, {MG}=200")),
                ],
            ]
            .concat(),
        ))
        .unwrap();
        let expected: BTreeMap<String, u32> = [("+14155238886".to_owned(), 40), (MG.to_owned(), 200)].into_iter().collect();
        assert_eq!(rates.worker.sender_rates, expected);
        for (pairs, variable, why) in [
            (vec![("TWILIO_WHATSAPP_FROM", "+14155238886,+1")], "TWILIO_WHATSAPP_FROM", "\"+1\""),
            (vec![("TWILIO_MESSAGING_SERVICE_SID", "MG123")], "TWILIO_MESSAGING_SERVICE_SID", "MG followed by 32 hex digits"),
            (vec![("SENDER_RATES", "+14155238899=10")], "SENDER_RATES", "neither in TWILIO_WHATSAPP_FROM"),
            (vec![("SENDER_RATES", "+14155238886=0")], "SENDER_RATES", "at least 1"),
            (vec![("SENDER_RATES", "+14155238886")], "SENDER_RATES", "sender=messages-per-second"),
        ] {
            let error = Config::from_vars(&vars(&[&base[..], &pairs[..]].concat())).unwrap_err();
            assert_eq!(error.variable, variable, "{pairs:?}");
            assert!(error.reason.contains(why), "{pairs:?}: {}", error.reason);
        }
    }
}
