//! What a BFF answers, through the renderer's real `DataClient` over loopback: one to
//! three answers for one URL (status, headers from a dictionary of caching headers
//! and any others, a JSON or arbitrary body), fetched in turn anonymously or for a
//! signed-in user, so stores, fresh hits, revalidations (304) and stale fallbacks all
//! run. Properties: nothing panics (a panic the client contains is still a crash
//! here: libFuzzer aborts on any panic); a value handed to a page is compact JSON; an
//! answer that is `private` or sets a cookie makes the value personal.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;
use oberon_fuzz::{Json, ScriptedBff, runtime};
use oberon_renderer::component::Cacheability;
use oberon_renderer::data::DataError;
use oberon_renderer::data_client::{Caller, DataClient, DataClientOptions, Served};

fn client() -> &'static DataClient {
    static CLIENT: OnceLock<DataClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        DataClient::new(DataClientOptions {
            upstream_timeout: Duration::from_secs(5),
            // Every input starts with a closed breaker and no retries, so one input's
            // failures never change what the next one reaches.
            breaker_failures: u32::MAX,
            retry_reserve: 0.0,
            retry_ratio: 0.0,
            cache_bytes: 16 << 20,
            ..DataClientOptions::default()
        })
        .expect("a data client")
    })
}

const NAMES: [&str; 12] = [
    "cache-control",
    "age",
    "expires",
    "date",
    "last-modified",
    "etag",
    "vary",
    "set-cookie",
    "pragma",
    "content-type",
    "warning",
    "surrogate-control",
];

const VALUES: [&str; 14] = [
    "public, max-age=60",
    "max-age=18446744073709551615",
    "s-maxage=99999999999999999999",
    "private",
    "no-store",
    "no-cache",
    "must-revalidate, max-age=0",
    "public, max-age=60, stale-if-error=18446744073709551615",
    "18446744073709551615",
    "\"v1\"",
    "W/\"v1\"",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "*",
];

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Value {
    Known(u8),
    Number(u64),
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Body {
    Json(Json),
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Answer {
    status: u16,
    headers: Vec<(Name, Value)>,
    body: Body,
    /// Delimited by closing the connection instead of `content-length`.
    close_delimited: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    answers: Vec<Answer>,
    /// Per fetch: signed in (and as whom), or anonymous.
    users: Vec<Option<bool>>,
}

fn header_text(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\t' || (' '..='~').contains(c))
        .collect()
}

/// The headers an answer sends: at most eight, names of token characters, values of
/// visible ASCII.
fn headers(a: &Answer) -> Vec<(String, String)> {
    a.headers
        .iter()
        .take(8)
        .map(|(name, value)| {
            let name = match name {
                Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
                Name::Other(n) => n
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect(),
            };
            let value = match value {
                Value::Known(i) => VALUES[usize::from(*i) % VALUES.len()].to_string(),
                Value::Number(n) => format!("max-age={n}"),
                Value::Other(v) => header_text(v),
            };
            (name, value)
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

fn raw_answer(a: &Answer) -> (Vec<u8>, bool) {
    let status = match a.status % 8 {
        0..=3 => 200,
        4 => 304,
        5 => 503,
        6 => 404,
        // Not 1xx: an interim answer makes the client wait for the final one, which
        // only the upstream timeout ends (a slow input, not a finding).
        _ => 200 + a.status % 400,
    };
    let body = match &a.body {
        Body::Json(v) => v.0.to_string().into_bytes(),
        Body::Bytes(b) => b.clone(),
    };
    let mut out = format!("HTTP/1.1 {status} Fuzzed\r\n").into_bytes();
    for (name, value) in headers(a) {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if a.close_delimited {
        out.extend_from_slice(b"connection: close\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(&body);
    (out, a.close_delimited)
}

/// The reference reading of "personal": a `Set-Cookie`, or a `private` directive.
fn is_personal_answer(a: &Answer) -> bool {
    headers(a).iter().any(|(name, value)| {
        let name = name.to_ascii_lowercase();
        name == "set-cookie"
            || (name == "cache-control"
                && value.split(',').any(|d| {
                    d.split('=')
                        .next()
                        .is_some_and(|k| k.trim().eq_ignore_ascii_case("private"))
                }))
    })
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    static N: AtomicU64 = AtomicU64::new(0);
    let answers: Vec<&Answer> = input.answers.iter().take(3).collect();
    if answers.is_empty() {
        return;
    }
    let bff = ScriptedBff::get();
    // A URL of its own per input: nothing cached crosses inputs.
    let url = format!(
        "{}/v1/source/{}",
        bff.base_url,
        N.fetch_add(1, Ordering::Relaxed)
    );
    bff.script(answers.iter().map(|a| raw_answer(a)).collect());
    let client = client();
    for (i, user) in input.users.iter().take(answers.len()).enumerate() {
        let identity = user.map(|who| if who { "assertion-a" } else { "assertion-b" });
        let mut caller = Caller::new(&format!("fuzz-{i}"));
        if let Some(identity) = identity {
            caller = caller.signed_in(identity);
        }
        let result = runtime().block_on(client.fetch_as(&url, Duration::from_secs(5), &caller));
        match result {
            Ok(fetched) => {
                let value: serde_json::Value =
                    serde_json::from_str(&fetched.value).expect("a value is JSON");
                assert_eq!(value.to_string(), *fetched.value, "a value is compact JSON");
                // The first fetch is answered by the first scripted answer.
                if i == 0 && fetched.served == Served::Fetched && is_personal_answer(answers[0]) {
                    assert_eq!(fetched.class, Cacheability::Personal, "{:?}", answers[0]);
                }
            }
            Err(DataError::Panicked(message)) => panic!("the fetch panicked: {message}"),
            Err(_) => {}
        }
    }
});
