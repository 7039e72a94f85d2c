//! Who is asking: the gateway's identity assertion, verified.
//!
//! Oberon's gateway authenticates users and sends each request it authenticated on with
//! an `Oberon-Identity` header: a short-lived JWT (EdDSA) it signed for that request.
//! This service verifies it with the gateway's public keys (its JWKS, at
//! `BFF_TEMPLATE_GATEWAY_JWKS_URL`), and never trusts any other header that claims to
//! say who the user is. Handlers ask for a user with an extractor:
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
const AUDIENCE: &str = "oberon-upstream";

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

/// The gateway's public keys, fetched from its JWKS and refetched when an assertion
/// names a key we do not have (at most once per cooldown, so forged `kid`s cannot make
/// this service hammer the gateway). A failed refetch keeps the keys we had.
pub struct GatewayKeys {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
    validation: Validation,
}

impl GatewayKeys {
    pub fn new(url: impl Into<String>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            url: url.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            last_refresh: tokio::sync::Mutex::new(None),
            cooldown: Duration::from_secs(30),
            validation,
        }
    }

    /// Fetch the keys now (at start-up). Errors are for the log: the next assertion
    /// with an unknown key tries again.
    pub async fn refresh(&self) -> Result<usize, String> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("fetching {}: {e}", self.url))?
            .json()
            .await
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
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(n)
    }

    fn known(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.known(kid) {
            return Some(key);
        }
        let mut last = self.last_refresh.lock().await;
        // Refreshed by another request while we waited?
        if let Some(key) = self.known(kid) {
            return Some(key);
        }
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return None;
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
        let keys = GatewayKeys::new("http://127.0.0.1:9/not-fetched");
        keys.keys.write().expect("lock").insert(
            "gw-1".into(),
            DecodingKey::from_jwk(&jwk).expect("decoding key"),
        );
        (keys, signing)
    }

    fn assertion(key: &jsonwebtoken::EncodingKey, rid: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("gw-1".into());
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "roles": ["buyer"],
            "idp": "https://idp.example", "iat": now, "nbf": now, "exp": now + 60, "rid": rid,
        });
        jsonwebtoken::encode(&header, &claims, key).expect("sign")
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
