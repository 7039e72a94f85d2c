//! Identity providers' JWTs through the gateway's `Issuers` (issuer chosen from the
//! unverified `iss`, pinned algorithm, key by `kid` from a JWKS fetched on loopback,
//! full validation). Tokens are raw strings or built from parts (header fields,
//! claims, signed with a published key, a foreign key, or not at all). Property: a
//! token the gateway accepts passes an independent check — an Ed25519 signature by a
//! published key over exactly its first two segments, a pinned algorithm, `iss`,
//! `aud`, `exp`, `nbf` and a non-empty string `sub` — and the identity is its claims.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use oberon_fuzz::{ISSUER, Idp, Json, decode_segment, mint, now, runtime};
use oberon_gateway::Gateway;
use oberon_gateway::config::GatewayConfig;
use serde_json::{Value, json};

const AUDIENCES: [&str; 2] = ["oberon", "tickets"];
const LEEWAY: i64 = 30;

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let idp = Idp::get();
        let source = format!(
            r#"
public_url = "https://tickets.example"
routes = []
[upstreams]
renderer = "http://127.0.0.1:1"
[[issuers]]
issuer = "{ISSUER}"
jwks_url = "{}"
audiences = ["oberon", "tickets"]
algorithms = ["EdDSA", "RS256"]
leeway_s = {LEEWAY}
roles_claim = "realm_access.roles"
jwks_cooldown_s = 3600
"#,
            idp.jwks_url
        );
        let file = Path::new("fuzz-gateway.toml");
        let config: GatewayConfig = oberon_config::parse_toml(file, &source).expect("parses");
        oberon_gateway::config::check(file, &source, &config).expect("valid");
        let gateway = Gateway::build(config, oberon_identity::Signer::generate(), &HashMap::new());
        runtime().block_on(gateway.issuers().prefetch());
        gateway
    })
}

#[derive(Debug, Arbitrary)]
enum Text {
    Known(u8),
    Any(String),
}

impl Text {
    fn pick(&self, known: &[&str]) -> String {
        match self {
            Text::Known(i) => known[usize::from(*i) % known.len()].to_string(),
            Text::Any(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Time {
    FromNow(i16),
    Exact(Json),
}

impl Time {
    fn value(&self) -> Value {
        match self {
            Time::FromNow(d) => json!(now() + i64::from(*d)),
            Time::Exact(v) => v.0.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Audience {
    One(Text),
    Many(Vec<Text>),
    Other(Json),
}

#[derive(Debug, Arbitrary)]
enum Signature {
    Published(u8),
    Foreign,
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Built {
    alg: Option<Text>,
    kid: Option<Text>,
    typ: Option<String>,
    header_extra: Vec<(String, Json)>,
    iss: Option<Text>,
    sub: Option<Json>,
    aud: Option<Audience>,
    exp: Option<Time>,
    nbf: Option<Time>,
    roles: Option<Json>,
    claims_extra: Vec<(String, Json)>,
    signature: Signature,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(String),
    Built(Built),
}

fn build(b: &Built) -> String {
    let idp = Idp::get();
    let mut header = serde_json::Map::new();
    for (k, v) in &b.header_extra {
        header.insert(k.clone(), v.0.clone());
    }
    if let Some(alg) = &b.alg {
        header.insert(
            "alg".into(),
            json!(alg.pick(&["EdDSA", "RS256", "HS256", "none", "ES256"])),
        );
    }
    if let Some(kid) = &b.kid {
        header.insert(
            "kid".into(),
            json!(kid.pick(&["k1", "k2", "enc", "hmac", "k3"])),
        );
    }
    if let Some(typ) = &b.typ {
        header.insert("typ".into(), json!(typ));
    }
    let mut claims = serde_json::Map::new();
    for (k, v) in &b.claims_extra {
        claims.insert(k.clone(), v.0.clone());
    }
    let text = |t: &Text| json!(t.pick(&[ISSUER, "https://other.example", ""]));
    if let Some(iss) = &b.iss {
        claims.insert("iss".into(), text(iss));
    }
    if let Some(sub) = &b.sub {
        claims.insert("sub".into(), sub.0.clone());
    }
    let aud = |t: &Text| json!(t.pick(&["oberon", "tickets", "somebody-else"]));
    match &b.aud {
        Some(Audience::One(t)) => claims.insert("aud".into(), aud(t)),
        Some(Audience::Many(ts)) => {
            claims.insert("aud".into(), Value::Array(ts.iter().map(aud).collect()))
        }
        Some(Audience::Other(v)) => claims.insert("aud".into(), v.0.clone()),
        None => None,
    };
    if let Some(exp) = &b.exp {
        claims.insert("exp".into(), exp.value());
    }
    if let Some(nbf) = &b.nbf {
        claims.insert("nbf".into(), nbf.value());
    }
    if let Some(roles) = &b.roles {
        claims.insert("realm_access".into(), json!({ "roles": roles.0 }));
    }
    let (header, claims) = (Value::Object(header), Value::Object(claims));
    match &b.signature {
        Signature::Published(i) => {
            let kid = oberon_fuzz::KIDS[usize::from(*i) % 2];
            mint(&header, &claims, idp.key(kid), &[])
        }
        Signature::Foreign => mint(&header, &claims, Some(&idp.foreign), &[]),
        Signature::Bytes(bytes) => mint(&header, &claims, None, bytes),
    }
}

fn as_seconds(v: Option<&Value>) -> Option<f64> {
    v?.as_f64()
}

/// The reference check of an accepted token.
fn assert_acceptable(token: &str, verified: &oberon_gateway::auth::Verified) {
    assert!(
        Idp::get().signed_by_us(token),
        "accepted without our signature: {token}"
    );
    let mut segments = token.split('.');
    let header = segments
        .next()
        .and_then(decode_segment)
        .expect("a JSON header");
    let claims = segments
        .next()
        .and_then(decode_segment)
        .expect("JSON claims");
    assert!(
        matches!(header.get("alg").and_then(Value::as_str), Some("EdDSA")),
        "accepted with algorithm {:?}",
        header.get("alg")
    );
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => AUDIENCES.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| AUDIENCES.contains(&a))),
        _ => false,
    };
    assert!(audience_ok, "accepted with aud {:?}", claims.get("aud"));
    // Two seconds' margin for the clock moving between the two checks.
    let now = now() as f64;
    let exp = as_seconds(claims.get("exp")).expect("accepted without a numeric exp");
    assert!(
        exp >= now - (LEEWAY as f64) - 2.0,
        "accepted after exp {exp}"
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("accepted with a non-numeric nbf");
        assert!(
            nbf <= now + (LEEWAY as f64) + 2.0,
            "accepted before nbf {nbf}"
        );
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(!sub.is_empty(), "accepted without a subject");
    assert_eq!(verified.identity.subject, sub);
    assert_eq!(verified.identity.issuer, ISSUER);
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let gateway = gateway();
    let token = match &input {
        Input::Raw(s) => s.clone(),
        Input::Built(b) => build(b),
    };
    if let Ok(verified) = runtime().block_on(gateway.issuers().verify_uncached(&token)) {
        assert_acceptable(&token, &verified);
    }
});
