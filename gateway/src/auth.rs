//! Token verification against the configured identity providers: pick the issuer from
//! the token's `iss` (before trusting anything else in it), check the algorithm against
//! the issuer's pinned list, find the key by `kid` in the issuer's JWKS (refetched on an
//! unknown `kid`, with a cooldown), then verify signature, `iss`, `aud`, `exp` and `nbf`.
//! Last, the token's `typ` must fit how it was presented ([`Presented`]): an access
//! token is not a session, and where the issuer types its access tokens, nothing else
//! is a bearer token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use oberon_identity::{Identity, KeyError, RemoteKeySet, RemoteKeySetOptions};
use serde_json::Value;

use crate::config::IssuerConfig;

/// Why a token was refused. The message goes to the logs; clients see only that the
/// token is invalid.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("issuer {0:?} is not trusted")]
    UnknownIssuer(String),
    #[error("algorithm {alg:?} is not pinned for issuer {issuer:?}")]
    Algorithm { issuer: String, alg: Algorithm },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Invalid(String),
    #[error("a token of type {typ:?} is not accepted as {presented}")]
    Type {
        typ: Option<String>,
        presented: Presented,
    },
}

impl TokenError {
    /// The `auth` label of `oberon_gateway_requests_total` for a refused token.
    pub fn auth_label(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::UnknownIssuer(_) => "unknown_issuer",
            TokenError::Algorithm { .. } => "bad_algorithm",
            TokenError::Key(_) => "unknown_key",
            TokenError::Expired(_) => "expired",
            TokenError::BadSignature(_) => "bad_signature",
            TokenError::Invalid(_) => "invalid",
            TokenError::Type { .. } => "wrong_type",
        }
    }
}

/// How a token reached the gateway, which says what kind of token it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// `Authorization: Bearer`: an access token.
    Bearer,
    /// The session cookie, or the sign-in callback that sets it: an ID token.
    Session,
}

impl std::fmt::Display for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bearer => "a bearer (access) token",
            Self::Session => "a session (ID token)",
        })
    }
}

/// `typ` of access tokens in RFC 9068, the default [`IssuerConfig::access_token_typ`]
/// for telling them apart from ID tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Whether two `typ` values name the same media type: case-insensitive, and with the
/// `application/` prefix optional (RFC 7515 §4.1.9).
fn same_typ(a: &str, b: &str) -> bool {
    let bare = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(String::from)
            .unwrap_or(lower)
    };
    bare(a) == bare(b)
}

struct Issuer {
    name: String,
    keys: Arc<RemoteKeySet>,
    /// One validation per pinned algorithm: a validation's algorithms must all be of
    /// the key's family, and issuers may pin several families.
    validations: HashMap<Algorithm, Validation>,
    roles_claim: Vec<String>,
    /// `access_token_typ`, if configured: then a bearer token must carry it.
    access_token_typ: Option<String>,
}

impl Issuer {
    /// Whether a token of this issuer typed `typ` may be used as `presented`. A token
    /// typed as an access token is never a session; where the issuer types its access
    /// tokens, only such a token is a bearer token.
    fn admits(&self, typ: Option<&str>, presented: Presented) -> Result<(), TokenError> {
        let access_typ = self.access_token_typ.as_deref().unwrap_or(ACCESS_TOKEN_TYP);
        let is_access = typ.is_some_and(|t| same_typ(t, access_typ));
        let admitted = match presented {
            Presented::Session => !is_access,
            Presented::Bearer => is_access || self.access_token_typ.is_none(),
        };
        if admitted {
            Ok(())
        } else {
            Err(TokenError::Type {
                typ: typ.map(String::from),
                presented,
            })
        }
    }
}

/// Every trusted issuer, by `iss`.
pub struct Issuers {
    by_name: HashMap<String, Issuer>,
    /// Tokens already verified, until they expire (at most [`VERIFIED_FOR`]): a browser
    /// sends the same session token with every request, and an RSA verification costs
    /// about 240 µs here (`gateway_parts/verify_rs256_token`).
    verified: moka::sync::Cache<String, Arc<Verified>>,
}

/// How long a verified token is trusted without verifying it again. It bounds how long
/// a key withdrawn from an issuer's JWKS keeps working for tokens already seen.
pub const VERIFIED_FOR: Duration = Duration::from_secs(300);

struct UntilExpiry;

impl moka::Expiry<String, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &String,
        verified: &Arc<Verified>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX);
        Some(Duration::from_secs(verified.expires_at.saturating_sub(now)).min(VERIFIED_FOR))
    }
}

/// A verified token: who, and every claim (for route claim requirements).
#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Identity,
    pub claims: serde_json::Map<String, Value>,
    /// `exp`, for the session cookie's lifetime.
    pub expires_at: u64,
    /// The token's `typ` header, which says whether it is an access token.
    pub typ: Option<String>,
}

impl Issuers {
    /// Each issuer's key-set fetches so far (for the metrics).
    pub fn key_set_stats(&self) -> impl Iterator<Item = (&str, oberon_identity::KeySetStats)> {
        self.by_name
            .values()
            .map(|issuer| (issuer.name.as_str(), issuer.keys.stats()))
    }

    /// `jwks_overrides` replaces an issuer's `jwks_url` (by issuer name): for `oberon
    /// dev` and tests, whose identity providers listen on ports chosen at start.
    pub fn new(configs: &[IssuerConfig], jwks_overrides: &HashMap<String, String>) -> Self {
        let mut by_name = HashMap::new();
        for c in configs {
            let name = c.issuer.get_ref().clone();
            let algorithms: Vec<Algorithm> = c
                .algorithms
                .get_ref()
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            let validations = algorithms
                .iter()
                .map(|&alg| {
                    let mut validation = Validation::new(alg);
                    validation.set_issuer(&[&name]);
                    validation.set_audience(&c.audiences);
                    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                    validation.validate_nbf = true;
                    validation.leeway = *c.leeway_s.get_ref();
                    (alg, validation)
                })
                .collect();
            let url = jwks_overrides
                .get(&name)
                .cloned()
                .unwrap_or_else(|| c.jwks_url.get_ref().clone());
            let keys = RemoteKeySet::new(
                url,
                RemoteKeySetOptions {
                    cooldown: Duration::from_secs(c.jwks_cooldown_s),
                    ..RemoteKeySetOptions::default()
                },
            );
            by_name.insert(
                name.clone(),
                Issuer {
                    name,
                    keys: Arc::new(keys),
                    validations,
                    roles_claim: c.roles_claim.split('.').map(String::from).collect(),
                    access_token_typ: c.access_token_typ.as_ref().map(|t| t.get_ref().clone()),
                },
            );
        }
        let verified = moka::sync::Cache::builder()
            .weigher(|token: &String, _: &Arc<Verified>| {
                u32::try_from(token.len() + 512).unwrap_or(u32::MAX)
            })
            .max_capacity(32 << 20)
            .expire_after(UntilExpiry)
            .build();
        Self { by_name, verified }
    }

    /// Fetch every issuer's keys once, at start; a provider that is down is logged and
    /// retried on the first token that needs it.
    pub async fn prefetch(&self) {
        for issuer in self.by_name.values() {
            match issuer.keys.refresh().await {
                Ok(n) => {
                    tracing::info!(issuer = %issuer.name, keys = n, "identity provider keys loaded")
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer.name, "identity provider keys not loaded yet: {e}")
                }
            }
        }
    }

    pub fn key_set(&self, issuer: &str) -> Option<&Arc<RemoteKeySet>> {
        self.by_name.get(issuer).map(|i| &i.keys)
    }

    /// The verified identity in `token`, from the cache of tokens already verified or
    /// by verifying it now. A token that is not even shaped like one is refused first,
    /// at the cost of one pass over its bytes: no decoding, no key lookup (which could
    /// mean a JWKS fetch), no signature check.
    /// The token must also be of the kind its presentation says ([`Presented`]).
    pub async fn verify(
        &self,
        token: &str,
        presented: Presented,
    ) -> Result<Arc<Verified>, TokenError> {
        check_shape(token)?;
        let verified = match self.verified.get(token) {
            Some(v) => v,
            None => {
                let v = Arc::new(self.verify_uncached(token).await?);
                self.verified.insert(token.to_string(), v.clone());
                v
            }
        };
        match self.by_name.get(&verified.identity.issuer) {
            Some(issuer) => issuer.admits(verified.typ.as_deref(), presented)?,
            None => return Err(TokenError::UnknownIssuer(verified.identity.issuer.clone())),
        }
        Ok(verified)
    }

    /// Verify `token` now, whatever the cache holds.
    pub async fn verify_uncached(&self, token: &str) -> Result<Verified, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let iss = unverified_issuer(token)?;
        let issuer = self
            .by_name
            .get(&iss)
            .ok_or_else(|| TokenError::UnknownIssuer(iss.clone()))?;
        let Some(validation) = issuer.validations.get(&header.alg) else {
            return Err(TokenError::Algorithm {
                issuer: iss,
                alg: header.alg,
            });
        };
        let key = issuer.keys.find(header.kid.as_deref(), header.alg).await?;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired(e.to_string()),
                    ErrorKind::InvalidSignature => TokenError::BadSignature(e.to_string()),
                    _ => TokenError::Invalid(e.to_string()),
                }
            })?;
        let claims = data.claims;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::Invalid("`sub` is not a string".into())),
        };
        let roles = lookup(&claims, &issuer.roles_claim)
            .map(|v| match v {
                Value::Array(items) => items
                    .iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect(),
                Value::String(s) => s.split_whitespace().map(String::from).collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default();
        let name = claims
            .get("name")
            .or_else(|| claims.get("preferred_username"))
            .and_then(Value::as_str)
            .map(String::from);
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(Verified {
            identity: Identity {
                subject,
                issuer: iss,
                roles,
                name,
            },
            claims,
            expires_at,
            typ: header.typ,
        })
    }
}

/// The longest token accepted. Identity providers' tokens are a few KiB at most; this
/// bounds what an attacker can make the gateway decode and verify.
pub const MAX_TOKEN_BYTES: usize = 16 << 10;

/// Refuse, cheaply, what cannot be a compact JWS: too long, not three non-empty
/// base64url parts.
fn check_shape(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!(
            "{} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let parts = token.split('.');
    let shaped = parts.clone().count() == 3
        && parts.into_iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if shaped {
        Ok(())
    } else {
        Err(TokenError::Malformed(
            "not three base64url parts separated by `.`".into(),
        ))
    }
}

/// `iss` read from the payload *before* verification, only to choose whose keys and
/// rules verify the token; everything is checked again by the verification itself.
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| TokenError::Malformed("no payload".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed(e.to_string()))?;
    match claims.get("iss") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(TokenError::Malformed("no `iss`".into())),
    }
}

fn lookup<'a>(claims: &'a serde_json::Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for key in rest {
        value = value.get(key)?;
    }
    Some(value)
}

/// Whether the token's claims satisfy a route's `claims = { k = "v" }`: the claim is
/// the value, or a list containing it.
pub fn claims_match(
    claims: &serde_json::Map<String, Value>,
    required: &std::collections::BTreeMap<String, String>,
) -> bool {
    required.iter().all(|(k, want)| match claims.get(k) {
        Some(Value::String(s)) => s == want,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(want)),
        Some(Value::Bool(b)) => b.to_string() == *want,
        Some(Value::Number(n)) => n.to_string() == *want,
        _ => false,
    })
}

/// The token a request carries and how: `Authorization: Bearer …`, else the session
/// cookie.
pub fn token_of<'a>(headers: &'a http::HeaderMap, cookie: &str) -> Option<(&'a str, Presented)> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
            .map(|t| (t, Presented::Bearer));
    }
    cookie_value(headers, cookie).map(|t| (t, Presented::Session))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The `Cookie` header without cookie `name`: the session token is for the gateway,
/// never for upstreams.
pub fn without_cookie(headers: &http::HeaderMap, name: &str) -> Option<http::HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .collect();
    if kept.is_empty() {
        None
    } else {
        http::HeaderValue::from_str(&kept.join("; ")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_first_then_cookie() {
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "a=1; oberon_session=tok2; b=2".parse().unwrap());
        assert_eq!(
            token_of(&h, "oberon_session"),
            Some(("tok2", Presented::Session))
        );
        h.insert("authorization", "Bearer tok1".parse().unwrap());
        assert_eq!(
            token_of(&h, "oberon_session"),
            Some(("tok1", Presented::Bearer))
        );
        h.insert("authorization", "Basic dXNlcg==".parse().unwrap());
        assert_eq!(token_of(&h, "oberon_session"), None);
    }

    #[test]
    fn the_session_cookie_is_removed_and_the_rest_kept() {
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "a=1; oberon_session=tok; b=2".parse().unwrap());
        assert_eq!(without_cookie(&h, "oberon_session").unwrap(), "a=1; b=2");
        h.insert("cookie", "oberon_session=tok".parse().unwrap());
        assert_eq!(without_cookie(&h, "oberon_session"), None);
    }

    #[test]
    fn only_what_is_shaped_like_a_jws_is_decoded() {
        assert!(check_shape("eyJh.eyJi.c2ln").is_ok());
        assert!(check_shape("a_b-c.d.e").is_ok());
        for bad in ["", "a.b", "a.b.c.d", "a..c", "a.b=.c", "a.b c.d", "a.b+/.c"] {
            assert!(check_shape(bad).is_err(), "{bad:?}");
        }
        let long = format!("a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert!(check_shape(&long).is_err());
    }

    #[test]
    fn typ_separates_access_tokens_from_sessions() {
        let issuer = |access_token_typ: Option<&str>| Issuer {
            name: "i".into(),
            keys: Arc::new(RemoteKeySet::new(
                "http://127.0.0.1:9",
                RemoteKeySetOptions::default(),
            )),
            validations: HashMap::new(),
            roles_claim: vec![],
            access_token_typ: access_token_typ.map(String::from),
        };
        use Presented::{Bearer, Session};
        // Unset: only a token typed as an access token is refused as a session.
        let default = issuer(None);
        for (typ, presented, ok) in [
            (None, Bearer, true),
            (Some("JWT"), Bearer, true),
            (Some("at+jwt"), Bearer, true),
            (None, Session, true),
            (Some("JWT"), Session, true),
            (Some("at+jwt"), Session, false),
            (Some("application/AT+JWT"), Session, false),
        ] {
            assert_eq!(
                default.admits(typ, presented).is_ok(),
                ok,
                "{typ:?} {presented}"
            );
        }
        let typed = issuer(Some("at+jwt"));
        for (typ, presented, ok) in [
            (None, Bearer, false),
            (Some("JWT"), Bearer, false),
            (Some("at+jwt"), Bearer, true),
            (Some("application/at+jwt"), Bearer, true),
            (Some("JWT"), Session, true),
            (Some("at+jwt"), Session, false),
        ] {
            assert_eq!(
                typed.admits(typ, presented).is_ok(),
                ok,
                "{typ:?} {presented}"
            );
        }
    }

    #[test]
    fn claims_match_values_and_lists() {
        let claims: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"tenant":"acme","groups":["a","b"],"n":3}"#).unwrap();
        let req = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        assert!(claims_match(&claims, &req("tenant", "acme")));
        assert!(!claims_match(&claims, &req("tenant", "other")));
        assert!(claims_match(&claims, &req("groups", "b")));
        assert!(claims_match(&claims, &req("n", "3")));
        assert!(!claims_match(&claims, &req("missing", "x")));
    }
}
