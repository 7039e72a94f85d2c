//! Forwarding to an upstream: what is removed from a request (hop-by-hop headers, every
//! identity header, the client's credentials), what is added (`X-Forwarded-*`, the
//! request id, `traceparent`, the identity assertion), and how a forward fails
//! ([`ForwardError`]: the upstream cannot be reached, or does not answer in time; the
//! `refusal` module answers them 502 and 504). Bodies stream both ways; nothing is
//! buffered.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// Identity headers the platform owns. They are removed from every incoming request,
/// whatever its route or its authentication outcome: only the gateway says who a user
/// is, and only in [`oberon_identity::assertion::HEADER`].
pub const IDENTITY_HEADERS: [&str; 9] = [
    oberon_identity::assertion::HEADER,
    "x-oberon-user",
    "x-oberon-roles",
    "x-user",
    "x-user-id",
    "x-forwarded-user",
    "x-remote-user",
    "remote-user",
    "x-authenticated-user",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub type HttpClient = Client<HttpConnector, Body>;

pub fn client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        // Shorter than the services' keep-alive limit, so a pooled connection is never
        // reused just as the upstream closes it.
        .pool_idle_timeout(oberon_config::listen::CLIENT_POOL_IDLE)
        .build(connector)
}

/// Remove hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// What the gateway knows about the hop a request came from.
pub struct Hop {
    pub peer: IpAddr,
    /// The peer is a trusted hop (the CDN): its `X-Forwarded-*` are believed.
    pub trusted: bool,
}

/// The client's address. From an untrusted peer, the peer. From a trusted hop,
/// `X-Forwarded-For` read right to left: each hop appends the address it got the
/// request from, so only entries appended by trusted hops can be believed, and the
/// first entry that is not itself a trusted hop (`is_trusted`) is the client. Whatever
/// is left of it was written by the client and is never read. An entry that is not an
/// address stops the walk at the last address believed.
pub fn client_addr(headers: &HeaderMap, hop: &Hop, is_trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !hop.trusted {
        return hop.peer;
    }
    // A field value that is not text counts as an entry that is not an address.
    let entries: Vec<Option<&str>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(v) => v.split(',').map(Some).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect();
    let mut client = hop.peer;
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry.and_then(|e| e.trim().parse::<IpAddr>().ok()) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Set `X-Forwarded-For`/`-Proto`/`-Host` for the upstream. From an untrusted peer
/// whatever the client sent is replaced, not appended to.
pub fn set_forwarded(headers: &mut HeaderMap, hop: &Hop, host: Option<HeaderValue>) {
    let peer = hop.peer.to_string();
    let xff = if hop.trusted {
        let prior: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prior.join(", "))
        }
    } else {
        peer
    };
    let proto = headers
        .get("x-forwarded-proto")
        .filter(|_| hop.trusted)
        .and_then(|v| v.to_str().ok())
        .filter(|p| matches!(*p, "http" | "https"))
        .unwrap_or("http")
        .to_string();
    let forwarded_host = headers
        .get("x-forwarded-host")
        .filter(|_| hop.trusted)
        .cloned()
        .or(host);
    headers.remove("forwarded");
    headers.remove("x-real-ip");
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(&proto) {
        headers.insert("x-forwarded-proto", v);
    }
    match forwarded_host {
        Some(h) => headers.insert("x-forwarded-host", h),
        None => headers.remove("x-forwarded-host"),
    };
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No response head within the timeout.
    #[error("no response head within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("the upstream could not be reached")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// The request body went over the limit while it streamed.
    #[error("the request body is over the limit")]
    BodyTooLarge,
}

/// Send `request` and wait for the upstream's response head within `timeout`.
pub async fn forward(
    client: &HttpClient,
    request: Request<Body>,
    timeout: Duration,
) -> Result<Response<Body>, ForwardError> {
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(ForwardError::Timeout(timeout)),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(ForwardError::BodyTooLarge);
                }
                source = err.source();
            }
            Err(ForwardError::Unreachable(e))
        }
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Body::new(body)))
        }
    }
}

/// A plain-text answer from the gateway itself; never cached.
pub fn gateway_answer(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_a_trusted_hop() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let untrusted = Hop {
            peer: "192.0.2.1".parse().unwrap(),
            trusted: false,
        };
        let cdn_range = |ip: IpAddr| matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10);
        assert_eq!(client_addr(&h, &untrusted, cdn_range), untrusted.peer);
        let mut out = h.clone();
        set_forwarded(&mut out, &untrusted, None);
        assert_eq!(out["x-forwarded-for"], "192.0.2.1");
        assert_eq!(out["x-forwarded-proto"], "http");

        let cdn = Hop {
            peer: "10.0.0.5".parse().unwrap(),
            trusted: true,
        };
        h.insert("x-forwarded-for", "1.1.1.1, 203.0.113.9".parse().unwrap());
        assert_eq!(client_addr(&h, &cdn, cdn_range).to_string(), "203.0.113.9");
        // Past the trusted hops' own entries (a shield behind an edge), never further.
        for (chain, client) in [
            ("1.1.1.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
            ("1.1.1.1, 203.0.113.9, 10.0.0.7, 10.0.0.6", "203.0.113.9"),
            ("10.0.0.8, 10.0.0.7", "10.0.0.8"),
            ("nonsense, 10.0.0.7", "10.0.0.7"),
            ("", "10.0.0.5"),
        ] {
            let mut chained = HeaderMap::new();
            chained.insert("x-forwarded-for", chain.parse().unwrap());
            assert_eq!(
                client_addr(&chained, &cdn, cdn_range).to_string(),
                client,
                "{chain}"
            );
        }
        set_forwarded(&mut h, &cdn, None);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 203.0.113.9, 10.0.0.5");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
