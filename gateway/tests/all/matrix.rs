//! The gateway's security matrix, over real HTTP: each case asserts the status and
//! whether the upstream saw the request.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oberon_config::listen::ListenLimits;
use oberon_config::testing::assert_slow_clients_are_closed;
use oberon_identity::Verifier;
use oberon_identity::assertion::HEADER as IDENTITY;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    upstream: Upstream,
    issuer: TestIssuer,
    gateway: std::sync::Arc<oberon_gateway::Gateway>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn setup_with(config: &str) -> Setup {
    let (upstream, upstream_url) = Upstream::start().await;
    let issuer = TestIssuer::start().await;
    let (gateway, url, dir) =
        gateway(config, &upstream_url, &[(ISSUER, issuer.jwks_url.as_str())]).await;
    Setup {
        upstream,
        issuer,
        gateway,
        url,
        _dir: dir,
    }
}

async fn setup() -> Setup {
    setup_with(CONFIG).await
}

/// GET `path` with a bearer token (if any), marked with `x-case`; returns the status and
/// how many requests of this case reached the upstream.
async fn case(s: &Setup, name: &str, path: &str, token: Option<&str>) -> (u16, usize) {
    let mut request = client()
        .get(format!("{}{path}", s.url))
        .header("x-case", name);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), s.upstream.saw(name).len())
}

/// A request written byte for byte, so that no client library normalises the path.
async fn raw(url: &str, request_line_target: &str, extra: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {request_line_target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn token_matrix() {
    let s = setup().await;
    let i = &s.issuer;
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = i.claims("alice");
        f(&mut c);
        i.sign(&c)
    };
    let valid = i.token("alice");
    let expired = with(&|c| {
        c["exp"] = (now() - 60).into();
        c["iat"] = (now() - 700).into();
    });
    let not_yet = with(&|c| c["nbf"] = (now() + 600).into());
    let wrong_iss = with(&|c| c["iss"] = "https://evil.test".into());
    let wrong_aud = with(&|c| c["aud"] = "another-service".into());
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"key-1"}"#),
        b64(i.claims("alice").to_string().as_bytes())
    );
    // The classic confusion: HMAC keyed with the issuer's *public* key.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("key-1".into());
    let hs_confusion = jsonwebtoken::encode(
        &hs_header,
        &i.claims("alice"),
        &EncodingKey::from_secret(i.public_pem.as_bytes()),
    )
    .unwrap();
    // A bit flipped in the middle of the decoded signature (the last base64 character
    // may carry only padding bits, so changing it may change nothing).
    let tampered_signature = {
        use base64::Engine;
        let (signed, signature) = valid.rsplit_once('.').unwrap();
        let mut signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        let middle = signature.len() / 2;
        signature[middle] ^= 0x01;
        format!("{signed}.{}", b64(&signature))
    };
    let tampered_claims = {
        let parts: Vec<&str> = valid.split('.').collect();
        let mut claims = i.claims("mallory");
        claims["roles"] = serde_json::json!(["admin"]);
        format!(
            "{}.{}.{}",
            parts[0],
            b64(claims.to_string().as_bytes()),
            parts[2]
        )
    };

    let cases: [(&str, Option<&str>, u16, usize); 11] = [
        ("valid", Some(&valid), 200, 1),
        ("none-at-all", None, 401, 0),
        ("expired", Some(&expired), 401, 0),
        ("not-yet-valid", Some(&not_yet), 401, 0),
        ("wrong-issuer", Some(&wrong_iss), 401, 0),
        ("wrong-audience", Some(&wrong_aud), 401, 0),
        ("alg-none", Some(&none), 401, 0),
        ("hs256-with-rsa-public-key", Some(&hs_confusion), 401, 0),
        ("tampered-signature", Some(&tampered_signature), 401, 0),
        ("tampered-claims", Some(&tampered_claims), 401, 0),
        ("garbage", Some("not.a.jwt"), 401, 0),
    ];
    for (name, token, status, seen) in cases {
        assert_eq!(
            case(&s, name, "/req/x", token).await,
            (status, seen),
            "case {name}"
        );
    }

    // The upstream got a verifiable assertion, and not the client's token.
    let seen = &s.upstream.saw("valid")[0];
    assert!(seen.headers.get("authorization").is_none());
    let request_id = seen.headers["x-request-id"].to_str().unwrap();
    let identity = Verifier::fixed(&s.gateway.signer().jwks(), "echo")
        .verify(seen.headers[IDENTITY].to_str().unwrap(), request_id)
        .await
        .unwrap()
        .identity;
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.roles, ["buyer"]);
    assert_eq!(identity.issuer, ISSUER);

    // 401s say how to authenticate, and that a token was invalid when it was.
    let r = client()
        .get(format!("{}/req/x", s.url))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="oberon", error="invalid_token""#
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
}

/// Why a token was refused, as `oberon_gateway_requests_total`'s `auth` label names it:
/// an operator tells expired sessions from forged tokens.
#[tokio::test]
async fn refused_tokens_are_labelled_by_why() {
    let s = setup().await;
    let i = &s.issuer;
    let mut expired = i.claims("alice");
    expired["exp"] = (now() - 60).into();
    expired["iat"] = (now() - 700).into();
    let mut foreign = i.claims("alice");
    foreign["iss"] = "https://evil.test".into();
    // Alice's claims under the signature of Bob's token.
    let (signed, _) = i
        .token("alice")
        .rsplit_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let (_, bobs) = i
        .token("bob")
        .rsplit_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let cases = [
        (i.sign(&expired), "expired"),
        (format!("{signed}.{bobs}"), "bad_signature"),
        (i.sign(&foreign), "unknown_issuer"),
        ("not.a.jwt".to_string(), "malformed"),
    ];
    for (token, label) in cases {
        let refused = s
            .gateway
            .issuers()
            .verify(&token, oberon_gateway::auth::Presented::Bearer)
            .await
            .expect_err(label);
        assert_eq!(refused.auth_label(), label, "{refused}");
    }
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_cools_down() {
    let s = setup().await;
    let i = &s.issuer;
    assert_eq!(i.fetches.load(Ordering::SeqCst), 1, "prefetched at start");

    // The provider rotates: key-2 is published, and a token signed with it arrives.
    let (key2, mut jwk2, _) = rsa_key();
    jwk2.common.key_id = Some("key-2".into());
    i.jwks.lock().unwrap().keys.push(jwk2);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("key-2".into());
    let rotated = jsonwebtoken::encode(&header, &i.claims("alice"), &key2).unwrap();
    assert_eq!(
        case(&s, "rotated", "/req/x", Some(&rotated)).await,
        (200, 1)
    );
    assert_eq!(i.fetches.load(Ordering::SeqCst), 2, "one refetch for key-2");

    // A flood of unknown kids within the cooldown costs the provider nothing.
    for n in 0..20 {
        let (key, _, _) = rsa_key_cached();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("bogus-{n}"));
        let token = jsonwebtoken::encode(&header, &i.claims("alice"), key).unwrap();
        assert_eq!(case(&s, "bogus", "/req/x", Some(&token)).await, (401, 0));
    }
    assert_eq!(
        i.fetches.load(Ordering::SeqCst),
        2,
        "cooldown: no more fetches"
    );
    let stats = s.gateway.issuers().key_set(ISSUER).unwrap().stats();
    assert_eq!(stats.cooled_down, 20);

    // Known keys keep working meanwhile.
    assert_eq!(
        case(&s, "known", "/req/x", Some(&i.token("bob"))).await,
        (200, 1)
    );
}

fn rsa_key_cached() -> &'static (EncodingKey, jsonwebtoken::jwk::Jwk, String) {
    static KEY: std::sync::OnceLock<(EncodingKey, jsonwebtoken::jwk::Jwk, String)> =
        std::sync::OnceLock::new();
    KEY.get_or_init(rsa_key)
}

#[tokio::test]
async fn jwks_down_keeps_the_cached_keys() {
    // No cooldown, so the unknown kid really makes the gateway try a refresh.
    let s = setup_with(&CONFIG.replace("jwks_cooldown_s = 30", "jwks_cooldown_s = 0")).await;
    let i = &s.issuer;
    i.down.store(true, Ordering::SeqCst);
    let (key, _, _) = rsa_key_cached();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("new-key".into());
    let unknown = jsonwebtoken::encode(&header, &i.claims("alice"), key).unwrap();
    assert_eq!(
        case(&s, "unknown", "/req/x", Some(&unknown)).await,
        (401, 0)
    );
    let stats = s.gateway.issuers().key_set(ISSUER).unwrap().stats();
    assert_eq!(stats.failed_fetches, 1, "the refresh was tried, and failed");
    // The failed refresh did not throw away the keys we had.
    assert_eq!(
        case(&s, "cached", "/req/x", Some(&i.token("alice"))).await,
        (200, 1)
    );
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_an_upstream() {
    let s = setup().await;
    let token = s.issuer.token("alice");
    // Public routes never look at the session; the others get a valid one or none.
    let signed_in = format!("theme=dark; oberon_session={token}");
    // (case, path, cookie, bearer token, whether the request is signed in)
    let cases: [(&str, &str, &str, Option<&str>, bool); 4] = [
        (
            "spoof-public",
            "/public/x",
            "theme=dark; oberon_session=whatever",
            None,
            false,
        ),
        ("spoof-optional", "/opt/x", "theme=dark", None, false),
        ("spoof-optional-signed-in", "/opt/x", &signed_in, None, true),
        ("spoof-required", "/req/x", "theme=dark", Some(&token), true),
    ];
    for (name, path, cookie, bearer, signed_in) in cases {
        let mut request = client()
            .get(format!("{}{path}", s.url))
            .header("x-case", name)
            .header(IDENTITY, "forged.assertion.value")
            .header("x-user-id", "admin")
            .header("x-forwarded-user", "admin")
            .header("x-oberon-roles", "admin")
            .header("remote-user", "admin")
            .header("cookie", cookie);
        if let Some(t) = bearer {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let seen = &s.upstream.saw(name)[0];
        for h in [
            "x-user-id",
            "x-forwarded-user",
            "x-oberon-roles",
            "remote-user",
            "authorization",
        ] {
            assert!(
                seen.headers.get(h).is_none(),
                "{name}: {h} reached the upstream"
            );
        }
        // Other cookies pass; the session token does not.
        assert_eq!(seen.headers["cookie"], "theme=dark", "{name}");
        match seen.headers.get(IDENTITY) {
            None => assert!(!signed_in, "{name}: a signed-in request has no assertion"),
            Some(v) => {
                assert!(signed_in, "{name}: an anonymous request got an assertion");
                let id = Verifier::fixed(&s.gateway.signer().jwks(), "echo")
                    .verify(
                        v.to_str().unwrap(),
                        seen.headers["x-request-id"].to_str().unwrap(),
                    )
                    .await
                    .unwrap()
                    .identity;
                assert_eq!(id.subject, "alice", "{name}");
            }
        }
    }
}

#[tokio::test]
async fn path_tricks_cannot_bypass_a_route() {
    let s = setup().await;
    let cases = [
        ("/public/..%2Freq/x", 400),
        ("/public/%2e%2e/req/x", 401),
        ("/public/%2E%2E/req/x", 401),
        ("/public/../req/x", 401),
        ("//req/x", 401),
        ("/./req/x", 401),
        ("/pub%6cic/../req/x", 401),
        ("/r%65q/x", 401),
        ("/req%2Fx", 400),
        ("/public/..%5Creq/x", 400),
        ("/public/..\\req/x", 400),
        ("/req/x?/public/y", 401),
        ("/req/x?x=/public/", 401),
        ("/public/%00/x", 400),
        ("/../req/x", 400),
        ("/REQ/x", 404),
    ];
    for (target, want) in cases {
        let (status, text) = raw(&s.url, target, "x-case: bypass\r\n").await;
        assert_eq!(status, want, "{target}\n{text}");
    }
    assert!(
        s.upstream.saw("bypass").is_empty(),
        "no bypass reached the upstream"
    );

    // The path that was authorised is the path that is sent.
    let (status, _) = raw(
        &s.url,
        "/public/a//b/./c/%2e%2e/d?q=/req",
        "x-case: norm\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(s.upstream.saw("norm")[0].uri, "/public/a/b/d?q=/req");
    let (status, _) = raw(&s.url, "/api/events/v1/events/42?x=1", "x-case: strip\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(s.upstream.saw("strip")[0].uri, "/v1/events/42?x=1");
}

#[tokio::test]
async fn optional_routes_reject_invalid_tokens_and_roles_are_enforced() {
    let s = setup().await;
    let i = &s.issuer;
    let mut expired = i.claims("alice");
    expired["exp"] = (now() - 60).into();
    let expired = i.sign(&expired);
    assert_eq!(case(&s, "opt-none", "/opt/x", None).await, (200, 1));
    assert!(
        s.upstream.saw("opt-none")[0]
            .headers
            .get(IDENTITY)
            .is_none()
    );
    assert_eq!(
        case(&s, "opt-invalid", "/opt/x", Some(&expired)).await,
        (401, 0)
    );
    assert_eq!(
        case(&s, "opt-valid", "/opt/x", Some(&i.token("a"))).await,
        (200, 1)
    );

    assert_eq!(
        case(&s, "no-role", "/admin/x", Some(&i.token("a"))).await,
        (403, 0)
    );
    let mut admin = i.claims("root");
    admin["roles"] = serde_json::json!(["buyer", "admin"]);
    assert_eq!(
        case(&s, "role", "/admin/x", Some(&i.sign(&admin))).await,
        (200, 1)
    );

    assert_eq!(
        case(&s, "claim", "/acme/x", Some(&i.token("a"))).await,
        (200, 1)
    );
    let mut other = i.claims("a");
    other["tenant"] = "globex".into();
    assert_eq!(
        case(&s, "no-claim", "/acme/x", Some(&i.sign(&other))).await,
        (403, 0)
    );

    // Pages redirect to sign in, with the return path; an invalid session is cleared.
    let r = client()
        .get(format!("{}/account?tab=orders", s.url))
        .header("x-case", "page")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/_gateway/sign-in?return_to=%2Faccount%3Ftab%3Dorders"
    );
    let r = client()
        .get(format!("{}/events/1", s.url))
        .header("x-case", "page")
        .header("cookie", format!("oberon_session={expired}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("oberon_session=; Path=/; Max-Age=0")
    );
    assert!(s.upstream.saw("page").is_empty());
    // A valid session cookie works like a bearer token.
    let r = client()
        .get(format!("{}/account", s.url))
        .header("x-case", "cookie")
        .header("cookie", format!("oberon_session={}", i.token("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.upstream.saw("cookie")[0].headers.contains_key(IDENTITY));
}

/// A sign-in the gateway started: where it sends the browser, the state cookie (as a
/// `Cookie` header), and the request's `state` and `nonce`.
struct Started {
    location: String,
    cookie: String,
    state: String,
    nonce: String,
}

/// The value of query parameter `name` in `url` (as sent, still encoded).
fn param(url: &str, name: &str) -> Option<String> {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .map(String::from)
}

async fn start_sign_in(url: &str, return_to: &str) -> Started {
    let r = client()
        .get(format!("{url}/_gateway/sign-in"))
        .query(&[("return_to", return_to)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    Started {
        state: param(&location, "state").unwrap(),
        nonce: param(&location, "nonce").unwrap(),
        location,
        cookie,
    }
}

/// POST the provider's answer to the gateway's callback.
async fn finish_sign_in(url: &str, started: &Started, id_token: String) -> reqwest::Response {
    client()
        .post(format!("{url}/_gateway/session"))
        .header("cookie", &started.cookie)
        .form(&[("id_token", id_token), ("state", started.state.clone())])
        .send()
        .await
        .unwrap()
}

/// Start a sign-in with `return_to`, complete it with a valid token, and return where
/// the gateway sends the browser.
async fn sign_in(s: &Setup, return_to: &str) -> String {
    let started = start_sign_in(&s.url, return_to).await;
    let location = &started.location;
    assert!(
        location.starts_with("https://idp.test/sign-in?"),
        "{location}"
    );
    assert!(
        location.contains("redirect_uri=http%3A%2F%2Fgateway.test%2F_gateway%2Fsession"),
        "{location}"
    );
    let mut claims = s.issuer.claims("alice");
    claims["nonce"] = started.nonce.clone().into();
    let r = finish_sign_in(&s.url, &started, s.issuer.sign(&claims)).await;
    assert_eq!(r.status(), 303);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("oberon_session=ey") && c.contains("HttpOnly")),
        "{set:?}"
    );
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_is_an_openid_connect_request() {
    let s = setup().await;
    let started = start_sign_in(&s.url, "/account").await;
    let location = &started.location;
    assert_eq!(param(location, "response_type").unwrap(), "id_token");
    assert_eq!(param(location, "response_mode").unwrap(), "form_post");
    assert_eq!(param(location, "scope").unwrap(), "openid");
    assert_eq!(param(location, "client_id").unwrap(), "oberon");
    // State and nonce: 128 random bits each, different every time.
    assert_eq!(started.state.len(), 22, "{location}");
    assert_eq!(started.nonce.len(), 22, "{location}");
    assert_ne!(started.state, started.nonce);
    let again = start_sign_in(&s.url, "/account").await;
    assert_ne!(again.nonce, started.nonce);

    // The client id and the extra scopes come from [session].
    let config = CONFIG
        .replace(
            "issuer = \"https://idp.test\"\n\n[upstreams]",
            "issuer = \"https://idp.test\"\nclient_id = \"tickets web\"\nscopes = [\"profile\", \"openid\", \"email\"]\n\n[upstreams]",
        )
        .replace(
            "audiences = [\"oberon\"]",
            "audiences = [\"oberon\", \"tickets web\"]",
        );
    assert_ne!(config, CONFIG);
    let s = setup_with(&config).await;
    let location = start_sign_in(&s.url, "/account").await.location;
    assert_eq!(param(&location, "client_id").unwrap(), "tickets%20web");
    assert_eq!(
        param(&location, "scope").unwrap(),
        "openid%20profile%20email"
    );
}

#[tokio::test]
async fn a_sign_in_token_must_carry_this_sign_ins_nonce() {
    let s = setup().await;
    let i = &s.issuer;
    let started = start_sign_in(&s.url, "/account").await;
    let other = start_sign_in(&s.url, "/account").await;
    let with_nonce = |nonce: Option<&str>| {
        let mut claims = i.claims("alice");
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        i.sign(&claims)
    };
    // Valid tokens of the right issuer, but not the answer to this sign-in: none, or
    // another sign-in's nonce.
    for (name, token) in [
        ("no nonce", with_nonce(None)),
        ("another sign-in's nonce", with_nonce(Some(&other.nonce))),
        ("an empty nonce", with_nonce(Some(""))),
    ] {
        let r = finish_sign_in(&s.url, &started, token).await;
        assert_eq!(r.status(), 400, "{name}");
        assert!(r.headers().get("set-cookie").is_none(), "{name}");
        assert_eq!(
            r.text().await.unwrap(),
            "the sign-in token was not made for this sign-in: start again\n",
            "{name}"
        );
    }
    let r = finish_sign_in(&s.url, &started, with_nonce(Some(&started.nonce))).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account");
}

#[tokio::test]
async fn the_development_idp_signs_in_the_way_the_smoke_test_does() {
    use oberon_gateway::devidp::{self, DevIdp};
    const DEV: &str = "oberon-dev-idp";
    let redirect_uri = "http://gateway.test/_gateway/session";
    let idp = DevIdp::new(DEV, "http://unused", "oberon", vec![redirect_uri.into()]).unwrap();
    let idp_url = serve(devidp::app(std::sync::Arc::new(idp))).await;
    let config = CONFIG.replace(
        "sign_in_url = \"https://idp.test/sign-in\"\nissuer = \"https://idp.test\"",
        &format!("sign_in_url = \"{idp_url}/sign-in\"\nissuer = \"{DEV}\""),
    ) + &format!(
        "\n[[issuers]]\nissuer = \"{DEV}\"\njwks_url = \"https://dev-idp.test/jwks.json\"\naudiences = [\"oberon\"]\nalgorithms = [\"RS256\"]\n"
    );
    let (_upstream, upstream_url) = Upstream::start().await;
    let dev_jwks = format!("{idp_url}/.well-known/jwks.json");
    let (_gateway, url, _dir) = gateway(
        &config,
        &upstream_url,
        &[(ISSUER, "http://127.0.0.1:9/jwks.json"), (DEV, &dev_jwks)],
    )
    .await;

    // As `.ci/sign-in-smoke`: follow the redirect to the provider's form, post back only
    // `state`, `redirect_uri`, the name and a role, and carry the token to the gateway.
    let field = |html: &str, name: &str| {
        html.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {name} in {html}"))
            .to_string()
    };
    let started = start_sign_in(&url, "/account").await;
    assert!(
        started.location.starts_with(&idp_url),
        "{}",
        started.location
    );
    let form = client()
        .get(&started.location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let state = field(&form, "state");
    assert_eq!(state, started.state);
    assert_eq!(field(&form, "redirect_uri"), redirect_uri);
    let posted = client()
        .post(format!("{idp_url}/sign-in"))
        .form(&[
            ("state", state.as_str()),
            ("redirect_uri", redirect_uri),
            ("user", "alice"),
            ("buyer", "on"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = field(&posted, "id_token");
    let r = finish_sign_in(&url, &started, token).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/account");
}

#[tokio::test]
async fn sign_in_returns_only_to_local_paths() {
    let s = setup().await;
    assert_eq!(
        sign_in(&s, "/account?tab=orders").await,
        "/account?tab=orders"
    );
    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
        "evil.example",
        "/a\r\nSet-Cookie: x=1",
    ] {
        assert_eq!(sign_in(&s, evil).await, "/", "{evil:?}");
    }

    // A callback whose state does not match the browser's cookie is refused.
    let r = client()
        .post(format!("{}/_gateway/session", s.url))
        .header("cookie", "oberon_signin=abc.def.Lw")
        .form(&[
            ("id_token", s.issuer.token("mallory")),
            ("state", "other".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none());
}

/// A preflight carries no credentials, so it is authenticated like anything else: on a
/// `required` route it never reaches the upstream (finding 7: it used to go through
/// anonymously), on a `public` route the upstream answers it.
#[tokio::test]
async fn preflights_are_authenticated_like_any_request() {
    let s = setup().await;
    let preflight = |path: &str, case: &str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", s.url))
            .header("x-case", case.to_string())
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("/req/x", "preflight-required").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.upstream.saw("preflight-required").is_empty());
    let r = preflight("/account", "preflight-page").await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(s.upstream.saw("preflight-page").is_empty());
    let r = preflight("/public/x", "preflight-public").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.upstream.saw("preflight-public").len(), 1);
    // On an optional route it goes on as what it is: anonymous.
    let r = preflight("/opt/x", "preflight-optional").await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.upstream.saw("preflight-optional");
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key(IDENTITY));
}

/// The sign-in endpoints spend the client's rate-limit budget like any other request
/// (finding 11: they bypassed it).
#[tokio::test]
async fn the_sign_in_endpoints_are_rate_limited_per_client() {
    let config =
        format!("{CONFIG}\n[rate_limit]\nper_client = {{ per_second = 0.001, burst = 3 }}\n");
    let s = setup_with(&config).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = client()
            .get(format!("{}/_gateway/sign-in?return_to=/", s.url))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        let r = client()
            .post(format!("{}/_gateway/session", s.url))
            .form(&[("id_token", "a.b.c"), ("state", "s")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        let r = client()
            .post(format!("{}/_gateway/sign-out", s.url))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [303, 400, 303, 429, 429, 429]);
}

/// `/_gateway/session` takes attacker input: what cannot be a token is refused before
/// any decoding, key lookup or signature check (finding 11), and a body too large for
/// a callback is not read.
#[tokio::test]
async fn the_sign_in_callback_refuses_oversized_input_before_verifying() {
    let s = setup().await;
    let started = start_sign_in(&s.url, "/").await;
    let fetches = s.issuer.fetches.load(Ordering::SeqCst);
    let mut claims = s.issuer.claims("alice");
    claims["nonce"] = started.nonce.clone().into();
    claims["pad"] = "x".repeat(20_000).into();
    // Signed with a `kid` the issuer never published: verifying it would refetch the
    // issuer's keys.
    let token = s.issuer.sign_with(&claims, Some("not-published"));
    let r = finish_sign_in(&s.url, &started, token).await;
    assert_eq!(r.status(), 400);
    assert_eq!(s.issuer.fetches.load(Ordering::SeqCst), fetches);
    let r = finish_sign_in(&s.url, &started, "a".repeat(40_000)).await;
    assert_eq!(r.status(), 413);
}

/// Another site cannot sign a browser out (finding 12): a cross-site `POST` is refused
/// and the session cookie is left alone.
#[tokio::test]
async fn sign_out_is_refused_from_other_sites() {
    let s = setup().await;
    let sign_out = |headers: &[(&'static str, &'static str)]| {
        let mut request = client().post(format!("{}/_gateway/sign-out", s.url));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    for refused in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ][..],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
    ] {
        let r = sign_out(refused).await.unwrap();
        assert_eq!(r.status(), 403, "{refused:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{refused:?}");
    }
    for allowed in [
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://gateway.test"),
        ][..],
        &[("origin", "http://gateway.test")],
    ] {
        let r = sign_out(allowed).await.unwrap();
        assert_eq!(r.status(), 303, "{allowed:?}");
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("oberon_session=; "), "{cookie}");
    }
}

/// `sub`'s token from `issuer`, with the `typ` header `typ`.
fn typed(issuer: &TestIssuer, typ: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(issuer.kid.clone());
    header.typ = Some(typ.into());
    jsonwebtoken::encode(&header, claims, &issuer.key).unwrap()
}

/// ID tokens and access tokens are not interchangeable where `typ` tells them apart:
/// an access token (`at+jwt`) is never a session, and with `access_token_typ` set an
/// ID token is no bearer token.
#[tokio::test]
async fn access_tokens_and_id_tokens_are_not_interchangeable() {
    let s = setup().await;
    let access = typed(&s.issuer, "at+jwt", &s.issuer.claims("alice"));
    let r = client()
        .get(format!("{}/req/x", s.url))
        .header("x-case", "access-as-session")
        .header("cookie", format!("oberon_session={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.upstream.saw("access-as-session").is_empty());
    let started = start_sign_in(&s.url, "/").await;
    let mut claims = s.issuer.claims("alice");
    claims["nonce"] = started.nonce.clone().into();
    let r = finish_sign_in(&s.url, &started, typed(&s.issuer, "at+jwt", &claims)).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none());
    // This issuer does not type its access tokens: any valid token is a bearer token.
    assert_eq!(
        case(&s, "at-bearer", "/req/x", Some(&access)).await,
        (200, 1)
    );
    let id = typed(&s.issuer, "JWT", &s.issuer.claims("bob"));
    assert_eq!(case(&s, "id-bearer", "/req/x", Some(&id)).await, (200, 1));

    let config = CONFIG.replace(
        "jwks_cooldown_s = 30",
        "jwks_cooldown_s = 30\naccess_token_typ = \"at+jwt\"",
    );
    assert_ne!(config, CONFIG);
    let s = setup_with(&config).await;
    let id = typed(&s.issuer, "JWT", &s.issuer.claims("bob"));
    assert_eq!(
        case(&s, "typed-id-bearer", "/req/x", Some(&id)).await,
        (401, 0)
    );
    let access = typed(&s.issuer, "application/at+jwt", &s.issuer.claims("alice"));
    assert_eq!(
        case(&s, "typed-at-bearer", "/req/x", Some(&access)).await,
        (200, 1)
    );
    let r = client()
        .get(format!("{}/req/x", s.url))
        .header("x-case", "typed-id-session")
        .header("cookie", format!("oberon_session={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// One audience per upstream (finding 9: every assertion was good at every upstream):
/// the assertion sent to an upstream names it, and the upstreams `[delegates]` lets
/// it pass the user on to; no other service accepts it.
#[tokio::test]
async fn an_assertion_is_good_only_at_its_upstream_and_its_delegates() {
    let signed_in_upstream_saw = |s: &Setup, case: &'static str| {
        let seen = s.upstream.saw(case);
        assert_eq!(seen.len(), 1, "{case}");
        let header = |name: &str| seen[0].headers[name].to_str().unwrap().to_string();
        (header(IDENTITY), header("x-request-id"))
    };
    let at = |s: &Setup, service: &str| Verifier::fixed(&s.gateway.signer().jwks(), service);

    let s = setup().await;
    let alice = s.issuer.token("alice");
    assert_eq!(case(&s, "own", "/req/x", Some(&alice)).await, (200, 1));
    let (assertion, rid) = signed_in_upstream_saw(&s, "own");
    let asserted = at(&s, "echo").verify(&assertion, &rid).await.unwrap();
    assert_eq!(asserted.audiences, ["echo"]);
    for other in ["checkout", "renderer", "oberon-upstream"] {
        assert!(
            at(&s, other).verify(&assertion, &rid).await.is_err(),
            "{other}"
        );
    }

    let config = CONFIG.replace(
        "[upstreams]\necho = \"http://127.0.0.1:9\"\n",
        "[upstreams]\necho = \"http://127.0.0.1:9\"\ncheckout = \"http://127.0.0.1:9\"\nevents = \"http://127.0.0.1:9\"\n\n[delegates]\necho = [\"checkout\"]\n",
    );
    assert_ne!(config, CONFIG);
    let s = setup_with(&config).await;
    let alice = s.issuer.token("alice");
    assert_eq!(
        case(&s, "delegated", "/req/x", Some(&alice)).await,
        (200, 1)
    );
    let (assertion, rid) = signed_in_upstream_saw(&s, "delegated");
    for service in ["echo", "checkout"] {
        let asserted = at(&s, service).verify(&assertion, &rid).await.unwrap();
        assert_eq!(asserted.audiences, ["echo", "checkout"], "{service}");
    }
    assert!(at(&s, "events").verify(&assertion, &rid).await.is_err());
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let config = format!(
        "{CONFIG}\n[rate_limit]\nper_client = {{ per_second = 1, burst = 3 }}\nper_user = {{ per_second = 1, burst = 2 }}\n"
    );
    let s = setup_with(&config).await;
    let mut statuses = Vec::new();
    for n in 0..5 {
        // A forged X-Forwarded-For from an untrusted peer changes nothing.
        let r = client()
            .get(format!("{}/public/x", s.url))
            .header("x-case", "client-limit")
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "{retry}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(s.upstream.saw("client-limit").len(), 3);

    // Per user: each user has their own budget, whatever the address.
    let s = setup_with(&config.replace(
        "per_second = 1, burst = 3",
        "per_second = 1000, burst = 1000",
    ))
    .await;
    let alice = s.issuer.token("alice");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(case(&s, "user", "/req/x", Some(&alice)).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(
        case(&s, "bob", "/req/x", Some(&s.issuer.token("bob"))).await,
        (200, 1)
    );
}

/// With shielding, Fastly's POP appends the edge's address after the client's: the
/// client is the first address, right to left, that is not a trusted hop. Neither a
/// forged entry further left nor the edge's own address may choose the rate-limit
/// bucket.
#[tokio::test]
async fn the_client_address_is_the_first_untrusted_entry_right_to_left() {
    // Loopback (the test's own peer) plays the shield, 10.99.0.0/16 the edges.
    let config = format!(
        "{}\n[rate_limit]\nper_client = {{ per_second = 1, burst = 2 }}\n",
        CONFIG.replace(
            r#"trusted_hops = ["10.99.0.0/16"]"#,
            r#"trusted_hops = ["127.0.0.1/32", "10.99.0.0/16"]"#
        )
    );
    let s = setup_with(&config).await;
    let status = |chain: String| {
        let url = format!("{}/public/x", s.url);
        async move {
            client()
                .get(url)
                .header("x-case", "xff")
                .header("x-forwarded-for", chain)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // One client forging a fresh leftmost address every time: still one bucket.
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(status(format!("203.0.113.{n}, 198.51.100.7, 10.99.0.5")).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "a forged entry is a new bucket"
    );
    // Another client behind the same edge has a bucket of its own.
    assert_eq!(
        status("198.51.100.8, 10.99.0.5".into()).await,
        200,
        "the edge's address is not the client's"
    );
}

#[tokio::test]
async fn proxying_sets_forwarding_headers_and_reports_failures() {
    let s = setup().await;
    let r = client()
        .get(format!("{}/public/x", s.url))
        .header("x-case", "fwd")
        .header("x-request-id", "client-chosen")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The upstream's Connection-named header is hop-by-hop: it stops here.
    assert!(r.headers().get("x-upstream-hop").is_none());
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(
        id, "client-chosen",
        "only the trusted hop chooses request ids"
    );
    let seen = &s.upstream.saw("fwd")[0];
    assert_eq!(seen.headers["x-request-id"], id.as_str());
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    let tp = seen.headers["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );

    // Upstream too slow: 504 at the route's timeout, not the upstream's pace.
    let started = Instant::now();
    let (status, _) = case(&s, "slow", "/api/events/slow", None).await;
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // Bodies over the limit: 413, whether announced or streamed.
    let big = vec![b'x'; (1 << 20) + 1];
    let r = client()
        .post(format!("{}/public/upload", s.url))
        .header("x-case", "big")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stream = futures::stream::iter(
        big.chunks(64 << 10)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = client()
        .post(format!("{}/public/upload", s.url))
        .header("x-case", "big-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = client()
        .post(format!("{}/public/upload", s.url))
        .header("x-case", "small")
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.upstream.saw("small")[0].body_len, 1000);

    // Headers over the limit: 431.
    let r = client()
        .get(format!("{}/public/x", s.url))
        .header("x-case", "headers")
        .header("x-big", "y".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert!(s.upstream.saw("headers").is_empty());

    // Upstream gone: 502, with a body that names nothing internal (see
    // `upstream_failures_name_nothing_internal_to_the_client`).
    let (gw, url, _d) = gateway(
        CONFIG,
        "http://127.0.0.1:9",
        &[(ISSUER, s.issuer.jwks_url.as_str())],
    )
    .await;
    drop(gw);
    let r = client()
        .get(format!("{url}/public/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().await.unwrap(), "bad gateway\n");
}

/// What went wrong upstream is for the log, not the client: the bodies of a 504 (the
/// upstream timed out) and a 502 (it could not be reached) name neither the upstream,
/// nor its address, nor the timeout. The log line that does is in the request's span,
/// so it carries the request id the client got.
#[tokio::test]
async fn upstream_failures_name_nothing_internal_to_the_client() {
    let logs = Logs::default();
    let _logging = tracing::subscriber::set_default(logs.subscriber());
    let issuer = TestIssuer::start().await;
    let jwks = [(ISSUER, issuer.jwks_url.as_str())];
    let (_upstream, upstream_url) = Upstream::start().await;
    let (_slow_gateway, slow_url, _d1) = gateway(CONFIG, &upstream_url, &jwks).await;
    let gone_url = "http://127.0.0.1:9";
    let (_gone_gateway, gone_url_gw, _d2) = gateway(CONFIG, gone_url, &jwks).await;

    for (gateway_url, path, status, body, upstream_address, logged) in [
        // `/api/events/{*rest}` has `timeout_ms = 300`; the upstream's /slow takes 2 s.
        (
            &slow_url,
            "/api/events/slow",
            504,
            "gateway timeout\n",
            upstream_url.as_str(),
            "upstream timed out after 300ms",
        ),
        (
            &gone_url_gw,
            "/public/x",
            502,
            "bad gateway\n",
            gone_url,
            "upstream failed: ",
        ),
    ] {
        let r = client()
            .get(format!("{gateway_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        assert_eq!(text, body, "{path}");
        let address = upstream_address.trim_start_matches("http://");
        let port = address.rsplit(':').next().unwrap();
        for internal in ["echo", upstream_address, address, "127.0.0.1", port, "300"] {
            assert!(
                !text.contains(internal),
                "{path}: {text:?} names {internal:?}"
            );
        }

        let line = logs
            .lines()
            .into_iter()
            .find(|l| l["span"]["request_id"] == request_id.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{path}: no log line in request {request_id}: {:?}",
                    logs.lines()
                )
            });
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["path"], path, "{line}");
        assert_eq!(line["fields"]["upstream"], "echo", "{line}");
        let message = line["fields"]["message"].as_str().unwrap();
        assert!(message.starts_with(logged), "{path}: {message}");
        assert!(
            line["fields"].get("request_id").is_none(),
            "the span carries it: {line}"
        );
    }
}

#[tokio::test]
async fn two_issuers_each_verify_with_their_own_keys_only() {
    const OTHER: &str = "https://other-idp.test";
    let config = format!(
        "{CONFIG}\n[[issuers]]\nissuer = \"{OTHER}\"\njwks_url = \"https://other-idp.test/jwks.json\"\naudiences = [\"oberon\"]\nalgorithms = [\"RS256\"]\n"
    );
    let (upstream, upstream_url) = Upstream::start().await;
    let a = TestIssuer::start().await;
    let b = TestIssuer::start().await;
    let (gateway, url, dir) = gateway(
        &config,
        &upstream_url,
        &[(ISSUER, a.jwks_url.as_str()), (OTHER, b.jwks_url.as_str())],
    )
    .await;
    let s = Setup {
        upstream,
        issuer: a,
        gateway,
        url,
        _dir: dir,
    };
    let a = &s.issuer;
    let claiming_other = |signer: &TestIssuer, sub: &str| {
        let mut claims = signer.claims(sub);
        claims["iss"] = OTHER.into();
        signer.sign(&claims)
    };
    // Both publish their key as `key-1`: the key must come from the claimed issuer's
    // set, never from whichever set holds that kid.
    let cases = [
        ("issuer-a", a.token("alice"), 200, 1),
        ("issuer-b", claiming_other(&b, "bob"), 200, 1),
        ("a-key-claiming-b", claiming_other(a, "mallory"), 401, 0),
        ("b-key-claiming-a", b.token("mallory"), 401, 0),
    ];
    for (name, token, status, seen) in cases {
        assert_eq!(
            case(&s, name, "/req/x", Some(&token)).await,
            (status, seen),
            "case {name}"
        );
    }
    // Each user reaches the upstream as their own issuer's.
    let verifier = Verifier::fixed(&s.gateway.signer().jwks(), "echo");
    for (name, issuer, subject) in [("issuer-a", ISSUER, "alice"), ("issuer-b", OTHER, "bob")] {
        let seen = &s.upstream.saw(name)[0];
        let identity = verifier
            .verify(
                seen.headers[IDENTITY].to_str().unwrap(),
                seen.headers["x-request-id"].to_str().unwrap(),
            )
            .await
            .unwrap()
            .identity;
        assert_eq!(
            (identity.issuer.as_str(), identity.subject.as_str()),
            (issuer, subject)
        );
    }
}

#[tokio::test]
async fn leeway_forgives_a_little_clock_skew_and_no_more() {
    let config = CONFIG.replace("leeway_s = 5", "leeway_s = 30");
    assert_ne!(config, CONFIG);
    let s = setup_with(&config).await;
    let expired_ago = |seconds: u64| {
        let mut claims = s.issuer.claims("alice");
        claims["iat"] = (now() - 600).into();
        claims["nbf"] = (now() - 600).into();
        claims["exp"] = (now() - seconds).into();
        s.issuer.sign(&claims)
    };
    assert_eq!(
        case(&s, "expired-5s-ago", "/req/x", Some(&expired_ago(5))).await,
        (200, 1)
    );
    assert_eq!(
        case(&s, "expired-60s-ago", "/req/x", Some(&expired_ago(60))).await,
        (401, 0)
    );
}

#[tokio::test]
async fn with_origin_verification_only_the_cdn_gets_through() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NEXT: &str = "fedcba9876543210fedcba9876543210";
    let config = format!("{CONFIG}\n[origin]\nsecret_file = \"origin-secret\"\n");
    let (upstream, upstream_url) = Upstream::start().await;
    let issuer = TestIssuer::start().await;
    let (_gateway, url, _dir) = gateway_with_files(
        &config,
        // A rotation in progress: both secrets are good.
        &[("origin-secret", &format!("{SECRET}\n{NEXT}\n"))],
        &upstream_url,
        &[(ISSUER, issuer.jwks_url.as_str())],
    )
    .await;
    let get = |case: &'static str, path: &str, origin: &[&str]| {
        let mut request = client().get(format!("{url}{path}")).header("x-case", case);
        for v in origin {
            request = request.header("x-origin-verify", *v);
        }
        async move { request.send().await.unwrap() }
    };

    for (case, origin) in [
        ("none", &[][..]),
        ("wrong", &["0123456789abcdef0123456789abcdeX"][..]),
        ("prefix", &[&SECRET[..16]][..]),
        ("twice", &[SECRET, "something else"][..]),
    ] {
        let response = get(case, "/public/x", origin).await;
        assert_eq!(response.status(), 403, "{case}");
        assert!(
            upstream.saw(case).is_empty(),
            "{case}: reached the upstream"
        );
    }
    // The browser-facing endpoints of the gateway itself are behind it too.
    assert_eq!(
        get("sign-in", "/_gateway/sign-in?return_to=/", &[])
            .await
            .status(),
        403
    );

    for (case, secret) in [("good", SECRET), ("next", NEXT)] {
        let response = get(case, "/public/x", &[secret]).await;
        assert_eq!(response.status(), 200, "{case}");
        let seen = upstream.saw(case);
        assert_eq!(seen.len(), 1, "{case}");
        assert!(
            seen[0].headers.get("x-origin-verify").is_none(),
            "{case}: the secret was passed upstream"
        );
    }

    // Probes and the in-cluster key fetch come without the CDN.
    for path in oberon_gateway::HEALTH_PATHS
        .into_iter()
        .chain([oberon_identity::assertion::JWKS_PATH])
    {
        assert_eq!(get("health", path, &[]).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn origin_verification_refuses_to_start_without_a_good_secret() {
    let config = format!("{CONFIG}\n[origin]\nsecret_file = \"origin-secret\"\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, &config).unwrap();
    std::fs::write(dir.path().join("origin-secret"), "too-short\n").unwrap();
    let error = oberon_gateway::Gateway::load(oberon_gateway::GatewayOptions {
        config: file,
        ..Default::default()
    })
    .await
    .err()
    .expect("a short secret is refused")
    .to_string();
    let line = config.lines().count();
    assert!(
        error.contains(&format!("gateway.toml:{line}:15: ")),
        "{error}"
    );
    assert!(error.contains("is not at least 32 characters"), "{error}");
}

/// Slowloris: a connection that dribbles its head, one that sends nothing and a
/// kept-alive one left idle are all closed at the header-read timeout (10 s) rather
/// than holding a file descriptor for as long as the client likes.
#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_at_the_header_read_timeout() {
    let s = setup().await;
    let addr = s.url.trim_start_matches("http://");
    let timeout = ListenLimits::default().header_read_timeout;
    assert_slow_clients_are_closed(addr, addr, "/_gateway/livez", timeout).await;
    // The listener itself is unharmed.
    assert_eq!(case(&s, "after-slow", "/public/x", None).await, (200, 1));
}

/// `[not_found]`: a GET or HEAD to a path no route has gets the upstream's page at the
/// configured path, anonymously and never at the client's path, with status 404; other
/// methods and an upstream that fails get the plain 404.
#[tokio::test]
async fn unrouted_paths_get_the_configured_not_found_page() {
    let s = setup_with(&format!(
        "{CONFIG}\n[not_found]\nupstream = \"echo\"\npath = \"/not-found\"\n"
    ))
    .await;
    let token = s.issuer.token("alice");
    let response = client()
        .get(format!("{}/no/such/page?x=1", s.url))
        .header("x-case", "unrouted")
        .bearer_auth(&token)
        .header("cookie", "oberon_session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "upstream saw /not-found?x=1"
    );
    let seen = s.upstream.saw("unrouted");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/not-found?x=1");
    for credential in ["authorization", "cookie", IDENTITY] {
        assert!(
            !seen[0].headers.contains_key(credential),
            "{credential} reached the not-found upstream"
        );
    }

    let post = client()
        .post(format!("{}/no/such/page", s.url))
        .header("x-case", "unrouted-post")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
    assert_eq!(post.text().await.unwrap(), "not found\n");
    assert!(s.upstream.saw("unrouted-post").is_empty());
    // The services' own paths are as unrouted as any: the upstream is asked for its
    // not-found page, never for them.
    let (status, text) = raw(&s.url, "/_oberon/mode", "x-case: unrouted-own\r\n").await;
    assert_eq!(status, 404, "{text}");
    let seen: Vec<String> = s
        .upstream
        .saw("unrouted-own")
        .into_iter()
        .map(|r| r.uri)
        .collect();
    assert_eq!(seen, ["/not-found"]);
}

#[tokio::test]
async fn a_failing_not_found_upstream_gives_the_plain_404() {
    let s = setup_with(&format!(
        "{CONFIG}\n[not_found]\nupstream = \"echo\"\npath = \"/slow/not-found\"\n[limits]\nupstream_timeout_ms = 200\n"
    ))
    .await;
    let response = client()
        .get(format!("{}/no/such/page", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "not found\n");
}
