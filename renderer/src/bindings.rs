//! Host bindings for the component contract. This is the only place that names the WIT
//! packages; everything else uses the domain types in [`crate::component`] and
//! [`Contract`].
//!
//! The host serves every published version of `oberon:component` side by side: one
//! `bindgen!` per version, each in its own module, all linked into the same `Linker`
//! (their interfaces have different versioned names, so they never clash). A
//! component is bound to the version whose `types` interface it imports.

use crate::component::{
    Cacheability, Described, Fragment, HeadEntry, RequestContext, WIT_VERSIONS,
};

/// `oberon:component@0.1.0`, frozen.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../components/wit/v0.1.0",
        world: "component",
        exports: { default: async },
    });
}

/// `oberon:component@0.2.0`: `metadata.reuse`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../components/wit/v0.2.0",
        world: "component",
        exports: { default: async },
    });
}

/// The package every contract version belongs to.
pub const PACKAGE: &str = "oberon:component";

/// A contract version this host serves; the variants in the order of
/// [`WIT_VERSIONS`], whose entry each one's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    /// Every version served, oldest first: one per entry of [`WIT_VERSIONS`].
    pub const ALL: [Contract; WIT_VERSIONS.len()] = [Contract::V0_1, Contract::V0_2];

    /// The package version, e.g. `0.2.0`.
    pub const fn version(self) -> &'static str {
        WIT_VERSIONS[self as usize]
    }

    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.version() == version)
    }

    /// The contract version a component imports, from its import names
    /// (`oberon:component/types@0.2.0`): every component imports `types`, which its
    /// exports use. `None` when it imports no `oberon:component` interface.
    pub fn of_imports<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Contract>, ContractError> {
        let mut found: Option<Contract> = None;
        for name in names {
            let Some((_, version)) = name
                .strip_prefix(PACKAGE)
                .and_then(|r| r.strip_prefix('/'))
                .and_then(|r| r.split_once('@'))
            else {
                continue;
            };
            let contract = Contract::from_version(version)
                .ok_or_else(|| ContractError::NotServed(version.to_string()))?;
            match found {
                Some(other) if other != contract => {
                    return Err(ContractError::Mixed(other.version(), contract.version()));
                }
                _ => found = Some(contract),
            }
        }
        Ok(found)
    }
}

/// Why a component's contract version cannot be served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("built against oberon:component@{0}, a version this host does not serve (it serves {served})", served = WIT_VERSIONS.join(", "))]
    NotServed(String),
    #[error("imports both oberon:component@{0} and oberon:component@{1}")]
    Mixed(&'static str, &'static str),
}

// --- conversions between each version's generated types and the domain types ---------
// Every version's `context` and `fragment` are the same records; `metadata` grows.

macro_rules! common_conversions {
    ($v:ident) => {
        impl From<$v::oberon::component::types::Cacheability> for Cacheability {
            fn from(c: $v::oberon::component::types::Cacheability) -> Self {
                use $v::oberon::component::types::Cacheability as W;
                match c {
                    W::Public => Cacheability::Public,
                    W::Volatile => Cacheability::Volatile,
                    W::Personal => Cacheability::Personal,
                }
            }
        }

        impl From<$v::oberon::component::types::Fragment> for Fragment {
            fn from(f: $v::oberon::component::types::Fragment) -> Self {
                Fragment {
                    html: f.html,
                    head: f
                        .head
                        .into_iter()
                        .map(|h| HeadEntry {
                            tag: h.tag,
                            attrs: h.attrs,
                            content: h.content,
                        })
                        .collect(),
                }
            }
        }

        impl From<&RequestContext> for $v::oberon::component::types::Context {
            fn from(ctx: &RequestContext) -> Self {
                use $v::oberon::component::types as wit;
                wit::Context {
                    path: ctx.path.clone(),
                    params: ctx.params.clone(),
                    query: ctx.query.clone(),
                    locale: ctx.locale.clone(),
                    user: ctx.user.as_ref().map(|u| wit::User {
                        id: u.id(),
                        roles: u.roles.clone(),
                    }),
                    request_id: ctx.request_id.to_string(),
                }
            }
        }
    };
}

common_conversions!(v0_1);
common_conversions!(v0_2);

impl From<v0_1::oberon::component::types::Metadata> for Described {
    fn from(m: v0_1::oberon::component::types::Metadata) -> Self {
        Described {
            name: m.name,
            subscribes: m.subscribes,
            publishes: m.publishes,
            assets: m.assets,
            cacheability: m.cacheability.into(),
            // 0.1.0 has no way to declare it: never reused.
            reuse_s: None,
        }
    }
}

impl From<v0_2::oberon::component::types::Metadata> for Described {
    fn from(m: v0_2::oberon::component::types::Metadata) -> Self {
        Described {
            name: m.name,
            subscribes: m.subscribes,
            publishes: m.publishes,
            assets: m.assets,
            cacheability: m.cacheability.into(),
            reuse_s: m.reuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::component::User;

    #[test]
    fn contract_of_imports() {
        assert_eq!(
            Contract::of_imports(["oberon:component/types@0.1.0", "oberon:component/bus@0.1.0"]),
            Ok(Some(Contract::V0_1))
        );
        assert_eq!(
            Contract::of_imports(["wasi:io/streams@0.2.0", "oberon:component/types@0.2.0"]),
            Ok(Some(Contract::V0_2))
        );
        assert_eq!(Contract::of_imports(["wasi:cli/env@0.2.0"]), Ok(None));
        assert_eq!(
            Contract::of_imports(["oberon:component/types@0.3.0-next"]),
            Err(ContractError::NotServed("0.3.0-next".to_string()))
        );
        assert_eq!(
            Contract::of_imports(["oberon:component/types@0.1.0", "oberon:component/log@0.2.0"]),
            Err(ContractError::Mixed("0.1.0", "0.2.0"))
        );
    }

    #[test]
    fn a_user_is_a_subject_at_an_issuer() {
        let user = |issuer: &str, subject: &str| User {
            issuer: issuer.into(),
            subject: subject.into(),
            roles: Vec::new(),
        };
        let context = |u: User| RequestContext {
            path: "/".into(),
            params: Vec::new(),
            query: Vec::new(),
            locale: "en".into(),
            user: Some(u),
            request_id: Arc::from("r"),
        };
        // What a component sees, through the current contract's bindings.
        let id = |u: User| {
            v0_2::oberon::component::types::Context::from(&context(u))
                .user
                .map(|u| u.id)
        };
        assert_eq!(
            id(user("https://a.example", "alice")).as_deref(),
            Some("https://a.example#alice")
        );
        assert_ne!(
            id(user("https://a.example", "alice")),
            id(user("https://b.example", "alice"))
        );
        // No issuer and subject can pass for another pair.
        assert_ne!(id(user("a#b", "c")), id(user("a", "b#c")));
        assert_eq!(user("a#b%", "c").id(), "a%23b%25#c");
    }

    #[test]
    fn every_version_is_bound_from_its_own_folder() {
        let source = include_str!("bindings.rs");
        for contract in Contract::ALL {
            assert!(
                source.contains(&format!("components/wit/v{}\"", contract.version())),
                "no bindgen! for {}",
                contract.version()
            );
        }
    }
}
