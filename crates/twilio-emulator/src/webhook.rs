//! Outgoing webhooks: form POSTs signed the way Twilio signs them, with Twilio's headers, and
//! retried when the receiver answers non-2xx or cannot be reached.

use std::time::Duration;

use crate::Shared;
use crate::counters::AttemptOutcome;

/// A webhook to send: the URL exactly as given (it is what gets signed) and the form params.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub params: Vec<(String, String)>,
    /// `I-Twilio-Idempotency-Token`: the same on every retry and duplicate of this webhook.
    pub idempotency_token: String,
}

/// What the receiver answered.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

impl Webhook {
    pub fn new(url: String, params: Vec<(String, String)>) -> Self {
        Self { url, params, idempotency_token: uuid::Uuid::new_v4().to_string() }
    }

    /// One signed POST.
    pub async fn post(&self, shared: &Shared) -> Result<Answer, reqwest::Error> {
        let signature = twilio_signature::compute(shared.config.auth_token.as_bytes(), &self.url, &self.params);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish();
        let response = shared
            .http
            .post(&self.url)
            .header(twilio_signature::SIGNATURE_HEADER, signature)
            .header("I-Twilio-Idempotency-Token", &self.idempotency_token)
            .header("User-Agent", "TwilioProxy/1.1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "*/*")
            .header("X-Home-Region", "us1")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Answer { status, body })
    }

    /// Sends a status callback, retrying up to `callback_max_attempts` times with a doubling
    /// backoff; every attempt is counted under `status`. Returns whether it was answered 2xx.
    pub async fn deliver(&self, shared: &Shared, status: &str) -> bool {
        let attempts = shared.config.callback_max_attempts.max(1);
        let mut backoff = shared.config.callback_retry_backoff;
        for attempt in 1..=attempts {
            let outcome = match self.post(shared).await {
                Ok(answer) if (200..300).contains(&answer.status) => AttemptOutcome::Answered2xx,
                Ok(answer) => {
                    tracing::debug!(url = %self.url, status, http_status = answer.status, attempt, "callback answered non-2xx");
                    AttemptOutcome::AnsweredOther
                }
                Err(error) => {
                    tracing::debug!(url = %self.url, status, attempt, %error, "callback failed");
                    AttemptOutcome::NoAnswer
                }
            };
            shared.counters.callback_attempt(status, outcome);
            if outcome == AttemptOutcome::Answered2xx {
                return true;
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tracing::warn!(url = %self.url, status, attempts, "callback gave up");
        false
    }
}
