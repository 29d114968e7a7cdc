//! How requests reach the server: TLS, `REQUIRE_HTTPS`, and the client's address and scheme,
//! believing `X-Forwarded-*` only behind a trusted proxy (`TRUST_PROXY`).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// How requests reach the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransportPolicy {
    /// The server itself terminates TLS.
    pub tls: bool,
    /// Refuse requests that did not arrive over HTTPS.
    pub require_https: bool,
    /// Believe `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub trust_proxy: bool,
}

fn forwarded<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

impl TransportPolicy {
    /// Whether this request arrived over HTTPS (directly, or at a trusted proxy).
    pub fn is_secure(&self, headers: &HeaderMap) -> bool {
        self.tls || (self.trust_proxy && forwarded(headers, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")))
    }

    /// The client's address: the peer, or (behind a trusted proxy) the address the proxy saw,
    /// which is the last entry of `X-Forwarded-For` (earlier entries are the client's own claims).
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_proxy
            && let Some(ip) =
                forwarded(headers, "x-forwarded-for").and_then(|list| list.rsplit(',').next()).and_then(|ip| ip.trim().parse().ok())
        {
            return Some(ip);
        }
        peer.map(|p| p.ip())
    }

    /// The public URL of this request as a trusted proxy describes it (`proto://host`).
    pub fn forwarded_base(&self, headers: &HeaderMap) -> Option<String> {
        if !self.trust_proxy {
            return None;
        }
        let host = forwarded(headers, "x-forwarded-host").or_else(|| forwarded(headers, "host"))?;
        let proto = forwarded(headers, "x-forwarded-proto").unwrap_or(if self.tls { "https" } else { "http" });
        Some(format!("{}://{}", proto.to_ascii_lowercase(), host.split(',').next().unwrap_or(host).trim()))
    }
}
