//! Public keys from a JWKS document: parsed once, looked up by `kid`, and — for a remote
//! set — refreshed when a token names a key we do not have, at most once per cooldown,
//! keeping the keys we had when a refresh fails.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why no key could be found for a token.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no key with kid {0:?} (the key set was refreshed, or refreshed too recently)")]
    UnknownKid(String),
    #[error("the token names no kid and the key set has no single key for {0:?}")]
    NoKid(Algorithm),
    #[error("key {kid:?} is not a {alg:?} key")]
    WrongAlgorithm { kid: String, alg: Algorithm },
}

/// Why a JWKS document could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("fetching {url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} is not a JWKS document: {message}")]
    Invalid { url: String, message: String },
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    /// The algorithm the JWK pins (`alg`), if it pins one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// A parsed JWKS: the signing keys we can verify with. Keys of unsupported types, and
/// keys marked for encryption only, are left out.
#[derive(Clone, Default)]
pub struct Keys {
    by_kid: HashMap<String, Key>,
    all: Vec<Key>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("len", &self.all.len())
            .finish()
    }
}

impl Keys {
    pub fn from_set(set: &JwkSet) -> Self {
        let mut keys = Keys::default();
        for jwk in &set.keys {
            if let Some(key) = usable(jwk) {
                if let Some(kid) = &key.kid {
                    keys.by_kid.insert(kid.clone(), key.clone());
                }
                keys.all.push(key);
            }
        }
        keys
    }

    /// The signing keys of a JWKS document, as a key set's fetch reads its body.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(Self::from_set(&serde_json::from_slice::<JwkSet>(body)?))
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The key to verify a token signed with `alg` and naming `kid`. The key's type
    /// must be `alg`'s family and, where the JWK pins an algorithm, exactly `alg`: an
    /// RSA public key is never an HMAC secret.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, KeyError> {
        let key = match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .ok_or_else(|| KeyError::UnknownKid(kid.to_string()))?,
            None => {
                let mut candidates = self.all.iter().filter(|k| fits(k, alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    _ => return Err(KeyError::NoKid(alg)),
                }
            }
        };
        if !fits(key, alg) {
            return Err(KeyError::WrongAlgorithm {
                kid: key.kid.clone().unwrap_or_default(),
                alg,
            });
        }
        Ok(key.key.clone())
    }
}

fn fits(key: &Key, alg: Algorithm) -> bool {
    key.key.family() == alg.family() && key.alg.is_none_or(|pinned| pinned == alg)
}

fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(signing_algorithm(a)?),
    };
    let key = DecodingKey::from_jwk(&with_full_coordinates(jwk)).ok()?;
    // Symmetric keys have no business in a published key set: accepting one would let
    // anybody who can read the set mint tokens.
    if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// `jwk` with an elliptic-curve key's `x` and `y` left-padded with zeros to the
/// curve's size, as RFC 7518 §6.2.1.2 requires. Some issuers leave the leading zero
/// bytes out: PyJWT before 2.7 (Debian 12's 2.6.0) writes them as minimal integers, so
/// about one P-256 key in 128 would otherwise be unusable, and every token it signs
/// refused. The point is the same; `ring` still checks that it is on the curve.
fn with_full_coordinates(jwk: &Jwk) -> std::borrow::Cow<'_, Jwk> {
    use base64::Engine as _;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
        return std::borrow::Cow::Borrowed(jwk);
    };
    let size = match ec.curve {
        EllipticCurve::P256 => 32,
        EllipticCurve::P384 => 48,
        _ => return std::borrow::Cow::Borrowed(jwk),
    };
    let padded = |coordinate: &str| -> Option<String> {
        let bytes = b64.decode(coordinate).ok()?;
        (bytes.len() < size).then(|| {
            let mut full = vec![0u8; size - bytes.len()];
            full.extend_from_slice(&bytes);
            b64.encode(full)
        })
    };
    let (x, y) = (padded(&ec.x), padded(&ec.y));
    if x.is_none() && y.is_none() {
        return std::borrow::Cow::Borrowed(jwk);
    }
    let mut full = jwk.clone();
    if let AlgorithmParameters::EllipticCurve(ec) = &mut full.algorithm {
        ec.x = x.unwrap_or_else(|| ec.x.clone());
        ec.y = y.unwrap_or_else(|| ec.y.clone());
    }
    std::borrow::Cow::Owned(full)
}

fn signing_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The largest JWKS document read (1 MiB): key sets hold a few keys.
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// Tuning of a [`RemoteKeySet`].
#[derive(Debug, Clone)]
pub struct RemoteKeySetOptions {
    /// At most one refresh per this, however many unknown `kid`s arrive.
    pub cooldown: Duration,
    /// Keys older than this are refreshed on the next lookup (so a revoked key stops
    /// being trusted); a failed refresh keeps them.
    pub max_age: Duration,
    /// Timeout of one fetch.
    pub timeout: Duration,
}

impl Default for RemoteKeySetOptions {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(30),
            max_age: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Counters of a [`RemoteKeySet`], for status pages and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeySetStats {
    pub fetches: u64,
    pub failed_fetches: u64,
    /// Lookups of an unknown kid answered without a fetch because of the cooldown.
    pub cooled_down: u64,
}

struct Loaded {
    keys: Arc<Keys>,
    fetched_at: Option<Instant>,
}

/// A JWKS at a URL, cached. Lookups of a known `kid` never touch the network.
pub struct RemoteKeySet {
    url: String,
    client: reqwest::Client,
    options: RemoteKeySetOptions,
    loaded: RwLock<Loaded>,
    /// Serialises refreshes; holds when the last one was attempted.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    stats: std::sync::Mutex<KeySetStats>,
}

impl std::fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteKeySet {
    /// A key set at `url`, empty until the first lookup or [`RemoteKeySet::refresh`].
    pub fn new(url: impl Into<String>, options: RemoteKeySetOptions) -> Self {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            url: url.into(),
            client,
            options,
            loaded: RwLock::new(Loaded {
                keys: Arc::new(Keys::default()),
                fetched_at: None,
            }),
            refresh: tokio::sync::Mutex::new(None),
            stats: std::sync::Mutex::new(KeySetStats::default()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn stats(&self) -> KeySetStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> (Arc<Keys>, Option<Instant>) {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        (loaded.keys.clone(), loaded.fetched_at)
    }

    /// The key for (`kid`, `alg`), refreshing the set first if it is older than
    /// `max_age`, or if `kid` is unknown and no refresh happened within the cooldown.
    pub async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, KeyError> {
        let (keys, fetched_at) = self.current();
        let stale = fetched_at.is_none_or(|t| t.elapsed() >= self.options.max_age);
        if !stale {
            match keys.find(kid, alg) {
                Err(KeyError::UnknownKid(_) | KeyError::NoKid(_)) => {}
                found => return found,
            }
        }
        if self.refresh_after(fetched_at).await {
            return self.current().0.find(kid, alg);
        }
        self.count(|s| s.cooled_down += 1);
        keys.find(kid, alg)
    }

    /// Fetch the set now, unless a refresh was attempted within the cooldown. Returns
    /// whether the keys may have changed.
    async fn refresh_after(&self, seen: Option<Instant>) -> bool {
        let mut last_attempt = self.refresh.lock().await;
        // Another lookup refreshed while we waited for the lock: use its result.
        if self.current().1 != seen {
            return true;
        }
        if last_attempt.is_some_and(|t| t.elapsed() < self.options.cooldown) {
            return false;
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                *loaded = Loaded {
                    keys: Arc::new(keys),
                    fetched_at: Some(Instant::now()),
                };
                true
            }
            Err(e) => {
                tracing::warn!("keeping the keys we have: {e}");
                false
            }
        }
    }

    /// Fetch the set now (at start-up, say), whatever the cooldown; does not start
    /// one either.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let _serialised = self.refresh.lock().await;
        let keys = self.fetch().await?;
        let n = keys.len();
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded {
            keys: Arc::new(keys),
            fetched_at: Some(Instant::now()),
        };
        Ok(n)
    }

    async fn fetch(&self) -> Result<Keys, FetchError> {
        self.count(|s| s.fetches += 1);
        let result = self.fetch_inner().await;
        if result.is_err() {
            self.count(|s| s.failed_fetches += 1);
        }
        result
    }

    async fn fetch_inner(&self) -> Result<Keys, FetchError> {
        let http = |message: String| FetchError::Http {
            url: self.url.clone(),
            message,
        };
        let mut response = self
            .client
            .get(&self.url)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        if !response.status().is_success() {
            return Err(http(format!("status {}", response.status())));
        }
        // The cap holds while reading: a provider that sends (or promises) more is
        // cut off there, not read to the end first.
        let too_large = || http(format!("larger than {MAX_JWKS_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| http(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Keys::from_json(&body).map_err(|e| FetchError::Invalid {
            url: self.url.clone(),
            message: e.to_string(),
        })
    }

    fn count(&self, f: impl FnOnce(&mut KeySetStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `head`, then `MAX_JWKS_BYTES` and more
    /// of body (chunked, or as promised by `head`), then stalls without ending it.
    async fn endless(head: &'static str, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(head.as_bytes()).await;
            let piece = vec![b' '; 64 << 10];
            for _ in 0..(MAX_JWKS_BYTES / piece.len() + 2) {
                if chunked {
                    let _ = stream
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await;
                }
                let _ = stream.write_all(&piece).await;
                if chunked {
                    let _ = stream.write_all(b"\r\n").await;
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        url
    }

    /// A key set is cut off at `MAX_JWKS_BYTES` while it is read: neither a body
    /// that goes on nor one that promises more is read to its end (or to the
    /// timeout) first.
    /// A P-256 key whose `x` starts with a zero byte (a test key, made for this test),
    /// published as PyJWT before 2.7 writes it: without that byte.
    const SHORT_X_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRueFJ3MJPxiHrJW8
lPt4ou8ftnpPQMJPZvYyL+fIXZmhRANCAAQA14Tjzm037oFmm/x0N8Arvh3C334W
E7qR4GHASKk6sX/V9+ouV6qTlrD55Ft6F/zrVxaAyiKKqCpWlW7D/iku
-----END PRIVATE KEY-----
";

    #[test]
    fn an_elliptic_curve_key_published_without_its_leading_zero_still_verifies() {
        let set = |x: &str| {
            format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k","x":"{x}","y":"f9X36i5XqpOWsPnkW3oX_OtXFoDKIoqoKlaVbsP-KS4"}}]}}"#
            )
        };
        let short = Keys::from_json(set("14Tjzm037oFmm_x0N8Arvh3C334WE7qR4GHASKk6sQ").as_bytes())
            .expect("JSON");
        let full = Keys::from_json(set("ANeE485tN-6BZpv8dDfAK74dwt9-FhO6keBhwEipOrE").as_bytes())
            .expect("JSON");
        let signing = jsonwebtoken::EncodingKey::from_ec_pem(SHORT_X_KEY.as_bytes()).expect("PEM");
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("k".into());
        let claims = serde_json::json!({ "sub": "alice", "exp": 4_102_444_800_u64 });
        let token = jsonwebtoken::encode(&header, &claims, &signing).expect("sign");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        for keys in [&short, &full] {
            let key = keys
                .find(Some("k"), Algorithm::ES256)
                .expect("the key is usable");
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
                .expect("the token verifies");
        }
    }

    #[tokio::test]
    async fn a_jwks_is_read_no_further_than_the_cap() {
        for (head, chunked) in [
            (
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n",
                false,
            ),
        ] {
            let set = RemoteKeySet::new(
                endless(head, chunked).await,
                RemoteKeySetOptions {
                    timeout: Duration::from_secs(2),
                    ..RemoteKeySetOptions::default()
                },
            );
            let started = Instant::now();
            let err = set.refresh().await.unwrap_err().to_string();
            assert!(err.contains("larger than 1048576 bytes"), "{err}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
    }
}
