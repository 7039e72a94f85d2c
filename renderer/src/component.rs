//! Host-side domain types for components: what `describe` declares, what a render gets
//! and what it returns. Independent of wasmtime and of the generated bindings (which
//! convert to and from these types in [`crate::bindings`]), so the rest of the renderer
//! (bus planning, layout, caching) can be tested without compiling a component.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use oberon_registry::is_valid_component_name;

/// The versions of the `oberon:component` contract this host serves, oldest first: the
/// ones `bindings` is generated from (its `Contract` has one variant per entry, and
/// takes its version from here). A component built against another version cannot be
/// loaded, and the registry refuses to deploy it.
pub const WIT_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// The newest contract version served: the one the guest SDK is built against.
pub const WIT_LATEST: &str = WIT_VERSIONS[WIT_VERSIONS.len() - 1];

/// The longest reuse a component may declare (`metadata.reuse`, seconds): a day.
pub const MAX_REUSE_S: u32 = 86_400;

/// How cacheable a component's (or a page's) output is; ordered from most to least
/// cacheable so that "the least cacheable wins" is `max`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Cacheability {
    Public,
    Volatile,
    Personal,
}

/// A component's declaration, read once per component version from `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentMetadata {
    pub name: Arc<str>,
    pub subscribes: BTreeSet<Arc<str>>,
    pub publishes: BTreeSet<Arc<str>>,
    pub assets: Vec<String>,
    pub cacheability: Cacheability,
    /// How long a render's outcome may be reused for the same inputs (see
    /// [`crate::render_cache`]); `None` for "never", which is every component built
    /// against `oberon:component@0.1.0`.
    pub reuse: Option<Duration>,
}

/// What `describe` returned, whatever the contract version, before it is checked
/// ([`ComponentMetadata::from_described`]).
#[derive(Debug, Clone)]
pub struct Described {
    pub name: String,
    pub subscribes: Vec<String>,
    pub publishes: Vec<String>,
    pub assets: Vec<String>,
    pub cacheability: Cacheability,
    /// Seconds; `None` when not declared or not declarable (0.1.0).
    pub reuse_s: Option<u32>,
}

/// Names a topic may have: lower-case ASCII letters, digits, `-`, `_` and `.`, 1 to 64
/// characters. Strict so topic names are safe in logs, headers and the embedded state.
pub fn is_valid_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Asset paths: relative, no `..`, no backslashes, ordinary file name characters.
fn is_valid_asset(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// What is wrong with a component's declaration (its `describe`): always the
/// component's side (the upstream's), so it is refused at load and never served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("name {0:?} must be lower-case kebab case (a-z, 0-9, '-'), 1 to 64 characters")]
    Name(String),
    #[error("{kind} topic {topic:?} must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.'")]
    Topic { kind: &'static str, topic: String },
    #[error("topic {0:?} is both subscribed and published by the same component")]
    SubscribedAndPublished(Arc<str>),
    #[error("asset path {0:?} must be relative, without '..', of a-z A-Z 0-9 - _ . /")]
    Asset(String),
    #[error("reuse of {0} s is too long: declare at most {MAX_REUSE_S} s (a day)")]
    ReuseTooLong(u32),
}

impl ComponentMetadata {
    /// A guest's declaration checked: names, topics, asset paths and reuse; the error
    /// says what is wrong, for the load error.
    pub fn from_described(m: Described) -> Result<Self, MetadataError> {
        if !is_valid_component_name(&m.name) {
            return Err(MetadataError::Name(m.name));
        }
        let subscribes = topics("subscribed", m.subscribes)?;
        let publishes = topics("published", m.publishes)?;
        if let Some(t) = subscribes.intersection(&publishes).next() {
            return Err(MetadataError::SubscribedAndPublished(t.clone()));
        }
        if let Some(asset) = m.assets.iter().find(|a| !is_valid_asset(a)) {
            return Err(MetadataError::Asset(asset.clone()));
        }
        let reuse = match m.reuse_s {
            None | Some(0) => None,
            Some(s) if s > MAX_REUSE_S => return Err(MetadataError::ReuseTooLong(s)),
            Some(s) => Some(Duration::from_secs(u64::from(s))),
        };
        Ok(Self {
            name: Arc::from(m.name),
            subscribes,
            publishes,
            assets: m.assets,
            cacheability: m.cacheability,
            reuse,
        })
    }
}

/// `list` as topic names, each checked; `kind` says which list, for the error.
fn topics(kind: &'static str, list: Vec<String>) -> Result<BTreeSet<Arc<str>>, MetadataError> {
    list.into_iter()
        .map(|topic| {
            if is_valid_topic(&topic) {
                Ok(Arc::from(topic))
            } else {
                Err(MetadataError::Topic { kind, topic })
            }
        })
        .collect()
}

/// The signed-in user, when the gateway has verified one. A user is a subject *at an
/// issuer*: with several identity providers, `alice` at one is not `alice` at another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity provider that authenticated the user (the assertion's `idp`, the
    /// token's `iss`).
    pub issuer: String,
    /// The user's id at that issuer (`sub`): unique only together with `issuer`.
    pub subject: String,
    pub roles: Vec<String>,
}

impl User {
    /// The id components get (the frozen contract's `user.id`, which has room for one
    /// string): `ISSUER#SUBJECT`, with `%` and `#` of the issuer percent-encoded so the
    /// first `#` always ends it. (An OpenID issuer has no fragment, so in practice the
    /// issuer is written as it is.) Two users have the same id only if they have the
    /// same issuer and subject. The SDK's `User::subject` reads the subject back.
    pub fn id(&self) -> String {
        let issuer = self.issuer.replace('%', "%25").replace('#', "%23");
        format!("{issuer}#{}", self.subject)
    }
}

/// What a component knows of the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub path: String,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub locale: String,
    pub user: Option<User>,
    pub request_id: Arc<str>,
}

/// One element for the document head, as a component returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeadEntry {
    pub tag: String,
    pub attrs: Vec<(String, String)>,
    pub content: Option<String>,
}

/// A component's rendered output.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    pub html: String,
    pub head: Vec<HeadEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_versions_are_the_ones_the_bindings_use() {
        let bindings = include_str!("bindings.rs");
        for version in WIT_VERSIONS {
            assert!(
                bindings.contains(&format!("components/wit/v{version}\"")),
                "bindings.rs and WIT_VERSIONS disagree about {version}"
            );
        }
        assert_eq!(WIT_LATEST, "0.2.0");
    }

    fn described(reuse_s: Option<u32>) -> Described {
        Described {
            name: "x".into(),
            subscribes: vec![],
            publishes: vec![],
            assets: vec![],
            cacheability: Cacheability::Public,
            reuse_s,
        }
    }

    #[test]
    fn reuse_is_checked() {
        let reuse = |s| ComponentMetadata::from_described(described(s)).map(|m| m.reuse);
        assert_eq!(reuse(None), Ok(None));
        assert_eq!(reuse(Some(0)), Ok(None));
        assert_eq!(reuse(Some(60)), Ok(Some(Duration::from_secs(60))));
        assert_eq!(
            reuse(Some(MAX_REUSE_S)),
            Ok(Some(Duration::from_secs(86_400)))
        );
        assert_eq!(
            reuse(Some(MAX_REUSE_S + 1)).map_err(|e| e.to_string()),
            Err("reuse of 86401 s is too long: declare at most 86400 s (a day)".to_string())
        );
    }

    #[test]
    fn topic_names() {
        assert!(is_valid_topic("ticket-selection"));
        assert!(is_valid_topic("event.v2"));
        assert!(!is_valid_topic(""));
        assert!(!is_valid_topic("Ticket"));
        assert!(!is_valid_topic("a b"));
        assert!(!is_valid_topic(&"x".repeat(65)));
    }

    #[test]
    fn asset_paths() {
        assert!(is_valid_asset("picker.js"));
        assert!(is_valid_asset("css/picker.css"));
        assert!(!is_valid_asset("../secret"));
        assert!(!is_valid_asset("/etc/passwd"));
        assert!(!is_valid_asset("a//b"));
    }

    #[test]
    fn least_cacheable_wins() {
        assert_eq!(
            Cacheability::Public.max(Cacheability::Volatile),
            Cacheability::Volatile
        );
        assert_eq!(
            Cacheability::Personal.max(Cacheability::Volatile),
            Cacheability::Personal
        );
    }
}
