//! Who is asking: the gateway's identity assertion, verified by `oberon-identity` (the
//! one verifier of the whole platform: the renderer uses it too).
//!
//! Oberon's gateway authenticates users and sends each request it authenticated on with
//! an `Oberon-Identity` header: a short-lived JWT (EdDSA) it signed for that request.
//! A BFF verifies it with the gateway's public keys (`GATEWAY_JWKS_URL`, fetched again
//! once they are `GATEWAY_KEYS_MAX_AGE_MS` old, so a key the gateway withdrew stops
//! working; a fetch that fails keeps the keys there were), accepts it only when its `aud` names this service (`AUDIENCE`) and its
//! request id is this request's, and never trusts any other header that claims to say
//! who the user is. Handlers ask for a user with an extractor:
//!
//! - [`OptionalUser`]: `Some(user)` when the request carries a valid assertion, `None`
//!   otherwise (anonymous, or an assertion that does not verify);
//! - [`UserWithRole<R>`]: the user, who must have role `R::NAME`; 401 without a valid
//!   assertion, 403 without the role.
//!
//! An answer that depends on the user must never be shared by a cache: mark it
//! [`PRIVATE`](crate::PRIVATE).

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use oberon_identity::{Identity, RemoteKeySet, RemoteKeySetOptions, Verifier};

use crate::config::Settings;
use crate::observe::Arrival;

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

impl User {
    /// `/issuers/{issuer}/users/{subject}`, each one path segment
    /// ([`path_segment`](crate::backend::path_segment)): where a backend keeps what is
    /// this user's, keyed by both. An identity that cannot name a path (a subject of
    /// `..`) is refused instead: `403`, private.
    pub fn backend_path(&self) -> Result<String, Refused> {
        use crate::backend::path_segment;
        match (path_segment(&self.issuer), path_segment(&self.subject)) {
            (Some(issuer), Some(subject)) => Ok(format!("/issuers/{issuer}/users/{subject}")),
            _ => Err(Refused(
                StatusCode::FORBIDDEN,
                "this identity cannot name a backend path".into(),
                crate::PRIVATE,
            )),
        }
    }
}

impl From<Identity> for User {
    fn from(identity: Identity) -> Self {
        Self {
            issuer: identity.issuer,
            subject: identity.subject,
            roles: identity.roles,
            name: identity.name,
        }
    }
}

/// The verifier `settings` ask for: `None` without `GATEWAY_JWKS_URL` (every request
/// is then anonymous).
pub(crate) fn verifier(settings: &Settings) -> Option<Arc<Verifier>> {
    let url = settings.gateway_jwks_url.as_deref()?;
    let audience = settings.audience.as_deref()?;
    let defaults = RemoteKeySetOptions::default();
    // A refresh is never held back longer than the keys' age allows: a withdrawn key
    // stops working within `keys_max_age` whatever that is.
    let options = RemoteKeySetOptions {
        max_age: settings.keys_max_age,
        cooldown: defaults.cooldown.min(settings.keys_max_age),
        ..defaults
    };
    let keys = Arc::new(RemoteKeySet::new(url, options));
    Some(Arc::new(Verifier::remote(keys, audience)))
}

/// The request's user, verified once however many extractors ask.
#[derive(Clone)]
struct Verified(Option<User>);

async fn user_of(parts: &mut Parts) -> Option<User> {
    if let Some(Verified(user)) = parts.extensions.get::<Verified>() {
        return user.clone();
    }
    let user = verify(parts).await;
    parts.extensions.insert(Verified(user.clone()));
    user
}

async fn verify(parts: &Parts) -> Option<User> {
    let token = parts
        .headers
        .get(oberon_identity::assertion::HEADER)?
        .to_str()
        .ok()?;
    let Some(arrival) = parts.extensions.get::<Arrival>() else {
        tracing::error!("identity assertion ignored: the route is not served by oberon_bff");
        return None;
    };
    let Some(verifier) = &arrival.identity else {
        tracing::warn!("identity assertion ignored: GATEWAY_JWKS_URL is not set");
        return None;
    };
    match verifier.verify(token, &arrival.request_id).await {
        Ok(asserted) => Some(asserted.identity.into()),
        Err(e) => {
            // Only a request that went around the gateway can carry a bad assertion.
            tracing::warn!("identity assertion refused: {e}");
            None
        }
    }
}

/// The signed-in user, if any.
pub struct OptionalUser(pub Option<User>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(user_of(parts).await))
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

/// Why a user was refused: 401 without a user, 403 without the role a
/// [`UserWithRole`] needs or for an identity that cannot name a backend path. Never
/// cached.
#[derive(Debug)]
pub struct Refused(StatusCode, String, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        crate::error(self.0, &self.1, self.2)
    }
}

impl<R: Role, S: Send + Sync> FromRequestParts<S> for UserWithRole<R> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match user_of(parts).await {
            None => Err(Refused(
                StatusCode::UNAUTHORIZED,
                "sign in first".into(),
                crate::NO_STORE,
            )),
            Some(user) if !user.has_role(R::NAME) => Err(Refused(
                StatusCode::FORBIDDEN,
                format!("this needs the role {:?}", R::NAME),
                crate::NO_STORE,
            )),
            Some(user) => Ok(Self(user, PhantomData)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_id_is_its_issuer_and_subject() {
        let user = |issuer: &str| User {
            issuer: issuer.into(),
            subject: "alice".into(),
            roles: vec![],
            name: None,
        };
        assert_eq!(
            user("https://idp.example").id(),
            "https://idp.example#alice"
        );
        assert_ne!(
            user("https://a.example").id(),
            user("https://b.example").id()
        );
        // An issuer with a `#` cannot pose as another issuer's user.
        assert_eq!(user("https://a#b").id(), "https://a%23b#alice");
        assert_eq!(
            user("https://idp.example").backend_path().ok().as_deref(),
            Some("/issuers/https%3A%2F%2Fidp.example/users/alice")
        );
        let mut climber = user("https://idp.example");
        climber.subject = "..".into();
        let refused = climber
            .backend_path()
            .expect_err("a subject of .. names no path");
        assert_eq!(refused.into_response().status(), StatusCode::FORBIDDEN);
    }
}
