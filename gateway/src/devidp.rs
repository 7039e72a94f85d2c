//! A local identity provider for development and tests: an RSA key made at start, its
//! JWKS, OpenID discovery, and a sign-in page where anybody can be anybody (choose a
//! name and roles). It speaks the same protocol the gateway expects from a real
//! provider (`response_mode=form_post`, the request's `nonce` echoed in the ID token),
//! so production swaps in any standard OIDC issuer without a change to the gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use http::{StatusCode, header};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde::Deserialize;

/// Roles a developer can pick on the sign-in page.
pub const ROLES: [&str; 3] = ["buyer", "organiser", "admin"];

/// The development identity provider.
pub struct DevIdp {
    issuer: String,
    /// Where this provider is reached (for discovery).
    base_url: String,
    audience: String,
    key: EncodingKey,
    public: Jwk,
    /// `redirect_uri`s a sign-in may return to (exact match): anything else would hand
    /// tokens to whoever asks.
    redirect_uris: Vec<String>,
    /// Sign-ins shown the form and not yet posted: their `nonce` by `state`. Kept here
    /// rather than in the form, as a real provider keeps it in its own session, so a
    /// client that posts back only what it chose (name, roles) still gets its nonce.
    pending: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a sign-in form stays good, and how many may be pending at once.
const PENDING_FOR: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 1024;

/// Claims of a token minted by [`DevIdp::mint`].
#[derive(Debug, Clone, Default)]
pub struct Mint {
    pub subject: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub lifetime_s: u64,
}

impl DevIdp {
    /// A provider reached at `base_url` whose tokens say `iss = issuer` and `aud =
    /// audience`. Makes a 2048-bit RSA key.
    pub fn new(
        issuer: impl Into<String>,
        base_url: impl Into<String>,
        audience: impl Into<String>,
        redirect_uris: Vec<String>,
    ) -> anyhow::Result<Self> {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
        let der = private.to_pkcs1_der()?;
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        let mut public = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
        let kid = public.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)?;
        public.common.key_id = Some(kid);
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self {
            issuer: issuer.into(),
            base_url: base_url.into(),
            audience: audience.into(),
            key,
            public,
            redirect_uris,
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    /// A signed ID token.
    pub fn mint(&self, m: &Mint) -> anyhow::Result<String> {
        self.mint_with_nonce(m, None)
    }

    /// A signed ID token answering a sign-in request that carried `nonce`.
    pub fn mint_with_nonce(&self, m: &Mint, nonce: Option<&str>) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": m.subject,
            "name": m.name,
            "roles": m.roles,
            "iat": now,
            "nbf": now,
            "exp": now + m.lifetime_s,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.public.common.key_id.clone();
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }

    /// Remember the `nonce` of the sign-in `state` until its form is posted.
    fn remember_nonce(&self, state: &str, nonce: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, (_, at)| at.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(state.to_string(), (nonce.to_string(), Instant::now()));
    }

    /// The `nonce` of the sign-in `state`, once.
    fn take_nonce(&self, state: &str) -> Option<String> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .remove(state)
            .filter(|(_, at)| at.elapsed() < PENDING_FOR)
            .map(|(nonce, _)| nonce)
    }
}

/// The provider's endpoints: `/.well-known/jwks.json`,
/// `/.well-known/openid-configuration`, and `/sign-in` (GET: the form; POST: the
/// token, posted back to the relying party).
pub fn app(idp: Arc<DevIdp>) -> Router {
    Router::new()
        .route(
            "/.well-known/jwks.json",
            get(|State(idp): State<Arc<DevIdp>>| async move { Json(idp.jwks()) }),
        )
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .with_state(idp)
}

async fn discovery(State(idp): State<Arc<DevIdp>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "issuer": idp.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", idp.base_url),
        "authorization_endpoint": format!("{}/sign-in", idp.base_url),
        "response_modes_supported": ["form_post"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

#[derive(Deserialize)]
struct Authorize {
    state: String,
    redirect_uri: String,
    /// Echoed in the ID token's `nonce` claim.
    nonce: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn refuse(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        format!("{message}\n"),
    )
        .into_response()
}

async fn sign_in_form(State(idp): State<Arc<DevIdp>>, Query(q): Query<Authorize>) -> Response {
    if !idp.redirect_uris.contains(&q.redirect_uri) {
        return refuse("unknown redirect_uri");
    }
    if let Some(nonce) = &q.nonce {
        idp.remember_nonce(&q.state, nonce);
    }
    let roles: String = ROLES
        .iter()
        .map(|r| {
            format!(
                r#"<label><input type="checkbox" name="{r}" value="on"{}> {r}</label> "#,
                if *r == "buyer" { " checked" } else { "" }
            )
        })
        .collect();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in (development)</title></head>
<body><main><h1>Sign in</h1><p>Development identity provider: choose who you are.</p>
<form method="post" action="/sign-in">
<input type="hidden" name="state" value="{state}"><input type="hidden" name="redirect_uri" value="{redirect}">
<p><label>Name <input name="user" value="alice" required pattern="[A-Za-z0-9._-]{{1,64}}"></label></p>
<p>{roles}</p><p><button type="submit">Sign in</button></p></form></main></body></html>"#,
        state = escape(&q.state),
        redirect = escape(&q.redirect_uri),
    ))
    .into_response()
}

#[derive(Deserialize)]
struct SignIn {
    state: String,
    redirect_uri: String,
    user: String,
    #[serde(default)]
    buyer: Option<String>,
    #[serde(default)]
    organiser: Option<String>,
    #[serde(default)]
    admin: Option<String>,
}

async fn sign_in(State(idp): State<Arc<DevIdp>>, Form(f): Form<SignIn>) -> Response {
    if !idp.redirect_uris.contains(&f.redirect_uri) {
        return refuse("unknown redirect_uri");
    }
    let valid_user = (1..=64).contains(&f.user.len())
        && f.user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid_user {
        return refuse("a name is 1 to 64 letters, digits, `.`, `_` or `-`");
    }
    let roles = [
        ("buyer", &f.buyer),
        ("organiser", &f.organiser),
        ("admin", &f.admin),
    ]
    .into_iter()
    .filter(|(_, on)| on.is_some())
    .map(|(r, _)| r.to_string())
    .collect();
    let nonce = idp.take_nonce(&f.state);
    let mint = Mint {
        subject: f.user.clone(),
        name: Some(f.user.clone()),
        roles,
        lifetime_s: 3600,
    };
    let token = match idp.mint_with_nonce(&mint, nonce.as_deref()) {
        Ok(t) => t,
        Err(e) => return refuse(&format!("cannot sign: {e}")),
    };
    // `form_post`: the browser carries the token to the relying party in a POST body,
    // never in a URL.
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signing in…</title></head>
<body onload="document.forms[0].submit()"><form method="post" action="{redirect}">
<input type="hidden" name="id_token" value="{token}"><input type="hidden" name="state" value="{state}">
<noscript><button type="submit">Continue</button></noscript></form></body></html>"#,
        redirect = escape(&f.redirect_uri),
        token = escape(&token),
        state = escape(&f.state),
    ))
    .into_response()
}
