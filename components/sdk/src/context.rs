//! Helpers on the request [`Context`].

use crate::{Context, User};

impl Context {
    /// The route parameter `name` (e.g. `id` for `/events/{id}`), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    /// The first query string parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }

    /// The signed-in user, when the gateway authenticated the request.
    /// A component that renders anything user-specific must declare
    /// [`Cacheability::Personal`](crate::Cacheability::Personal).
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }
}

impl User {
    /// Whether the user has the role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The user's id at their identity provider (`sub`), for display. It is unique
    /// only at that provider: key anything by [`User::id`], which is
    /// `ISSUER#SUBJECT` (the issuer's own `%` and `#` percent-encoded, so the first `#`
    /// ends it), unique across providers.
    pub fn subject(&self) -> &str {
        self.id
            .split_once('#')
            .map_or(self.id.as_str(), |(_, subject)| subject)
    }

    /// The identity provider that authenticated the user (its `iss`).
    pub fn issuer(&self) -> String {
        let issuer = self.id.split_once('#').map_or("", |(issuer, _)| issuer);
        issuer.replace("%23", "#").replace("%25", "%")
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_params_query_and_user() {
        let ctx = Context {
            path: "/events/42".into(),
            params: vec![("id".into(), "42".into())],
            query: vec![
                ("qty".into(), "3".into()),
                ("qty".into(), "4".into()),
                ("type".into(), "vip".into()),
            ],
            locale: "en-GB".into(),
            user: None,
            request_id: "r1".into(),
        };
        assert_eq!(ctx.param("id"), Some("42"));
        assert_eq!(ctx.param("nope"), None);
        assert_eq!(ctx.query("qty"), Some("3"));
        assert_eq!(ctx.query("type"), Some("vip"));
        assert!(ctx.user().is_none());

        let ctx = Context {
            user: Some(User {
                id: "https://idp.example/a%23b#u1#x".into(),
                roles: vec!["admin".into()],
            }),
            ..ctx
        };
        let user = ctx.user().unwrap();
        assert_eq!(user.subject(), "u1#x");
        assert_eq!(user.issuer(), "https://idp.example/a#b");
        assert!(user.has_role("admin"));
        assert!(!user.has_role("staff"));
    }
}
