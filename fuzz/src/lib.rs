//! What the fuzz targets share: a JSON value generator for `arbitrary`, a local
//! identity provider (an Ed25519 key whose JWKS is served on loopback, so the real
//! key-set code fetches it once), token minting, a scripted BFF on loopback, and a
//! runtime. Nothing here re-implements the code under test: the targets call the
//! platform's own entry points and check what they return against independent,
//! simpler reference checks written here or in the target.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// One current-thread runtime per process: libFuzzer runs the inputs one after another.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A JSON value of bounded depth, for claims, topics and data-source bodies.
#[derive(Debug, Clone)]
pub struct Json(pub serde_json::Value);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Json(json_value(u, 3)?))
    }
}

fn json_value(u: &mut Unstructured<'_>, depth: u8) -> arbitrary::Result<serde_json::Value> {
    use serde_json::Value;
    let kind = if depth == 0 {
        u.int_in_range(0..=4)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(u.arbitrary()?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| json_value(u, depth - 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                map.insert(u.arbitrary()?, json_value(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// An identity provider for the fuzz targets: two Ed25519 keys in its JWKS (`k1`
/// pinned to EdDSA, `k2` unpinned), one encryption-only key, served over HTTP on
/// loopback so the gateway's `RemoteKeySet` fetches it as it would any provider's.
pub struct Idp {
    pub jwks_url: String,
    keys: [SigningKey; 2],
    /// A key the provider does not publish: what a forger signs with.
    pub foreign: SigningKey,
}

pub const ISSUER: &str = "https://idp.fuzz.example";
pub const KIDS: [&str; 2] = ["k1", "k2"];

impl Idp {
    pub fn get() -> &'static Idp {
        static IDP: OnceLock<Idp> = OnceLock::new();
        IDP.get_or_init(|| {
            let keys = [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32])];
            let jwk = |kid: &str, key: &SigningKey, extra: serde_json::Value| {
                let mut jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": kid,
                    "x": B64.encode(key.verifying_key().as_bytes()),
                });
                if let (Some(o), serde_json::Value::Object(e)) = (jwk.as_object_mut(), extra) {
                    o.extend(e);
                }
                jwk
            };
            let jwks = serde_json::json!({ "keys": [
                jwk(KIDS[0], &keys[0], serde_json::json!({"alg": "EdDSA", "use": "sig"})),
                jwk(KIDS[1], &keys[1], serde_json::json!({})),
                jwk("enc", &SigningKey::from_bytes(&[3; 32]), serde_json::json!({"use": "enc"})),
                { "kty": "oct", "kid": "hmac", "k": B64.encode(b"a shared secret, never accepted") },
            ]});
            let body = jwks.to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let jwks_url = format!("http://{}/jwks.json", listener.local_addr().expect("an address"));
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut stream = stream;
                    let _ = read_head(&mut stream);
                    let _ = stream.write_all(response.as_bytes());
                }
            });
            Idp {
                jwks_url,
                keys,
                foreign: SigningKey::from_bytes(&[9; 32]),
            }
        })
    }

    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        KIDS.iter().position(|k| *k == kid).map(|i| &self.keys[i])
    }

    /// Whether `token`'s signature verifies with the published key its header's `kid`
    /// names (or, with no `kid`, either key): the reference check of a signature,
    /// straight with ed25519-dalek.
    pub fn signed_by_us(&self, token: &str) -> bool {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(signature) = B64.decode(s) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&signature) else {
            return false;
        };
        let kid =
            decode_segment(h).and_then(|h| h.get("kid").and_then(|k| k.as_str()).map(String::from));
        let candidates: Vec<VerifyingKey> = match kid.as_deref() {
            Some(kid) => self
                .key(kid)
                .map(|k| k.verifying_key())
                .into_iter()
                .collect(),
            None => self.keys.iter().map(SigningKey::verifying_key).collect(),
        };
        let input = format!("{h}.{p}");
        candidates
            .iter()
            .any(|k| k.verify(input.as_bytes(), &signature).is_ok())
    }
}

/// A segment of a compact JWT as JSON, if it is base64url JSON.
pub fn decode_segment(segment: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_slice(&B64.decode(segment.trim_end_matches('=')).ok()?).ok()
}

/// A compact JWT of `header` and `claims`, signed with `key` (Ed25519), or with the
/// signature segment given.
pub fn mint(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: Option<&SigningKey>,
    signature: &[u8],
) -> String {
    let mut token = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = match key {
        Some(key) => key.sign(token.as_bytes()).to_bytes().to_vec(),
        None => signature.to_vec(),
    };
    token.push('.');
    token.push_str(&B64.encode(signature));
    token
}

/// Read a request head (through the blank line); false if the peer closed first.
pub fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
        if head.len() > 64 << 10 {
            return false;
        }
    }
    true
}

/// A BFF on loopback that answers each request with the next scripted raw response
/// (status line, headers and body as bytes), then keeps the connection open unless
/// the response says `connection: close` or is delimited by closing.
pub struct ScriptedBff {
    pub base_url: String,
    script: Arc<Mutex<std::collections::VecDeque<(Vec<u8>, bool)>>>,
}

impl ScriptedBff {
    pub fn get() -> &'static ScriptedBff {
        static BFF: OnceLock<ScriptedBff> = OnceLock::new();
        BFF.get_or_init(|| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let base_url = format!("http://{}", listener.local_addr().expect("an address"));
            let script: Arc<Mutex<std::collections::VecDeque<(Vec<u8>, bool)>>> = Arc::default();
            let shared = script.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let script = shared.clone();
                    std::thread::spawn(move || serve_scripted(stream, &script));
                }
            });
            ScriptedBff { base_url, script }
        })
    }

    /// Replace the script: each entry is a raw response and whether the connection
    /// closes after it.
    pub fn script(&self, responses: Vec<(Vec<u8>, bool)>) {
        *self.script.lock().unwrap_or_else(|e| e.into_inner()) = responses.into();
    }
}

fn serve_scripted(
    mut stream: TcpStream,
    script: &Mutex<std::collections::VecDeque<(Vec<u8>, bool)>>,
) {
    let _ = stream.set_nodelay(true);
    while read_head(&mut stream) {
        let next = script.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let (bytes, close) = next.unwrap_or_else(|| {
            (
                b"HTTP/1.1 599 Unscripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
                true,
            )
        });
        if stream.write_all(&bytes).is_err() || close {
            return;
        }
    }
}
