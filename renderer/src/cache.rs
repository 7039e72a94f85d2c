//! The caching headers of a rendered page: how the CDN and the browser may keep it.
//!
//! The browser-facing `Cache-Control` stays conservative for pages; the CDN's policy
//! goes in `CDN-Cache-Control` and `Surrogate-Control`. The fleet-mode adaptation,
//! surrogate keys and validators of the design's caching contract build on this.

use http::HeaderValue;

use crate::component::Cacheability;

/// The most a partial render (one that used a fallback) may be cached at the CDN.
pub const PARTIAL_TTL_S: u32 = 30;

/// Caching headers for one page response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCacheHeaders {
    pub cache_control: HeaderValue,
    /// `CDN-Cache-Control` and `Surrogate-Control`; absent when nothing may be shared.
    pub cdn: Option<HeaderValue>,
}

/// Decide the headers from the page's effective class, its base TTL, whether a
/// fallback was used and whether the render succeeded.
pub fn page_cache_headers(
    class: Cacheability,
    ttl_s: u32,
    partial: bool,
    ok: bool,
) -> PageCacheHeaders {
    if !ok {
        return PageCacheHeaders {
            cache_control: HeaderValue::from_static("no-store"),
            cdn: None,
        };
    }
    if class == Cacheability::Personal {
        return PageCacheHeaders {
            cache_control: HeaderValue::from_static("private, no-store"),
            cdn: None,
        };
    }
    let ttl = if partial {
        ttl_s.min(PARTIAL_TTL_S)
    } else {
        ttl_s
    };
    let cdn = format!("max-age={ttl}, stale-while-revalidate={ttl}, stale-if-error=300");
    PageCacheHeaders {
        cache_control: HeaderValue::from_static("max-age=0, must-revalidate"),
        cdn: HeaderValue::from_str(&cdn).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let h = page_cache_headers(Cacheability::Public, 120, false, true);
        assert_eq!(h.cache_control, "max-age=0, must-revalidate");
        assert_eq!(
            h.cdn.unwrap(),
            "max-age=120, stale-while-revalidate=120, stale-if-error=300"
        );
        let h = page_cache_headers(Cacheability::Volatile, 120, true, true);
        assert_eq!(
            h.cdn.unwrap(),
            "max-age=30, stale-while-revalidate=30, stale-if-error=300"
        );
        let h = page_cache_headers(Cacheability::Personal, 120, false, true);
        assert_eq!(
            (h.cache_control.to_str().unwrap(), h.cdn),
            ("private, no-store", None)
        );
        let h = page_cache_headers(Cacheability::Public, 120, false, false);
        assert_eq!(
            (h.cache_control.to_str().unwrap(), h.cdn),
            ("no-store", None)
        );
    }
}
