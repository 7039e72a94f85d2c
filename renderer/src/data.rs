//! Data sources: `topic ← URL template`, fetched over HTTP before components run.
//!
//! A source that fails, answers late, answers garbage or answers too much leaves its
//! topic absent; it never fails the page by itself. Fetching (cache, coalescing,
//! breakers) is [`crate::data_client`]; this module is what a page says to fetch.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use std::sync::Arc;

use crate::component::RequestContext;
use crate::error::Side;

/// Characters left as they are in an expanded value: RFC 3986 unreserved.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A parsed URL template. BFF base URLs are resolved when the page is loaded; route
/// parameters and query values are filled per request, percent-encoded, so a request
/// can never change a URL's host or path structure: not with `/` or `?` (encoded), and
/// not with a value that is a whole `.` or `..` path segment, which percent-encoding
/// cannot neutralise (URL parsers treat `%2E%2E` as `..` too), so such a URL is
/// refused ([`DataError::DotSegment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param(String),
    Query(String),
}

/// Why a URL template is invalid; `offset` is the byte offset within the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub help: String,
}

impl UrlTemplate {
    /// Parse `template`, resolving `{bff.NAME}` with `bff_url` and checking that every
    /// `{params.NAME}` is one of the route's `params`.
    pub fn parse(
        template: &str,
        bff_url: impl Fn(&str) -> Option<String>,
        params: &[String],
    ) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(TemplateError {
                    offset: offset + open,
                    message: "unclosed `{` in data source url".into(),
                    help: "close the placeholder, e.g. `{params.id}`".into(),
                });
            };
            let name = &after[..close];
            let at = offset + open;
            match name.split_once('.') {
                Some(("bff", bff)) => match bff_url(bff) {
                    Some(url) => literal.push_str(url.trim_end_matches('/')),
                    None => {
                        return Err(TemplateError {
                            offset: at,
                            message: format!("unknown BFF {bff:?} in data source url"),
                            help: format!("add `{bff} = \"http://...\"` under [bffs] in site.toml"),
                        });
                    }
                },
                Some(("params", p)) if params.iter().any(|x| x == p) => {
                    flush(&mut parts, &mut literal);
                    parts.push(Part::Param(p.to_string()));
                }
                Some(("params", p)) => {
                    return Err(TemplateError {
                        offset: at,
                        message: format!("route has no parameter {p:?}"),
                        help: format!(
                            "use one of the route's parameters: {}",
                            if params.is_empty() {
                                "(none)".to_string()
                            } else {
                                params.join(", ")
                            }
                        ),
                    });
                }
                Some(("query", q)) if !q.is_empty() => {
                    flush(&mut parts, &mut literal);
                    parts.push(Part::Query(q.to_string()));
                }
                _ => {
                    return Err(TemplateError {
                        offset: at,
                        message: format!("unknown placeholder {{{name}}} in data source url"),
                        help: "placeholders are {bff.NAME}, {params.NAME} and {query.NAME}".into(),
                    });
                }
            }
            offset += open + 1 + close + 1;
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        flush(&mut parts, &mut literal);
        let parsed = Self { parts };
        // The part before any per-request value must already be an absolute http(s) URL.
        let prefix = match parsed.parts.first() {
            Some(Part::Literal(s)) => s.as_str(),
            _ => "",
        };
        if !(prefix.starts_with("http://") || prefix.starts_with("https://")) {
            return Err(TemplateError {
                offset: 0,
                message: "data source url must start with http:// or https:// (or a {bff.NAME} that does)".into(),
                help: "begin the url with a BFF base, e.g. `{bff.events}/v1/...`".into(),
            });
        }
        Ok(parsed)
    }

    /// The URL for one request, or [`DataError::DotSegment`] if the request's values
    /// would make a path segment `.` or `..` (and so climb the BFF's paths).
    pub fn expand(&self, ctx: &RequestContext) -> Result<String, DataError> {
        let mut url = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => url.push_str(s),
                Part::Param(name) => push_encoded(&mut url, &ctx.params, name),
                Part::Query(name) => push_encoded(&mut url, &ctx.query, name),
            }
        }
        if has_dot_segment(&url) {
            return Err(DataError::DotSegment(url));
        }
        Ok(url)
    }
}

/// Whether the path of the absolute `url` has a `.` or `..` segment, in any spelling
/// a URL parser resolves (`.`, `%2e`, `.%2E`, ...). The query and fragment are not
/// the path: `?q=..` is only a value there.
fn has_dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path_and_more = after_scheme
        .find('/')
        .map_or("", |slash| &after_scheme[slash..]);
    let path = path_and_more.split(['?', '#']).next().unwrap_or("");
    path.split('/').any(is_dot_segment)
}

/// `.` or `..`, each dot written as itself or as `%2e`/`%2E`. Without allocating:
/// this runs for every data source of every page.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() && dots <= 2 {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    rest.is_empty() && (dots == 1 || dots == 2)
}

/// Append the value of `name` in `pairs` (empty when absent), percent-encoded.
fn push_encoded(url: &mut String, pairs: &[(String, String)], name: &str) {
    let value = pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str());
    url.extend(utf8_percent_encode(value, VALUE));
}

fn flush(parts: &mut Vec<Part>, literal: &mut String) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

/// Why a data source left its topic absent. The causes are kept as sources (shared,
/// since one fetch answers every request waiting on it): log with
/// [`oberon_service::error_chain`] to see them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("cannot connect")]
    Connect(#[source] Arc<reqwest::Error>),
    #[error("request failed")]
    Request(#[source] Arc<reqwest::Error>),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body is not JSON")]
    NotJson(#[source] Arc<serde_json::Error>),
    #[error("circuit breaker open for this BFF")]
    BreakerOpen,
    #[error("too many requests in flight to this BFF")]
    Overloaded,
    /// The fetch panicked (on whatever the BFF sent): a failed fetch, never a failed
    /// page.
    #[error("fetch panicked: {0}")]
    Panicked(String),
    /// The task that ran the shared fetch ended without an answer (the runtime shutting
    /// down).
    #[error("fetch task failed")]
    Task(#[source] Arc<tokio::task::JoinError>),
    /// The request's values would make a `.` or `..` path segment: not fetched (the
    /// client's doing, so the topic is absent as for any failed source).
    #[error("refused: a request value makes a dot segment in {0}")]
    DotSegment(String),
}

impl DataError {
    /// Whose failure it is: the client's for a URL its values would have made climb
    /// the BFF's paths, the renderer's for a fetch that panicked or lost its task, the
    /// BFF's (upstream) for everything else — its answer, its silence, or the breaker
    /// and limit that protect it.
    pub fn side(&self) -> Side {
        match self {
            DataError::DotSegment(_) => Side::Client,
            DataError::Panicked(_) | DataError::Task(_) => Side::Internal,
            DataError::Timeout(_)
            | DataError::Connect(_)
            | DataError::Request(_)
            | DataError::Status(_)
            | DataError::TooLarge(_)
            | DataError::NotJson(_)
            | DataError::BreakerOpen
            | DataError::Overloaded => Side::Upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bff(name: &str) -> Option<String> {
        (name == "events").then(|| "http://127.0.0.1:9/".to_string())
    }

    fn ctx(params: &[(&str, &str)], query: &[(&str, &str)]) -> RequestContext {
        let own = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        RequestContext {
            path: "/".into(),
            params: own(params),
            query: own(query),
            locale: "en".into(),
            user: None,
            request_id: std::sync::Arc::from("r"),
        }
    }

    #[test]
    fn expands_and_encodes() {
        let t = UrlTemplate::parse(
            "{bff.events}/v1/events/{params.id}?q={query.q}",
            bff,
            &["id".into()],
        )
        .unwrap();
        assert_eq!(
            t.expand(&ctx(&[("id", "../admin?x=1")], &[("q", "a b&c")]))
                .unwrap(),
            "http://127.0.0.1:9/v1/events/..%2Fadmin%3Fx%3D1?q=a%20b%26c"
        );
        assert_eq!(
            t.expand(&ctx(&[("id", "42")], &[])).unwrap(),
            "http://127.0.0.1:9/v1/events/42?q="
        );
    }

    /// Issue 18, finding 5: `.` and `..` are unreserved, so percent-encoding leaves
    /// them, and `/v1/events/..` is `/v1/` to every URL parser (so is `%2E%2E`). A
    /// value that would be a whole dot segment is refused; in the query it is only a
    /// value.
    #[test]
    fn dot_segments_in_every_spelling() {
        for dot in [".", "..", "%2e", "%2E", ".%2e", "%2E.", "%2e%2E"] {
            assert!(is_dot_segment(dot), "{dot}");
        }
        for not in [
            "",
            "...",
            "a",
            ".a",
            "%2e%2e%2e",
            "%2",
            "%2f",
            "%2e%",
            "..%2e",
            "%3e",
        ] {
            assert!(!is_dot_segment(not), "{not}");
        }
    }

    #[test]
    fn a_value_never_makes_a_dot_segment() {
        let t = UrlTemplate::parse(
            "{bff.events}/v1/events/{params.id}/{query.q}?q={query.q}",
            bff,
            &["id".into()],
        )
        .unwrap();
        for (id, q) in [("..", "x"), (".", "x"), ("42", ".."), ("42", ".")] {
            let refused = t.expand(&ctx(&[("id", id)], &[("q", q)]));
            assert!(
                matches!(refused, Err(DataError::DotSegment(_))),
                "id {id:?}, q {q:?}: {refused:?}"
            );
        }
        // Percent-encoded by the template (`%` itself is encoded): no dot segment.
        assert_eq!(
            t.expand(&ctx(&[("id", "%2e%2E")], &[("q", "a")])).unwrap(),
            "http://127.0.0.1:9/v1/events/%252e%252E/a?q=a"
        );
        // Dots inside a segment, and in the query, are only characters.
        let q = UrlTemplate::parse("{bff.events}/v1/search?q={query.q}", bff, &[]).unwrap();
        assert_eq!(
            q.expand(&ctx(&[], &[("q", "..")])).unwrap(),
            "http://127.0.0.1:9/v1/search?q=.."
        );
        assert_eq!(
            t.expand(&ctx(&[("id", "..."), ("x", "")], &[("q", "a.b")]))
                .unwrap(),
            "http://127.0.0.1:9/v1/events/.../a.b?q=a.b"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        let e = UrlTemplate::parse("{bff.nope}/x", bff, &[]).unwrap_err();
        assert!(e.message.contains("unknown BFF \"nope\""));
        let e = UrlTemplate::parse("{bff.events}/{params.slug}", bff, &["id".into()]).unwrap_err();
        assert!(e.message.contains("no parameter \"slug\"") && e.help.contains("id"));
        assert_eq!(e.offset, 13);
        let e = UrlTemplate::parse("{bff.events}/{params.id", bff, &["id".into()]).unwrap_err();
        assert!(e.message.contains("unclosed"));
        let e = UrlTemplate::parse("{params.id}/x", bff, &["id".into()]).unwrap_err();
        assert!(e.message.contains("must start with http"));
        let e = UrlTemplate::parse("{bff.events}/{env.HOME}", bff, &[]).unwrap_err();
        assert!(e.message.contains("unknown placeholder"));
    }
}
