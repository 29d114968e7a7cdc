//! The REST surface: create shape, auth, validation codes, fetch, list, update, delete.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::helpers::*;

const TO: &str = "whatsapp:+14155550100";

fn assert_rfc2822(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a date string: {value}"));
    assert!(text.ends_with(" +0000"), "{text}");
    OffsetDateTime::parse(text, &Rfc2822).unwrap_or_else(|e| panic!("{text}: {e}"));
}

#[tokio::test]
async fn create_answers_201_with_twilios_message_shape() {
    let t = start(fast_config()).await;
    let (status, body) = t.create(&[("To", TO), ("From", FROM), ("Body", "Hello! 👍")]).await;
    assert_eq!(status, 201, "{body}");
    let sid = sid_of(&body);
    assert!(is_sid(&sid, "SM"), "{sid}");
    let account = t.emu.account_sid();
    let base = format!("/2010-04-01/Accounts/{account}/Messages/{sid}");
    assert_eq!(body["account_sid"], account);
    assert_eq!(body["api_version"], "2010-04-01");
    assert_eq!(body["body"], "Hello! 👍");
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["from"], FROM);
    assert_eq!(body["to"], TO);
    assert_eq!(body["num_segments"], json!("1"));
    assert_eq!(body["num_media"], json!("0"));
    assert_eq!(body["error_code"], Value::Null);
    assert_eq!(body["error_message"], Value::Null);
    assert_eq!(body["price"], Value::Null);
    assert_eq!(body["date_sent"], Value::Null);
    assert_rfc2822(&body["date_created"]);
    assert_rfc2822(&body["date_updated"]);
    assert!(is_sid(body["messaging_service_sid"].as_str().unwrap(), "MG"));
    assert_eq!(body["uri"], format!("{base}.json"));
    assert_eq!(body["subresource_uris"]["media"], format!("{base}/Media.json"));
    assert_eq!(body["subresource_uris"]["feedback"], format!("{base}/Feedback.json"));
    assert_eq!(t.emu.counters().created_to(TO), 1);
}

#[tokio::test]
async fn media_gives_an_mm_sid_and_a_service_gives_accepted_with_null_from() {
    let t = start(fast_config()).await;
    let (status, body) =
        t.create(&[("To", TO), ("From", FROM), ("MediaUrl", "https://x.test/1.png"), ("MediaUrl", "https://x.test/2.jpg")]).await;
    assert_eq!(status, 201, "{body}");
    assert!(is_sid(&sid_of(&body), "MM"));
    assert_eq!(body["num_media"], json!("2"));

    let service = "MG0123456789abcdef0123456789abcdef";
    let (status, body) = t.create(&[("To", TO), ("MessagingServiceSid", service), ("ContentSid", TEMPLATE)]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["from"], Value::Null);
    assert_eq!(body["messaging_service_sid"], service);
}

#[tokio::test]
async fn missing_or_wrong_credentials_answer_401_20003() {
    let t = start(fast_config()).await;
    let expected = json!({"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate",
        "more_info":"https://www.twilio.com/docs/errors/20003","status":401});
    let params = [("To", TO), ("From", FROM), ("Body", "x")];
    let (status, body) = t.create_with(&params, t.emu.account_sid(), "wrong-token").await;
    assert_eq!((status, &body), (401, &expected));
    let (status, body) = t.create_with(&params, "AC11111111111111111111111111111111", t.emu.auth_token()).await;
    assert_eq!((status, &body), (401, &expected));
    let url = format!("{}{}", t.base, t.messages_path());
    let (status, body) = json_of(t.http.post(url).form(&params).send().await.unwrap()).await;
    assert_eq!((status, &body), (401, &expected));
    let (status, body) = json_of(t.http.get(format!("{}{}", t.base, t.messages_path())).send().await.unwrap()).await;
    assert_eq!((status, &body), (401, &expected));
    let counters = t.emu.counters();
    assert_eq!((counters.messages_created, counters.creates_rejected_4xx), (0, 3));
}

#[tokio::test]
async fn each_create_rule_answers_its_twilio_code() {
    let t = start(fast_config()).await;
    let long = "a".repeat(1601);
    let media = "https://x.test/a.png";
    let eleven: Vec<(&str, &str)> = [("To", TO), ("From", FROM)].into_iter().chain(std::iter::repeat_n(("MediaUrl", media), 11)).collect();
    let cases: Vec<(Vec<(&str, &str)>, u32)> = vec![
        (vec![("From", FROM), ("Body", "x")], 21604),
        (vec![("To", TO), ("Body", "x")], 21603),
        (vec![("To", TO), ("From", FROM)], 21602),
        (vec![("To", TO), ("From", FROM), ("Body", "")], 21602),
        (vec![("To", TO), ("From", FROM), ("Body", &long)], 21617),
        (eleven, 21623),
        (vec![("To", TO), ("From", FROM), ("ContentSid", "HX123")], 21655),
        (vec![("To", TO), ("MessagingServiceSid", "MGnope"), ("Body", "x")], 30127),
        (vec![("To", "whatsapp:+1415"), ("From", FROM), ("Body", "x")], 21211),
        (vec![("To", "not a number"), ("From", FROM), ("Body", "x")], 21211),
        (vec![("To", FROM), ("From", FROM), ("Body", "x")], 21266),
    ];
    let total = cases.len() as u64;
    for (params, code) in cases {
        let (status, body) = t.create(&params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert_eq!(body["code"], code, "{params:?}: {body}");
        assert_eq!(body["status"], 400);
        assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "message", "more_info", "status"]);
    }
    let (status, body) = t.create(&[("To", TO), ("From", FROM), ("Body", &"a".repeat(1600))]).await;
    assert_eq!(status, 201, "exactly 1600 characters is allowed: {body}");
    let counters = t.emu.counters();
    assert_eq!((counters.creates_rejected_4xx, counters.messages_created), (total, 1));
}

#[tokio::test]
async fn fetch_returns_the_message_and_404_for_an_unknown_sid() {
    let t = start(fast_config()).await;
    let (_, created) = t.send_text(TO, None).await;
    let sid = sid_of(&created);
    let (status, fetched) = t.fetch(&sid).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["sid"], sid);
    assert_eq!(fetched["body"], "hello");

    let unknown = "SM0123456789abcdef0123456789abcdef";
    let (status, body) = t.fetch(unknown).await;
    let resource = format!("/2010-04-01/Accounts/{}/Messages/{unknown}.json", t.emu.account_sid());
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code":20404,"message":format!("The requested resource {resource} was not found"),
            "more_info":"https://www.twilio.com/docs/errors/20404","status":404})
    );
}

#[tokio::test]
async fn list_filters_by_to_and_follows_next_page_uri_newest_first() {
    let t = start(fast_config()).await;
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.push(sid_of(&t.send_text(TO, None).await.1));
        t.send_text("whatsapp:+14155550199", None).await;
    }
    expected.reverse();

    let mut next = Some(format!("{}?To={}&PageSize=2", t.messages_path(), "whatsapp%3A%2B14155550100"));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    while let Some(uri) = next {
        let (status, page) = t.get(&uri).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["page_size"], 2);
        assert_eq!(page["page"], pages.len());
        assert_eq!(page["start"], seen.len());
        assert!(page["first_page_uri"].as_str().unwrap().ends_with("?To=whatsapp%3A%2B14155550100&PageSize=2&Page=0"));
        for m in page["messages"].as_array().unwrap() {
            assert_eq!(m["to"], TO);
            seen.push(sid_of(m));
        }
        assert_eq!(page["previous_page_uri"].is_null(), pages.is_empty());
        next = page["next_page_uri"].as_str().map(str::to_owned);
        if let Some(uri) = &next {
            assert!(uri.starts_with(&t.messages_path()) && uri.contains("To=whatsapp%3A%2B14155550100&PageSize=2"), "{uri}");
        }
        pages.push(page);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, expected);
    let (_, all) = t.get(&t.messages_path()).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 10);
    assert_eq!(all["page_size"], 50);
}

#[tokio::test]
async fn list_filters_by_date_sent_with_literal_comparison_names() {
    let t = start(fast_config()).await;
    let sid = sid_of(&t.send_text(TO, None).await.1);
    let sent = eventually(|| async { t.fetch(&sid).await.1["date_sent"].as_str().map(str::to_owned) }).await.unwrap();
    let day = OffsetDateTime::parse(&sent, &Rfc2822).unwrap().date();
    let (next_day, prev_day) = (day.next_day().unwrap(), day.previous_day().unwrap());
    let count = |query: String| {
        let t = &t;
        async move {
            let (status, page) = t.get(&format!("{}?{query}", t.messages_path())).await;
            assert_eq!(status, 200, "{page}");
            page["messages"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(format!("DateSent={day}")).await, 1);
    assert_eq!(count(format!("DateSent={next_day}")).await, 0);
    assert_eq!(count(format!("DateSent%3E={day}")).await, 1);
    assert_eq!(count(format!("DateSent%3E={next_day}")).await, 0);
    assert_eq!(count(format!("DateSent%3C={day}")).await, 1);
    assert_eq!(count(format!("DateSent%3C={prev_day}")).await, 0);
    let (_, page) = t.get(&format!("{}?DateSent%3E={day}&PageSize=1", t.messages_path())).await;
    assert!(page["uri"].as_str().unwrap().contains(&format!("DateSent%3E={day}")), "{page}");
}

#[tokio::test]
async fn update_redacts_and_cancels_and_delete_removes() {
    let mut config = fast_config();
    config.delays = twilio_emulator::LifecycleDelays::uniform(std::time::Duration::from_secs(5));
    let t = start(config).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    let cb = rx.url("/status");
    let sid = sid_of(&t.send_text(TO, Some(&cb)).await.1);
    let url = format!("{}/2010-04-01/Accounts/{}/Messages/{sid}.json", t.base, t.emu.account_sid());
    let auth = (t.emu.account_sid(), t.emu.auth_token());
    let post = |form: &'static [(&'static str, &'static str)]| t.http.post(&url).basic_auth(auth.0, Some(auth.1)).form(form).send();
    let (status, body) = json_of(post(&[("Body", "")]).await.unwrap()).await;
    assert_eq!((status, body["body"].as_str()), (200, Some("")));
    let (status, body) = json_of(post(&[("Status", "canceled")]).await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("canceled")));
    let calls = rx.wait_for_sid(&sid, 1).await;
    assert_eq!(statuses(&calls), ["canceled"]);
    assert!(calls[0].signature_valid);
    let (status, body) = json_of(post(&[("Status", "canceled")]).await.unwrap()).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(30409)));

    let deleted = t.http.delete(&url).basic_auth(auth.0, Some(auth.1)).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(t.fetch(&sid).await.0, 404);
}

#[tokio::test]
async fn the_router_works_nested_under_a_prefix() {
    let t = start_router(fast_config(), |router| axum::Router::new().nest("/emulator", router)).await;
    let path = format!("/emulator{}", t.messages_path());
    let url = format!("{}{path}", t.base);
    for _ in 0..2 {
        let response = t
            .http
            .post(&url)
            .basic_auth(t.emu.account_sid(), Some(t.emu.auth_token()))
            .form(&[("To", TO), ("From", FROM), ("Body", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    let (status, page) = t.get(&format!("{path}?PageSize=1")).await;
    assert_eq!(status, 200, "{page}");
    let next = page["next_page_uri"].as_str().unwrap();
    assert!(next.starts_with("/2010-04-01/"), "URIs stay relative to the API root: {next}");
    let (status, second) = t.get(&format!("/emulator{next}")).await;
    assert_eq!((status, second["messages"].as_array().unwrap().len()), (200, 1));
    let (status, counters) = t.get("/emulator/_emulator/counters").await;
    assert_eq!((status, counters["messages_created"].as_u64()), (200, Some(2)));
}
