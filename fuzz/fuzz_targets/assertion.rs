//! The gateway's identity assertion as the renderer and the BFFs verify it
//! (`oberon_identity::Verifier`): raw strings, or a real assertion (signed by the
//! gateway's `Signer`) mutated — segments replaced by fuzzed JSON, bytes flipped,
//! signatures swapped. Property: an assertion that verifies carries an Ed25519
//! signature by the gateway's key over its first two segments (checked with
//! ed25519-dalek directly), says `iss` oberon-gateway, `aud` oberon-upstream, is
//! current, and was made for the request id it was verified for.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Verifier as _;
use oberon_fuzz::{Json, decode_segment, now, runtime};
use oberon_identity::assertion::{ISSUER, LEEWAY};

/// The service verifying (its name in the gateway's `[upstreams]`), and another one
/// its assertions may be passed on to.
const AUDIENCE: &str = "renderer";
const DELEGATE: &str = "checkout";
use oberon_identity::{Identity, Signer, Verifier};
use serde_json::Value;

struct Gateway {
    signer: Signer,
    verifier: Verifier,
    public: ed25519_dalek::VerifyingKey,
}

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let signer = Signer::generate();
        let jwks = signer.jwks();
        let x = serde_json::to_value(&jwks.keys[0]).expect("a JWK")["x"]
            .as_str()
            .map(String::from)
            .expect("an OKP key");
        let bytes: [u8; 32] = B64
            .decode(x)
            .expect("base64url")
            .try_into()
            .expect("32 bytes");
        Gateway {
            verifier: Verifier::fixed(&jwks, AUDIENCE),
            public: ed25519_dalek::VerifyingKey::from_bytes(&bytes).expect("a public key"),
            signer,
        }
    })
}

#[derive(Debug, Arbitrary)]
enum Mutation {
    Header(Json),
    Claims(Json),
    Signature(Vec<u8>),
    FlipByte(u16, u8),
    Truncate(u16),
    Append(String),
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw {
        token: String,
        request_id: String,
    },
    Signed {
        subject: String,
        issuer: String,
        roles: Vec<String>,
        name: Option<String>,
        made_for: String,
        verified_for: String,
        mutations: Vec<Mutation>,
    },
}

fn mutate(token: &str, mutation: &Mutation) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut set = |i: usize, value: String| {
        if let Some(p) = parts.get_mut(i) {
            *p = value;
        }
    };
    match mutation {
        Mutation::Header(v) => set(0, B64.encode(v.0.to_string())),
        Mutation::Claims(v) => set(1, B64.encode(v.0.to_string())),
        Mutation::Signature(s) => set(2, B64.encode(s)),
        Mutation::FlipByte(at, x) => {
            let mut bytes = token.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = usize::from(*at) % bytes.len();
                bytes[at] ^= x;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::Truncate(n) => {
            let cut = usize::from(*n).min(token.len());
            return String::from_utf8_lossy(&token.as_bytes()[..cut]).into_owned();
        }
        Mutation::Append(s) => return format!("{token}{s}"),
    }
    parts.join(".")
}

fn assert_acceptable(token: &str, request_id: &str, identity: &Identity) {
    let g = gateway();
    let mut segments = token.split('.');
    let (Some(h), Some(p), Some(s)) = (segments.next(), segments.next(), segments.next()) else {
        panic!("accepted a token without three segments: {token:?}");
    };
    let signature = B64
        .decode(s)
        .ok()
        .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
        .expect("accepted without an Ed25519 signature");
    assert!(
        g.public
            .verify(format!("{h}.{p}").as_bytes(), &signature)
            .is_ok(),
        "accepted without the gateway's signature"
    );
    let claims = decode_segment(p).expect("JSON claims");
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
    let named = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(named, "accepted with aud {:?}", claims.get("aud"));
    let exp = claims.get("exp").and_then(Value::as_f64).expect("an exp");
    assert!(
        exp >= (now() - LEEWAY.as_secs() as i64 - 2) as f64,
        "expired"
    );
    // Every consumer gives the request's id: an accepted assertion names it, and no
    // assertion names the empty one.
    assert!(!request_id.is_empty(), "accepted for an empty request id");
    assert_eq!(
        claims.get("rid").and_then(Value::as_str),
        Some(request_id),
        "another request's"
    );
    assert_eq!(
        claims.get("sub").and_then(Value::as_str),
        Some(identity.subject.as_str())
    );
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let g = gateway();
    let (token, request_id) = match input {
        Input::Raw { token, request_id } => (token, request_id),
        Input::Signed {
            subject,
            issuer,
            roles,
            name,
            made_for,
            verified_for,
            mutations,
        } => {
            let identity = Identity {
                subject,
                issuer,
                roles,
                name,
            };
            let Ok(mut token) = g.signer.sign(&identity, &made_for, &[AUDIENCE, DELEGATE]) else {
                return;
            };
            for m in mutations.iter().take(4) {
                token = mutate(&token, m);
            }
            (token, verified_for)
        }
    };
    if let Ok(asserted) = runtime().block_on(g.verifier.verify(&token, &request_id)) {
        assert_acceptable(&token, &request_id, &asserted.identity);
    }
});
