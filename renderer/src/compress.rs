//! Whole pages compressed for the client that asks: `br`, else `gzip`, as
//! `Accept-Encoding` allows ([`Coding::negotiate`]); anything else gets the page as it
//! is. A compressed page is another representation of the same page: it says so with
//! `Content-Encoding` and an entity tag of its own ([`crate::cache::coded_etag`]), and
//! every page a cache may keep says `Vary: Accept-Encoding` ([`crate::cache::decide`]),
//! compressed or not. Behind a CDN, the CDN asks once per coding it keeps and serves
//! the rest itself.
//!
//! A streamed page is sent as it is. Compressed chunk by chunk, each flushed, it would
//! still reach a browser part by part, but a
//! CDN that decompresses for a client that does not accept the coding may hold the
//! parts until the end — Varnish does, measured: the first byte of a page with an
//! 800 ms source came after 870 ms instead of at once — which undoes what streaming
//! is for.

use std::io::Write as _;

use bytes::Bytes;
use http::{HeaderMap, header};

/// A content coding the renderer compresses pages with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// The coding for a request: `br` if it accepts it, else `gzip` if it accepts that
    /// (by name or `*`, with a `q` above 0), else none.
    pub fn negotiate(request: &HeaderMap) -> Option<Coding> {
        match accepted(request) {
            (true, _) => Some(Coding::Brotli),
            (false, true) => Some(Coding::Gzip),
            (false, false) => None,
        }
    }

    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// `body`, compressed whole. The fastest settings of each, measured on the demo
    /// event page (9.4 KB; `cargo bench -p oberon-bench --bench hot_paths -- compress`):
    /// brotli quality 1, a 256 KiB window: 3.8 KB in 54 µs (quality 4: 3.3 KB in
    /// 128 µs); gzip level 1 (zlib-rs): 4.6 KB in 28 µs (level 6: 3.5 KB in 58 µs).
    pub fn compress(self, body: &[u8]) -> Bytes {
        // Writing into a Vec cannot fail.
        let out = Vec::with_capacity(body.len() / 2);
        Bytes::from(match self {
            Coding::Brotli => {
                let mut w = brotli::CompressorWriter::new(out, 4096, 1, 18);
                let _ = w.write_all(body);
                w.into_inner()
            }
            Coding::Gzip => {
                let mut w = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                let _ = w.write_all(body);
                w.finish().unwrap_or_default()
            }
        })
    }
}

/// Whether `request` accepts gzip (component assets keep a gzip variant only).
pub fn accepts_gzip(request: &HeaderMap) -> bool {
    accepted(request).1
}

/// Whether `Accept-Encoding` accepts `br`, and `gzip`: named with a `q` above 0, or
/// not named and `*` is (a coding named with `q=0` is refused whatever `*` says).
fn accepted(request: &HeaderMap) -> (bool, bool) {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for item in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        let slot = if name.eq_ignore_ascii_case("br") {
            &mut br
        } else if name.eq_ignore_ascii_case("gzip") {
            &mut gzip
        } else if name == "*" {
            &mut any
        } else {
            continue;
        };
        *slot = Some(!refused);
    }
    let any = any.unwrap_or(false);
    (br.unwrap_or(any), gzip.unwrap_or(any))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn brotli_is_preferred_and_refusals_are_respected() {
        assert_eq!(Coding::negotiate(&HeaderMap::new()), None);
        assert_eq!(
            Coding::negotiate(&accept("gzip, deflate, br")),
            Some(Coding::Brotli)
        );
        assert_eq!(Coding::negotiate(&accept("gzip")), Some(Coding::Gzip));
        assert_eq!(
            Coding::negotiate(&accept("br;q=0, gzip;q=0.5")),
            Some(Coding::Gzip)
        );
        assert_eq!(Coding::negotiate(&accept("*")), Some(Coding::Brotli));
        assert_eq!(Coding::negotiate(&accept("gzip;q=0, identity")), None);
        assert_eq!(Coding::negotiate(&accept("deflate")), None);
        assert_eq!(Coding::negotiate(&accept("br;q=0, *")), Some(Coding::Gzip));
        assert!(!accepts_gzip(&accept("*, gzip;q=0")));
    }

    #[test]
    fn pages_decode_whole_and_shrink() {
        let page = "<!doctype html><p>".to_string() + &"hello, world ".repeat(200);
        for coding in [Coding::Gzip, Coding::Brotli] {
            let whole = coding.compress(page.as_bytes());
            let mut decoded = Vec::new();
            match coding {
                Coding::Gzip => flate2::read::GzDecoder::new(&whole[..]).read_to_end(&mut decoded),
                Coding::Brotli => {
                    brotli::Decompressor::new(&whole[..], 4096).read_to_end(&mut decoded)
                }
            }
            .expect("decodes");
            assert_eq!(decoded, page.as_bytes(), "{coding:?}");
            assert!(whole.len() < page.len() / 10, "{coding:?}: {}", whole.len());
        }
    }
}
