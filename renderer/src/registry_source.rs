//! Components from a registry (`--registry PATH|s3://bucket/prefix`): the stable
//! version of every component and the canary of those that have one, fetched
//! (every file checked against its hash), compiled through the engine (and its code
//! cache) and held as a [`ComponentSet`] the site is built from.
//!
//! Watching is a poll of the index's generation: one read when nothing changed. A
//! registry that cannot be reached changes nothing served; it only shows in
//! [`RegistryStatus`] until it answers again.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oberon_registry::{Channel, Index, Registry, RegistryError, Version};

use crate::component_set::{self, Canary, ComponentSet, ComponentVersion};
use crate::config::ConfigError;
use crate::engine::ComponentEngine;
use crate::error::Side;

/// How long a look at the index may take before the registry counts as unreachable.
pub const INDEX_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// A registry and what the renderer last learnt from it.
pub struct RegistrySource {
    registry: Registry,
    status: Mutex<RegistryStatus>,
    /// The versions loaded last, newest last, at most [`KEEP_LOADED`]: a rollback (or a
    /// canary promoted back and forth) swaps in a version without fetching or
    /// compiling it again.
    recent: Mutex<Vec<Arc<ComponentVersion>>>,
}

/// How many loaded versions [`RegistrySource`] keeps for a quick return.
const KEEP_LOADED: usize = 16;

/// The registry as the renderer sees it, for `/_oberon/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryStatus {
    pub location: String,
    /// Whether the last look at the registry got an answer.
    pub reachable: bool,
    /// The index generation of the site served now.
    pub generation: u64,
    /// Unix milliseconds of the last look that got an answer.
    pub last_contact_ms: Option<u64>,
    /// Why the last look or the last swap failed, if it did.
    pub last_error: Option<String>,
    /// Whether `last_error` says the registry could not be read (cleared by the next
    /// look that gets an answer) rather than that a generation was refused (kept until
    /// a swap succeeds).
    #[serde(skip)]
    last_error_unreachable: bool,
}

/// Why the registry's index could not be read: the store's side (upstream), never a
/// bad version. Nothing served changes; the next look tries again.
#[derive(Debug, thiserror::Error)]
pub enum IndexReadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no answer from {location} within {after:?}")]
    Timeout { location: String, after: Duration },
}

impl IndexReadError {
    pub fn side(&self) -> Side {
        Side::Upstream
    }
}

/// What a look at the registry found.
pub enum Look {
    Unchanged,
    /// A newer index, and the component set it resolves to (or why it cannot be used).
    Changed {
        generation: u64,
        loaded: Result<ComponentSet, Vec<ConfigError>>,
        /// A file could not be read (not a bad version): look at this generation again.
        transient: bool,
    },
}

impl RegistrySource {
    pub fn new(registry: Registry) -> Self {
        let location = registry.location();
        Self {
            registry,
            status: Mutex::new(RegistryStatus {
                location,
                reachable: false,
                generation: 0,
                last_contact_ms: None,
                last_error: None,
                last_error_unreachable: false,
            }),
            recent: Mutex::new(Vec::new()),
        }
    }

    pub fn status(&self) -> RegistryStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut RegistryStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The first load, at start: the registry must answer and every channel load.
    pub async fn load_initial(
        &self,
        engine: &ComponentEngine,
    ) -> Result<(u64, ComponentSet), Vec<ConfigError>> {
        let index = self.read_index(0).await.map(Option::unwrap_or_default);
        let index = index.map_err(|e| {
            vec![
                self.error(format!("cannot read the registry: {e}")).help(
                    "nothing is cached to serve from; check the location, the network and the AWS_* variables, or start from a directory with --components",
                ),
            ]
        })?;
        self.contact();
        let (set, _) = self.load(engine, &index, &ComponentSet::default()).await;
        let set = set?;
        self.update(|s| s.generation = index.generation);
        Ok((index.generation, set))
    }

    /// Look for an index newer than `generation`; load what it points at if there is.
    /// An unreachable registry is `Err` (and recorded); nothing else is.
    pub async fn look(
        &self,
        engine: &ComponentEngine,
        generation: u64,
        current: &ComponentSet,
    ) -> Result<Look, IndexReadError> {
        let index = match self.read_index(generation).await {
            Ok(None) => {
                self.contact();
                return Ok(Look::Unchanged);
            }
            Ok(Some(index)) => index,
            Err(e) => {
                self.update(|s| {
                    s.reachable = false;
                    s.last_error = Some(format!("cannot read the registry: {e}"));
                    s.last_error_unreachable = true;
                });
                return Err(e);
            }
        };
        self.contact();
        let (loaded, transient) = self.load(engine, &index, current).await;
        Ok(Look::Changed {
            generation: index.generation,
            loaded,
            transient,
        })
    }

    /// Record the outcome of a swap to `generation`.
    pub fn swapped(&self, generation: u64, error: Option<String>) {
        self.update(|s| {
            if error.is_none() {
                s.generation = generation;
            }
            s.last_error = error;
            s.last_error_unreachable = false;
        });
    }

    /// The index if newer than `generation` (0: whatever it is), within
    /// [`INDEX_READ_TIMEOUT`]: a store that does not answer is unreachable now, not
    /// after the object store client's minutes of retries.
    async fn read_index(&self, generation: u64) -> Result<Option<Index>, IndexReadError> {
        let read = async {
            if generation == 0 {
                self.registry.index().await.map(Some)
            } else {
                self.registry.index_if_newer(generation).await
            }
        };
        match tokio::time::timeout(INDEX_READ_TIMEOUT, read).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(IndexReadError::Timeout {
                location: self.registry.location(),
                after: INDEX_READ_TIMEOUT,
            }),
        }
    }

    fn contact(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.update(|s| {
            s.reachable = true;
            s.last_contact_ms = Some(now);
            if s.last_error_unreachable {
                s.last_error = None;
                s.last_error_unreachable = false;
            }
        });
    }

    fn error(&self, message: String) -> ConfigError {
        ConfigError::new(Path::new(&self.registry.location()), message)
    }

    /// Every component's stable version, and its canary when it has a share, reusing
    /// the versions `current` already holds.
    async fn load(
        &self,
        engine: &ComponentEngine,
        index: &Index,
        current: &ComponentSet,
    ) -> (Result<ComponentSet, Vec<ConfigError>>, bool) {
        let mut set = ComponentSet::default();
        let mut errors = Vec::new();
        let mut transient = false;
        for (name, entry) in &index.components {
            if let Some(version) = &entry.channels.stable {
                match self.version(engine, name, version, current).await {
                    Ok(v) => {
                        set.by_name.insert(name.clone(), v);
                    }
                    Err((e, t)) => {
                        transient |= t;
                        errors.push(e);
                    }
                }
            }
            if let Some(canary) = entry.channels.canary.as_ref().filter(|c| c.percent > 0)
                && entry.channels.stable.as_ref() != Some(&canary.version)
            {
                match self.version(engine, name, &canary.version, current).await {
                    Ok(v) => {
                        set.canary.insert(
                            name.clone(),
                            Canary {
                                version: v,
                                percent: canary.percent.min(100),
                            },
                        );
                    }
                    Err((e, t)) => {
                        transient |= t;
                        errors.push(e.help(format!(
                        "fix or roll back the canary: `oberon component rollback {name} --channel {}`",
                        Channel::Canary
                    )));
                    }
                }
            }
        }
        if errors.is_empty() {
            (Ok(set), false)
        } else {
            (Err(errors), transient)
        }
    }

    async fn version(
        &self,
        engine: &ComponentEngine,
        name: &str,
        version: &Version,
        current: &ComponentSet,
    ) -> Result<Arc<ComponentVersion>, (ConfigError, bool)> {
        let same =
            |v: &&Arc<ComponentVersion>| v.name() == name && v.version.as_ref() == Some(version);
        if let Some(held) = current.all().find(same) {
            return Ok(held.clone());
        }
        let kept = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(same)
            .cloned();
        if let Some(kept) = kept {
            return Ok(kept);
        }
        let artifact = self.registry.fetch(name, version).await.map_err(|e| {
            let transient = matches!(e, RegistryError::Storage(_));
            (
                self.error(format!("cannot fetch {name} {version}: {e}")),
                transient,
            )
        })?;
        let mut loaded =
            component_set::load_artifact(engine, name, version, &artifact.wasm, &artifact.assets)
                .await
                .map_err(|e| (self.error(e.to_string()), false))?;
        loaded.memory_mib = artifact.entry.resources.memory_mib.map(|m| m as usize);
        tracing::info!(component = %name, %version, hash = %loaded.hash, "loaded component version from the registry");
        let loaded = Arc::new(loaded);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push(loaded.clone());
        if recent.len() > KEEP_LOADED {
            recent.remove(0);
        }
        Ok(loaded)
    }
}
