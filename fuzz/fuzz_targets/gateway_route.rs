//! The gateway's path normalisation and route matching, on the demo's and the
//! Kubernetes base's `gateway.toml` and a table of awkward routes. Properties: a
//! normalised path is in normal form; what goes upstream, as the upstream decodes it,
//! is the normalised path (less the route's `strip_prefix`); and no path reaches a
//! route whose pattern it does not match (an independent segment matcher).
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use oberon_gateway::config::{GatewayConfig, check};
use oberon_gateway::path::{encode, normalise};
use oberon_gateway::{Gateway, Routed};

const AWKWARD: &str = r#"
public_url = "http://127.0.0.1:8080"
[upstreams]
a = "http://127.0.0.1:1"
b = "http://127.0.0.1:2/base/"
[[routes]]
path = "/"
upstream = "a"
kind = "page"
auth = "public"
[[routes]]
path = "/a/{x}"
upstream = "a"
kind = "page"
auth = "public"
[[routes]]
path = "/a/{x}/b"
upstream = "b"
kind = "api"
auth = "public"
[[routes]]
path = "/files/{*rest}"
upstream = "b"
kind = "api"
auth = "public"
strip_prefix = "/files"
[[routes]]
path = "/api/v1/{*rest}"
upstream = "b"
kind = "api"
auth = "public"
strip_prefix = "/api/v1"
[[routes]]
path = "/api/v1x/{id}"
upstream = "a"
kind = "api"
auth = "public"
strip_prefix = "/api"
[[routes]]
path = "/caf\u00e9/{id}"
upstream = "a"
kind = "page"
auth = "public"
[[routes]]
path = "/x.y/{*p}"
upstream = "b"
kind = "api"
auth = "public"
strip_prefix = "/x.y"
"#;

struct Table {
    gateway: Gateway,
    /// Pattern → strip_prefix, from the configuration itself.
    strip: HashMap<String, Option<String>>,
}

fn tables() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| {
        [
            ("demo/gateway.toml", include_str!("../../demo/gateway.toml")),
            (
                "infra/k8s/base/gateway.toml",
                include_str!("../../infra/k8s/base/gateway.toml"),
            ),
            ("awkward.toml", AWKWARD),
        ]
        .into_iter()
        .map(|(name, source)| {
            let file = Path::new(name);
            let config: GatewayConfig =
                oberon_config::parse_toml(file, source).expect("a shipped gateway.toml parses");
            check(file, source, &config).expect("a shipped gateway.toml is valid");
            let strip = config
                .routes
                .iter()
                .map(|r| {
                    (
                        r.path.get_ref().clone(),
                        r.strip_prefix.as_ref().map(|p| p.get_ref().clone()),
                    )
                })
                .collect();
            let gateway =
                Gateway::build(config, oberon_identity::Signer::generate(), &HashMap::new());
            Table { gateway, strip }
        })
        .collect()
    })
}

/// The reference matcher: `{name}` is one non-empty segment, `{*name}` a non-empty
/// rest, anything else must be equal.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, p) in pattern.iter().enumerate() {
        if p.starts_with("{*") {
            return segments
                .get(i..)
                .is_some_and(|rest| !rest.join("/").is_empty());
        }
        let Some(s) = segments.get(i) else {
            return false;
        };
        if p.starts_with('{') {
            if s.is_empty() {
                return false;
            }
        } else if p != s {
            return false;
        }
    }
    segments.len() == pattern.len()
}

/// A path in normal form: absolute, no empty, `.` or `..` segment (but a trailing
/// `/`), no backslash or control character.
fn assert_normal_form(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(
        !path.contains('\\') && !path.chars().any(char::is_control),
        "{path:?}"
    );
    let inner = path[1..].strip_suffix('/').unwrap_or(&path[1..]);
    if !inner.is_empty() {
        for segment in inner.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "segment {segment:?} in {path:?}"
            );
        }
    }
}

fn check_route(table: &Table, path: &str, routed: Routed<'_>) {
    assert!(
        pattern_matches(routed.pattern, path),
        "{path:?} reached route {:?}",
        routed.pattern
    );
    let expected = match table.strip[routed.pattern].as_deref() {
        Some(prefix) if path == prefix => "/",
        Some(prefix) if path.starts_with(&format!("{prefix}/")) => &path[prefix.len()..],
        _ => path,
    };
    assert_eq!(routed.upstream_path, expected, "route {:?}", routed.pattern);
    // What the upstream receives, decoded as it would decode it, is that path.
    let wire = encode(routed.upstream_path);
    let uri: http::Uri = format!("http://upstream{wire}")
        .parse()
        .unwrap_or_else(|e| panic!("{wire:?} is not a request target: {e}"));
    assert_eq!(uri.path(), wire, "the URI changed the path");
    assert_eq!(
        normalise(uri.path()).as_deref(),
        Ok(routed.upstream_path),
        "the upstream would see another path"
    );
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(path) = normalise(&raw) else {
        return;
    };
    assert_normal_form(&path);
    // Normalising is a fixed point on the wire form: the path sent is the path
    // authorised, whoever normalises it again.
    assert_eq!(normalise(&encode(&path)).as_deref(), Ok(path.as_str()));
    for table in tables() {
        match table.gateway.route(&path) {
            Some(routed) => check_route(table, &path, routed),
            None => {
                for pattern in table.strip.keys() {
                    assert!(
                        !pattern_matches(pattern, &path),
                        "{path:?} matches {pattern:?} but was not routed"
                    );
                }
            }
        }
    }
});
