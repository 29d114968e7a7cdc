//! Status changes and their callbacks: order, params, headers, signatures, failures, the 24-hour
//! window, duplicates, reordering, read receipts and retries.

use std::collections::HashSet;

use twilio_emulator::{Behaviour, EmulatorConfig, Failure, InboundMessage};

use crate::helpers::*;

const TO: &str = "whatsapp:+14155550100";

#[tokio::test]
async fn callbacks_go_sent_delivered_read_with_twilios_params_and_headers() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window("+14155550100");
    let cb = rx.url("/status?tenant=7");
    let sid = sid_of(&t.send_text(TO, Some(&cb)).await.1);
    let calls = rx.wait_for_sid(&sid, 3).await;
    settle().await;
    let calls_after = rx.for_sid(&sid);
    assert_eq!(statuses(&calls_after), ["sent", "delivered", "read"]);
    let mut tokens = HashSet::new();
    for call in &calls {
        assert!(call.signature_valid, "signature over the URL as given, query included");
        assert_eq!(call.path, "/status");
        assert_eq!(call.param("SmsSid"), Some(sid.as_str()));
        assert_eq!(call.param("SmsStatus"), Some(call.status()));
        assert_eq!(call.param("AccountSid"), Some(t.emu.account_sid()));
        assert_eq!(call.param("From"), Some(FROM));
        assert_eq!(call.param("To"), Some(TO));
        assert_eq!(call.param("ApiVersion"), Some("2010-04-01"));
        assert_eq!(call.param("ChannelPrefix"), Some("whatsapp"));
        assert!(is_sid(call.param("ChannelInstallSid").unwrap(), "XE"));
        assert_eq!(call.param("ChannelToAddress"), Some("+14155550100"));
        assert_eq!(call.param("EventType"), (call.status() == "read").then_some("READ"));
        assert_eq!(call.param("ErrorCode"), None);
        assert_eq!(call.header("user-agent"), "TwilioProxy/1.1");
        assert_eq!(call.header("content-type"), "application/x-www-form-urlencoded");
        let token = call.header("i-twilio-idempotency-token");
        assert!(uuid::Uuid::parse_str(token).is_ok(), "{token}");
        tokens.insert(token.to_owned());
    }
    assert_eq!(tokens.len(), 3, "each callback has its own token");
    let (_, fetched) = t.fetch(&sid).await;
    assert_eq!(fetched["status"], "read");
    assert!(fetched["date_sent"].is_string());
    let counters = t.emu.counters();
    for status in ["sent", "delivered", "read"] {
        assert_eq!(counters.delivered_callbacks(status), 1, "{status}");
    }
    assert_eq!((counters.callbacks_attempted, counters.callbacks_answered_2xx), (3, 3));
}

#[tokio::test]
async fn a_failed_injection_sends_failed_30003_and_no_sent() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.set_behaviour("+14155550100", Behaviour { fail: Some(Failure::failed(30003)), ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    rx.wait_for_sid(&sid, 1).await;
    settle().await;
    let calls = rx.for_sid(&sid);
    assert_eq!(statuses(&calls), ["failed"]);
    assert_eq!(calls[0].param("ErrorCode"), Some("30003"));
    assert!(calls[0].param("ChannelStatusMessage").is_some());
    assert!(calls[0].signature_valid);
    let (_, fetched) = t.fetch(&sid).await;
    assert_eq!((fetched["status"].as_str(), fetched["error_code"].as_u64()), (Some("failed"), Some(30003)));
    assert!(fetched["date_sent"].is_null());
}

#[tokio::test]
async fn an_undelivered_injection_sends_sent_then_undelivered() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.set_behaviour(TO, Behaviour { fail: Some(Failure::undelivered(63024)), ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    rx.wait_for_sid(&sid, 2).await;
    settle().await;
    let calls = rx.for_sid(&sid);
    assert_eq!(statuses(&calls), ["sent", "undelivered"]);
    assert_eq!(calls[1].param("ErrorCode"), Some("63024"));
    assert_eq!(t.fetch(&sid).await.1["error_code"], 63024);
}

#[tokio::test]
async fn the_24h_window_fails_free_form_but_not_templates_or_after_an_inbound() {
    let mut config = fast_config();
    let rx = Receiver::start(&config.auth_token).await;
    config.inbound_webhook_url = Some(rx.url("/inbound"));
    let t = start(config).await;
    let cb = rx.url("/status");

    let free = sid_of(&t.send_text(TO, Some(&cb)).await.1);
    let calls = rx.wait_for_sid(&free, 2).await;
    assert_eq!(statuses(&calls), ["sent", "undelivered"]);
    assert_eq!(calls[1].param("ErrorCode"), Some("63016"));

    let (_, body) = t.create(&[("To", TO), ("From", FROM), ("ContentSid", TEMPLATE), ("StatusCallback", &cb)]).await;
    let template = sid_of(&body);
    assert_eq!(statuses(&rx.wait_for_sid(&template, 3).await), ["sent", "delivered", "read"]);

    let inbound = InboundMessage { from: "+14155550100".into(), body: "hi".into(), ..InboundMessage::default() };
    assert_eq!(t.emu.inject_inbound(inbound).await.unwrap().status, 200);
    let after = sid_of(&t.send_text(TO, Some(&cb)).await.1);
    assert_eq!(statuses(&rx.wait_for_sid(&after, 3).await), ["sent", "delivered", "read"]);

    t.emu.set_behaviour(TO, Behaviour { window_open: Some(false), ..Behaviour::default() });
    let forced = sid_of(&t.send_text(TO, Some(&cb)).await.1);
    assert_eq!(statuses(&rx.wait_for_sid(&forced, 2).await), ["sent", "undelivered"]);
}

#[tokio::test]
async fn duplicated_callbacks_arrive_twice_with_the_same_token() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window(TO);
    t.emu.set_behaviour(TO, Behaviour { duplicate_callbacks: true, ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    rx.wait_for_sid(&sid, 6).await;
    settle().await;
    let calls = rx.for_sid(&sid);
    assert_eq!(statuses(&calls), ["sent", "sent", "delivered", "delivered", "read", "read"]);
    for pair in calls.chunks(2) {
        assert!(pair[0].signature_valid && pair[1].signature_valid);
        assert_eq!(pair[0].header("i-twilio-idempotency-token"), pair[1].header("i-twilio-idempotency-token"));
        assert_eq!(pair[0].params, pair[1].params);
    }
    assert_ne!(calls[0].header("i-twilio-idempotency-token"), calls[2].header("i-twilio-idempotency-token"));
    assert_eq!(t.emu.counters().delivered_callbacks("read"), 2);
}

#[tokio::test]
async fn reordered_callbacks_arrive_newest_first_after_the_last_change() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window(TO);
    t.emu.set_behaviour(TO, Behaviour { reorder_callbacks: true, ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    let calls = rx.wait_for_sid(&sid, 3).await;
    assert_eq!(statuses(&calls), ["read", "delivered", "sent"]);
    assert!(calls.iter().all(|c| c.signature_valid));
}

#[tokio::test]
async fn dropped_callbacks_never_come_but_a_fetch_shows_the_status() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window(TO);
    t.emu.set_behaviour(TO, Behaviour { drop_callbacks: true, ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    let read = eventually(|| async { Some(t.fetch(&sid).await.1).filter(|m| m["status"] == "read") }).await;
    assert!(read.is_some(), "the message still goes sent → delivered → read");
    settle().await;
    assert!(rx.for_sid(&sid).is_empty(), "no callback: {:?}", statuses(&rx.for_sid(&sid)));
    assert_eq!(t.emu.counters().callbacks_attempted, 0);
}

#[tokio::test]
async fn read_receipts_off_stops_at_delivered() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window(TO);
    t.emu.set_behaviour(TO, Behaviour { read_receipts: Some(false), ..Behaviour::default() });
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    rx.wait_for_sid(&sid, 2).await;
    settle().await;
    assert_eq!(statuses(&rx.for_sid(&sid)), ["sent", "delivered"]);
    assert_eq!(t.fetch(&sid).await.1["status"], "delivered");

    let t = start(EmulatorConfig { read_receipts: false, enforce_window: false, ..fast_config() }).await;
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    rx.wait_for_sid(&sid, 2).await;
    settle().await;
    assert_eq!(statuses(&rx.for_sid(&sid)), ["sent", "delivered"]);
}

#[tokio::test]
async fn a_callback_answered_500_is_retried_with_the_same_token() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    t.emu.open_window(TO);
    rx.answer_next(&[500]);
    let sid = sid_of(&t.send_text(TO, Some(&rx.url("/status"))).await.1);
    let calls = rx.wait_for_sid(&sid, 4).await;
    assert_eq!(statuses(&calls), ["sent", "sent", "delivered", "read"], "in order, even with the retry");
    assert_eq!(calls[0].answered, 500);
    assert_eq!(calls[0].header("i-twilio-idempotency-token"), calls[1].header("i-twilio-idempotency-token"));
    let counters = eventually(|| async { Some(t.emu.counters()).filter(|c| c.callbacks_attempted == 4) }).await.unwrap();
    assert_eq!((counters.callbacks_answered_non_2xx, counters.callbacks_answered_2xx), (1, 3));
    assert_eq!(counters.delivered_callbacks("sent"), 1);
}

#[tokio::test]
async fn an_unreachable_callback_is_tried_max_attempts_times() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/status", closed.local_addr().unwrap());
    drop(closed);
    let t = start(EmulatorConfig { callback_max_attempts: 2, enforce_window: false, ..fast_config() }).await;
    t.send_text(TO, Some(&url)).await;
    let counters = eventually(|| async { Some(t.emu.counters()).filter(|c| c.callbacks_attempted >= 6) }).await;
    let counters = counters.expect("3 statuses × 2 attempts");
    settle().await;
    let counters_after = t.emu.counters();
    assert_eq!(counters_after, counters);
    assert_eq!((counters.callbacks_failed_to_connect, counters.callbacks_answered_2xx), (6, 0));
}

#[tokio::test]
async fn a_messaging_service_message_goes_accepted_then_queued_with_the_picked_sender() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let cb = rx.url("/status");
    let params = [("To", TO), ("MessagingServiceSid", service), ("ContentSid", TEMPLATE), ("StatusCallback", &cb)];
    let (status, body) = t.create(&params).await;
    assert_eq!((status, body["status"].as_str()), (201, Some("accepted")));
    let calls = rx.wait_for_sid(&sid_of(&body), 4).await;
    assert_eq!(statuses(&calls), ["queued", "sent", "delivered", "read"]);
    assert!(calls.iter().all(|c| c.signature_valid && c.param("From") == Some(FROM)));
    assert_eq!(t.fetch(&sid_of(&body)).await.1["from"], FROM);
}
