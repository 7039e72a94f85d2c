//! The registry's errors: each names the component, version or stored key concerned
//! and, where there is one, what to do about it.
//!
//! A leaf of this crate but for [`crate::channel`]: the model's lookups return these
//! errors, so this module never uses [`crate::model`].

use semver::{Version, VersionReq};

use crate::channel::Channel;

/// A storage backend failed (I/O, network, permissions).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location}: {key}: {source}")]
    Io {
        location: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {key}: {message}")]
    ObjectStore {
        location: String,
        key: String,
        message: String,
    },
    #[error("invalid registry location {location:?}: {reason}")]
    Location { location: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("corrupt registry index ({key}): {reason}")]
    CorruptIndex { key: String, reason: String },
    #[error(
        "registry index format {found} is not supported (this build reads format {supported}): upgrade oberon"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("{key} is referenced by the index but missing from the registry's storage")]
    MissingArtifact { key: String },
    #[error(
        "{what}: content hash mismatch: expected sha256 {expected}, found {actual}; the file is corrupt, upload it again"
    )]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("no component {component:?} in the registry: deploy it first")]
    UnknownComponent { component: String },
    #[error("component {component} has no version {version}")]
    UnknownVersion { component: String, version: Version },
    #[error(
        "component {component} version {version} already exists: versions are immutable, deploy a new version"
    )]
    DuplicateVersion { component: String, version: Version },
    #[error("component {component}: channel {channel} points at no version")]
    EmptyChannel { component: String, channel: Channel },
    #[error(
        "component {component}: channel {channel} is at {version}, which does not satisfy the requirement {requirement}; deploy a matching version to {channel} or change the requirement"
    )]
    RequirementNotMet {
        component: String,
        channel: Channel,
        version: Version,
        requirement: VersionReq,
    },
    #[error(
        "component {component}: no canary to promote; deploy one with `--channel canary` first"
    )]
    NoCanary { component: String },
    #[error(
        "component {component}: stable has no previous version to roll back to; name one with `--to VERSION`"
    )]
    NoPreviousStable { component: String },
    #[error("invalid upload of {component}: {reason}")]
    InvalidUpload { component: String, reason: String },
    #[error(
        "other writers won {attempts} attempts in a row to write the registry (too many concurrent deploys); try again"
    )]
    Contended { attempts: u32 },
}
