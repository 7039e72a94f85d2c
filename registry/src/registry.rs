//! [`Registry`]: deploy, promote, rollback and read, over any [`Storage`].
//!
//! Layout in storage:
//! - `blobs/sha256/<hex>`: every `.wasm` and asset, content-addressed, written once.
//! - `index/<generation>.json`: the whole [`Index`] at that generation, written once.
//! - `index/HEAD`: a hint, the last generation a writer published. Readers start there
//!   and step forward while `index/<n+1>.json` exists, so a stale hint costs a read,
//!   never a wrong answer.
//!
//! A change reads generation `n`, applies itself to a copy and creates generation
//! `n+1`; if another writer created it first, the change is re-applied to the new state
//! (where it may now be refused, e.g. as a duplicate version). Artifacts are written and
//! verified before the generation that references them, so a deploy that dies halfway
//! leaves the index as it was (and, at worst, an unreferenced blob).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use semver::Version;
use sha2::{Digest, Sha256};

use crate::error::RegistryError;
use crate::model::{
    Action, BlobRef, CanaryPointer, Channel, ComponentEntry, INDEX_FORMAT, Index, Move, Resources,
    VersionEntry, VersionMetadata,
};
use crate::storage::{Created, Storage};

/// How many times a change is re-applied after losing the race for a generation.
const MAX_ATTEMPTS: u32 = 100;

/// A new version to deploy, its metadata already read from `describe` and validated.
#[derive(Debug, Clone)]
pub struct Upload {
    pub component: String,
    pub version: Version,
    pub wasm: Bytes,
    /// The SHA-256 the builder recorded for the `.wasm`; a different upload is corrupt.
    pub expected_wasm_sha256: Option<String>,
    /// Files by asset path; every asset `metadata` declares must be here.
    pub assets: BTreeMap<String, Bytes>,
    pub metadata: VersionMetadata,
    /// The `oberon:component` WIT version the module imports.
    pub wit: String,
    /// What it asks the renderer for beyond the site's defaults.
    pub resources: Resources,
}

/// Where a deploy points the new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stable,
    /// The canary, with its share of traffic in percent (0 to 100).
    Canary {
        percent: u8,
    },
}

/// The artifacts of an upload, stored and verified, not yet in the index.
#[derive(Debug, Clone)]
pub struct StoredArtifacts {
    wasm: BlobRef,
    assets: BTreeMap<String, BlobRef>,
}

/// A version's files, read back from storage and checked against their hashes.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub entry: VersionEntry,
    pub wasm: Bytes,
    pub assets: BTreeMap<String, Bytes>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn blob_key(sha256: &str) -> String {
    format!("blobs/sha256/{sha256}")
}

fn index_key(generation: u64) -> String {
    format!("index/{generation:020}.json")
}

const HEAD_KEY: &str = "index/HEAD";

impl Registry {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The registry at a `--registry` location (see [`crate::storage::open`]).
    pub fn open(location: &str) -> Result<Self, RegistryError> {
        Ok(Self::new(crate::storage::open(location)?))
    }

    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// The latest index (an empty one for a new registry).
    pub async fn index(&self) -> Result<Index, RegistryError> {
        let mut generation = match self.storage.get(HEAD_KEY).await? {
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| RegistryError::CorruptIndex {
                    key: HEAD_KEY.into(),
                    reason: "not a generation number".into(),
                })?,
            None => 0,
        };
        let mut current = if generation == 0 {
            None
        } else {
            Some(
                self.storage
                    .get(&index_key(generation))
                    .await?
                    .ok_or_else(|| RegistryError::MissingArtifact {
                        key: index_key(generation),
                    })?,
            )
        };
        while let Some(next) = self.storage.get(&index_key(generation + 1)).await? {
            generation += 1;
            current = Some(next);
        }
        match current {
            None => Ok(Index::default()),
            Some(bytes) => parse_index(&index_key(generation), generation, &bytes),
        }
    }

    /// The latest index if it is newer than `generation`, else `None`. Costs one
    /// read when nothing changed (of generation + 1, which exists only once a writer
    /// published it), so a renderer can poll it often.
    pub async fn index_if_newer(&self, generation: u64) -> Result<Option<Index>, RegistryError> {
        if generation > 0
            && self
                .storage
                .get(&index_key(generation + 1))
                .await?
                .is_none()
        {
            return Ok(None);
        }
        let index = self.index().await?;
        Ok((index.generation > generation).then_some(index))
    }

    /// Apply `change` to the latest index and publish the result as the next
    /// generation, retrying on a lost race. Returns what `change` returned.
    async fn update<T>(
        &self,
        mut change: impl FnMut(&mut Index) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        for attempt in 0..MAX_ATTEMPTS {
            let mut index = self.index().await?;
            let out = change(&mut index)?;
            index.generation += 1;
            let bytes =
                serde_json::to_vec_pretty(&index).map_err(|e| RegistryError::CorruptIndex {
                    key: index_key(index.generation),
                    reason: format!("cannot serialise: {e}"),
                })?;
            match self
                .storage
                .create(&index_key(index.generation), bytes.into())
                .await?
            {
                Created::New => {
                    // Only a hint; readers step past a stale one, so a failure here
                    // does not undo the change that was just published.
                    let _ = self
                        .storage
                        .overwrite(HEAD_KEY, index.generation.to_string().into())
                        .await;
                    return Ok(out);
                }
                Created::Existed | Created::Conflict => {
                    // Lost the race; back off a little, more after repeated losses.
                    let jitter = u64::from(now_ms().wrapping_mul(7919) as u16 % 8);
                    let wait = (u64::from(attempt.min(10)) * 3 + jitter).max(1);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
        Err(RegistryError::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Check an upload and write its files, verifying each by reading it back. Nothing
    /// references them until [`Registry::commit_deploy`]; [`Registry::deploy`] does both.
    pub async fn store_artifacts(&self, upload: &Upload) -> Result<StoredArtifacts, RegistryError> {
        check_upload(upload)?;
        let wasm = self
            .put_blob(
                &format!("{} {}: .wasm", upload.component, upload.version),
                &upload.wasm,
            )
            .await?;
        let mut assets = BTreeMap::new();
        for (path, bytes) in &upload.assets {
            let what = format!("{} {}: asset {path}", upload.component, upload.version);
            assets.insert(path.clone(), self.put_blob(&what, bytes).await?);
        }
        Ok(StoredArtifacts { wasm, assets })
    }

    async fn put_blob(&self, what: &str, bytes: &Bytes) -> Result<BlobRef, RegistryError> {
        let sha256 = sha256_hex(bytes);
        let key = blob_key(&sha256);
        // Existed: the same content is there already (the key is its hash); the read
        // below checks that too, so a damaged earlier copy is reported, not trusted.
        let mut attempts = 0;
        while self.storage.create(&key, bytes.clone()).await? == Created::Conflict {
            attempts += 1;
            if attempts == MAX_ATTEMPTS {
                return Err(RegistryError::Contended { attempts });
            }
            tokio::time::sleep(Duration::from_millis(u64::from(attempts.min(20)))).await;
        }
        self.read_blob(what, &key, &sha256).await?;
        Ok(BlobRef {
            sha256,
            size: bytes.len() as u64,
        })
    }

    async fn read_blob(&self, what: &str, key: &str, sha256: &str) -> Result<Bytes, RegistryError> {
        let bytes = self
            .storage
            .get(key)
            .await?
            .ok_or_else(|| RegistryError::MissingArtifact { key: key.into() })?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(RegistryError::HashMismatch {
                what: format!("{what} ({key})"),
                expected: sha256.into(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Record a stored upload as a new version and point `target` at it, in one
    /// index generation.
    pub async fn commit_deploy(
        &self,
        upload: &Upload,
        stored: &StoredArtifacts,
        target: Target,
        actor: &str,
    ) -> Result<Move, RegistryError> {
        if let Target::Canary { percent } = target {
            check_percent(&upload.component, percent)?;
        }
        let at_ms = now_ms();
        self.update(|index| {
            let entry = index
                .components
                .entry(upload.component.clone())
                .or_default();
            if entry.versions.contains_key(&upload.version) {
                return Err(RegistryError::DuplicateVersion {
                    component: upload.component.clone(),
                    version: upload.version.clone(),
                });
            }
            entry.versions.insert(
                upload.version.clone(),
                VersionEntry {
                    wasm: stored.wasm.clone(),
                    assets: stored.assets.clone(),
                    metadata: upload.metadata.clone(),
                    wit: upload.wit.clone(),
                    resources: upload.resources.clone(),
                    deployed_at_ms: at_ms,
                    deployed_by: actor.to_string(),
                },
            );
            let to = Some(upload.version.clone());
            let m = match target {
                Target::Stable => Move {
                    at_ms,
                    by: actor.into(),
                    action: Action::Deploy,
                    channel: Channel::Stable,
                    from: entry.channels.stable.replace(upload.version.clone()),
                    to,
                    percent: None,
                },
                Target::Canary { percent } => Move {
                    at_ms,
                    by: actor.into(),
                    action: Action::Deploy,
                    channel: Channel::Canary,
                    from: entry
                        .channels
                        .canary
                        .replace(CanaryPointer {
                            version: upload.version.clone(),
                            percent,
                        })
                        .map(|c| c.version),
                    to,
                    percent: Some(percent),
                },
            };
            entry.history.push(m.clone());
            Ok(m)
        })
        .await
    }

    /// Store an upload's files, then record the version and move `target` to it.
    pub async fn deploy(
        &self,
        upload: &Upload,
        target: Target,
        actor: &str,
    ) -> Result<Move, RegistryError> {
        // Refuse a duplicate before uploading anything (the commit checks again, under
        // the compare-and-swap, for a concurrent deploy of the same version).
        if let Some(entry) = self.index().await?.components.get(&upload.component)
            && entry.versions.contains_key(&upload.version)
        {
            return Err(RegistryError::DuplicateVersion {
                component: upload.component.clone(),
                version: upload.version.clone(),
            });
        }
        let stored = self.store_artifacts(upload).await?;
        self.commit_deploy(upload, &stored, target, actor).await
    }

    /// Canary becomes stable; the canary channel is cleared. Returns the moves.
    pub async fn promote(&self, component: &str, actor: &str) -> Result<Vec<Move>, RegistryError> {
        let at_ms = now_ms();
        self.update(|index| {
            let entry = entry_mut(index, component)?;
            let canary = entry
                .channels
                .canary
                .take()
                .ok_or_else(|| RegistryError::NoCanary {
                    component: component.into(),
                })?;
            let moves = vec![
                Move {
                    at_ms,
                    by: actor.into(),
                    action: Action::Promote,
                    channel: Channel::Stable,
                    from: entry.channels.stable.replace(canary.version.clone()),
                    to: Some(canary.version.clone()),
                    percent: None,
                },
                Move {
                    at_ms,
                    by: actor.into(),
                    action: Action::Promote,
                    channel: Channel::Canary,
                    from: Some(canary.version),
                    to: None,
                    percent: None,
                },
            ];
            entry.history.extend(moves.iter().cloned());
            Ok(moves)
        })
        .await
    }

    /// Give the canary another share of traffic (0 to 100 percent).
    pub async fn set_canary_share(
        &self,
        component: &str,
        percent: u8,
        actor: &str,
    ) -> Result<Move, RegistryError> {
        check_percent(component, percent)?;
        let at_ms = now_ms();
        self.update(|index| {
            let entry = entry_mut(index, component)?;
            let canary =
                entry
                    .channels
                    .canary
                    .as_mut()
                    .ok_or_else(|| RegistryError::EmptyChannel {
                        component: component.into(),
                        channel: Channel::Canary,
                    })?;
            canary.percent = percent;
            let m = Move {
                at_ms,
                by: actor.into(),
                action: Action::Share,
                channel: Channel::Canary,
                from: Some(canary.version.clone()),
                to: Some(canary.version.clone()),
                percent: Some(percent),
            };
            entry.history.push(m.clone());
            Ok(m)
        })
        .await
    }

    /// Stable goes back to the version it held before (or to `to`); the canary
    /// channel, when rolled back, is cleared.
    pub async fn rollback(
        &self,
        component: &str,
        channel: Channel,
        to: Option<&Version>,
        actor: &str,
    ) -> Result<Move, RegistryError> {
        let at_ms = now_ms();
        self.update(|index| {
            let entry = entry_mut(index, component)?;
            let m = match channel {
                Channel::Stable => {
                    let target = match to {
                        Some(v) => {
                            if !entry.versions.contains_key(v) {
                                return Err(RegistryError::UnknownVersion {
                                    component: component.into(),
                                    version: v.clone(),
                                });
                            }
                            v.clone()
                        }
                        None => {
                            let lineage = entry.stable_lineage();
                            lineage
                                .len()
                                .checked_sub(2)
                                .and_then(|i| lineage.get(i))
                                .cloned()
                                .ok_or_else(|| RegistryError::NoPreviousStable {
                                    component: component.into(),
                                })?
                        }
                    };
                    Move {
                        at_ms,
                        by: actor.into(),
                        action: Action::Rollback,
                        channel,
                        from: entry.channels.stable.replace(target.clone()),
                        to: Some(target),
                        percent: None,
                    }
                }
                Channel::Canary => {
                    let canary = entry.channels.canary.take().ok_or_else(|| {
                        RegistryError::EmptyChannel {
                            component: component.into(),
                            channel,
                        }
                    })?;
                    Move {
                        at_ms,
                        by: actor.into(),
                        action: Action::Rollback,
                        channel,
                        from: Some(canary.version),
                        to: None,
                        percent: None,
                    }
                }
            };
            entry.history.push(m.clone());
            Ok(m)
        })
        .await
    }

    /// A version's files, each checked against the hash the index recorded.
    pub async fn fetch(
        &self,
        component: &str,
        version: &Version,
    ) -> Result<Artifact, RegistryError> {
        let index = self.index().await?;
        let entry = index
            .component(component)?
            .versions
            .get(version)
            .ok_or_else(|| RegistryError::UnknownVersion {
                component: component.into(),
                version: version.clone(),
            })?
            .clone();
        let wasm = self
            .read_blob(
                &format!("{component} {version}: .wasm"),
                &blob_key(&entry.wasm.sha256),
                &entry.wasm.sha256,
            )
            .await?;
        let mut assets = BTreeMap::new();
        for (path, blob) in &entry.assets {
            let what = format!("{component} {version}: asset {path}");
            let bytes = self
                .read_blob(&what, &blob_key(&blob.sha256), &blob.sha256)
                .await?;
            assets.insert(path.clone(), bytes);
        }
        Ok(Artifact {
            entry,
            wasm,
            assets,
        })
    }
}

fn entry_mut<'a>(
    index: &'a mut Index,
    component: &str,
) -> Result<&'a mut ComponentEntry, RegistryError> {
    index
        .components
        .get_mut(component)
        .ok_or_else(|| RegistryError::UnknownComponent {
            component: component.into(),
        })
}

/// The index of `generation` from the bytes stored under `key`, as every reader
/// parses it: the format first, then the whole document, which must say the generation
/// it is stored as.
pub fn parse_index(key: &str, generation: u64, bytes: &[u8]) -> Result<Index, RegistryError> {
    // The format first, so a newer writer's index says "upgrade", not "unknown field".
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let corrupt = |e: serde_json::Error| RegistryError::CorruptIndex {
        key: key.into(),
        reason: e.to_string(),
    };
    let format: Format = serde_json::from_slice(bytes).map_err(corrupt)?;
    if format.format != INDEX_FORMAT {
        return Err(RegistryError::UnsupportedFormat {
            found: format.format,
            supported: INDEX_FORMAT,
        });
    }
    let index: Index = serde_json::from_slice(bytes).map_err(corrupt)?;
    if index.generation != generation {
        return Err(RegistryError::CorruptIndex {
            key: key.into(),
            reason: format!("it says generation {}", index.generation),
        });
    }
    Ok(index)
}

fn check_percent(component: &str, percent: u8) -> Result<(), RegistryError> {
    if percent > 100 {
        return Err(RegistryError::InvalidUpload {
            component: component.into(),
            reason: format!("canary share {percent}% is over 100%"),
        });
    }
    Ok(())
}

/// Component names: lower-case kebab case, 1 to 64 characters (as the renderer wants).
pub fn is_valid_component_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_upload(upload: &Upload) -> Result<(), RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidUpload {
        component: upload.component.clone(),
        reason,
    };
    if !is_valid_component_name(&upload.component) {
        return Err(invalid(
            "the name must be lower-case kebab case (a-z, 0-9, '-'), 1 to 64 characters".into(),
        ));
    }
    if upload.metadata.name != upload.component {
        return Err(invalid(format!(
            "the module describes itself as {:?}; deploy it under that name",
            upload.metadata.name
        )));
    }
    if let Some(expected) = &upload.expected_wasm_sha256 {
        let actual = sha256_hex(&upload.wasm);
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(RegistryError::HashMismatch {
                what: format!("upload of {} {}", upload.component, upload.version),
                expected: expected.trim().to_ascii_lowercase(),
                actual,
            });
        }
    }
    if let Some(mib) = upload
        .resources
        .memory_mib
        .filter(|m| !Resources::MEMORY_MIB.contains(m))
    {
        return Err(invalid(format!(
            "it asks for {mib} MiB of memory per instance; give 1 to 4096 MiB"
        )));
    }
    for declared in &upload.metadata.assets {
        if !upload.assets.contains_key(declared) {
            return Err(invalid(format!(
                "describe() declares asset {declared:?}, which is not in the upload; ship it in the component's assets/ directory"
            )));
        }
    }
    if let Some(extra) = upload
        .assets
        .keys()
        .find(|k| !upload.metadata.assets.contains(k))
    {
        return Err(invalid(format!(
            "asset {extra:?} is not declared by describe(); declare it or leave it out"
        )));
    }
    Ok(())
}
