//! `infra/cdn/varnish/oberon.vcl` held to the HTTP caching RFCs: Debian's Varnish with
//! the shipped VCL and the documented flags (`infra/cdn/varnish/varnishd.flags`) in front
//! of an origin that answers the headers each test chooses ([`ScriptedOrigin`]).
//!
//! One test per rule (RFC 9111's Age, unsafe-method invalidation and `Vary: *`; RFC
//! 9213's invalid targeted field; nothing stored on a guess), each asserting on what
//! the second request gets and on what reached the origin, and a conformance table of
//! `CDN-Cache-Control` / `Surrogate-Control` values read as RFC 8941 dictionaries.

use oberon_e2e_tests::exclusive;
use oberon_e2e_tests::origin::{Got, client, get};
use oberon_e2e_tests::scripted::ScriptedOrigin;
use oberon_e2e_tests::varnish::{Varnish, reserve_port};

/// Varnish in front of a scripted origin (which checks no origin secret).
async fn cdn() -> (Varnish, ScriptedOrigin) {
    let origin = ScriptedOrigin::start().await;
    let varnish = Varnish::start(reserve_port(), origin.addr, "scripted-origin-checks-none");
    (varnish, origin)
}

/// GET `path` twice through the CDN: the second answer, and how many of the two reached
/// the origin.
async fn twice(varnish: &Varnish, origin: &ScriptedOrigin, path: &str) -> (Got, u64) {
    let client = client();
    let first = get(&client, &varnish.url(path), &[]).await;
    assert!(first.status < 500, "{path}: {first:?}\n{}", varnish.log());
    let second = get(&client, &varnish.url(path), &[]).await;
    (second, origin.requests(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_max_age_counts_from_the_age_the_response_already_has() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;

    // An hour of freshness, but two hours old already (it sat in a shield): stale on
    // arrival, so never answered from the cache.
    for (path, field) in [
        ("/stale-cdn", "cdn-cache-control"),
        ("/stale-surrogate", "surrogate-control"),
    ] {
        origin.script(path, 200, &[(field, "max-age=3600"), ("age", "7200")]);
        let (second, reached) = twice(&varnish, &origin, path).await;
        assert_ne!(second.cache(), "HIT", "{field}: {second:?}");
        assert_eq!(
            reached, 2,
            "{field}: a stale response was served from the cache"
        );
    }

    // 100 s of freshness, 40 s used: a hit that is at least 40 s old, with at most 60 s
    // left.
    origin.script(
        "/young",
        200,
        &[("cdn-cache-control", "max-age=100"), ("age", "40")],
    );
    let (second, reached) = twice(&varnish, &origin, "/young").await;
    assert_eq!(second.cache(), "HIT", "{second:?}");
    assert_eq!(reached, 1);
    let age: u64 = second.header("age").parse().expect("Age");
    assert!((40..100).contains(&age), "Age {age}");
    let debug = get(
        &client(),
        &varnish.url("/young"),
        &[("x-oberon-debug", "1")],
    )
    .await;
    let ttl: f64 = debug.header("x-oberon-ttl").parse().expect("X-Oberon-TTL");
    assert!(ttl <= 60.0 && ttl > 55.0, "remaining TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_cdn_cache_control_is_ignored_and_cache_control_decides() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;

    // Not RFC 8941 dictionaries: ignored whole, so `no-store` decides.
    for (i, invalid) in [
        "max-age=10000, &&&&&",
        "max-age =100",
        "max-age= 100",
        "MaX-aGe=100",
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/invalid/{i}");
        origin.script(
            &path,
            200,
            &[
                ("cdn-cache-control", invalid),
                ("cache-control", "no-store"),
            ],
        );
        let (second, reached) = twice(&varnish, &origin, &path).await;
        assert_eq!(second.cache(), "PASS", "{invalid:?}: {second:?}");
        assert_eq!(
            reached, 2,
            "{invalid:?} was obeyed over Cache-Control: no-store"
        );
    }

    // An invalid CDN-Cache-Control leaves Surrogate-Control in charge; a valid one wins.
    for (path, cdn_cache_control, ttl) in [
        ("/fallback", "max-age=20, &", 30.0),
        ("/first", "max-age=20", 20.0),
    ] {
        origin.script(
            path,
            200,
            &[
                ("cdn-cache-control", cdn_cache_control),
                ("surrogate-control", "max-age=30"),
                ("cache-control", "no-store"),
            ],
        );
        let (second, reached) = twice(&varnish, &origin, path).await;
        assert_eq!(second.cache(), "HIT", "{path}: {second:?}");
        assert_eq!(reached, 1);
        let got = remaining_ttl(&varnish, path).await;
        assert!(
            got <= ttl && got > ttl - 5.0,
            "{path}: TTL {got}, not {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_star_among_other_names_is_never_served_from_the_cdn() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;
    let cacheable = ("cdn-cache-control", "max-age=60");
    for (i, vary) in [
        &[("vary", "*")][..],
        &[("vary", "*, *")],
        &[("vary", "foo, *")],
        &[("vary", "accept-encoding"), ("vary", "*")],
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/vary/{i}");
        let mut headers = vary.to_vec();
        headers.push(cacheable);
        origin.script(&path, 200, &headers);
        let (second, reached) = twice(&varnish, &origin, &path).await;
        assert_eq!(second.cache(), "PASS", "{vary:?}: {second:?}");
        assert_eq!(reached, 2, "{vary:?}: stored");
    }
    // Without `*`, the same response is stored.
    origin.script("/vary/names", 200, &[("vary", "foo, bar"), cacheable]);
    let (second, reached) = twice(&varnish, &origin, "/vary/names").await;
    assert_eq!((second.cache(), reached), ("HIT", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_unsafe_method_invalidates_the_stored_responses_of_its_url() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;
    let client = client();
    let url = varnish.url("/thing");
    let cacheable = [("cdn-cache-control", "max-age=60")];
    origin.script("/thing", 200, &cacheable);
    origin.script("/other", 200, &cacheable);
    for path in ["/thing", "/other"] {
        let (second, _) = twice(&varnish, &origin, path).await;
        assert_eq!(second.cache(), "HIT");
    }

    // An error changes nothing: the stored response stays.
    origin.script("/thing", 500, &[]);
    let failed = client.post(&url).body("x").send().await.expect("POST");
    assert_eq!(failed.status(), 500);
    origin.script("/thing", 200, &cacheable);
    assert_eq!(get(&client, &url, &[]).await.cache(), "HIT");

    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let before = origin.requests("/thing");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let answer = client
            .request(method.clone(), &url)
            .body("x")
            .send()
            .await
            .expect("unsafe request");
        assert_eq!(answer.status(), 200);
        let after = get(&client, &url, &[]).await;
        assert_eq!(after.cache(), "MISS", "after {method}: {after:?}");
        assert!(after.body.starts_with("GET /thing"), "{}", after.body);
        assert_eq!(origin.requests("/thing") - before, 2, "{method}, then GET");
        assert_eq!(get(&client, &url, &[]).await.cache(), "HIT");
    }
    // Only the target URI.
    assert_eq!(
        get(&client, &varnish.url("/other"), &[]).await.cache(),
        "HIT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_without_explicit_freshness_is_not_stored() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;
    // A gateway's 404 or 301 without Cache-Control, and a 200 likewise: Varnish would
    // give each default_ttl; the origin said nothing, so nothing is shared.
    origin.script("/plain", 200, &[]);
    origin.script("/missing", 404, &[]);
    origin.script("/moved", 301, &[("location", "/elsewhere")]);
    origin.script("/validator-only", 200, &[("etag", "\"v1\"")]);
    for path in ["/plain", "/missing", "/moved", "/validator-only"] {
        let (second, reached) = twice(&varnish, &origin, path).await;
        assert_eq!(second.cache(), "PASS", "{path}: {second:?}");
        assert_eq!(reached, 2, "{path}: stored without freshness");
    }
    // Explicit freshness from Cache-Control or Expires is still obeyed.
    origin.script("/max-age", 200, &[("cache-control", "max-age=60")]);
    origin.script(
        "/expires",
        200,
        &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
    );
    for path in ["/max-age", "/expires"] {
        let (second, reached) = twice(&varnish, &origin, path).await;
        assert_eq!((second.cache(), reached), ("HIT", 1), "{path}");
    }
}

/// What the CDN makes of a targeted field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    /// A valid dictionary whose max-age gives this TTL (s).
    Ttl(f64),
    /// A valid dictionary that forbids storing, or gives no freshness.
    NotStored,
    /// Not a valid dictionary: ignored, so the response's `Cache-Control: max-age=7`
    /// decides.
    Ignored,
}

use Reading::{Ignored, NotStored, Ttl};

/// The fallback every conformance response carries, which an ignored field leaves in
/// charge.
const FALLBACK_TTL: f64 = 7.0;

/// Field values and what each must give, for `CDN-Cache-Control` and
/// `Surrogate-Control` alike (RFC 9213 §2.1: a targeted field that is empty or does
/// not parse as an RFC 8941 dictionary is ignored; RFC 8941 §3.2, §4.2.2: lowercase
/// keys, OWS only around commas, the last of duplicate keys wins, parameters after a
/// member; RFC 9111 §1.2.2: delta-seconds above 2^31 mean 2^31).
const TABLE: &[(&str, Reading)] = &[
    // Valid: spacing.
    ("max-age=60", Ttl(60.0)),
    ("max-age=60,stale-if-error=5", Ttl(60.0)),
    ("max-age=60 ,  stale-if-error=5", Ttl(60.0)),
    ("max-age=60,\tstale-if-error=5", Ttl(60.0)),
    (
        "max-age=60, stale-while-revalidate=30, stale-if-error=86400",
        Ttl(60.0),
    ),
    // Valid: numbers.
    ("max-age=0060", Ttl(60.0)),
    ("max-age=999999999999999", Ttl(2147483648.0)),
    ("max-age=0", NotStored),
    ("max-age=-60", NotStored),
    ("max-age=60.0", NotStored),
    ("max-age=\"60\"", NotStored),
    ("max-age", NotStored),
    ("max-age=(60)", NotStored),
    ("max-age=?1", NotStored),
    // Valid: duplicates, last wins.
    ("max-age=10, max-age=60", Ttl(60.0)),
    ("max-age=60, max-age=10", Ttl(10.0)),
    ("max-age=60, max-age=\"10\"", NotStored),
    ("no-store, max-age=60, no-store=?0", Ttl(60.0)),
    ("no-store=?0, max-age=60, no-store", NotStored),
    // Valid: parameters.
    ("max-age=60;foo=bar", Ttl(60.0)),
    ("max-age=60; stale-if-error=5", Ttl(60.0)),
    ("max-age=60;a=1;b=\"x, max-age=5\";c, public", Ttl(60.0)),
    ("no-store;reason=\"x\", max-age=60", NotStored),
    // Valid: unknown members, every kind of value.
    ("max-age=60, community=\"UCI\"", Ttl(60.0)),
    ("community=\"max-age=5, no-store\", max-age=60", Ttl(60.0)),
    (
        "max-age=60, x=?1, y=(a b \"c\";d), z=:aGVsbG8=:, *w=tok/en:x, v=-1.5",
        Ttl(60.0),
    ),
    (
        "max-age=60, smax-age=10, x-max-age=5, max-age-x=1",
        Ttl(60.0),
    ),
    // Valid: s-maxage, for shared caches, overrides max-age (RFC 9111 §5.2.2.10).
    ("max-age=60, s-maxage=5", Ttl(5.0)),
    ("s-maxage=30", Ttl(30.0)),
    ("s-maxage=-1, max-age=60", Ttl(60.0)),
    ("max-age=60, y=()", Ttl(60.0)),
    ("max-age=60, y=\"a\\\"b\\\\\"", Ttl(60.0)),
    // Valid: what forbids storing.
    ("max-age=60, no-store", NotStored),
    ("private, max-age=60", NotStored),
    ("max-age=60, no-cache;x=1", NotStored),
    ("max-age=60, no-store=?1", NotStored),
    ("max-age=60, no-store=?0", Ttl(60.0)),
    ("stale-while-revalidate=30", NotStored),
    ("public", NotStored),
    // Invalid: spacing.
    ("max-age =100", Ignored),
    ("max-age= 100", Ignored),
    ("max-age=100 stale-if-error=5", Ignored),
    ("max-age=100,", Ignored),
    (",max-age=100", Ignored),
    ("max-age=100,,stale-if-error=5", Ignored),
    ("max-age=100, ", Ignored),
    ("max-age=100;\tx=1", Ignored),
    // Invalid: case.
    ("MaX-aGe=100", Ignored),
    ("Max-Age=100", Ignored),
    ("max-age=100, No-Store", Ignored),
    ("max-age=100;A=1", Ignored),
    // Invalid: tokens and keys.
    ("max-age=10000, &&&&&", Ignored),
    ("max-age=100, no-store, &", Ignored),
    ("max-age=100, _x=1", Ignored),
    ("max-age=100, 1x=1", Ignored),
    ("max-age=100, x=bar baz", Ignored),
    ("max-age=100, x=@", Ignored),
    ("", Ignored),
    // Invalid: numbers.
    ("max-age=1000000000000000", Ignored),
    ("max-age=1.2345", Ignored),
    ("max-age=100, x=1.", Ignored),
    ("max-age=100, x=-", Ignored),
    ("max-age=100, x=1234567890123.5", Ignored),
    ("max-age=100, x=?2", Ignored),
    // Invalid: strings, lists, binaries.
    ("max-age=100, x=\"unterminated", Ignored),
    ("max-age=100, x=\"\\x\"", Ignored),
    ("max-age=100, x=(1 2", Ignored),
    ("max-age=100, x=:not base64!:", Ignored),
];

/// X-Oberon-TTL (the object's remaining TTL) of what is stored for `path`.
async fn remaining_ttl(varnish: &Varnish, path: &str) -> f64 {
    let debug = get(&client(), &varnish.url(path), &[("x-oberon-debug", "1")]).await;
    debug
        .header("x-oberon-ttl")
        .parse()
        .unwrap_or_else(|_| panic!("{path}: no X-Oberon-TTL: {debug:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_fields_are_read_as_rfc_8941_dictionaries() {
    let _one = exclusive().await;
    let (varnish, origin) = cdn().await;
    let client = client();
    let mut wrong = Vec::new();
    for field in ["cdn-cache-control", "surrogate-control"] {
        for (row, (value, expected)) in TABLE.iter().enumerate() {
            let path = format!("/{field}/{row}");
            origin.script(
                &path,
                200,
                &[(field, value), ("cache-control", "max-age=7")],
            );
            let first = get(&client, &varnish.url(&path), &[("x-oberon-debug", "1")]).await;
            let stored = first.cache() == "MISS";
            let ttl: Option<f64> = first.header("x-oberon-ttl").parse().ok();
            let holds = match (expected, stored, ttl) {
                (NotStored, stored, _) => !stored && first.cache() == "PASS",
                (Ttl(want), true, Some(got)) => got <= *want && got > want - 2.0,
                (Ignored, true, Some(got)) => got <= FALLBACK_TTL && got > FALLBACK_TTL - 2.0,
                _ => false,
            };
            if !holds {
                wrong.push(format!(
                    "{field}: {value:?}: expected {expected:?}, got X-Cache {} TTL {}",
                    first.cache(),
                    first.header("x-oberon-ttl")
                ));
            }
        }
    }
    println!(
        "targeted-field conformance: {} values × 2 fields, {} wrong",
        TABLE.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The RFC 8941 dictionary pattern of `oberon.vcl` (`oberon_structured_dictionary`) and
/// of the Fastly service (`oberon_fetch_policy`), whitespace aside: Fastly's is not run
/// here, so it must be the one the table above proves.
#[test]
fn fastly_validates_targeted_fields_with_the_pattern_the_vcl_is_tested_with() {
    let infra = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/cdn");
    let pattern = |file: &str| {
        let text = std::fs::read_to_string(infra.join(file)).expect(file);
        let start = text
            .find("{\"(?x)\n")
            .unwrap_or_else(|| panic!("{file}: no (?x) pattern"));
        let end = start + text[start..].find("\"}").expect("end of the pattern");
        assert!(
            text[start..end].contains("(?<member>"),
            "{file}: {}",
            &text[start..end]
        );
        text[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(pattern("varnish/oberon.vcl"), pattern("fastly/main.tf"));
}

/// Both varnishd commands of `infra/cdn/README.md` (deployment and tests) take their
/// flags from `varnishd.flags`, the file `varnish::flags` starts every test's varnishd
/// with, and name no storage or parameter of their own besides `vcl_path`.
#[test]
fn the_readme_runs_varnishd_with_the_flags_the_tests_use() {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/cdn/README.md");
    let readme = std::fs::read_to_string(readme).expect("infra/cdn/README.md");
    // A command and its continuation lines.
    let commands: Vec<String> = readme
        .split("\nvarnishd -F ")
        .skip(1)
        .map(|rest| {
            let mut command = String::new();
            for line in rest.lines() {
                command.push_str(line.trim_end_matches('\\'));
                if !line.ends_with('\\') {
                    break;
                }
            }
            command
        })
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    for command in &commands {
        assert!(
            command.contains("$(grep -v '^#' infra/cdn/varnish/varnishd.flags)"),
            "{command}"
        );
        let words: Vec<&str> = command.split_whitespace().collect();
        for pair in words.windows(2) {
            assert!(
                pair[0] != "-s" && (pair[0] != "-p" || pair[1].starts_with("vcl_path=")),
                "a flag outside varnishd.flags: {command}"
            );
        }
    }
    assert!(!oberon_e2e_tests::varnish::flags().is_empty());
}
