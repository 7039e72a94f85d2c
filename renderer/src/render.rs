//! The life of a page request, from matched route to composed HTML: match the page;
//! fetch its data sources concurrently, each within its own deadline and the page's;
//! run its components stage by stage (publishers before subscribers, a stage's
//! components concurrently), each in a fresh instance with its deadline; compose the
//! layout; decide status and caching headers. Nothing a data source or a non-critical
//! component does can fail the page or hold it past its deadline; a failed critical
//! component makes it a 503.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::bus::BusSnapshot;
use crate::cache::{self, Mode, PagePolicy};
use crate::component::{Cacheability, RequestContext, User};
use crate::config::ConfigErrors;
use crate::data_client::{DataClient, DataClientOptions, Served};
use crate::engine::{ComponentEngine, EngineLimits};
use crate::layout::Composition;
use crate::mode::{Change, FleetMode};
use crate::purge::Purger;
use crate::registry::{self, Asset, ComponentSet, ComponentVersion, DirScan};
use crate::registry_source::{Look, RegistrySource, RegistryStatus};
use crate::render_cache::{RenderCache, Reuse};
use crate::site::{Page, PageVariant, REQUEST_TOPIC, Site, SiteSource};
use oberon_identity::Verifier;
use oberon_identity::assertion::HEADER as IDENTITY_HEADER;

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
    /// The bearer token of the admin endpoint (`POST /_oberon/mode`). Without one the
    /// endpoint refuses everybody.
    pub admin_token: Option<String>,
    /// A directory for compiled components (see [`crate::code_cache`]), so that a
    /// restart loads them without compiling. `None`: compile at every start.
    pub code_cache: Option<PathBuf>,
}

/// The renderer: the site currently served, and what it needs to serve it.
pub struct Renderer {
    engine: ComponentEngine,
    data: DataClient,
    identity: Option<Arc<Verifier>>,
    source: SiteSource,
    components: Components,
    current: RwLock<Arc<Site>>,
    /// Pages rendered with at least one canary version, and with none: the canary's
    /// measured share.
    canary_pages: AtomicU64,
    stable_pages: AtomicU64,
    mode: FleetMode,
    purger: Purger,
    admin_token: Option<String>,
    /// Assets of versions swapped out, still served for [`ASSET_RETENTION`]: a page
    /// rendered just before a swap (in a browser, or on its way from the CDN) still
    /// finds its scripts and styles.
    retired_assets: std::sync::Mutex<VecDeque<RetiredAssets>>,
    /// Outcomes of reusable component renders (see [`crate::render_cache`]).
    render_cache: RenderCache,
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

/// A rendered response, before it becomes HTTP.
#[derive(Debug)]
pub struct PageResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
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
        let source = SiteSource::read(&options.site_dir, &options.bffs)?;
        let limits = &source.config.limits;
        let engine = ComponentEngine::new(EngineLimits {
            memory_bytes: limits.component_memory_mib << 20,
            max_instances: limits.max_instances,
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
                let scan = registry::scan(&dir);
                let (components, errors) =
                    registry::load_components(&engine, &dir, &ComponentSet::default()).await;
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
            canary_pages: AtomicU64::new(0),
            stable_pages: AtomicU64::new(0),
            mode,
            purger,
            admin_token: options.admin_token.filter(|t| !t.is_empty()),
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
        self.admin_token.as_deref().is_some_and(|ours| {
            ours.len() == token.len()
                && ours
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    /// An operator's floor for the mode (`None` clears it); purges what a left mode
    /// cached.
    pub fn set_operator_mode(&self, mode: Option<Mode>) {
        if let Some(change) = self.mode.set_operator(mode, Instant::now()) {
            self.mode_changed(change, "operator");
        }
    }

    fn mode_changed(&self, change: Change, by: &str) {
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
            self.canary_pages.load(Ordering::Relaxed),
            self.stable_pages.load(Ordering::Relaxed),
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
                let scan = registry::scan(dir);
                if scan == *last {
                    return Ok(false);
                }
                *last = scan;
                let current = self.site();
                let (components, errors) =
                    registry::load_components(&self.engine, dir, &current.components).await;
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

    /// Render the page for `path` (already normalised) and `query`.
    pub async fn render(
        &self,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
    ) -> PageResponse {
        self.render_inner(path, query, request, None).await
    }

    /// Render with the data sources' values given instead of fetched (topic, JSON):
    /// for previews of a page against fixture data, and to measure the render alone.
    pub async fn render_with_data(
        &self,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
        data: &[(&str, &str)],
    ) -> PageResponse {
        self.render_inner(path, query, request, Some(data)).await
    }

    async fn render_inner(
        &self,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
        given: Option<&[(&str, &str)]>,
    ) -> PageResponse {
        let started = Instant::now();
        let site = self.site();
        let Ok(matched) = site.router.at(path) else {
            return simple(StatusCode::NOT_FOUND, "not found\n");
        };
        let page = &site.pages[*matched.value];
        // One draw per request, not per slot: the whole page is one combination of
        // versions (see `Page::variant`).
        let variant = page.variant(rand::random::<f64>() * 100.0);
        let request_id = request_id(request);
        let (user, assertion) = self.user_of(request, &request_id).await;
        let ctx = RequestContext {
            path: path.to_string(),
            // Matched on the raw path, so an encoded `/` never crosses a segment; the
            // values components see are decoded.
            params: matched
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), decode_path_segment(v)))
                .collect(),
            query: query.map(form_urlencoded_pairs).unwrap_or_default(),
            locale: site.locale.clone(),
            // Only from the gateway's verified assertion: a bare header from a client
            // that skipped the gateway is never trusted.
            user,
            request_id,
        };
        let deadline = started + page.deadline;

        let data_started = Instant::now();
        let (bus, data_class) = match given {
            None => self.fetch_data(page, &ctx, deadline, assertion).await,
            Some(values) => {
                let mut bus = seeded_bus(&ctx);
                for (topic, json) in values {
                    bus.insert(Arc::from(*topic), Arc::from(*json));
                }
                (bus, Cacheability::Public)
            }
        };
        let data_time = data_started.elapsed();

        let components_started = Instant::now();
        // --- render cache: whether this request may reuse renders -----------------
        let reuse = Reuse::for_request(
            &self.render_cache,
            &ctx,
            request.contains_key(header::AUTHORIZATION) || request.contains_key(header::COOKIE),
            page.class.max(data_class),
            variant.is_canary(),
        );
        let (fragments, bus, reused) = self
            .run_components(page, variant, &ctx, bus, deadline, reuse)
            .await;
        // --- end render cache ---------------------------------------------------------
        let components_time = components_started.elapsed();

        let compose_started = Instant::now();
        let mut partial = false;
        let mut critical_failed = None;
        let mut class = page.class.max(data_class);
        let mut slots = Vec::with_capacity(variant.slots.len());
        let mut head = Vec::new();
        let mut assets = Vec::new();
        for (slot, fragment) in variant.slots.iter().zip(fragments) {
            let meta = slot.component.component.metadata();
            class = class.max(meta.cacheability);
            match fragment {
                Ok(fragment) => {
                    head.extend(fragment.head);
                    assets.extend(meta.assets.iter().map(|a| slot.component.asset_url(a)));
                    slots.push((slot.name.as_str(), fragment.html));
                }
                Err(reason) => {
                    partial = true;
                    if slot.critical && critical_failed.is_none() {
                        critical_failed = Some(format!("slot {}: {reason}", slot.name));
                    }
                    slots.push((slot.name.as_str(), slot.fallback.clone()));
                }
            }
        }
        if request.contains_key(header::AUTHORIZATION)
            || request.contains_key(header::COOKIE)
            || ctx.user.is_some()
        {
            class = Cacheability::Personal;
        }
        if let Some(reason) = critical_failed {
            tracing::error!(route = %page.route, team = %page.team, request_id = %ctx.request_id, "critical component failed: {reason}");
            self.mode.record(started.elapsed());
            return simple(
                StatusCode::SERVICE_UNAVAILABLE,
                "this page is temporarily unavailable\n",
            );
        }
        let private: HashSet<&str> = page.private_topics.iter().map(String::as_str).collect();
        let composition = Composition {
            route: &page.route,
            team: &page.team,
            lang: &site.locale,
            slots,
            head,
            assets,
            bus: &bus,
            private_topics: &private,
        };
        let body = match site.layouts.render(&page.layout, composition) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(route = %page.route, layout = %page.layout, "layout failed: {e:#}");
                return simple(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
            }
        };
        let compose_time = compose_started.elapsed();

        let mode = self.mode.current();
        if variant.is_canary() {
            self.canary_pages.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stable_pages.fetch_add(1, Ordering::Relaxed);
        }
        // A canary page is never stored by a shared cache: a CDN keys on the URL, so a
        // stored canary copy would be served to everybody, far beyond its share (see
        // ARCHITECTURE.md, "Canaries and the CDN").
        let policy = PagePolicy::decide(
            if variant.is_canary() {
                Cacheability::Personal
            } else {
                class
            },
            page.ttl_s,
            partial,
            mode,
        );
        let jitter = match self.source.config.cache.jitter {
            0.0 => 0.0,
            j => j * rand::random::<f64>(),
        };
        let cache = policy.headers(jitter);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, cache.cache_control);
        headers.insert(
            "oberon-channel",
            HeaderValue::from_static(if variant.is_canary() {
                "canary"
            } else {
                "stable"
            }),
        );
        let keys = variant.keys.get(mode);
        if cache.cdn.is_none() && variant.is_canary() {
            // Not stored anyway, but the keys say which versions made this page.
            if let Some((space, _)) = keys {
                headers.insert("surrogate-key", space.clone());
            }
        }
        if let Some(cdn) = cache.cdn {
            headers.insert("cdn-cache-control", cdn.clone());
            headers.insert("surrogate-control", cdn);
            // What a shared cache must key on besides the URL: a request with a
            // session cookie or credentials gets a personal page, never this one.
            headers.insert(
                header::VARY,
                HeaderValue::from_static("Cookie, Authorization"),
            );
            if let Some((space, comma)) = keys {
                headers.insert("surrogate-key", space.clone());
                headers.insert("cache-tag", comma.clone());
            }
        }
        let etag = cache::etag(body.as_bytes());
        let not_modified = cache::if_none_match(request.get_all(header::IF_NONE_MATCH), &etag);
        headers.insert(header::ETAG, etag);
        if let Ok(v) = HeaderValue::from_str(&format!(
            "data;dur={:.2}, components;dur={:.2}, compose;dur={:.2}, reused;desc={reused}",
            ms(data_time),
            ms(components_time),
            ms(compose_time)
        )) {
            headers.insert("server-timing", v);
        }
        let elapsed = started.elapsed();
        self.mode.record(elapsed);
        tracing::info!(
            route = %page.route, team = %page.team, request_id = %ctx.request_id, partial,
            canary = variant.is_canary(), %mode, elapsed_us = elapsed.as_micros() as u64, "page rendered"
        );
        if not_modified {
            return PageResponse {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: String::new(),
            };
        }
        PageResponse {
            status: StatusCode::OK,
            headers,
            body,
        }
    }

    /// The signed-in user, if the request carries an assertion the gateway signed for
    /// it, and that assertion (to pass on to BFFs). Anything else is anonymous.
    async fn user_of<'r>(
        &self,
        request: &'r HeaderMap,
        request_id: &str,
    ) -> (Option<User>, Option<&'r str>) {
        let Some(token) = request.get(IDENTITY_HEADER).and_then(|v| v.to_str().ok()) else {
            return (None, None);
        };
        let Some(verifier) = &self.identity else {
            tracing::warn!(
                request_id,
                "identity assertion ignored: the renderer has no gateway keys (--identity-jwks)"
            );
            return (None, None);
        };
        match verifier.verify(token, Some(request_id)).await {
            Ok(identity) => (
                Some(User {
                    id: identity.subject,
                    roles: identity.roles,
                }),
                Some(token),
            ),
            Err(e) => {
                tracing::warn!(
                    request_id,
                    "identity assertion refused, rendering anonymously: {e}"
                );
                (None, None)
            }
        }
    }

    async fn fetch_data(
        &self,
        page: &Page,
        ctx: &RequestContext,
        deadline: Instant,
        identity: Option<&str>,
    ) -> (BusSnapshot, Cacheability) {
        let mut bus = seeded_bus(ctx);
        let mut class = Cacheability::Public;
        let fetches = page.data.iter().map(|source| async move {
            let url = source.url.expand(ctx);
            let budget = source.deadline.min(deadline.saturating_duration_since(Instant::now()));
            let started = Instant::now();
            let result = self
                .data
                .fetch_as(&url, budget, &ctx.request_id, identity)
                .await;
            match &result {
                Err(e) => tracing::warn!(
                    route = %page.route, topic = %source.topic, url, request_id = %ctx.request_id,
                    elapsed_ms = started.elapsed().as_millis() as u64, "data source left its topic absent: {e}"
                ),
                Ok(f) if f.served == Served::Stale => tracing::warn!(
                    route = %page.route, topic = %source.topic, url, request_id = %ctx.request_id,
                    "data source answered from its stale-if-error copy"
                ),
                Ok(_) => {}
            }
            (source.topic.clone(), result)
        });
        for (topic, result) in join_all(fetches).await {
            if let Ok(fetched) = result {
                // The least cacheable answer bounds the page.
                class = class.max(fetched.class);
                bus.insert(topic, fetched.value);
            }
        }
        (bus, class)
    }

    /// Run the page's components stage by stage. Returns each slot's fragment (or why
    /// it fell back), in page order, the final bus, and how many slots were reused.
    async fn run_components(
        &self,
        page: &Page,
        variant: &PageVariant,
        ctx: &RequestContext,
        bus: BusSnapshot,
        deadline: Instant,
        reuse: Reuse,
    ) -> (
        Vec<Result<crate::component::Fragment, String>>,
        BusSnapshot,
        usize,
    ) {
        let mut reused = 0;
        let mut results: Vec<Option<Result<crate::component::Fragment, String>>> =
            (0..variant.slots.len()).map(|_| None).collect();
        let mut bus = Arc::new(bus);
        for stage in &variant.plan.stages {
            let runs = stage.iter().map(|&i| {
                let slot = &variant.slots[i];
                let bus = bus.clone();
                let slot_deadline = (Instant::now() + slot.deadline).min(deadline);
                async move {
                    // --- render cache: one slot, rendered or reused -------------------
                    let rendered = self
                        .render_cache
                        .render_or_reuse(
                            &self.engine,
                            reuse,
                            &slot.component,
                            ctx,
                            &slot.props,
                            &bus,
                            slot_deadline,
                        )
                        .await;
                    (i, rendered)
                    // --- end render cache ---------------------------------------------
                }
            });
            let outcomes = join_all(runs).await;
            let next = Arc::make_mut(&mut bus);
            for (i, rendered) in outcomes {
                reused += usize::from(rendered.reused); // render cache
                let result = rendered.result;
                let slot = &variant.slots[i];
                match result.outcome {
                    Ok(fragment) => {
                        for (topic, value) in result.published {
                            next.insert(topic, value);
                        }
                        results[i] = Some(Ok(fragment));
                    }
                    Err(e) => {
                        tracing::warn!(
                            route = %page.route, slot = %slot.name, critical = slot.critical,
                            request_id = %ctx.request_id, elapsed_us = result.elapsed.as_micros() as u64,
                            "component fell back: {e}"
                        );
                        results[i] = Some(Err(e.to_string()));
                    }
                }
            }
        }
        let results = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not run".into())))
            .collect();
        (results, Arc::unwrap_or_clone(bus), reused)
    }
}

/// How often the mode's signals are looked at.
const MODE_LOOK_EVERY: Duration = Duration::from_millis(250);

/// Why the renderer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot create the component engine: {0:#}")]
    Engine(anyhow::Error),
}

impl From<crate::config::ConfigError> for StartError {
    fn from(e: crate::config::ConfigError) -> Self {
        StartError::Config(e.into())
    }
}

fn simple(status: StatusCode, body: &str) -> PageResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    PageResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The request id from the trusted hop, or a fresh one.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(fresh_id()))
}

fn fresh_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}{:08x}",
        t,
        n as u32 ^ *PID.get_or_init(std::process::id)
    )
}

/// The bus before any data source or component: the request topic.
fn seeded_bus(ctx: &RequestContext) -> BusSnapshot {
    let mut bus = BusSnapshot::default();
    bus.insert(Arc::from(REQUEST_TOPIC), Arc::from(request_topic(ctx)));
    bus
}

fn request_topic(ctx: &RequestContext) -> String {
    let pairs = |v: &[(String, String)]| -> serde_json::Map<String, serde_json::Value> {
        v.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    };
    serde_json::json!({
        "path": ctx.path,
        "params": pairs(&ctx.params),
        "query": pairs(&ctx.query),
        "locale": ctx.locale,
    })
    .to_string()
}

/// `a=1&b=x%20y` → `[("a","1"), ("b","x y")]`.
pub fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode_path_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs() {
        assert_eq!(
            form_urlencoded_pairs("qty=3&type=vip+seat&x=%3C&flag"),
            vec![
                ("qty".into(), "3".into()),
                ("type".into(), "vip seat".into()),
                ("x".into(), "<".into()),
                ("flag".into(), "".into())
            ]
        );
    }
}
