//! The random requests: bodies, content types, query strings and signatures, as bytes and as
//! (mostly well-formed) strings.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::FORM;

#[derive(Debug, Clone)]
pub(super) enum Body {
    Raw(Vec<u8>),
    Form(Vec<(String, String)>),
    Json(BTreeMap<String, String>),
    /// A body over the 64 KiB limit.
    Large(usize),
}

#[derive(Debug, Clone)]
pub(super) enum Signature {
    Missing,
    Text(String),
    Bytes(Vec<u8>),
    /// Correctly signed with the application's token (the JSON case adds `bodySHA256`).
    Valid,
    ValidOtherToken,
    ValidOtherPath,
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) inbound: bool,
    pub(super) body: Body,
    pub(super) content_type: Option<Vec<u8>>,
    pub(super) query: Option<String>,
    pub(super) signature: Signature,
}

fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap()
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::string::string_regex(&format!("[a-zA-Z0-9 +&='%_.:/-]{{0,{max}}}")).unwrap(),
        1 => proptest::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect()),
    ]
}

fn sid() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "SM[0-9a-f]{32}",
        1 => "(SM|MM|SS|)[0-9a-fA-Z]{0,40}",
        1 => text(40),
    ]
}

fn phone() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "whatsapp:\\+1415555[0-9]{4}",
        1 => "(whatsapp:)?\\+?[0-9]{0,16}",
        1 => text(20),
    ]
}

/// Twilio-like webhook parameters: the names the handlers read, with plausible or random values,
/// and random others.
fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let pair = prop_oneof![
        2 => sid().prop_map(|v| ("MessageSid".to_owned(), v)),
        2 => proptest::sample::select(vec!["queued", "sent", "delivered", "read", "failed", "undelivered", "accepted", "bogus", ""])
            .prop_map(|v| ("MessageStatus".to_owned(), v.to_owned())),
        2 => phone().prop_map(|v| ("From".to_owned(), v)),
        1 => phone().prop_map(|v| ("To".to_owned(), v)),
        1 => text(30).prop_map(|v| ("Body".to_owned(), v)),
        1 => prop_oneof![Just("63016".to_owned()), Just("".to_owned()), text(6)].prop_map(|v| ("ErrorCode".to_owned(), v)),
        1 => prop_oneof!["[0-9]{1,3}", text(4)].prop_map(|v| ("NumMedia".to_owned(), v)),
        1 => sid().prop_map(|v| ("SmsSid".to_owned(), v)),
        1 => text(20).prop_map(|v| ("ProfileName".to_owned(), v)),
        2 => (text(12), text(20)),
    ];
    proptest::collection::vec(pair, 0..10)
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.6,
        prop_oneof![
            2 => "[a-zA-Z0-9=&+%'!$()*,;:@/?._~-]{0,40}",
            1 => text(40),
            1 => proptest::sample::select(vec!["mid=0193f7a8-6a38-7c51-8a3b-4bd1d7e2a001", "mid=", "bodySHA256=00", "tenant=acme&&x"])
                .prop_map(str::to_owned),
        ],
    )
}

/// Cases made of arbitrary bytes: body, content type and signature header.
pub(super) fn byte_case() -> impl Strategy<Value = Case> {
    let body = prop_oneof![
        12 => proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Body::Raw),
        1 => (65_537usize..70_000).prop_map(Body::Large),
    ];
    let content_type = proptest::option::weighted(
        0.8,
        prop_oneof![
            2 => proptest::collection::vec(any::<u8>(), 0..60),
            1 => Just(FORM.as_bytes().to_vec()),
            1 => Just(b"application/json".to_vec()),
        ],
    );
    let signature = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Signature::Bytes),
        1 => Just(Signature::Missing),
        1 => Just(Signature::Valid),
    ];
    (any::<bool>(), body, content_type, query(), signature).prop_map(|(inbound, body, content_type, query, signature)| Case {
        inbound,
        body,
        content_type,
        query,
        signature,
    })
}

/// Cases made of strings: well-formed forms and JSON, random content types and signatures.
pub(super) fn string_case() -> impl Strategy<Value = Case> {
    let body = prop_oneof![
        6 => params().prop_map(Body::Form),
        2 => params().prop_map(|p| Body::Json(p.into_iter().collect())),
        2 => text(300).prop_map(|t| Body::Raw(t.into_bytes())),
    ];
    let content_type = proptest::option::weighted(
        0.9,
        prop_oneof![
            4 => Just(FORM.to_owned()),
            1 => Just(format!("{FORM}; charset=utf-8")),
            1 => Just("APPLICATION/X-WWW-FORM-URLENCODED".to_owned()),
            2 => Just("application/json".to_owned()),
            1 => Just("application/json; charset=utf-8".to_owned()),
            1 => proptest::sample::select(vec!["text/plain", "text/xml", "multipart/form-data; boundary=x", "application/octet-stream", ""])
                .prop_map(str::to_owned),
            1 => printable(40),
        ]
        .prop_map(String::into_bytes),
    );
    let signature = prop_oneof![
        4 => Just(Signature::Valid),
        1 => Just(Signature::ValidOtherToken),
        1 => Just(Signature::ValidOtherPath),
        1 => Just(Signature::Missing),
        2 => printable(40).prop_map(Signature::Text),
        1 => "[A-Za-z0-9+/]{27}=".prop_map(Signature::Text),
    ];
    (any::<bool>(), body, content_type, query(), signature).prop_map(|(inbound, body, content_type, query, signature)| Case {
        inbound,
        body,
        content_type,
        query,
        signature,
    })
}
