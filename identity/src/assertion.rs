//! The gateway's identity assertion: a short-lived JWT (EdDSA) that the gateway signs
//! for each request it authenticated and sends upstream in the [`HEADER`] header. The
//! renderer and the BFFs verify it with the gateway's public keys (served as a JWKS at
//! [`JWKS_PATH`]) instead of trusting any header a client could send.
//!
//! An assertion is good only where it is addressed: its `aud` names the upstream the
//! gateway sent it to (its name in `[upstreams]`) and the services that upstream may
//! pass it on to (`[delegates]` in `gateway.toml`; the renderer passes it to the BFFs
//! of data sources that receive the user). Each service verifies that its own name is
//! among them, so an assertion captured at one service does not work at another.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, Keys, RemoteKeySet};

/// The request header carrying the assertion upstream. The gateway removes it from
/// every incoming request before anything else.
pub const HEADER: &str = "oberon-identity";
/// Where the gateway serves the public keys of its assertions.
pub const JWKS_PATH: &str = "/.well-known/oberon/jwks.json";
/// `iss` of every assertion.
pub const ISSUER: &str = "oberon-gateway";
/// How long an assertion is valid: one request's worth, with room for slow upstreams.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// Clock skew tolerated between gateway and upstreams.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// A verified user, as the gateway asserts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The user's id at its issuer (`sub`).
    pub subject: String,
    /// The issuer that authenticated the user (the identity provider's `iss`).
    pub issuer: String,
    pub roles: Vec<String>,
    /// A display name, when the identity provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    /// The services this assertion is for: the upstream first, then its delegates.
    aud: Vec<String>,
    sub: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    /// The identity provider that authenticated the user.
    idp: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The request this assertion was made for: an upstream that knows the request id
    /// refuses an assertion replayed onto another request.
    rid: String,
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyLoadError(String);

/// The gateway's signing key (Ed25519) and the JWKS that publishes its public half.
///
/// Signing is on every authenticated request, so the key is kept parsed and the JWT
/// is assembled here (the standard compact form, verified by any JWT library):
/// `jsonwebtoken` would re-parse the PKCS#8 key and re-derive its public half on each
/// call, doubling the cost (measured: `gateway_parts/sign_assertion`).
#[derive(Clone)]
pub struct Signer {
    kid: String,
    key: ed25519_dalek::SigningKey,
    /// `base64url(header) + "."`, the same for every assertion.
    header_prefix: String,
    public: Jwk,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl Signer {
    /// A new random key: for development and tests, where one gateway process is all
    /// there is. Several gateway replicas must share a key: [`Signer::from_pem`].
    pub fn generate() -> Self {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        der.extend_from_slice(&seed);
        Self::from_der(&der).expect("a fresh Ed25519 key is valid")
    }

    /// An Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyLoadError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let help = |e: &dyn std::fmt::Display| {
            KeyLoadError(format!(
                "not an Ed25519 private key in PKCS#8 PEM ({e}); make one with `openssl genpkey -algorithm ed25519`"
            ))
        };
        let text = std::str::from_utf8(pem).map_err(|e| help(&e))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(|e| help(&e))?;
        Self::from_key(key)
    }

    fn from_der(der: &[u8]) -> Result<Self, KeyLoadError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map_err(|e| KeyLoadError(format!("not a usable Ed25519 key: {e}")))?;
        Self::from_key(key)
    }

    fn from_key(key: ed25519_dalek::SigningKey) -> Result<Self, KeyLoadError> {
        let mut public: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(key.verifying_key().as_bytes()),
        }))
        .map_err(|e| KeyLoadError(format!("not a usable Ed25519 key: {e}")))?;
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| KeyLoadError(e.to_string()))?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let header_json = serde_json::to_vec(&header).map_err(|e| KeyLoadError(e.to_string()))?;
        let header_prefix = format!("{}.", B64.encode(header_json));
        // A broken key must fail here, at start-up, not on the first request.
        let signer = Self {
            kid,
            key,
            header_prefix,
            public,
        };
        signer.sign_at(
            &Identity {
                subject: "start-up-check".into(),
                issuer: "start-up-check".into(),
                roles: vec![],
                name: None,
            },
            "start-up",
            &["start-up-check"],
            now(),
        )?;
        Ok(signer)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document to serve at [`JWKS_PATH`].
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    /// The assertion of `identity` for the request `request_id`, good at the services
    /// named in `audiences` (the upstream, then those it may pass the assertion to).
    pub fn sign(
        &self,
        identity: &Identity,
        request_id: &str,
        audiences: &[impl AsRef<str>],
    ) -> Result<String, KeyLoadError> {
        self.sign_at(identity, request_id, audiences, now())
    }

    fn sign_at(
        &self,
        identity: &Identity,
        request_id: &str,
        audiences: &[impl AsRef<str>],
        at: u64,
    ) -> Result<String, KeyLoadError> {
        let claims = Claims {
            iss: ISSUER.into(),
            aud: audiences.iter().map(|a| a.as_ref().to_string()).collect(),
            sub: identity.subject.clone(),
            iat: at,
            nbf: at,
            exp: at + LIFETIME.as_secs(),
            idp: identity.issuer.clone(),
            roles: identity.roles.clone(),
            name: identity.name.clone(),
            rid: request_id.into(),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| KeyLoadError(e.to_string()))?;
        Ok(self.sign_payload(&payload))
    }

    /// The compact JWT of `payload` (the claims' JSON), signed.
    fn sign_payload(&self, payload: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2);
        token.push_str(&self.header_prefix);
        B64.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why an assertion was refused. Upstreams treat every refusal as "anonymous".
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not the gateway's (EdDSA)")]
    Algorithm(Algorithm),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid assertion: {0}")]
    Invalid(String),
    #[error("the assertion was made for request {made_for:?}, not {this:?}")]
    OtherRequest { made_for: String, this: String },
}

enum Source {
    Remote(Arc<RemoteKeySet>),
    Fixed(Keys),
}

/// Verifies the gateway's assertions with its published keys, for one service: an
/// assertion whose `aud` does not name it is refused.
pub struct Verifier {
    source: Source,
    validation: Validation,
}

/// A verified assertion: who, and every service it may be shown to (this one among
/// them), so that a service passing it on sends it only where it is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asserted {
    pub identity: Identity,
    pub audiences: Vec<String>,
}

impl Asserted {
    /// Whether the assertion is good at the service named `audience`.
    pub fn is_for(&self, audience: &str) -> bool {
        self.audiences.iter().any(|a| a == audience)
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Remote(set) => write!(f, "Verifier({})", set.url()),
            Source::Fixed(keys) => write!(f, "Verifier({keys:?})"),
        }
    }
}

impl Verifier {
    /// Keys fetched from the gateway's JWKS endpoint (and refreshed when it rotates),
    /// for the service named `audience` (its name in the gateway's `[upstreams]`).
    pub fn remote(keys: Arc<RemoteKeySet>, audience: &str) -> Self {
        Self::with(Source::Remote(keys), audience)
    }

    /// Keys given up front: a gateway in the same process, or a test.
    pub fn fixed(set: &JwkSet, audience: &str) -> Self {
        Self::with(Source::Fixed(Keys::from_set(set)), audience)
    }

    fn with(source: Source, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        Self { source, validation }
    }

    /// The identity in `token`, if the gateway signed it for this service, it is
    /// current, and it was made for the request `request_id`. Every consumer knows the
    /// request's id (the gateway sends it with every assertion) and must give it:
    /// otherwise a captured assertion could be replayed onto any request, for as long
    /// as it lives, by leaving the id out.
    pub async fn verify(&self, token: &str, request_id: &str) -> Result<Asserted, VerifyError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Algorithm(header.alg));
        }
        let key: DecodingKey = match &self.source {
            Source::Remote(set) => set.find(header.kid.as_deref(), header.alg).await?,
            Source::Fixed(keys) => keys.find(header.kid.as_deref(), header.alg)?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| VerifyError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.rid.is_empty() || request_id != claims.rid {
            return Err(VerifyError::OtherRequest {
                made_for: claims.rid,
                this: request_id.to_string(),
            });
        }
        Ok(Asserted {
            identity: Identity {
                subject: claims.sub,
                issuer: claims.idp,
                roles: claims.roles,
                name: claims.name,
            },
            audiences: claims.aud,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            subject: "alice".into(),
            issuer: "https://idp.example".into(),
            roles: vec!["buyer".into()],
            name: Some("Alice".into()),
        }
    }

    #[tokio::test]
    async fn a_signed_assertion_verifies_and_round_trips() {
        let signer = Signer::generate();
        let verifier = Verifier::fixed(&signer.jwks(), "renderer");
        let token = signer
            .sign(&alice(), "req-1", &["renderer", "checkout"])
            .unwrap();
        let asserted = verifier.verify(&token, "req-1").await.unwrap();
        assert_eq!(asserted.identity, alice());
        assert_eq!(asserted.audiences, ["renderer", "checkout"]);
        assert!(asserted.is_for("checkout") && !asserted.is_for("events"));
    }

    /// Every consumer (renderer, BFFs) verifies through here, and each gives the
    /// request's id: an assertion that names no request is good for none.
    #[tokio::test]
    async fn an_assertion_without_its_request_id_is_refused() {
        let signer = Signer::generate();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": ["svc"], "sub": "alice", "idp": "https://idp.example",
            "iat": now(), "nbf": now(), "exp": now() + 60,
        });
        let token = signer.sign_payload(&serde_json::to_vec(&claims).unwrap());
        let verifier = Verifier::fixed(&signer.jwks(), "svc");
        for request_id in ["", "req-1"] {
            let err = verifier.verify(&token, request_id).await.unwrap_err();
            assert!(matches!(err, VerifyError::Invalid(_)), "{err}");
        }
        let token = signer.sign(&alice(), "", &["svc"]).unwrap();
        for request_id in ["", "req-1"] {
            let err = verifier.verify(&token, request_id).await.unwrap_err();
            assert!(matches!(err, VerifyError::OtherRequest { .. }), "{err}");
        }
    }

    /// One audience per service: an assertion made for one upstream (and its
    /// delegates) is refused by every other service.
    #[tokio::test]
    async fn an_assertion_works_only_at_the_services_it_names() {
        let signer = Signer::generate();
        let token = signer.sign(&alice(), "r", &["events"]).unwrap();
        let at = |service: &str| Verifier::fixed(&signer.jwks(), service);
        assert!(at("events").verify(&token, "r").await.is_ok());
        for other in ["checkout", "renderer", "oberon-upstream"] {
            let err = at(other).verify(&token, "r").await.unwrap_err();
            assert!(
                err.to_string().contains("InvalidAudience"),
                "{other}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn another_gateways_key_is_refused() {
        let token = Signer::generate().sign(&alice(), "r", &["svc"]).unwrap();
        let verifier = Verifier::fixed(&Signer::generate().jwks(), "svc");
        assert!(matches!(
            verifier.verify(&token, "r").await,
            Err(VerifyError::Key(KeyError::UnknownKid(_)))
        ));
    }

    #[tokio::test]
    async fn an_assertion_replayed_onto_another_request_is_refused() {
        let signer = Signer::generate();
        let token = signer.sign(&alice(), "req-1", &["svc"]).unwrap();
        let err = Verifier::fixed(&signer.jwks(), "svc")
            .verify(&token, "req-2")
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::OtherRequest { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_expired_assertion_is_refused() {
        let signer = Signer::generate();
        let old = now() - LIFETIME.as_secs() - LEEWAY.as_secs() - 1;
        let token = signer.sign_at(&alice(), "r", &["svc"], old).unwrap();
        let err = Verifier::fixed(&signer.jwks(), "svc")
            .verify(&token, "r")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Expired"), "{err}");
    }

    #[tokio::test]
    async fn a_tampered_assertion_is_refused() {
        let signer = Signer::generate();
        let token = signer.sign(&alice(), "r", &["svc"]).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        // Claim to be somebody else, keeping the signature.
        let forged = Claims {
            iss: ISSUER.into(),
            aud: vec!["svc".into()],
            sub: "mallory".into(),
            iat: now(),
            nbf: now(),
            exp: now() + 60,
            idp: "x".into(),
            roles: vec!["admin".into()],
            name: None,
            rid: "r".into(),
        };
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).unwrap());
        let err = Verifier::fixed(&signer.jwks(), "svc")
            .verify(&parts.join("."), "r")
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(_)), "{err}");
    }

    #[test]
    fn a_pem_key_loads_and_a_bad_one_says_how_to_make_one() {
        use base64::Engine;
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&[7u8; 32]);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let signer = Signer::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(signer.jwks().keys.len(), 1);
        let err = Signer::from_pem(b"nonsense").unwrap_err().to_string();
        assert!(err.contains("openssl genpkey -algorithm ed25519"), "{err}");
    }
}
