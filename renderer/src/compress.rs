//! Whole pages compressed for the client that asks: `br`, else `gzip`, as
//! `Accept-Encoding` allows ([`Coding::negotiate`]); anything else gets the page as it
//! is. A compressed page is another representation of the same page: it says so with
//! `Content-Encoding` and an entity tag of its own ([`crate::cache::coded_etag`]), and
//! every page a cache may keep says `Vary: Accept-Encoding` ([`crate::cache::decide`]),
//! compressed or not. Behind a CDN, the CDN asks once per coding it keeps and serves
//! the rest itself.
//!
//! A streamed page is sent as it is. Compressed chunk by chunk, each flushed, it would
//! still reach a browser part by part ([`Encoder::chunk`] makes that possible), but a
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

    /// A compressor for one body.
    pub fn encoder(self) -> Encoder {
        Encoder(match self {
            // The fastest settings of each, measured on the demo event page (9.4 KB;
            // `cargo bench -p oberon-bench --bench hot_paths -- compress`): brotli
            // quality 1, a 256 KiB window: 3.8 KB in 54 µs (quality 4: 3.3 KB in
            // 128 µs); gzip level 1 (zlib-rs): 4.6 KB in 28 µs (level 6: 3.5 KB in 58 µs).
            Coding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                1,
                18,
            ))),
            Coding::Gzip => Inner::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            ))),
        })
    }

    /// `body`, compressed whole.
    pub fn compress(self, body: &[u8]) -> Bytes {
        let mut encoder = self.encoder();
        let mut out = encoder.chunk(body).to_vec();
        out.extend_from_slice(&encoder.finish());
        Bytes::from(out)
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

/// One body's compressor: each chunk in, its compressed bytes out at once (flushed).
pub struct Encoder(Inner);

enum Inner {
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
}

impl Encoder {
    /// `chunk` compressed and flushed: everything the client needs to show it.
    pub fn chunk(&mut self, chunk: &[u8]) -> Bytes {
        // Writing to and flushing into a Vec cannot fail.
        let out = match &mut self.0 {
            Inner::Brotli(w) => {
                let _ = w.write_all(chunk);
                let _ = w.flush();
                w.get_mut()
            }
            Inner::Gzip(w) => {
                let _ = w.write_all(chunk);
                let _ = w.flush();
                w.get_mut()
            }
        };
        Bytes::from(std::mem::take(out))
    }

    /// The end of the body.
    pub fn finish(self) -> Bytes {
        Bytes::from(match self.0 {
            Inner::Brotli(w) => w.into_inner(),
            Inner::Gzip(w) => w.finish().unwrap_or_default(),
        })
    }
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
    fn streamed_chunks_decode_as_they_arrive_and_whole() {
        let page = "<!doctype html><p>".to_string() + &"hello, world ".repeat(200);
        for coding in [Coding::Gzip, Coding::Brotli] {
            let mut encoder = coding.encoder();
            let first = encoder.chunk(page.as_bytes());
            // What has arrived so far decodes to the whole first chunk.
            let mut so_far = Vec::new();
            match coding {
                Coding::Gzip => {
                    let mut d = flate2::read::GzDecoder::new(&first[..]);
                    let _ = d.read_to_end(&mut so_far);
                }
                Coding::Brotli => {
                    let mut d = brotli::Decompressor::new(&first[..], 4096);
                    let _ = d.read_to_end(&mut so_far);
                }
            }
            assert_eq!(so_far, page.as_bytes(), "{coding:?}");
            let whole = coding.compress(page.as_bytes());
            assert!(whole.len() < page.len() / 10, "{coding:?}: {}", whole.len());
        }
    }
}
