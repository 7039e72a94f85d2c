//! The registry's index: every component, its immutable versions, its channels and the
//! history of every channel move. One JSON document, written whole as a new generation
//! for every change (see [`crate::Registry`]), so a reader always sees one consistent
//! state.
//!
//! The index is written by this crate, never by hand, so unknown fields are refused
//! (`deny_unknown_fields`): a newer writer must bump [`INDEX_FORMAT`] rather than
//! have an older reader silently drop what it does not understand.
//!
//! Dependencies go one way: the model uses [`crate::error`] (its lookups fail with a
//! [`RegistryError`]), and both use [`crate::channel`]; the errors never use the model.

use std::collections::BTreeMap;
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

pub use crate::channel::Channel;
use crate::error::RegistryError;

/// The index format this crate reads and writes.
pub const INDEX_FORMAT: u32 = 1;

/// How cacheable a component's output is, as its `describe` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cacheability {
    Public,
    Volatile,
    Personal,
}

/// What a version's `describe` declared, read at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionMetadata {
    pub name: String,
    pub subscribes: Vec<String>,
    pub publishes: Vec<String>,
    /// Client-side files, relative to the component's asset root.
    pub assets: Vec<String>,
    pub cacheability: Cacheability,
}

/// What a version asks the renderer for beyond the site's defaults, given at deploy
/// (not by `describe`: the contract is frozen, and these are the deployer's to set).
/// Absent fields are not written, so an index that uses none reads as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Linear memory cap of one instance, in MiB (1 to 4096). The renderer holds it to
    /// its site's ceiling; a page slot's own `memory_mib` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
}

impl Resources {
    /// The range of [`Resources::memory_mib`]: a wasm32 memory's whole range.
    pub const MEMORY_MIB: std::ops::RangeInclusive<u32> = 1..=4096;

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A stored, content-addressed file: its SHA-256 (lower-case hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

/// One immutable version of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    pub wasm: BlobRef,
    /// Asset path (as declared in `metadata.assets`) to its file.
    pub assets: BTreeMap<String, BlobRef>,
    pub metadata: VersionMetadata,
    /// The `oberon:component` WIT version the module was built against.
    pub wit: String,
    #[serde(default, skip_serializing_if = "Resources::is_default")]
    pub resources: Resources,
    pub deployed_at_ms: u64,
    pub deployed_by: String,
}

/// The canary pointer and its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryPointer {
    pub version: Version,
    /// Share of requests, 0 to 100, that get the canary instead of stable.
    pub percent: u8,
}

/// Where a component's channels point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub stable: Option<Version>,
    pub canary: Option<CanaryPointer>,
}

/// What moved a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deploy,
    Promote,
    Rollback,
    /// The canary's share of traffic changed; its version did not.
    Share,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Deploy => "deploy",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Share => "share",
        })
    }
}

/// One move of one channel pointer: who, when, from where to where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub at_ms: u64,
    pub by: String,
    pub action: Action,
    pub channel: Channel,
    pub from: Option<Version>,
    /// `None` when the channel was cleared (a promoted or rolled-back canary).
    pub to: Option<Version>,
    /// The canary's share after the move, for canary moves that set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

/// Everything the registry knows about one component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    pub versions: BTreeMap<Version, VersionEntry>,
    pub channels: Channels,
    /// Every channel move, oldest first.
    pub history: Vec<Move>,
}

impl ComponentEntry {
    /// The versions stable has held, as deploys and promotions pushed them and
    /// rollbacks popped them: the last is the current stable, the one before it is
    /// where a rollback goes.
    pub fn stable_lineage(&self) -> Vec<Version> {
        let mut lineage: Vec<Version> = Vec::new();
        for m in self.history.iter().filter(|m| m.channel == Channel::Stable) {
            match (m.action, &m.to) {
                (Action::Rollback, Some(to)) => {
                    lineage.pop();
                    // A rollback to an explicit version that is not the one below.
                    if lineage.last() != Some(to) {
                        lineage.push(to.clone());
                    }
                }
                (_, Some(to)) => lineage.push(to.clone()),
                (_, None) => lineage.clear(),
            }
        }
        lineage
    }
}

/// The whole registry at one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    /// Incremented by one by every change; the index of generation `n` is stored
    /// under `index/<n>.json` and never rewritten.
    pub generation: u64,
    pub components: BTreeMap<String, ComponentEntry>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            format: INDEX_FORMAT,
            generation: 0,
            components: BTreeMap::new(),
        }
    }
}

/// A channel resolved to a version (see [`Index::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub component: &'a str,
    pub channel: Channel,
    pub version: &'a Version,
    pub entry: &'a VersionEntry,
    /// The canary's share, when `channel` is the canary.
    pub percent: Option<u8>,
}

impl Index {
    pub fn component(&self, name: &str) -> Result<&ComponentEntry, RegistryError> {
        self.components
            .get(name)
            .ok_or_else(|| RegistryError::UnknownComponent {
                component: name.to_string(),
            })
    }

    /// The version `channel` of `component` points at, checked against a page's
    /// version requirement when it has one.
    pub fn resolve<'a>(
        &'a self,
        component: &'a str,
        channel: Channel,
        requirement: Option<&VersionReq>,
    ) -> Result<Resolved<'a>, RegistryError> {
        let entry = self.component(component)?;
        let (version, percent) = match channel {
            Channel::Stable => (entry.channels.stable.as_ref(), None),
            Channel::Canary => match &entry.channels.canary {
                Some(c) => (Some(&c.version), Some(c.percent)),
                None => (None, None),
            },
        };
        let version = version.ok_or_else(|| RegistryError::EmptyChannel {
            component: component.to_string(),
            channel,
        })?;
        if let Some(req) = requirement
            && !req.matches(version)
        {
            return Err(RegistryError::RequirementNotMet {
                component: component.to_string(),
                channel,
                version: version.clone(),
                requirement: req.clone(),
            });
        }
        let version_entry =
            entry
                .versions
                .get(version)
                .ok_or_else(|| RegistryError::CorruptIndex {
                    key: format!("generation {}", self.generation),
                    reason: format!(
                        "channel {channel} of {component} points at {version}, which has no entry"
                    ),
                })?;
        Ok(Resolved {
            component,
            channel,
            version,
            entry: version_entry,
            percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(action: Action, to: &str) -> Move {
        Move {
            at_ms: 0,
            by: "t".into(),
            action,
            channel: Channel::Stable,
            from: None,
            to: Some(Version::parse(to).unwrap()),
            percent: None,
        }
    }

    #[test]
    fn lineage_pushes_on_deploy_and_pops_on_rollback() {
        let mut entry = ComponentEntry {
            history: vec![
                mv(Action::Deploy, "1.0.0"),
                mv(Action::Deploy, "1.1.0"),
                mv(Action::Promote, "1.2.0"),
                mv(Action::Rollback, "1.1.0"),
            ],
            ..ComponentEntry::default()
        };
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(entry.stable_lineage(), vec![v("1.0.0"), v("1.1.0")]);
        entry.history.push(mv(Action::Rollback, "1.0.0"));
        assert_eq!(entry.stable_lineage(), vec![v("1.0.0")]);
    }

    #[test]
    fn unknown_fields_and_channels_are_refused() {
        let err = serde_json::from_str::<Index>(
            r#"{"format":1,"generation":0,"components":{},"extra":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        assert!(
            "beta"
                .parse::<Channel>()
                .unwrap_err()
                .to_string()
                .contains("stable")
        );
    }
}
