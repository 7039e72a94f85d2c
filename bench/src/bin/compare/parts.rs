//! The four parts of the compared page, and the server every system gets them from.
//!
//! One server speaks to all three composers, so only the composition differs:
//! Oberon's BFF (`/data/N`, JSON that the `bench-part` component turns into HTML,
//! cacheable for an hour), Tailor's fragments (`/html/N`) and Podium's podlets
//! (`/podlet/N/manifest.json`, `/content`, `/fallback`). The HTML the peers serve is
//! the HTML Oberon's component rendered (read from Oberon by the harness at start), so
//! the parts are the same bytes everywhere. `?delay_ms=D` (or a `/delay/D` prefix) on
//! any part makes it answer after D ms (and, for data, `no-store`, so that every
//! request waits again).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;

use crate::http::{Body, answer, run_server};

pub const PARTS: usize = 4;

/// The part numbers, 1-based as in the URLs.
pub fn numbers() -> impl Iterator<Item = usize> {
    1..=PARTS
}

/// Part `n`'s data: a title and six offers, with characters that need escaping.
/// About 2 KB of HTML once rendered.
pub fn data(n: usize) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (1..=6)
        .map(|i| {
            serde_json::json!({
                "name": format!("Show {n}.{i}: The \"Long\" Night of Strings & Brass"),
                "href": format!("/events/{n}{i:02}?from=bench&sort=date"),
                "price": format!("£{}.{:02}", 10 + 3 * n + i, (17 * i) % 100),
                "note": "Doors open 30 minutes before the start; seats are allocated in order of booking. Step-free access <via> the east entrance.",
            })
        })
        .collect();
    serde_json::json!({ "title": format!("Offers {n}: weekend & evening shows"), "items": items })
}

/// What every system shows in place of part `n` when it fails or is late.
pub fn fallback(n: usize) -> String {
    format!(
        r#"<section class="part" data-part="part-{n}"><p>These offers are unavailable right now.</p></section>"#
    )
}

/// `serve-parts`: serve the data, and the HTML in `html_dir` (`part-N.html`) if given.
pub fn serve(addr: &str, html_dir: Option<&Path>) -> anyhow::Result<()> {
    let mut html = Vec::new();
    for n in numbers() {
        let part = match html_dir {
            Some(dir) => std::fs::read_to_string(dir.join(format!("part-{n}.html")))?,
            None => String::new(),
        };
        html.push(Bytes::from(part));
    }
    let parts = Arc::new(Parts {
        data: numbers()
            .map(|n| Bytes::from(data(n).to_string()))
            .collect(),
        html,
        fallback: numbers().map(|n| Bytes::from(fallback(n))).collect(),
    });
    run_server(addr, move |req| {
        let parts = parts.clone();
        async move { parts.answer(req).await }
    })
}

struct Parts {
    data: Vec<Bytes>,
    html: Vec<Bytes>,
    fallback: Vec<Bytes>,
}

const PODLET_VERSION: &str = "1.0.0";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

impl Parts {
    async fn answer(&self, req: Request<Incoming>) -> hyper::Response<Body> {
        let mut delay_ms = delay_ms(req.uri().query());
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        let mut segments: Vec<&str> = req.uri().path().split('/').skip(1).collect();
        // `/delay/D/…`: the same delay in the path, for Podium, whose HTTP client
        // refuses a content URL with a query.
        if let ["delay", d, ..] = segments.as_slice() {
            delay_ms = d.parse().unwrap_or(0);
            segments.drain(..2);
        }
        let part = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=PARTS).contains(n))
                .map(|n| n - 1)
        };
        let (kind, i, rest) = match segments.as_slice() {
            [kind, n] => (*kind, part(n), ""),
            [kind, n, rest] => (*kind, part(n), *rest),
            _ => ("", None, ""),
        };
        let Some(i) = i else {
            return answer(
                404,
                "text/plain",
                &[],
                Bytes::from_static(b"no such part\n"),
            );
        };
        // Manifests and fallbacks are never delayed: Podium caches them, and a slow
        // part is slow at its content.
        let delayed = matches!(
            (kind, rest),
            ("data", "") | ("html", "") | ("podlet", "content")
        );
        if delayed && delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        match (kind, rest) {
            ("data", "") => {
                let cache = if delay_ms > 0 {
                    "no-store"
                } else {
                    "public, max-age=3600"
                };
                answer(200, JSON, &[("cache-control", cache)], self.data[i].clone())
            }
            ("html", "") => answer(200, HTML, &[], self.html[i].clone()),
            ("html", "fallback") | ("podlet", "fallback") => {
                answer(200, HTML, &[], self.fallback[i].clone())
            }
            ("podlet", "content") => answer(
                200,
                HTML,
                &[("podlet-version", PODLET_VERSION)],
                self.html[i].clone(),
            ),
            ("podlet", "manifest.json") => {
                let prefix = match delay_ms {
                    0 => String::new(),
                    d => format!("/delay/{d}"),
                };
                // Absolute: Podium resolves relative URLs against the manifest's path.
                let manifest = serde_json::json!({
                    "name": format!("part{}", i + 1),
                    "version": PODLET_VERSION,
                    "content": format!("http://{host}{prefix}/podlet/{}/content", i + 1),
                    "fallback": format!("http://{host}/podlet/{}/fallback", i + 1),
                    "js": [],
                    "css": [],
                    "proxy": {},
                });
                answer(200, JSON, &[], Bytes::from(manifest.to_string()))
            }
            _ => answer(
                404,
                "text/plain",
                &[],
                Bytes::from_static(b"no such route\n"),
            ),
        }
    }
}

fn delay_ms(query: Option<&str>) -> u64 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("delay_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_read_from_the_query() {
        assert_eq!(delay_ms(Some("r=3&delay_ms=1500")), 1500);
        assert_eq!(delay_ms(Some("r=3")), 0);
        assert_eq!(delay_ms(None), 0);
    }
}
