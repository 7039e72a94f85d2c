//! API versions and their lifecycle headers: `Deprecation` (RFC 9745), `Sunset`
//! (RFC 8594) and the `Link`s that say where to read about them.

use axum::http::{HeaderMap, HeaderValue, header};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Lifecycle;

/// The lifecycle headers of a version; empty for a current one.
pub fn lifecycle_headers(lifecycle: &Lifecycle) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(at) = lifecycle.deprecated_at {
        // RFC 9745: a Structured Field Date, `@` and seconds since the epoch.
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        insert(&mut headers, "deprecation", format!("@{secs}"));
    }
    if let Some(at) = lifecycle.sunset_at {
        // RFC 8594: an HTTP-date.
        insert(&mut headers, "sunset", httpdate::fmt_http_date(at));
    }
    if let Some(docs) = &lifecycle.docs_url {
        if lifecycle.deprecated_at.is_some() {
            append_link(&mut headers, docs, "deprecation");
        }
        if lifecycle.sunset_at.is_some() {
            append_link(&mut headers, docs, "sunset");
        }
    }
    headers
}

/// Whether the version is deprecated (now or in the future): the OpenAPI document
/// marks its operations.
pub fn is_deprecated(lifecycle: &Lifecycle) -> bool {
    lifecycle.deprecated_at.is_some() || lifecycle.sunset_at.is_some()
}

/// Whether the version is past its sunset and should answer 410.
pub fn is_gone(lifecycle: &Lifecycle, now: SystemTime) -> bool {
    lifecycle.sunset_at.is_some_and(|s| now >= s)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

fn append_link(headers: &mut HeaderMap, url: &str, rel: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"{rel}\"; type=\"text/html\"")) {
        headers.append(header::LINK, v);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn headers_have_the_exact_rfc_forms() {
        let lifecycle = Lifecycle {
            deprecated_at: Some(UNIX_EPOCH + Duration::from_secs(1_798_761_600)),
            sunset_at: Some(UNIX_EPOCH + Duration::from_secs(1_814_400_000)),
            docs_url: Some("https://docs.example.com/v1-to-v2".into()),
        };
        let h = lifecycle_headers(&lifecycle);
        assert_eq!(h["deprecation"], "@1798761600");
        assert_eq!(h["sunset"], "Thu, 01 Jul 2027 00:00:00 GMT");
        let links: Vec<_> = h.get_all(header::LINK).iter().collect();
        assert_eq!(
            links,
            [
                "<https://docs.example.com/v1-to-v2>; rel=\"deprecation\"; type=\"text/html\"",
                "<https://docs.example.com/v1-to-v2>; rel=\"sunset\"; type=\"text/html\"",
            ]
        );
        assert!(lifecycle_headers(&Lifecycle::default()).is_empty());
    }

    #[test]
    fn gone_after_the_sunset_only() {
        let at = UNIX_EPOCH + Duration::from_secs(100);
        let l = Lifecycle {
            sunset_at: Some(at),
            ..Lifecycle::default()
        };
        assert!(!is_gone(&l, at - Duration::from_secs(1)));
        assert!(is_gone(&l, at));
        assert!(!is_gone(&Lifecycle::default(), at));
    }
}
