//! Twilio request signatures (`X-Twilio-Signature`).
//!
//! Twilio signs every webhook it sends: HMAC-SHA1, keyed with the account's auth token, over the
//! full URL it called followed by every POST parameter (sorted by name, each name immediately
//! followed by its value, repeated values de-duplicated and sorted), base64-encoded. JSON bodies
//! are covered instead by a `bodySHA256` query parameter (hex SHA-256 of the raw body).
//!
//! [`compute`] produces a signature (the emulator signs its callbacks with it); [`validate`] checks
//! one the way Twilio's official Python library does: the URL is tried both with its port removed
//! and with the scheme's default port added, and the comparison is constant-time.

use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Name of the HTTP header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Computes the base64 signature Twilio would send for a POST to `url` with form `params`.
///
/// Parameters are signed in Twilio's order: names sorted, and for a repeated name its distinct
/// values sorted. `url` is used exactly as given (scheme through query string).
pub fn compute<K, V>(auth_token: &[u8], url: &str, params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token);
    let tag = hmac::sign(&key, string_to_sign(url, params).as_bytes());
    BASE64.encode(tag.as_ref())
}

/// The exact text Twilio signs: the URL followed by each `name` + `value`.
pub fn string_to_sign<K, V>(url: &str, params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = String::with_capacity(url.len() + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    out.push_str(url);
    for (name, value) in pairs {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

/// What a request carried, for validation.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a, K, V> {
    /// A form-encoded body (or a GET): every received parameter, repeats included.
    Form(&'a [(K, V)]),
    /// A JSON (or other non-form) body: checked against the URL's `bodySHA256` parameter, and
    /// the signature covers the URL alone.
    Body(&'a [u8]),
}

/// Checks `signature` for a request to `url` carrying `payload`, as Twilio's official Python
/// library does: valid if the URL with its port removed, or with the default port added, signs to
/// `signature`. For [`Payload::Body`] the body's SHA-256 must also match the URL's `bodySHA256`.
pub fn validate<K, V>(auth_token: &[u8], url: &str, payload: Payload<'_, K, V>, signature: &str) -> bool
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let no_params: &[(&str, &str)] = &[];
    let candidates = [url_without_port(url), url_with_port(url)];
    match payload {
        Payload::Form(params) => candidates.iter().any(|candidate| matches(auth_token, candidate, params, signature)),
        Payload::Body(body) => {
            let body_ok = match query_param(url, "bodySHA256") {
                Some(expected) => constant_time::verify_slices_are_equal(hex_sha256(body).as_bytes(), expected.as_bytes()).is_ok(),
                None => false,
            };
            // Compute both so that timing does not reveal which part failed.
            let sig_ok = candidates.iter().any(|candidate| matches(auth_token, candidate, no_params, signature));
            body_ok && sig_ok
        }
    }
}

fn matches<K: AsRef<str>, V: AsRef<str>>(auth_token: &[u8], url: &str, params: &[(K, V)], signature: &str) -> bool {
    let expected = compute(auth_token, url, params);
    constant_time::verify_slices_are_equal(expected.as_bytes(), signature.as_bytes()).is_ok()
}

/// Lowercase hex SHA-256 of `body`, the value Twilio puts in `bodySHA256`.
pub fn hex_sha256(body: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, body);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of an absolute URL that port handling needs: `scheme://authority` and the rest.
struct SplitUrl<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

fn split_url(url: &str) -> Option<SplitUrl<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    // An IPv6 literal keeps its colons inside brackets.
    let port_sep = match hostport.rfind(']') {
        Some(bracket) => hostport[bracket..].find(':').map(|i| bracket + i),
        None => hostport.rfind(':'),
    };
    let (host, port) = match port_sep {
        Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
        None => (hostport, None),
    };
    Some(SplitUrl { scheme, userinfo, host, port, rest })
}

fn join_url(parts: &SplitUrl<'_>, port: Option<&str>) -> String {
    let mut out = format!("{}://", parts.scheme);
    if let Some(user) = parts.userinfo {
        out.push_str(user);
        out.push('@');
    }
    out.push_str(parts.host);
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    out.push_str(parts.rest);
    out
}

/// `url` without any explicit port.
pub fn url_without_port(url: &str) -> String {
    match split_url(url) {
        Some(parts) => join_url(&parts, None),
        None => url.to_owned(),
    }
}

/// `url` with an explicit port: its own if it has one, else 443 for https and 80 otherwise.
pub fn url_with_port(url: &str) -> String {
    match split_url(url) {
        Some(parts) if parts.port.is_some() => url.to_owned(),
        Some(parts) => {
            let default = if parts.scheme.eq_ignore_ascii_case("https") { "443" } else { "80" };
            join_url(&parts, Some(default))
        }
        None => url.to_owned(),
    }
}

/// The first value of query parameter `name` in `url`, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../tests/signature-vectors.json");

    #[test]
    fn every_official_vector_is_accepted_and_every_altered_one_rejected() {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let token = doc["auth_token"].as_str().unwrap().as_bytes();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 13, "the vector file lost cases");
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let url = case["url"].as_str().unwrap();
            let signature = case["signature"].as_str().unwrap();
            let params: Vec<(String, String)> = case["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
                .collect();
            let valid = match case.get("body").and_then(|b| b.as_str()) {
                Some(body) => validate::<&str, &str>(token, url, Payload::Body(body.as_bytes()), signature),
                None => validate(token, url, Payload::Form(&params), signature),
            };
            assert_eq!(valid, case["valid"].as_bool().unwrap(), "case {name:?}");
        }
    }

    #[test]
    fn doc_worked_example_string_and_signature() {
        let params = [
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ];
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            string_to_sign(url, &params),
            "https://example.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675310Digits1234From+14158675310To+18005551212"
        );
        assert_eq!(compute(b"12345", url, &params), "L/OH5YylLD5NRKLltdqwSvS0BnU=");
    }

    #[test]
    fn wrong_token_is_rejected() {
        let params = [("MessageSid", "SM00000000000000000000000000000000")];
        let url = "http://127.0.0.1:8080/api/v1/whatsapp/status";
        let signature = compute(b"right", url, &params);
        assert!(validate(b"right", url, Payload::Form(&params), &signature));
        assert!(!validate(b"wrong", url, Payload::Form(&params), &signature));
        assert!(!validate(b"right", url, Payload::Form(&params), ""));
    }

    #[test]
    fn port_variants_follow_the_python_library() {
        assert_eq!(url_with_port("https://a.com/x?y=1"), "https://a.com:443/x?y=1");
        assert_eq!(url_with_port("http://a.com"), "http://a.com:80");
        assert_eq!(url_without_port("http://a.com:1234/x"), "http://a.com/x");
        assert_eq!(url_without_port("http://[::1]:8080/x"), "http://[::1]/x");
        assert_eq!(url_with_port("http://[::1]/x"), "http://[::1]:80/x");
        assert_eq!(url_without_port("https://u:p@a.com:443/x"), "https://u:p@a.com/x");
    }
}
