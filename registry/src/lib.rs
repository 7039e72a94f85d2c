//! Oberon's component registry: immutable semver versions of each component (its
//! `.wasm`, client assets and the metadata `describe` declared), channels (`stable`,
//! and a `canary` with a share of traffic) pointing at versions, and the history of
//! every channel move, kept on the local filesystem or in S3-compatible storage.
//!
//! This crate knows nothing of wasmtime: validating a module (loading it, a test
//! render) is the deployer's job (`oberon component deploy`), before an [`Upload`]
//! is made. Here an upload is checked for what needs no runtime (names, declared
//! assets, the recorded content hash) and stored so that no reader ever sees half of
//! it. Start at [`Registry`].

#![warn(clippy::too_many_lines)]

mod channel;
mod error;
pub mod model;
mod registry;
pub mod storage;

pub use channel::UnknownChannel;
pub use error::{RegistryError, StorageError};
pub use model::{Channel, Index, Resources};
pub use registry::{
    Artifact, Registry, StoredArtifacts, Target, Upload, is_valid_component_name, parse_index,
    sha256_hex,
};
pub use semver::{Version, VersionReq};
