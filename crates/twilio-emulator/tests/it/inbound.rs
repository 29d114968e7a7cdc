//! Inbound injection and the `/_emulator/` control endpoints.

use serde_json::json;
use twilio_emulator::{Counters, InboundMessage};

use crate::helpers::*;

const CUSTOMER: &str = "+14155550100";

#[tokio::test]
async fn inbound_injection_posts_signed_whatsapp_params_and_opens_the_window() {
    let mut config = fast_config();
    let rx = Receiver::start(&config.auth_token).await;
    config.inbound_webhook_url = Some(rx.url("/whatsapp/inbound"));
    let t = start(config).await;
    let message = InboundMessage {
        from: format!("whatsapp:{CUSTOMER}"),
        body: "Hi there".into(),
        profile_name: Some("Ada".into()),
        media_urls: vec!["https://media.test/photo.png".into()],
        ..InboundMessage::default()
    };
    let delivery = t.emu.inject_inbound(message).await.unwrap();
    assert_eq!((delivery.status, delivery.body.as_str()), (200, TWIML));
    assert!(is_sid(&delivery.message_sid, "MM"), "media gives an MM sid");

    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert!(call.signature_valid);
    assert_eq!(call.path, "/whatsapp/inbound");
    assert_eq!(call.header("user-agent"), "TwilioProxy/1.1");
    let sid = delivery.message_sid.as_str();
    let expected = [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", t.emu.account_sid()),
        ("From", "whatsapp:+14155550100"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "Hi there"),
        ("NumMedia", "1"),
        ("NumSegments", "1"),
        ("MediaUrl0", "https://media.test/photo.png"),
        ("MediaContentType0", "image/png"),
        ("ProfileName", "Ada"),
        ("WaId", "14155550100"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
        ("MessageType", "image"),
    ];
    for (name, value) in expected {
        assert_eq!(call.param(name), Some(value), "{name}");
    }

    let (_, fetched) = t.fetch(sid).await;
    assert_eq!((fetched["direction"].as_str(), fetched["status"].as_str()), (Some("inbound"), Some("received")));

    let cb = rx.url("/status");
    let reply = sid_of(&t.send_text(&format!("whatsapp:{CUSTOMER}"), Some(&cb)).await.1);
    assert_eq!(statuses(&rx.wait_for_sid(&reply, 3).await), ["sent", "delivered", "read"], "the window is open");
    assert_eq!(t.emu.counters().inbound_injected, 1);
}

#[tokio::test]
async fn control_endpoints_set_behaviours_inject_open_windows_and_count() {
    let t = start(fast_config()).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    let cb = rx.url("/status");
    let to = format!("whatsapp:{CUSTOMER}");

    let behaviour = json!({"fail": {"status": "failed", "error_code": 30003}});
    let put = t.http.put(format!("{}/_emulator/behaviours/%2B14155550100", t.base)).json(&behaviour).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let failed = sid_of(&t.send_text(&to, Some(&cb)).await.1);
    assert_eq!(statuses(&rx.wait_for_sid(&failed, 1).await), ["failed"]);
    let bad = t.http.put(format!("{}/_emulator/behaviours/{CUSTOMER}", t.base)).body("{nope").send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let cleared = t.http.delete(format!("{}/_emulator/behaviours", t.base)).send().await.unwrap();
    assert_eq!(cleared.status().as_u16(), 204);
    let opened = t.http.post(format!("{}/_emulator/windows/{CUSTOMER}", t.base)).send().await.unwrap();
    assert_eq!(opened.status().as_u16(), 204);
    let read = sid_of(&t.send_text(&to, Some(&cb)).await.1);
    assert_eq!(statuses(&rx.wait_for_sid(&read, 3).await), ["sent", "delivered", "read"]);

    let inbound_url = rx.url("/inbound");
    let by_json = json!({"From": to, "Body": "json", "webhook_url": inbound_url});
    let (status, answer) = json_of(t.http.post(format!("{}/_emulator/inbound", t.base)).json(&by_json).send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["status"].as_u64(), answer["body"].as_str()), (Some(200), Some(TWIML)));
    assert!(is_sid(answer["message_sid"].as_str().unwrap(), "SM"));
    let form = [("From", to.as_str()), ("Body", "form"), ("MediaUrl", "https://m.test/a.pdf"), ("webhook_url", &inbound_url)];
    let (status, answer) = json_of(t.http.post(format!("{}/_emulator/inbound", t.base)).form(&form).send().await.unwrap()).await;
    assert_eq!((status, answer["status"].as_u64()), (200, Some(200)), "{answer}");
    let inbound: Vec<Received> = rx.calls().into_iter().filter(|c| c.path == "/inbound").collect();
    assert_eq!(inbound.len(), 2);
    assert!(inbound.iter().all(|c| c.signature_valid));
    assert_eq!(inbound[1].param("MediaContentType0"), Some("application/pdf"));
    let no_url = json!({"From": to, "Body": "nowhere"});
    let (status, _) = json_of(t.http.post(format!("{}/_emulator/inbound", t.base)).json(&no_url).send().await.unwrap()).await;
    assert_eq!(status, 400, "no webhook URL configured or given");

    let (status, counters) = t.get("/_emulator/counters").await;
    assert_eq!(status, 200);
    let counters: Counters = serde_json::from_value(counters).unwrap();
    assert_eq!(counters.messages_created, 2);
    assert_eq!(counters.created_to(CUSTOMER), 2);
    assert_eq!(counters.created_by_sender.get("+14155238886"), Some(&2));
    assert_eq!(counters.inbound_injected, 2);
    assert_eq!(counters.delivered_callbacks("failed"), 1);
    assert_eq!(counters.delivered_callbacks("read"), 1);
    let reset = t.http.delete(format!("{}/_emulator/counters", t.base)).send().await.unwrap();
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(t.emu.counters(), Counters::default());
}
