//! An outbound message's life after the create: a plan of timed status changes, applied to
//! the store on time, and the status callbacks they produce, sent in order (or reversed, or
//! twice) by a separate task so a slow receiver never delays the statuses themselves.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::behaviour::{Behaviour, FailureStatus, lock};
use crate::config::EmulatorConfig;
use crate::model::{API_VERSION, Message, Status, is_whatsapp, strip_channel};
use crate::store::Transition;
use crate::webhook::Webhook;

/// One planned status change, `after` the creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub after: Duration,
    pub transition: Transition,
}

/// What decides a message's path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    pub via_service: bool,
    pub whatsapp: bool,
    pub free_form: bool,
    pub window_open: bool,
}

/// The status changes a new message will go through.
pub(crate) fn plan(config: &EmulatorConfig, behaviour: &Behaviour, facts: Facts) -> Vec<Step> {
    let d = config.delays;
    let to_delivered = d.to_delivered.max(d.to_sent);
    let to_read = d.to_read.max(to_delivered);
    let step = |after, status, error_code| Step { after, transition: Transition { status, error_code } };
    let mut steps = Vec::new();
    if facts.via_service {
        steps.push(step(Duration::ZERO, Status::Queued, None));
    }
    match &behaviour.fail {
        Some(f) if f.status == FailureStatus::Failed => {
            steps.push(step(d.to_sent, Status::Failed, Some(f.error_code)));
            return steps;
        }
        _ => steps.push(step(d.to_sent, Status::Sent, None)),
    }
    let enforce = behaviour.window_open.map_or(config.enforce_window && !facts.window_open, |open| !open);
    let undelivered = match &behaviour.fail {
        Some(f) => Some(f.error_code),
        None if facts.whatsapp && facts.free_form && enforce => Some(63016),
        None => None,
    };
    if let Some(code) = undelivered {
        steps.push(step(to_delivered, Status::Undelivered, Some(code)));
        return steps;
    }
    steps.push(step(to_delivered, Status::Delivered, None));
    if behaviour.read_receipts.unwrap_or(config.read_receipts) {
        steps.push(step(to_read, Status::Read, None));
    }
    steps
}

/// How the callbacks of one message are sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallbackMode {
    pub duplicate: bool,
    pub reorder: bool,
}

/// Counts a running lifecycle until dropped.
struct Active(Arc<std::sync::atomic::AtomicUsize>);

impl Active {
    fn start(shared: &Shared) -> Self {
        shared.active.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(shared.active.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Starts the lifecycle of message `sid` on its own tasks.
pub(crate) fn spawn(shared: Arc<Shared>, sid: String, steps: Vec<Step>, callback_url: Option<String>, mode: CallbackMode) {
    let shutdown = shared.tasks.clone();
    let active = Active::start(&shared);
    tokio::spawn(async move {
        let _active = active;
        tokio::select! {
            () = run(shared, sid, steps, callback_url, mode) => {}
            () = shutdown.cancelled() => {}
        }
    });
}

async fn run(shared: Arc<Shared>, sid: String, steps: Vec<Step>, callback_url: Option<String>, mode: CallbackMode) {
    let start = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = callback_url.map(|url| tokio::spawn(send_callbacks(shared.clone(), url, rx, mode)));
    for step in steps {
        tokio::time::sleep_until(start + step.after).await;
        let Some(snapshot) = lock(&shared.store).apply(&sid, step.transition) else {
            break;
        };
        tracing::debug!(sid = %sid, status = snapshot.status.as_str(), "status changed");
        // A closed channel only means there is no callback URL to send to.
        let _ = tx.send(snapshot);
    }
    drop(tx);
    if let Some(sender) = sender {
        let _ = sender.await;
    }
}

async fn send_callbacks(shared: Arc<Shared>, url: String, mut rx: mpsc::UnboundedReceiver<Message>, mode: CallbackMode) {
    let mut pending = Vec::new();
    while let Some(snapshot) = rx.recv().await {
        let hook = (Webhook::new(url.clone(), status_params(&shared, &snapshot)), snapshot.status);
        if mode.reorder {
            pending.push(hook);
        } else {
            send(&shared, &hook.0, hook.1, mode.duplicate).await;
        }
    }
    for (hook, status) in pending.into_iter().rev() {
        send(&shared, &hook, status, mode.duplicate).await;
    }
}

async fn send(shared: &Shared, hook: &Webhook, status: Status, duplicate: bool) {
    hook.deliver(shared, status.as_str()).await;
    if duplicate {
        hook.deliver(shared, status.as_str()).await;
    }
}

/// Sends one callback for `snapshot` right away (used for `canceled`).
pub(crate) fn spawn_single(shared: Arc<Shared>, snapshot: Message) {
    let Some(url) = snapshot.status_callback.clone() else {
        return;
    };
    let active = Active::start(&shared);
    tokio::spawn(async move {
        let _active = active;
        let hook = Webhook::new(url, status_params(&shared, &snapshot));
        hook.deliver(&shared, snapshot.status.as_str()).await;
    });
}

/// The form params of a status callback, as Twilio sends them for WhatsApp.
pub(crate) fn status_params(shared: &Shared, m: &Message) -> Vec<(String, String)> {
    let status = m.status.as_str();
    let mut params = vec![
        ("MessageSid", m.sid.clone()),
        ("SmsSid", m.sid.clone()),
        ("MessageStatus", status.to_owned()),
        ("SmsStatus", status.to_owned()),
        ("AccountSid", m.account_sid.clone()),
        ("From", m.from.clone().unwrap_or_default()),
        ("To", m.to.clone()),
        ("ApiVersion", API_VERSION.to_owned()),
    ];
    if is_whatsapp(&m.to) {
        params.push(("ChannelPrefix", "whatsapp".to_owned()));
        params.push(("ChannelInstallSid", shared.channel_install_sid.clone()));
        params.push(("ChannelToAddress", strip_channel(&m.to).to_owned()));
    }
    if m.status == Status::Read {
        params.push(("EventType", "READ".to_owned()));
    }
    if matches!(m.status, Status::Failed | Status::Undelivered)
        && let Some(code) = m.error_code
    {
        params.push(("ErrorCode", code.to_string()));
        params.push(("ChannelStatusMessage", crate::error::error_text(code).to_owned()));
    }
    params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::Failure;

    fn statuses(behaviour: &Behaviour, facts: Facts) -> Vec<Status> {
        plan(&EmulatorConfig::default(), behaviour, facts).iter().map(|s| s.transition.status).collect()
    }

    const OPEN: Facts = Facts { via_service: false, whatsapp: true, free_form: true, window_open: true };

    #[test]
    fn a_normal_message_goes_sent_delivered_read() {
        assert_eq!(statuses(&Behaviour::default(), OPEN), [Status::Sent, Status::Delivered, Status::Read]);
    }

    #[test]
    fn a_service_message_is_queued_first() {
        let facts = Facts { via_service: true, ..OPEN };
        assert_eq!(statuses(&Behaviour::default(), facts)[0], Status::Queued);
    }

    #[test]
    fn failures_and_the_window_end_early() {
        let failed = Behaviour { fail: Some(Failure::failed(30003)), ..Behaviour::default() };
        assert_eq!(statuses(&failed, OPEN), [Status::Failed]);
        let closed = Facts { window_open: false, ..OPEN };
        assert_eq!(statuses(&Behaviour::default(), closed), [Status::Sent, Status::Undelivered]);
        let template = Facts { free_form: false, ..closed };
        assert_eq!(statuses(&Behaviour::default(), template).last(), Some(&Status::Read));
        let forced_open = Behaviour { window_open: Some(true), ..Behaviour::default() };
        assert_eq!(statuses(&forced_open, closed).last(), Some(&Status::Read));
    }

    #[test]
    fn read_receipts_off_stops_at_delivered() {
        let off = Behaviour { read_receipts: Some(false), ..Behaviour::default() };
        assert_eq!(statuses(&off, OPEN), [Status::Sent, Status::Delivered]);
    }
}
