//! Browser sign-in, as an OpenID Connect relying party using the implicit flow's
//! `response_type=id_token` with `response_mode=form_post`:
//!
//! 1. A page route that needs a user redirects to `/_gateway/sign-in?return_to=PATH`.
//! 2. The gateway checks that `PATH` is local (no open redirect), remembers it with a
//!    random `state` and a random `nonce` in a short-lived cookie, and redirects to the
//!    identity provider's authorization endpoint (`scope=openid …`, `client_id`,
//!    `state`, `nonce`, `redirect_uri`).
//! 3. The provider signs the user in and POSTs `id_token` and `state` to
//!    `/_gateway/session`.
//! 4. The gateway checks `state` against its cookie (so nobody can sign a browser in as
//!    somebody else), verifies the token like any other, checks that its `nonce` claim
//!    is the cookie's (so a token minted for another sign-in, or captured and posted
//!    again, is refused), stores it in the session cookie (HttpOnly) and redirects to
//!    `PATH`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Form;
use axum::body::Body;
use axum::extract::{Query, State};
use base64::Engine;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;

use crate::Gateway;
use crate::auth::{MAX_TOKEN_BYTES, Presented, cookie_value};
use crate::config::GatewayConfig;
use crate::path::is_local_return_path;
use crate::proxy::gateway_answer;
use oberon_service::secret_eq;

/// The cookie holding a sign-in in progress: `STATE.NONCE.RETURN_PATH`, each
/// base64url.
pub const STATE_COOKIE: &str = "oberon_signin";

pub(crate) struct Settings {
    pub cookie: String,
    sign_in_url: Option<String>,
    public_url: String,
    /// `scheme://host[:port]` of `public_url`: what a browser sends as `Origin` from
    /// this site's own pages.
    public_origin: String,
    secure: bool,
    issuer: Option<String>,
    client_id: String,
    /// `openid` and the configured scopes, space-separated.
    scope: String,
}

impl Settings {
    pub fn new(config: &GatewayConfig) -> Self {
        let public_url = config
            .public_url
            .get_ref()
            .trim_end_matches('/')
            .to_string();
        Self {
            cookie: config.session.cookie.clone(),
            sign_in_url: config
                .session
                .sign_in_url
                .as_ref()
                .map(|u| u.get_ref().clone()),
            secure: public_url.starts_with("https://"),
            public_origin: origin_of(&public_url),
            public_url,
            issuer: config.session.issuer.as_ref().map(|i| i.get_ref().clone()),
            client_id: config.session.client_id.get_ref().clone(),
            scope: scope_of(config.session.scopes.iter().map(|s| s.get_ref().as_str())),
        }
    }

    fn attributes(&self, cross_site: bool) -> &'static str {
        match (self.secure, cross_site) {
            // The provider's form POST comes from another site: only `None` survives it.
            (true, true) => "HttpOnly; Secure; SameSite=None",
            (true, false) => "HttpOnly; Secure; SameSite=Lax",
            (false, _) => "HttpOnly; SameSite=Lax",
        }
    }
}

/// `scheme://authority` of `url`, lower case, as browsers write `Origin`.
fn origin_of(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                format!("{scheme}://{authority}").to_ascii_lowercase()
            }
            _ => url.to_ascii_lowercase(),
        },
        Err(_) => url.to_ascii_lowercase(),
    }
}

/// Whether a state-changing request comes from this site's own pages, so another site
/// cannot make a browser send it (cross-site request forgery). A browser says where a
/// request comes from in `Sec-Fetch-Site` (only `same-origin`, or `none` for one the
/// user made, pass) and, where it does not send that, in `Origin` (which must be
/// `public_url`'s). A request with neither is not from a browser that could be made to
/// send it by another site, and passes.
fn from_this_site(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(public_origin)),
    }
}

/// The largest `POST /_gateway/session` body read: an ID token of [`MAX_TOKEN_BYTES`]
/// and a `state`, form-encoded, with room to spare. Anything larger is refused (413)
/// before it is parsed.
pub const CALLBACK_BYTES: usize = 2 * MAX_TOKEN_BYTES;

fn redirect(location: &str) -> Response<Body> {
    let mut response = gateway_answer(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn set_cookie(response: &mut Response<Body>, cookie: String) {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Where a page route sends a browser that must sign in.
pub fn redirect_to_sign_in(return_to: &str) -> Response<Body> {
    let encoded: String = url_encode(return_to);
    redirect(&format!("/_gateway/sign-in?return_to={encoded}"))
}

pub(crate) fn clear_session_cookie(response: &mut Response<Body>, settings: &Settings) {
    set_cookie(
        response,
        format!(
            "{}=; Path=/; Max-Age=0; {}",
            settings.cookie,
            settings.attributes(false)
        ),
    );
}

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// `openid`, then `extra` without repeats: the `scope` of an OpenID Connect request.
fn scope_of<'a>(extra: impl Iterator<Item = &'a str>) -> String {
    let mut scopes = vec!["openid"];
    for s in extra {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.join(" ")
}

/// 128 random bits, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// `GET /_gateway/sign-in?return_to=PATH`.
pub async fn start_sign_in(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<StartQuery>,
) -> Response<Body> {
    let settings = &gateway.session;
    let Some(sign_in_url) = &settings.sign_in_url else {
        return gateway_answer(StatusCode::NOT_FOUND, "sign-in is not configured\n");
    };
    let return_to = query
        .return_to
        .filter(|r| is_local_return_path(r))
        .unwrap_or_else(|| "/".to_string());
    let state = random_token();
    let nonce = random_token();
    let remembered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&return_to);
    let separator = if sign_in_url.contains('?') { '&' } else { '?' };
    let location = format!(
        "{sign_in_url}{separator}response_type=id_token&response_mode=form_post&scope={}&client_id={}&state={state}&nonce={nonce}&redirect_uri={}",
        url_encode(&settings.scope),
        url_encode(&settings.client_id),
        url_encode(&format!("{}/_gateway/session", settings.public_url))
    );
    let mut response = redirect(&location);
    set_cookie(
        &mut response,
        format!(
            "{STATE_COOKIE}={state}.{nonce}.{remembered}; Path=/_gateway; Max-Age=600; {}",
            settings.attributes(true)
        ),
    );
    response
}

/// `STATE.NONCE.RETURN_PATH` from the state cookie.
fn sign_in_started(headers: &HeaderMap) -> Option<(&str, &str, &str)> {
    let mut parts = cookie_value(headers, STATE_COOKIE)?.split('.');
    let started = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(started)
}

#[derive(Deserialize)]
pub struct Callback {
    id_token: String,
    state: String,
}

/// `POST /_gateway/session` (`id_token`, `state`), from the identity provider.
pub async fn finish_sign_in(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Form(callback): Form<Callback>,
) -> Response<Body> {
    let settings = &gateway.session;
    let Some((state, nonce, remembered)) = sign_in_started(&headers) else {
        return gateway_answer(
            StatusCode::BAD_REQUEST,
            "this sign-in was not started here, or took too long: start again\n",
        );
    };
    if !secret_eq(state.as_bytes(), callback.state.as_bytes()) {
        return gateway_answer(
            StatusCode::BAD_REQUEST,
            "this sign-in does not match the one started here: start again\n",
        );
    }
    let verified = match gateway
        .issuers()
        .verify(&callback.id_token, Presented::Session)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::info!("sign-in token refused: {e}");
            return gateway_answer(StatusCode::BAD_REQUEST, "the sign-in token is not valid\n");
        }
    };
    // The token must be the answer to this sign-in, not one minted for another (or
    // captured and posted again): OpenID Connect Core §3.2.2.11.
    let token_nonce = match verified.claims.get("nonce") {
        Some(Value::String(n)) => n.as_str(),
        _ => "",
    };
    if nonce.is_empty() || !secret_eq(nonce.as_bytes(), token_nonce.as_bytes()) {
        tracing::info!(user = %verified.identity.subject, "sign-in token refused: its nonce is not this sign-in's");
        return gateway_answer(
            StatusCode::BAD_REQUEST,
            "the sign-in token was not made for this sign-in: start again\n",
        );
    }
    if let Some(issuer) = &settings.issuer
        && verified.identity.issuer != *issuer
    {
        return gateway_answer(
            StatusCode::BAD_REQUEST,
            "this identity provider does not sign browsers in here\n",
        );
    }
    let return_to = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(remembered)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|r| is_local_return_path(r))
        .unwrap_or_else(|| "/".to_string());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let max_age = verified.expires_at.saturating_sub(now);
    let mut response = redirect(&return_to);
    set_cookie(
        &mut response,
        format!(
            "{}={}; Path=/; Max-Age={max_age}; {}",
            settings.cookie,
            callback.id_token,
            settings.attributes(false)
        ),
    );
    set_cookie(
        &mut response,
        format!(
            "{STATE_COOKIE}=; Path=/_gateway; Max-Age=0; {}",
            settings.attributes(true)
        ),
    );
    tracing::info!(user = %verified.identity.subject, "signed in");
    response
}

/// `POST /_gateway/sign-out`, from this site's own pages only: another site must not
/// be able to sign a browser out.
pub async fn sign_out(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    if !from_this_site(&headers, &gateway.session.public_origin) {
        tracing::info!(
            origin = ?headers.get(header::ORIGIN),
            sec_fetch_site = ?headers.get("sec-fetch-site"),
            "sign-out refused: cross-site"
        );
        return gateway_answer(
            StatusCode::FORBIDDEN,
            "sign-out is accepted only from this site's own pages\n",
        );
    }
    let mut response = redirect("/");
    clear_session_cookie(&mut response, &gateway.session);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_sites_pages_may_post() {
        let origin = origin_of("https://Tickets.example/");
        assert_eq!(origin, "https://tickets.example");
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            from_this_site(&h, &origin)
        };
        assert!(with(&[]));
        assert!(with(&[("sec-fetch-site", "same-origin")]));
        assert!(with(&[("sec-fetch-site", "none")]));
        assert!(!with(&[("sec-fetch-site", "same-site")]));
        assert!(!with(&[("sec-fetch-site", "cross-site")]));
        assert!(with(&[("origin", "https://tickets.example")]));
        assert!(!with(&[("origin", "https://evil.example")]));
        assert!(!with(&[("origin", "null")]));
        // A browser's `Sec-Fetch-Site` decides, whatever `Origin` says.
        assert!(!with(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://tickets.example")
        ]));
    }
}
