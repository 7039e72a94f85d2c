//! The session cookie and the sign-in callback: `POST /_gateway/session` through the
//! gateway's own router, with a fuzzed `Cookie` header (the sign-in state cookie
//! `STATE.NONCE.RETURN_PATH` and anything else), form body and ID token (raw, or minted
//! by a published key with the cookie's nonce or another); and the cookie helpers on
//! the raw header. Properties: a session is set only for this sign-in's state and
//! nonce and a token signed by a published key; the redirect never leaves the site;
//! the session cookie never survives into what goes upstream.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use oberon_fuzz::{ISSUER, Idp, Json, mint, now, runtime};
use oberon_gateway::auth::{Presented, cookie_value, token_of, without_cookie};
use oberon_gateway::config::GatewayConfig;
use oberon_gateway::session::STATE_COOKIE;
use serde_json::json;
use tower::ServiceExt;

const SESSION: &str = "oberon_session";

fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let source = format!(
            r#"
public_url = "https://tickets.example"
routes = []
[session]
sign_in_url = "https://idp.fuzz.example/authorize"
issuer = "{ISSUER}"
[upstreams]
renderer = "http://127.0.0.1:1"
[[issuers]]
issuer = "{ISSUER}"
jwks_url = "{}"
audiences = ["oberon"]
algorithms = ["EdDSA"]
jwks_cooldown_s = 3600
"#,
            Idp::get().jwks_url
        );
        let file = Path::new("fuzz-gateway.toml");
        let config: GatewayConfig = oberon_config::parse_toml(file, &source).expect("parses");
        oberon_gateway::config::check(file, &source, &config).expect("valid");
        let gateway = oberon_gateway::Gateway::build(
            config,
            oberon_identity::Signer::generate(),
            &HashMap::new(),
        );
        runtime().block_on(gateway.issuers().prefetch());
        oberon_gateway::app(Arc::new(gateway))
    })
}

#[derive(Debug, Arbitrary)]
enum ReturnPath {
    Encoded(String),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Token {
    Raw(String),
    /// Minted by a published key; `nonce: None` echoes the cookie's nonce.
    Minted {
        nonce: Option<String>,
        sub: String,
        exp_from_now: i16,
        extra: Vec<(String, Json)>,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    state: String,
    nonce: String,
    return_path: ReturnPath,
    /// Other cookie text around the state cookie, and whether it is there at all.
    before: String,
    after: String,
    with_state_cookie: bool,
    /// The form's `state`: `None` echoes the cookie's.
    form_state: Option<String>,
    token: Token,
    /// Form bytes appended as they are.
    form_extra: String,
}

fn form_encode(s: &str) -> String {
    url_encode(s)
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The reference check of a return path: on this site, in every reading.
fn is_on_site(location: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(location).decode_utf8_lossy();
    [location, decoded.as_ref()].iter().all(|l| {
        l.starts_with('/')
            && !l.starts_with("//")
            && !l.contains('\\')
            && !l.chars().any(|c| c.is_control())
    }) && !location.chars().any(char::is_whitespace)
}

fn check_cookie_helpers(cookie: &str) {
    let Ok(value) = http::HeaderValue::from_str(cookie) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, value);
    if let Some(v) = cookie_value(&headers, SESSION) {
        assert!(!v.is_empty() && !v.contains(';'), "{v:?}");
    }
    // Without `Authorization`, the token is the session cookie, presented as one.
    if let Some((token, presented)) = token_of(&headers, SESSION) {
        assert_eq!(Some(token), cookie_value(&headers, SESSION));
        assert_eq!(presented, Presented::Session);
    }
    if let Some(kept) = without_cookie(&headers, SESSION) {
        let kept = kept.to_str().expect("the header was text");
        for pair in kept.split(';') {
            let name = pair.trim().split_once('=').map_or(pair.trim(), |(k, _)| k);
            assert_ne!(name, SESSION, "the session cookie survived: {kept:?}");
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let idp = Idp::get();
    let remembered = match &input.return_path {
        ReturnPath::Encoded(p) => B64.encode(p),
        ReturnPath::Raw(r) => r.clone(),
    };
    let state_cookie = format!(
        "{STATE_COOKIE}={}.{}.{remembered}",
        input.state, input.nonce
    );
    let cookie = if input.with_state_cookie {
        format!("{}; {state_cookie}; {}", input.before, input.after)
    } else {
        format!("{}; {}", input.before, input.after)
    };
    check_cookie_helpers(&cookie);

    let token = match &input.token {
        Token::Raw(t) => t.clone(),
        Token::Minted {
            nonce,
            sub,
            exp_from_now,
            extra,
        } => {
            let mut claims = serde_json::Map::new();
            for (k, v) in extra {
                claims.insert(k.clone(), v.0.clone());
            }
            claims.insert("iss".into(), json!(ISSUER));
            claims.insert("aud".into(), json!("oberon"));
            claims.insert("sub".into(), json!(sub));
            claims.insert("exp".into(), json!(now() + i64::from(*exp_from_now)));
            claims.insert(
                "nonce".into(),
                json!(nonce.as_deref().unwrap_or(&input.nonce)),
            );
            let header = json!({"alg": "EdDSA", "kid": "k1"});
            mint(
                &header,
                &serde_json::Value::Object(claims),
                idp.key("k1"),
                &[],
            )
        }
    };
    let form_state = input.form_state.as_deref().unwrap_or(&input.state);
    let body = format!(
        "id_token={}&state={}{}",
        form_encode(&token),
        form_encode(form_state),
        input.form_extra
    );
    let Ok(request) = http::Request::post("/_gateway/session")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::COOKIE, cookie.as_str())
        .body(axum::body::Body::from(body.clone()))
    else {
        return;
    };
    let response = runtime()
        .block_on(app().clone().oneshot(request))
        .expect("the router is infallible");
    let sets_session = response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with(&format!("{SESSION}=")) && !v.contains("Max-Age=0"));
    if let Some(location) = response.headers().get(http::header::LOCATION) {
        let location = location.to_str().expect("a Location is text");
        assert!(is_on_site(location), "redirect off the site: {location:?}");
    }
    if sets_session {
        // Only the sign-in started here (the first state cookie, read independently),
        // answered by a token signed by the provider and made for that sign-in. The
        // form as posted (its extra bytes included), read independently too.
        let (state, nonce) = started(&cookie).expect("a session without a sign-in state");
        let field = |name: &str| {
            form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (form_state, token) = (field("state"), field("id_token"));
        assert!(
            idp.signed_by_us(&token),
            "a session from a token we did not sign"
        );
        assert_eq!(form_state, state, "a session for another sign-in's state");
        let claims = token
            .split('.')
            .nth(1)
            .and_then(oberon_fuzz::decode_segment);
        let token_nonce = claims
            .as_ref()
            .and_then(|c| c.get("nonce"))
            .and_then(|n| n.as_str());
        assert!(
            !nonce.is_empty() && token_nonce == Some(nonce),
            "a session for another sign-in's nonce"
        );
    }
});

/// The reference reading of the sign-in state cookie: the first `oberon_signin` pair,
/// its value unquoted, exactly three `.`-separated parts.
fn started(cookie: &str) -> Option<(&str, &str)> {
    let value = cookie.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == STATE_COOKIE).then(|| value.trim_matches('"'))
    })?;
    let parts: Vec<&str> = value.split('.').collect();
    (parts.len() == 3).then(|| (parts[0], parts[1]))
}
