//! The renderer's life: start (site, engine, data client, components from a directory
//! or a registry), the site served now and its hot swap, the assets of swapped-out
//! versions, and the mode watcher. A request's life is in [`crate::render`].

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::cache::{self, Mode};
use crate::component_set::{self, Asset, ComponentSet, ComponentVersion, DirScan};
use crate::config::ConfigErrors;
use crate::data_client::{DataClient, DataClientOptions};
use crate::engine::{ComponentEngine, EngineLimits};
use crate::mode::{Change, FleetMode};
use crate::purge::Purger;
use crate::registry_source::{Look, RegistrySource, RegistryStatus};
use crate::render_cache::RenderCache;
use crate::site::{Site, SiteSource};
use oberon_identity::Verifier;

/// Options for [`Renderer::start`].
#[derive(Debug, Clone, Default)]
pub struct RendererOptions {
    pub site_dir: PathBuf,
    /// Replaces the components directory named in `site.toml`.
    pub components_dir: Option<PathBuf>,
    /// BFF base URLs that replace or add to `[bffs]` in `site.toml`.
    pub bffs: BTreeMap<String, String>,
    /// Data client tuning; `None` for the defaults (with `max_data_bytes` from
    /// `site.toml`).
    pub data_client: Option<DataClientOptions>,
    /// Verifies the gateway's identity assertions. Without it every request is
    /// anonymous, whatever headers it carries.
    pub identity: Option<Arc<Verifier>>,
    /// The bearer token of the admin endpoint (`POST /_oberon/mode`), at least
    /// [`MIN_ADMIN_TOKEN_LEN`] characters. Without one (or an empty one) the endpoint
    /// refuses everybody.
    pub admin_token: Option<String>,
    /// A directory for compiled components (see [`crate::code_cache`]), so that a
    /// restart loads them without compiling. `None`: compile at every start.
    pub code_cache: Option<PathBuf>,
}

/// The fewest characters an admin token may have (as the gateway asks of the CDN's
/// origin secret): 32 hex characters are 128 bits.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// The renderer: the site currently served, and what it needs to serve it.
pub struct Renderer {
    pub(crate) engine: ComponentEngine,
    pub(crate) data: DataClient,
    pub(crate) identity: Option<Arc<Verifier>>,
    pub(crate) source: SiteSource,
    components: Components,
    current: RwLock<Arc<Site>>,
    /// What the request pipeline counts (`/_oberon/status`).
    pub(crate) counts: PageCounts,
    pub(crate) mode: FleetMode,
    purger: Purger,
    admin_token: Option<String>,
    /// Assets of versions swapped out, still served for [`ASSET_RETENTION`]: a page
    /// rendered just before a swap (in a browser, or on its way from the CDN) still
    /// finds its scripts and styles.
    retired_assets: std::sync::Mutex<VecDeque<RetiredAssets>>,
    /// Outcomes of reusable component renders (see [`crate::render_cache`]).
    pub(crate) render_cache: RenderCache,
}

/// Pages counted since start.
#[derive(Debug, Default)]
pub(crate) struct PageCounts {
    /// Rendered with at least one canary version, and with none: the canary's
    /// measured share.
    pub canary: AtomicU64,
    pub stable: AtomicU64,
    /// Sent before all their data had answered.
    pub streamed: AtomicU64,
    /// Late data source answers dropped from a streamed page for being less cacheable
    /// than its headers had promised.
    pub late_data_dropped: AtomicU64,
}

/// Where the component versions come from.
enum Components {
    /// `<dir>/<name>/component.wasm`, watched by file stamps (`oberon dev`, tests).
    Dir {
        dir: PathBuf,
        /// The directory as of the last reload attempt.
        last_scan: tokio::sync::Mutex<DirScan>,
    },
    /// A registry's channels, watched by index generation.
    Registry {
        source: RegistrySource,
        /// The generation last tried (served, or refused for a bad version).
        tried: tokio::sync::Mutex<u64>,
    },
}

/// How long the assets of a version swapped out stay available.
pub const ASSET_RETENTION: Duration = Duration::from_secs(15 * 60);
/// At most this many swapped-out versions' assets are kept, whatever their age.
const RETIRED_VERSIONS_KEPT: usize = 64;

struct RetiredAssets {
    at: Instant,
    component: String,
    assets: Vec<(String, Arc<Asset>)>,
}

impl Renderer {
    /// Read the site, load its components and build every page. Fails, listing every
    /// problem, unless the whole site is valid.
    pub async fn start(options: RendererOptions) -> Result<Arc<Self>, StartError> {
        Self::start_inner(options, None).await
    }

    /// Start with the components of a registry (the stable version of each, and the
    /// canaries for their share of requests) instead of a directory. Fails if the
    /// registry cannot be read: there is nothing else to serve.
    pub async fn start_from_registry(
        options: RendererOptions,
        registry: oberon_registry::Registry,
    ) -> Result<Arc<Self>, StartError> {
        Self::start_inner(options, Some(registry)).await
    }

    async fn start_inner(
        options: RendererOptions,
        registry: Option<oberon_registry::Registry>,
    ) -> Result<Arc<Self>, StartError> {
        let admin_token = options.admin_token.filter(|t| !t.is_empty());
        if let Some(short) = admin_token
            .as_ref()
            .filter(|t| t.len() < MIN_ADMIN_TOKEN_LEN)
        {
            return Err(StartError::WeakAdminToken(short.len()));
        }
        let source = SiteSource::read(&options.site_dir, &options.bffs)?;
        let limits = &source.config.limits;
        let engine = ComponentEngine::new(EngineLimits {
            memory_bytes: limits.component_memory_mib << 20,
            memory_ceiling_bytes: limits.component_memory_ceiling_mib << 20,
            max_instances: limits.max_instances,
            ..EngineLimits::default()
        })
        .map_err(StartError::Engine)?;
        let engine = match &options.code_cache {
            None => engine,
            Some(dir) => engine.with_code_cache(dir).map_err(|e| {
                StartError::Engine(anyhow::anyhow!(
                    "cannot open the compiled-code cache {}: {e} (give a writable directory, or leave the option out)",
                    dir.display()
                ))
            })?,
        };
        let data_options = options.data_client.unwrap_or_else(|| DataClientOptions {
            max_bytes: limits.max_data_bytes,
            ..DataClientOptions::default()
        });
        let data = DataClient::new(data_options).map_err(StartError::Engine)?;
        let (origin, components) = match registry {
            None => {
                let dir = options
                    .components_dir
                    .unwrap_or_else(|| source.components_dir());
                let scan = component_set::scan(&dir);
                let (components, errors) =
                    component_set::load_components(&engine, &dir, &ComponentSet::default()).await;
                if !errors.is_empty() {
                    return Err(ConfigErrors(errors).into());
                }
                let origin = Components::Dir {
                    dir,
                    last_scan: tokio::sync::Mutex::new(scan),
                };
                (origin, components)
            }
            Some(registry) => {
                let source = RegistrySource::new(registry);
                let (generation, components) =
                    source.load_initial(&engine).await.map_err(ConfigErrors)?;
                let origin = Components::Registry {
                    source,
                    tried: tokio::sync::Mutex::new(generation),
                };
                (origin, components)
            }
        };
        let site = Site::build(&source, components)?;
        let mode = FleetMode::new(
            source.config.mode.clone(),
            source.config.limits.max_concurrent_renders as usize,
        );
        let purger = Purger::new(source.config.cache.purge.clone()).map_err(StartError::Engine)?;
        let render_cache = RenderCache::new(source.config.render_cache.max_mib);
        let renderer = Arc::new(Self {
            engine,
            data,
            identity: options.identity,
            source,
            components: origin,
            current: RwLock::new(Arc::new(site)),
            counts: PageCounts::default(),
            mode,
            purger,
            admin_token,
            retired_assets: std::sync::Mutex::new(VecDeque::new()),
            render_cache,
        });
        renderer.watch_mode(MODE_LOOK_EVERY);
        Ok(renderer)
    }

    /// The fleet mode: its current value, signals, and the admission limit.
    pub fn mode(&self) -> &FleetMode {
        &self.mode
    }

    /// Whether `token` is the admin endpoint's bearer token (compared in constant time).
    pub fn is_admin(&self, token: &str) -> bool {
        self.admin_token
            .as_deref()
            .is_some_and(|ours| oberon_service::secret_eq(ours.as_bytes(), token.as_bytes()))
    }

    /// An operator's floor for the mode (`None` clears it); purges what a left mode
    /// cached.
    pub fn set_operator_mode(&self, mode: Option<Mode>) {
        if let Some(change) = self.mode.set_operator(mode, Instant::now()) {
            self.mode_changed(change, "operator");
        }
    }

    fn mode_changed(&self, change: Change, by: &str) {
        ::metrics::counter!("oberon_renderer_cache_mode_changes_total", "mode" => change.to.as_str())
            .increment(1);
        tracing::warn!(from = %change.from, to = %change.to, by, "cache mode changed");
        if change.to < change.from {
            // Pages cached for longer in the modes we left are refreshed now rather
            // than when their longer TTL runs out.
            let left = Mode::ALL
                .into_iter()
                .filter(|m| *m > change.to && *m <= change.from)
                .map(cache::mode_key)
                .collect();
            self.purger.purge_later(left);
        }
    }

    /// Look at the mode's signals every `interval` until the renderer is dropped.
    fn watch_mode(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(renderer) = weak.upgrade() else {
                    break;
                };
                let open = renderer
                    .data
                    .breakers()
                    .iter()
                    .filter(|b| b.state != crate::data_client::BreakerState::Closed)
                    .count();
                if let Some(change) = renderer.mode.look(open, Instant::now()) {
                    renderer.mode_changed(change, "signals");
                }
            }
        });
    }

    /// The site being served now. Requests hold this `Arc` for their whole life, so a
    /// swap never changes the component versions under a request in flight.
    pub fn site(&self) -> Arc<Site> {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// A client asset by component, content hash and path: of the versions served now,
    /// or of one swapped out less than [`ASSET_RETENTION`] ago.
    pub fn asset(&self, component: &str, hash: &str, path: &str) -> Option<Arc<Asset>> {
        let site = self.site();
        let current = [
            site.components.get(component),
            site.components.canary.get(component).map(|c| &c.version),
        ]
        .into_iter()
        .flatten()
        .filter_map(|v| v.assets.get(path))
        .find(|a| a.hash == hash)
        .cloned();
        current.or_else(|| {
            let retired = self
                .retired_assets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            retired
                .iter()
                .rev()
                .filter(|r| r.at.elapsed() < ASSET_RETENTION && r.component == component)
                .flat_map(|r| r.assets.iter())
                .find(|(p, a)| p == path && a.hash == hash)
                .map(|(_, a)| a.clone())
        })
    }

    fn retire_assets(&self, versions: &[&Arc<ComponentVersion>]) {
        let mut retired = self
            .retired_assets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        retired.retain(|r| now.duration_since(r.at) < ASSET_RETENTION);
        for version in versions {
            retired.push_back(RetiredAssets {
                at: now,
                component: version.name().to_string(),
                assets: version
                    .assets
                    .iter()
                    .map(|(p, a)| (p.clone(), a.clone()))
                    .collect(),
            });
        }
        while retired.len() > RETIRED_VERSIONS_KEPT {
            retired.pop_front();
        }
    }

    /// The component engine: its instance pool's figures are in `/_oberon/status`.
    pub fn engine(&self) -> &ComponentEngine {
        &self.engine
    }

    /// The render cache: its counters and size are in `/_oberon/status`.
    pub fn render_cache(&self) -> &RenderCache {
        &self.render_cache
    }

    /// The data client: its breakers' state feeds health output and the cache mode.
    pub fn data(&self) -> &DataClient {
        &self.data
    }

    /// The components directory, when the components come from one.
    pub fn components_dir(&self) -> Option<&std::path::Path> {
        match &self.components {
            Components::Dir { dir, .. } => Some(dir),
            Components::Registry { .. } => None,
        }
    }

    /// The registry as last seen, when the components come from one.
    pub fn registry_status(&self) -> Option<RegistryStatus> {
        match &self.components {
            Components::Dir { .. } => None,
            Components::Registry { source, .. } => Some(source.status()),
        }
    }

    /// Pages rendered with a canary version, and with none, since start.
    pub fn channel_counts(&self) -> (u64, u64) {
        (
            self.counts.canary.load(Ordering::Relaxed),
            self.counts.stable.load(Ordering::Relaxed),
        )
    }

    /// Pages streamed (sent before all their data had answered), and late data answers
    /// dropped from them, since start.
    pub fn stream_counts(&self) -> (u64, u64) {
        (
            self.counts.streamed.load(Ordering::Relaxed),
            self.counts.late_data_dropped.load(Ordering::Relaxed),
        )
    }

    /// Look at the components directory or the registry; if anything changed, load
    /// the changed versions and swap in a rebuilt site. A version that fails to load,
    /// or a site that no longer validates, is reported and the current site is kept.
    /// An unreachable registry changes nothing (see [`Renderer::registry_status`]).
    pub async fn reload_if_changed(&self) -> Result<bool, ConfigErrors> {
        match &self.components {
            Components::Dir { dir, last_scan } => {
                let mut last = last_scan.lock().await;
                let scan = component_set::scan(dir);
                if scan == *last {
                    return Ok(false);
                }
                *last = scan;
                let current = self.site();
                let (components, errors) =
                    component_set::load_components(&self.engine, dir, &current.components).await;
                self.swap(&current, components, errors)
            }
            Components::Registry { source, tried } => {
                let mut tried = tried.lock().await;
                let current = self.site();
                let look = source.look(&self.engine, *tried, &current.components).await;
                let (generation, loaded, transient) = match look {
                    Err(e) => {
                        tracing::warn!(
                            registry = %source.status().location,
                            side = %e.side(),
                            "registry unreachable, still serving what we have: {e}"
                        );
                        return Ok(false);
                    }
                    Ok(Look::Unchanged) => return Ok(false),
                    Ok(Look::Changed {
                        generation,
                        loaded,
                        transient,
                    }) => (generation, loaded, transient),
                };
                if !transient {
                    *tried = generation;
                }
                let swapped = match loaded {
                    Ok(components) => self.swap(&current, components, Vec::new()),
                    Err(errors) => Err(ConfigErrors(errors)),
                };
                source.swapped(
                    generation,
                    swapped.as_ref().err().map(|e| {
                        format!(
                            "generation {generation} refused, still serving the previous one: {e}"
                        )
                    }),
                );
                swapped
            }
        }
    }

    /// Build a site from `components` and swap it in, unless there were `errors` or
    /// it does not validate.
    fn swap(
        &self,
        current: &Site,
        components: ComponentSet,
        mut errors: Vec<crate::config::ConfigError>,
    ) -> Result<bool, ConfigErrors> {
        match Site::build(&self.source, components) {
            Ok(site) if errors.is_empty() => {
                // Pages rendered with a version that is gone are purged from the CDN;
                // its assets stay available a while longer.
                let gone_versions: Vec<&Arc<ComponentVersion>> = current
                    .components
                    .all()
                    .filter(|old| !site.components.holds(old.name(), &old.hash))
                    .collect();
                self.retire_assets(&gone_versions);
                let gone: Vec<String> = gone_versions
                    .iter()
                    .map(|old| cache::component_version_key(old.name(), &old.hash))
                    .collect();
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(site);
                tracing::info!(purge = ?gone, "swapped in new component versions");
                ::metrics::counter!("oberon_renderer_registry_swaps_total").increment(1);
                self.purger.purge_later(gone);
                Ok(true)
            }
            Ok(_) => Err(ConfigErrors(errors)),
            Err(e) => {
                errors.extend(e.0);
                Err(ConfigErrors(errors))
            }
        }
    }

    /// Poll the components directory every `interval` until the renderer is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(renderer) = weak.upgrade() else {
                    break;
                };
                if let Err(e) = renderer.reload_if_changed().await {
                    tracing::error!(
                        "component reload rejected, still serving the previous versions:\n{e}"
                    );
                }
            }
        });
    }
}

/// How often the mode's signals are looked at.
const MODE_LOOK_EVERY: Duration = Duration::from_millis(250);

/// Why the renderer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A token short enough to guess, for the endpoint that sets every page's caching.
    #[error(
        "the admin token (OBERON_ADMIN_TOKEN) is {0} characters, fewer than {MIN_ADMIN_TOKEN_LEN}\n  help: generate one with `openssl rand -hex 32`"
    )]
    WeakAdminToken(usize),
    #[error("cannot create the component engine: {0:#}")]
    Engine(anyhow::Error),
}

impl From<crate::config::ConfigError> for StartError {
    fn from(e: crate::config::ConfigError) -> Self {
        StartError::Config(e.into())
    }
}
