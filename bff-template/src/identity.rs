//! Who is asking: the gateway's identity assertion, verified.
//!
//! Oberon's gateway authenticates users and sends each request it authenticated on with
//! an `Oberon-Identity` header: a short-lived JWT (EdDSA) it signed for that request.
//! This service verifies it with the gateway's public keys (its JWKS, at
//! `BFF_TEMPLATE_GATEWAY_JWKS_URL`), accepts it only when its `aud` names this service
//! (`BFF_TEMPLATE_AUDIENCE`: an assertion made for another service is not good here),
//! and never trusts any other header that claims to say who the user is. Handlers ask for a user with an extractor:
//!
//! - [`OptionalUser`]: `Some(user)` when the request carries a valid assertion, `None`
//!   otherwise (anonymous, or an assertion that does not verify);
//! - [`UserWithRole<R>`]: the user, who must have role `R::NAME`; 401 without a valid
//!   assertion, 403 without the role.
//!
//! An answer that depends on the user must never be shared by a cache: mark it
//! [`PRIVATE`](crate::PRIVATE).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::AppState;

/// The header carrying the gateway's assertion.
pub const HEADER: &str = "oberon-identity";
const ISSUER: &str = "oberon-gateway";

/// A user the gateway vouches for: a subject *at an issuer*. The gateway accepts users
/// of several identity providers, and `alice` at one is not `alice` at another, so
/// anything kept per user is keyed by both ([`User::id`], or the two fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity provider that authenticated the user (its `iss`).
    pub issuer: String,
    /// The user's id at that identity provider (`sub`): unique only with `issuer`.
    pub subject: String,
    pub roles: Vec<String>,
    pub name: Option<String>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// One string for (issuer, subject), the one Oberon's components get as
    /// `user.id`: `ISSUER#SUBJECT`, with `%` and `#` of the issuer percent-encoded so
    /// that the first `#` always ends it.
    pub fn id(&self) -> String {
        let issuer = self.issuer.replace('%', "%25").replace('#', "%23");
        format!("{issuer}#{}", self.subject)
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// The identity provider: the gateway signs it into every assertion, and a user
    /// is nobody without it.
    idp: String,
    #[serde(default)]
    roles: Vec<String>,
    name: Option<String>,
    rid: String,
}

/// Why an assertion did not verify.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("signed with {0:?}, not the gateway's EdDSA")]
    Algorithm(Algorithm),
    #[error("signed with a key the gateway does not publish")]
    UnknownKey,
    #[error("{0}")]
    Invalid(String),
    #[error("made for another request")]
    OtherRequest,
    #[error("no request id to bind it to")]
    NoRequestId,
}

/// How long fetched keys are used before they are fetched again, so that a key the
/// gateway withdrew stops being trusted: the same as Oberon's renderer.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// The largest JWKS document read: the gateway publishes a key or two.
pub const MAX_JWKS_BYTES: usize = 64 << 10;

/// The keys as last fetched, and when.
struct Loaded {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// The gateway's public keys, fetched from its JWKS, fetched again once they are
/// [`KEYS_MAX_AGE`] old (so a withdrawn key stops working) and when an assertion names
/// a key we do not have — at most once per cooldown, so forged `kid`s cannot make this
/// service hammer the gateway. A failed fetch keeps the keys we had. The JWKS is read
/// from its URL only (no redirect is followed) and at most [`MAX_JWKS_BYTES`] of it.
pub struct GatewayKeys {
    url: String,
    client: reqwest::Client,
    loaded: RwLock<Loaded>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
    max_age: Duration,
    validation: Validation,
}

impl GatewayKeys {
    /// The keys at `url`, verifying assertions for the service named `audience`.
    pub fn new(url: impl Into<String>, audience: &str) -> Self {
        Self::with_max_age(url, audience, KEYS_MAX_AGE)
    }

    /// Keys used for `max_age` between fetches (tests shorten it).
    pub fn with_max_age(url: impl Into<String>, audience: &str, max_age: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            url: url.into(),
            // The keys are where the configuration says, or nowhere: a redirect could
            // send this service to keys somebody else chose.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            loaded: RwLock::new(Loaded {
                keys: HashMap::new(),
                fetched_at: None,
            }),
            last_refresh: tokio::sync::Mutex::new(None),
            cooldown: Duration::from_secs(30),
            max_age,
            validation,
        }
    }

    /// Fetch the keys now (at start-up). Errors are for the log: the next assertion
    /// with an unknown key tries again.
    pub async fn refresh(&self) -> Result<usize, String> {
        let body = self.fetch().await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("{} is not a JWKS: {e}", self.url))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                (key.family() == jsonwebtoken::AlgorithmFamily::Ed).then_some((kid, key))
            })
            .collect();
        let n = keys.len();
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            keys,
            fetched_at: Some(Instant::now()),
        };
        Ok(n)
    }

    /// The JWKS document's bytes: a success, not a redirect, at most
    /// [`MAX_JWKS_BYTES`] (read no further).
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let failed = |e: &dyn std::fmt::Display| format!("fetching {}: {e}", self.url);
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&format!("status {}", response.status())));
        }
        let too_large = || failed(&format!("larger than {MAX_JWKS_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// When the keys were last fetched.
    fn fetched_at(&self) -> Option<Instant> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .fetched_at
    }

    fn known(&self, kid: &str) -> Option<DecodingKey> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .get(kid)
            .cloned()
    }

    /// The key `kid`: from the keys we have while they are younger than `max_age`,
    /// else after fetching them again (at most once per cooldown; a failed fetch
    /// keeps the keys we had).
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let seen = self.fetched_at();
        let fresh = seen.is_some_and(|t| t.elapsed() < self.max_age);
        if fresh && let Some(key) = self.known(kid) {
            return Some(key);
        }
        let mut last = self.last_refresh.lock().await;
        // Fetched by another request while we waited?
        if self.fetched_at() != seen {
            return self.known(kid);
        }
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return self.known(kid);
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!("keeping the gateway keys we have: {e}");
        }
        self.known(kid)
    }

    /// The user in `token`, if the gateway signed it for the request `request_id`. The
    /// gateway sends the request id with every assertion, so an assertion without one
    /// is refused: otherwise a captured assertion could be replayed, for as long as it
    /// lives, by leaving the request id out.
    pub async fn verify(
        &self,
        token: &str,
        request_id: Option<&str>,
    ) -> Result<User, IdentityError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(IdentityError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(IdentityError::UnknownKey)?;
        let key = self.key(&kid).await.ok_or(IdentityError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?
            .claims;
        match request_id {
            None => return Err(IdentityError::NoRequestId),
            Some(id) if id != claims.rid => return Err(IdentityError::OtherRequest),
            Some(_) => {}
        }
        Ok(User {
            issuer: claims.idp,
            subject: claims.sub,
            roles: claims.roles,
            name: claims.name,
        })
    }
}

async fn user_of(parts: &Parts, state: &AppState) -> Option<User> {
    let token = parts.headers.get(HEADER)?.to_str().ok()?;
    let Some(keys) = &state.identity else {
        tracing::warn!("identity assertion ignored: BFF_TEMPLATE_GATEWAY_JWKS_URL is not set");
        return None;
    };
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    match keys.verify(token, request_id).await {
        Ok(user) => Some(user),
        Err(e) => {
            // Only a request that went around the gateway can carry a bad assertion.
            tracing::warn!("identity assertion refused: {e}");
            None
        }
    }
}

/// The signed-in user, if any.
pub struct OptionalUser(pub Option<User>);

impl FromRequestParts<Arc<AppState>> for OptionalUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(user_of(parts, state).await))
    }
}

/// A role a handler can require: `struct Buyer; impl Role for Buyer { const NAME: &str = "buyer"; }`.
pub trait Role: Send + Sync {
    const NAME: &'static str;
}

/// A signed-in user with role `R`.
pub struct UserWithRole<R: Role>(pub User, PhantomData<R>);

impl<R: Role> UserWithRole<R> {
    pub fn user(&self) -> &User {
        &self.0
    }
}

/// Why a [`UserWithRole`] was refused: 401 without a user, 403 without the role.
pub struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        crate::error(self.0, &self.1, crate::NO_STORE)
    }
}

impl<R: Role> FromRequestParts<Arc<AppState>> for UserWithRole<R> {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match user_of(parts, state).await {
            None => Err(Refused(StatusCode::UNAUTHORIZED, "sign in first".into())),
            Some(user) if !user.has_role(R::NAME) => Err(Refused(
                StatusCode::FORBIDDEN,
                format!("this needs the role {:?}", R::NAME),
            )),
            Some(user) => Ok(Self(user, PhantomData)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that hold one Ed25519 key under `gw-1` (no JWKS fetch), and that key's
    /// signing half.
    fn keys() -> (GatewayKeys, jsonwebtoken::EncodingKey) {
        // PKCS#8 v1 (RFC 8410) prefix, then a 32-byte seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[7; 32]);
        let signing = jsonwebtoken::EncodingKey::from_ed_der(&der);
        let jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::EdDSA).expect("jwk");
        let keys = GatewayKeys::new("http://127.0.0.1:9/not-fetched", AUDIENCE);
        *keys.loaded.write().expect("lock") = Loaded {
            keys: HashMap::from([(
                "gw-1".to_string(),
                DecodingKey::from_jwk(&jwk).expect("decoding key"),
            )]),
            fetched_at: Some(Instant::now()),
        };
        (keys, signing)
    }

    /// The public half of `signing` as a JWKS under `kid`.
    fn jwks(signing: &jsonwebtoken::EncodingKey, kid: &str) -> JwkSet {
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(signing, Algorithm::EdDSA).expect("jwk");
        jwk.common.key_id = Some(kid.into());
        JwkSet { keys: vec![jwk] }
    }

    /// A server on port 0 answering `/jwks.json` with whatever `answer` holds, and
    /// `/moved` with a redirect to it. Returns its base URL.
    async fn jwks_server(answer: Arc<RwLock<(StatusCode, String)>>) -> String {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route(
                "/jwks.json",
                get(move || {
                    let answer = answer.clone();
                    async move { answer.read().expect("lock").clone() }
                }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [("location", "/jwks.json")]) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn keys_the_gateway_withdrew_stop_working_once_the_keys_are_old() {
        let (_, signing) = keys();
        let answer = Arc::new(RwLock::new((
            StatusCode::OK,
            serde_json::to_string(&jwks(&signing, "gw-1")).expect("json"),
        )));
        let base = jwks_server(answer.clone()).await;
        let keys = GatewayKeys::with_max_age(
            format!("{base}/jwks.json"),
            AUDIENCE,
            Duration::from_millis(300),
        );
        assert_eq!(keys.refresh().await, Ok(1));
        let token = assertion(&signing, "req-1");
        assert!(keys.verify(&token, Some("req-1")).await.is_ok());
        // The gateway rotates: gw-1 is withdrawn.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[8; 32]);
        let other = jsonwebtoken::EncodingKey::from_ed_der(&der);
        answer.write().expect("lock").1 =
            serde_json::to_string(&jwks(&other, "gw-2")).expect("json");
        // Young keys are used as they are.
        assert!(keys.verify(&token, Some("req-1")).await.is_ok());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(matches!(
            keys.verify(&token, Some("req-1")).await,
            Err(IdentityError::UnknownKey)
        ));
    }

    #[tokio::test]
    async fn a_jwks_is_read_from_its_url_only() {
        let (_, signing) = keys();
        let answer = Arc::new(RwLock::new((
            StatusCode::OK,
            serde_json::to_string(&jwks(&signing, "gw-1")).expect("json"),
        )));
        let base = jwks_server(answer).await;
        let redirected = GatewayKeys::new(format!("{base}/moved"), AUDIENCE);
        let err = redirected
            .refresh()
            .await
            .expect_err("a redirect is not followed");
        assert!(err.contains("status 302"), "{err}");
        assert!(redirected.known("gw-1").is_none());
    }

    #[tokio::test]
    async fn a_jwks_past_the_size_cap_is_refused() {
        let answer = Arc::new(RwLock::new((StatusCode::OK, String::new())));
        let base = jwks_server(answer.clone()).await;
        answer.write().expect("lock").1 = format!(
            "{{\"keys\": [], \"padding\": \"{}\"}}",
            "x".repeat(MAX_JWKS_BYTES)
        );
        let oversized = GatewayKeys::new(format!("{base}/jwks.json"), AUDIENCE);
        let err = oversized.refresh().await.expect_err("too large");
        assert!(err.contains("larger than"), "{err}");
    }

    /// The service the tests' keys verify for.
    const AUDIENCE: &str = "this-bff";

    fn assertion(key: &jsonwebtoken::EncodingKey, rid: &str) -> String {
        assertion_for(key, rid, &[AUDIENCE])
    }

    fn assertion_for(key: &jsonwebtoken::EncodingKey, rid: &str, aud: &[&str]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("gw-1".into());
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": aud, "sub": "alice", "roles": ["buyer"],
            "idp": "https://idp.example", "iat": now, "nbf": now, "exp": now + 60, "rid": rid,
        });
        jsonwebtoken::encode(&header, &claims, key).expect("sign")
    }

    /// An assertion is good only at the services its `aud` names: one the gateway made
    /// for another upstream (or for the renderer, without this BFF as a delegate) is
    /// refused here.
    #[tokio::test]
    async fn an_assertion_verifies_only_at_the_services_it_names() {
        let (keys, signing) = keys();
        for aud in [&["renderer", AUDIENCE][..], &[AUDIENCE]] {
            let token = assertion_for(&signing, "r", aud);
            assert!(keys.verify(&token, Some("r")).await.is_ok(), "{aud:?}");
        }
        for aud in [&["renderer", "other-bff"][..], &["oberon-upstream"]] {
            let token = assertion_for(&signing, "r", aud);
            assert!(
                matches!(
                    keys.verify(&token, Some("r")).await,
                    Err(IdentityError::Invalid(_))
                ),
                "{aud:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_assertion_verifies_only_with_the_request_id_it_was_made_for() {
        let (keys, signing) = keys();
        let token = assertion(&signing, "req-1");
        let user = keys.verify(&token, Some("req-1")).await.expect("verifies");
        assert_eq!(
            (user.issuer.as_str(), user.subject.as_str()),
            ("https://idp.example", "alice")
        );
        assert_eq!(user.id(), "https://idp.example#alice");
        assert!(matches!(
            keys.verify(&token, Some("req-2")).await,
            Err(IdentityError::OtherRequest)
        ));
        // Replayed with the request id left out: refused, not waved through.
        assert!(matches!(
            keys.verify(&token, None).await,
            Err(IdentityError::NoRequestId)
        ));
    }
}
