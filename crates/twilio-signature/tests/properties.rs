//! Properties of `compute` and `validate` over random URLs, parameters, signatures and bodies:
//! what is signed validates, any single change to what was signed does not, parameter order is
//! irrelevant, and no input makes `validate` panic.
//!
//! The seed is fixed (`PROPTEST_RNG_SEED` overrides it) so a failure reproduces; proptest prints
//! the shrunk input.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use twilio_signature::{Payload, compute, hex_sha256, string_to_sign, url_with_port, url_without_port, validate};

const DEFAULT_SEED: u64 = 0x7769_6c69_6f5f_7369; // fixed: the same cases on every run

fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, max_shrink_time: 30_000, ..Config::default() }
}

/// Text as Twilio parameters carry it: ASCII, separators, unicode, control characters, empty.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::string::string_regex(&format!("[a-zA-Z0-9 +&='%_.:/-]{{0,{max}}}")).unwrap(),
        2 => proptest::string::string_regex(&format!("[a-zé中👍 '+\\n\\t\\x00]{{0,{max}}}")).unwrap(),
        1 => proptest::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect()),
    ]
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        3 => proptest::sample::select(vec!["MessageSid", "MessageStatus", "From", "To", "Body", "AccountSid", "Digits"]).prop_map(str::to_owned),
        2 => text(10),
    ];
    proptest::collection::vec((name, text(16)), 0..10)
}

/// URLs with and without port, userinfo, IPv6 hosts, paths and raw queries.
fn url() -> impl Strategy<Value = String> {
    let scheme = proptest::sample::select(vec!["http", "https", "HTTPS"]);
    let userinfo = proptest::option::weighted(0.15, "[a-z]{1,5}(:[a-z0-9]{0,5})?@");
    let host = prop_oneof![
        4 => "[a-z]{1,10}(\\.[a-z]{2,5}){0,2}",
        1 => Just("[::1]".to_owned()),
        1 => Just("127.0.0.1".to_owned()),
    ];
    let port = proptest::option::weighted(0.5, prop_oneof![Just(80u16), Just(443u16), any::<u16>()]);
    let path = "(/[a-zA-Z0-9._~%-]{0,8}){0,4}";
    let query = proptest::option::weighted(0.6, "[a-zA-Z0-9=&+%'!$()*,;:@/?._~-]{0,30}");
    (scheme, userinfo, host, port, path, query).prop_map(|(scheme, userinfo, host, port, path, query)| {
        let mut url = format!("{scheme}://{}{host}", userinfo.unwrap_or_default());
        if let Some(port) = port {
            url.push_str(&format!(":{port}"));
        }
        url.push_str(&path);
        if let Some(query) = query {
            url.push('?');
            url.push_str(&query);
        }
        url
    })
}

/// Strings built from the pieces URL splitting looks at, multibyte characters included.
fn url_like() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(vec![
        "http",
        "https",
        "://",
        ":",
        "@",
        "[",
        "]",
        "/",
        "?",
        "#",
        "&",
        "=",
        "bodySHA256=",
        "a",
        "1",
        "443",
        "é",
        "中",
        "👍",
        "",
        " ",
    ]);
    proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

/// `s` with the character at `index` (modulo its length) replaced by `replacement`, if they
/// differ; appended when `s` is empty.
fn change_one(s: &str, index: usize, replacement: char) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Some(replacement.to_string());
    }
    let i = index % chars.len();
    if chars[i] == replacement {
        return None;
    }
    let mut out = chars;
    out[i] = replacement;
    Some(out.into_iter().collect())
}

/// Whether `validate` may legitimately accept a signature of `signed_url` for `url`: one of the
/// two URLs it tries is the signed one, and the signed text is the same.
fn same_signed_text(signed_url: &str, signed: &[(String, String)], url: &str, params: &[(String, String)]) -> bool {
    [url_without_port(url), url_with_port(url)]
        .iter()
        .any(|candidate| string_to_sign(candidate, params) == string_to_sign(signed_url, signed))
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..40)
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn what_is_signed_validates(token in token(), url in url(), params in params()) {
        let signature = compute(&token, &url, &params);
        prop_assert!(validate(&token, &url, Payload::Form(&params), &signature));
        // Twilio may sign with the default port or without any: both forms validate.
        let with_port = compute(&token, &url_with_port(&url), &params);
        let without_port = compute(&token, &url_without_port(&url), &params);
        prop_assert!(validate(&token, &url, Payload::Form(&params), &with_port), "with port: {}", url_with_port(&url));
        prop_assert!(validate(&token, &url, Payload::Form(&params), &without_port), "without port: {}", url_without_port(&url));
    }

    #[test]
    fn param_order_and_repeats_do_not_matter(token in token(), url in url(), params in params(), seed in any::<u64>()) {
        let signature = compute(&token, &url, &params);
        let mut shuffled = params.clone();
        // A deterministic shuffle from `seed`, plus a repeat of one pair.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        if let Some(first) = shuffled.first().cloned() {
            shuffled.push(first);
        }
        prop_assert_eq!(compute(&token, &url, &shuffled), signature.clone());
        prop_assert!(validate(&token, &url, Payload::Form(&shuffled), &signature));
    }

    #[test]
    fn a_changed_value_name_or_url_is_refused(
        token in token(),
        url in url(),
        params in params().prop_filter("needs a parameter", |p| !p.is_empty()),
        which in 0usize..3,
        pick in any::<usize>(),
        index in any::<usize>(),
        replacement in prop_oneof![any::<char>(), proptest::char::range('a', 'z'), Just('+'), Just(' '), Just('='), Just('&')],
    ) {
        let signature = compute(&token, &url, &params);
        let mut changed_params = params.clone();
        let mut changed_url = url.clone();
        let slot = pick % params.len();
        let changed = match which {
            0 => change_one(&params[slot].1, index, replacement).map(|v| changed_params[slot].1 = v),
            1 => change_one(&params[slot].0, index, replacement).map(|n| changed_params[slot].0 = n),
            _ => change_one(&url, index, replacement).map(|u| changed_url = u),
        };
        prop_assume!(changed.is_some());
        // Only a change that leaves the signed text identical may validate (e.g. changing one of
        // two equal repeated pairs into a third copy of another one).
        prop_assume!(!same_signed_text(&url, &params, &changed_url, &changed_params));
        prop_assert!(
            !validate(&token, &changed_url, Payload::Form(&changed_params), &signature),
            "accepted after a change: url {:?} params {:?}", changed_url, changed_params
        );
    }

    #[test]
    fn a_changed_signature_or_token_is_refused(
        token in token(),
        url in url(),
        params in params(),
        index in any::<usize>(),
        byte in any::<u8>(),
        other_token in token(),
    ) {
        let signature = compute(&token, &url, &params);
        let mut bytes = signature.clone().into_bytes();
        let i = index % bytes.len();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(!validate(&token, &url, Payload::Form(&params), &changed), "{:?}", changed);
        prop_assert!(!validate(&token, &url, Payload::Form(&params), &signature[..signature.len() - 1]));
        let extended = format!("{signature}=");
        prop_assert!(!validate(&token, &url, Payload::Form(&params), &extended));
        prop_assert!(!validate(&token, &url, Payload::Form(&params), ""));
        prop_assume!(other_token != token);
        prop_assert!(!validate(&other_token, &url, Payload::Form(&params), &signature));
    }

    #[test]
    fn a_json_body_validates_through_body_sha256_and_only_unchanged(
        token in token(),
        url in url(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}bodySHA256={}", hex_sha256(&body));
        let no_params: &[(&str, &str)] = &[];
        let signature = compute(&token, &url, no_params);
        prop_assert!(validate::<&str, &str>(&token, &url, Payload::Body(&body), &signature));
        let mut changed = body.clone();
        if changed.is_empty() {
            changed.push(byte);
        } else {
            let i = index % changed.len();
            prop_assume!(changed[i] != byte);
            changed[i] = byte;
        }
        prop_assert!(!validate::<&str, &str>(&token, &url, Payload::Body(&changed), &signature));
    }

    #[test]
    fn validate_never_panics_on_arbitrary_input(
        token in proptest::collection::vec(any::<u8>(), 0..40),
        url in prop_oneof![any::<String>(), url_like(), url()],
        signature in prop_oneof![any::<String>(), "[A-Za-z0-9+/=]{0,40}"],
        params in proptest::collection::vec((any::<String>(), any::<String>()), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = validate(&token, &url, Payload::Form(&params), &signature);
        let _ = validate::<&str, &str>(&token, &url, Payload::Body(&body), &signature);
        let _ = url_with_port(&url);
        let _ = url_without_port(&url);
        let _ = compute(&token, &url, &params);
    }
}
