//! API versions and their lifecycle: `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! the `Link`s that say where to read about them, on every answer of a version that is
//! going away, and `410 Gone` once it has.
//!
//! A BFF serves each version under its own path prefix (`/v1/…`, `/v2/…`) and wraps the
//! routes of one that may go away with [`versioned`]; the lifecycle comes from the
//! environment ([`Lifecycle::read`]), so a team deprecates and sunsets a version
//! without a release.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::config::Env;

/// When an API version stops being recommended, when it goes away, and where its
/// consumers can read about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub deprecated_at: Option<SystemTime>,
    pub sunset_at: Option<SystemTime>,
    pub docs_url: Option<String>,
}

/// How long a `410 Gone` may be cached: the version is not coming back, but a
/// mistaken sunset should not outlive its fix by long.
pub const GONE_CACHE: &str = "public, max-age=60";

impl Lifecycle {
    /// `<VERSION>_DEPRECATED_AT`, `<VERSION>_SUNSET_AT` (RFC 3339) and
    /// `<VERSION>_DOCS_URL`: refuses a sunset before the deprecation, and a date without
    /// the migration guide its consumers should read.
    pub fn read(env: &mut Env, version: &str) -> Self {
        let (deprecated, sunset, docs) = (
            format!("{version}_DEPRECATED_AT"),
            format!("{version}_SUNSET_AT"),
            format!("{version}_DOCS_URL"),
        );
        let lifecycle = Self {
            deprecated_at: env.date(&deprecated),
            sunset_at: env.date(&sunset),
            docs_url: env.url(&docs, "https://docs.example.com/v1-to-v2"),
        };
        if let (Some(d), Some(s)) = (lifecycle.deprecated_at, lifecycle.sunset_at)
            && s < d
        {
            env.fail(
                &sunset,
                format!(
                    "is earlier than {}: a version cannot go away before it is deprecated",
                    env.name(&deprecated)
                ),
                "move the sunset after the deprecation",
            );
        }
        if lifecycle.is_deprecated() && env.get(&docs).is_none() {
            env.fail(
                &docs,
                format!("is not set, but {version} has a deprecation or sunset date"),
                "link the migration guide consumers should read, e.g. https://docs.example.com/v1-to-v2",
            );
        }
        lifecycle
    }

    /// The lifecycle headers; empty for a current version.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(at) = self.deprecated_at {
            // RFC 9745: a Structured Field Date, `@` and seconds since the epoch.
            let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            insert(&mut headers, "deprecation", format!("@{secs}"));
        }
        if let Some(at) = self.sunset_at {
            // RFC 8594: an HTTP-date.
            insert(&mut headers, "sunset", httpdate::fmt_http_date(at));
        }
        if let Some(docs) = &self.docs_url {
            for (rel, dated) in [
                ("deprecation", self.deprecated_at),
                ("sunset", self.sunset_at),
            ] {
                let link = format!("<{docs}>; rel=\"{rel}\"; type=\"text/html\"");
                if let (Some(_), Ok(v)) = (dated, HeaderValue::from_str(&link)) {
                    headers.append(header::LINK, v);
                }
            }
        }
        headers
    }

    /// Whether the version is deprecated, now or from a date to come: the OpenAPI
    /// document marks its operations.
    pub fn is_deprecated(&self) -> bool {
        self.deprecated_at.is_some() || self.sunset_at.is_some()
    }

    /// Marks every operation under `prefix` (`/v1/`) in `openapi` deprecated or not, as
    /// this lifecycle says: the document a BFF serves says what its headers say.
    pub fn document(&self, openapi: &mut utoipa::openapi::OpenApi, prefix: &str) {
        use utoipa::openapi::Deprecated;
        let flag = if self.is_deprecated() {
            Deprecated::True
        } else {
            Deprecated::False
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with(prefix) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation.deprecated = Some(flag.clone());
            }
        }
    }

    /// Whether the version is past its sunset and answers 410.
    pub fn is_gone(&self, now: SystemTime) -> bool {
        self.sunset_at.is_some_and(|s| now >= s)
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// `routes`, every one of them one version's: each answer of a route carries the
/// version's lifecycle headers (errors too), and once it is past its sunset every
/// request to a route is answered `410 Gone` without reaching a handler. (A path no
/// route matches gets the service's plain `404`.)
pub fn versioned<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    lifecycle: Lifecycle,
) -> Router<S> {
    routes.layer(middleware::from_fn_with_state(
        Arc::new(lifecycle),
        apply_lifecycle,
    ))
}

async fn apply_lifecycle(
    State(lifecycle): State<Arc<Lifecycle>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = if lifecycle.is_gone(SystemTime::now()) {
        crate::error(
            StatusCode::GONE,
            "this API version has been retired",
            GONE_CACHE,
        )
    } else {
        next.run(request).await
    };
    // Added to, never replacing, what the handler set (its own `Link`s among them).
    let headers = response.headers_mut();
    for (name, value) in lifecycle.headers().iter() {
        headers.append(name.clone(), value.clone());
    }
    if lifecycle.is_deprecated() {
        response.extensions_mut().insert(DeprecatedVersion);
    }
    response
}

/// On an answer of a deprecated version (one with a deprecation or a sunset date): what
/// `oberon_bff_deprecated_requests_total` counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeprecatedVersion;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn headers_have_the_exact_rfc_forms() {
        let lifecycle = Lifecycle {
            deprecated_at: Some(UNIX_EPOCH + Duration::from_secs(1_798_761_600)),
            sunset_at: Some(UNIX_EPOCH + Duration::from_secs(1_814_400_000)),
            docs_url: Some("https://docs.example.com/v1-to-v2".into()),
        };
        let h = lifecycle.headers();
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
        assert!(Lifecycle::default().headers().is_empty());
    }

    #[test]
    fn gone_after_the_sunset_only() {
        let at = UNIX_EPOCH + Duration::from_secs(100);
        let l = Lifecycle {
            sunset_at: Some(at),
            ..Lifecycle::default()
        };
        assert!(!l.is_gone(at - Duration::from_secs(1)));
        assert!(l.is_gone(at));
        assert!(!Lifecycle::default().is_gone(at));
    }

    fn read(vars: &[(&str, &str)]) -> Result<Lifecycle, crate::config::ConfigErrors> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("B_{k}"), v.to_string()))
            .collect();
        let mut env = Env::new("B_", |k| map.get(k).cloned());
        let lifecycle = Lifecycle::read(&mut env, "V1");
        env.finish(lifecycle)
    }

    #[test]
    fn refuses_a_sunset_before_the_deprecation() {
        let e = read(&[
            ("V1_DEPRECATED_AT", "2027-06-01T00:00:00Z"),
            ("V1_SUNSET_AT", "2027-01-01T00:00:00Z"),
            ("V1_DOCS_URL", "https://docs.example.com/v2"),
        ])
        .unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].var, "B_V1_SUNSET_AT");
        assert!(e.0[0].problem.contains("earlier than B_V1_DEPRECATED_AT"));
    }

    #[test]
    fn a_deprecation_needs_a_docs_link_and_a_valid_date() {
        let e = read(&[("V1_DEPRECATED_AT", "next tuesday")]).unwrap_err();
        assert_eq!(e.0[0].var, "B_V1_DEPRECATED_AT");
        let e = read(&[("V1_DEPRECATED_AT", "2027-01-01T00:00:00Z")]).unwrap_err();
        assert_eq!(e.0[0].var, "B_V1_DOCS_URL");
        assert_eq!(read(&[]).unwrap(), Lifecycle::default());
    }
}
