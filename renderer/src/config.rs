//! Site and page configuration: serde structs with `deny_unknown_fields`, and the
//! [`ConfigError`] that every configuration problem becomes — naming the file, the line
//! and what to change. Parsing is here; cross-checks that need components, layouts or
//! other pages are in [`crate::site`].
//!
//! Every `[section]` of `site.toml` is declared here, including the settings of the
//! modules that act on them ([`ModeSettings`] for [`crate::mode`]): those modules use
//! this one, never the reverse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::component::Cacheability;

/// `site.toml`: where a site's pages, layouts and components are, and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// `components = "components"`: directory of `<name>/component.wasm` (+ `assets/`),
    /// relative to the site directory.
    #[serde(default = "defaults::components")]
    pub components: PathBuf,
    /// `pages = "pages"`: directory of page files (`*.toml`).
    #[serde(default = "defaults::pages")]
    pub pages: PathBuf,
    /// `layouts = "layouts"`: directory of minijinja layouts (`*.html`).
    #[serde(default = "defaults::layouts")]
    pub layouts: PathBuf,
    /// `locale = "en-GB"`: the locale components are given.
    #[serde(default = "defaults::locale")]
    pub locale: String,
    /// `[bffs] events = "http://127.0.0.1:7101"`: base URLs that data-source templates
    /// name as `{bff.events}`. Deployment-specific, so the CLI can override them.
    #[serde(default)]
    pub bffs: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub cache: CacheSettings,
    /// `[render_cache]`: how much memory reused renders may take.
    #[serde(default)]
    pub render_cache: RenderCacheSettings,
    /// `[mode]`: when the fleet's cache mode rises, and how soon it falls.
    #[serde(default)]
    pub mode: ModeSettings,
    /// `[errors]`: the site's own pages for what no page of it answers.
    #[serde(default)]
    pub errors: ErrorSettings,
}

/// `[errors]` in `site.toml`: how the renderer answers what no page answers, in the
/// site's own look.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSettings {
    /// `layout = "error.html"`: one of the site's layouts, rendered once at load for
    /// each answer the renderer gives itself — 404 (no page has the path) and 503 (a
    /// page's critical component failed, or the renderer sheds load) — with `status`,
    /// `title`, `message` and `lang`. It runs no component, so it cannot fail with
    /// them. Without it, those answers are plain text.
    pub layout: Option<Spanned<String>>,
}

/// `[cache]` in `site.toml`: the CDN side of the caching contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// `jitter = 0.1`: up to this share of each CDN TTL is taken off at random, so
    /// pages do not all expire together (0 turns it off; at most 0.5).
    #[serde(deserialize_with = "bounded::jitter")]
    pub jitter: f64,
    /// `purge = ["http://127.0.0.1:6081"]`: CDN endpoints that take
    /// `PURGE` with a `Surrogate-Key` header. The renderer purges the keys of a
    /// component version it swaps out, and of a mode it leaves.
    pub purge: Vec<String>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            jitter: 0.1,
            purge: Vec::new(),
        }
    }
}

/// `[render_cache]` in `site.toml`: the renderer's cache of component renders (see
/// [`crate::render_cache`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderCacheSettings {
    /// `max_mib = 64`: what the kept renders may weigh at most, in MiB (fragments,
    /// published topics and the inputs they were rendered from). 0 turns the render
    /// cache off: every slot is rendered for every request.
    #[serde(deserialize_with = "bounded::render_cache_mib")]
    pub max_mib: u64,
}

impl Default for RenderCacheSettings {
    fn default() -> Self {
        // The demo's event page keeps ~12 KiB per distinct event and query: 64 MiB
        // holds some five thousand of them.
        Self { max_mib: 64 }
    }
}

/// `[mode]` in `site.toml`: when the mode rises and how soon it falls.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModeSettings {
    /// `p99_objective_ms = 250`: a render p99 above this raises `elevated`, above twice
    /// this `incident`.
    #[serde(deserialize_with = "bounded::deadline")]
    pub p99_objective_ms: u64,
    /// `busy_fraction = 0.8`: renders in flight at this share of
    /// `limits.max_concurrent_renders` raise `elevated`.
    #[serde(deserialize_with = "bounded::busy_fraction")]
    pub busy_fraction: f64,
    /// `calm_period_s = 60`: how long the signals must stay below a mode before it is
    /// left.
    #[serde(deserialize_with = "bounded::calm_period_s")]
    pub calm_period_s: u64,
    /// `window_s = 10`: the renders the p99 is computed over.
    #[serde(deserialize_with = "bounded::window_s")]
    pub window_s: u64,
}

impl Default for ModeSettings {
    fn default() -> Self {
        Self {
            p99_objective_ms: 250,
            busy_fraction: 0.8,
            calm_period_s: 60,
            window_s: 10,
        }
    }
}

/// `[limits]` in `site.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `page_deadline_ms = 1000`: no page takes longer than this, whatever its parts do.
    #[serde(deserialize_with = "bounded::deadline")]
    pub page_deadline_ms: u64,
    /// `component_deadline_ms = 100`: default deadline of one component render.
    #[serde(deserialize_with = "bounded::deadline")]
    pub component_deadline_ms: u64,
    /// `component_memory_mib = 16`: linear memory cap of one component instance, unless
    /// its slot (`memory_mib`) or its deploy (`oberon component deploy --memory-mib`)
    /// asks for another.
    #[serde(deserialize_with = "bounded::memory_mib")]
    pub component_memory_mib: usize,
    /// `component_memory_ceiling_mib = 256`: the most memory any slot or deploy may ask
    /// for one instance. A larger ceiling reserves address space, not memory.
    #[serde(deserialize_with = "bounded::memory_mib")]
    pub component_memory_ceiling_mib: usize,
    /// `max_instances = 256`: component instances alive at once, process-wide.
    #[serde(deserialize_with = "bounded::instances")]
    pub max_instances: u32,
    /// `max_data_bytes = 4194304`: largest data-source body accepted.
    pub max_data_bytes: usize,
    /// `max_concurrent_renders = 256`: pages rendered at once; past this a request is
    /// shed with a 503 and `Retry-After` (and the cache mode rises).
    #[serde(deserialize_with = "bounded::instances")]
    pub max_concurrent_renders: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            page_deadline_ms: 1000,
            component_deadline_ms: 100,
            component_memory_mib: 16,
            component_memory_ceiling_mib: 256,
            max_instances: 256,
            max_data_bytes: 4 << 20,
            max_concurrent_renders: 256,
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    pub fn components() -> PathBuf {
        "components".into()
    }
    pub fn pages() -> PathBuf {
        "pages".into()
    }
    pub fn layouts() -> PathBuf {
        "layouts".into()
    }
    pub fn locale() -> String {
        "en-GB".into()
    }
}

/// One page file, `pages/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    /// `route = "/events/{id}"`: the path pattern; `{name}` captures one segment.
    pub route: Spanned<String>,
    /// `layout = "event.html"`: a file in the site's layouts directory.
    pub layout: Spanned<String>,
    /// `team = "events"`: the owning team, for logs, metrics and cache tags.
    pub team: String,
    /// `cache = { class = "public", ttl_s = 60 }`.
    #[serde(default)]
    pub cache: PageCache,
    /// `deadline_ms = 800`: overrides the site's page deadline.
    #[serde(default, deserialize_with = "bounded::optional_deadline")]
    pub deadline_ms: Option<u64>,
    /// `[[data]]`: data sources, each published on the bus as a topic.
    #[serde(default)]
    pub data: Vec<DataSourceConfig>,
    /// `[[slots]]`: the components placed by the layout, in page order.
    pub slots: Vec<SlotConfig>,
    /// `[head]`: what the page's head says where none of its components does.
    #[serde(default)]
    pub head: PageHead,
}

/// `[head] title = "…", description = "…"`: the page's title and meta description
/// where none of its components gives one — a streamed page's head leaves before its
/// late slots render, so without these it may have neither.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageHead {
    pub title: Option<String>,
    pub description: Option<String>,
}

/// `cache = { class = "public", ttl_s = 60 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageCache {
    /// `class = "public" | "volatile" | "personal"`.
    pub class: Cacheability,
    /// `ttl_s = 60`: the team's base TTL at the CDN in normal mode.
    #[serde(default = "PageCache::default_ttl")]
    pub ttl_s: u32,
}

impl PageCache {
    fn default_ttl() -> u32 {
        60
    }
}

impl Default for PageCache {
    fn default() -> Self {
        Self {
            class: Cacheability::Personal,
            ttl_s: Self::default_ttl(),
        }
    }
}

/// `[[data]]`: `topic ← url`, fetched concurrently before components run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    /// `topic = "event"`: the bus topic the JSON response is published on.
    pub topic: Spanned<String>,
    /// `url = "{bff.events}/v1/events/{params.id}"`: placeholders are `{bff.NAME}`,
    /// `{params.NAME}` (route parameters) and `{query.NAME}`; values are percent-encoded.
    pub url: Spanned<String>,
    /// `deadline_ms = 250`: past this the topic is absent and the page goes on.
    #[serde(
        default = "DataSourceConfig::default_deadline",
        deserialize_with = "bounded::deadline"
    )]
    pub deadline_ms: u64,
    /// `private = true`: keep the topic server-side (not embedded in the page for the
    /// client bus).
    #[serde(default)]
    pub private: bool,
    /// `identity = true`: the source receives the signed-in user (the gateway's
    /// assertion, in `Oberon-Identity`). Only a url that starts with `{bff.NAME}` may
    /// say so: NAME is the BFF's audience, and the assertion is sent only when the
    /// gateway made it good there (`[delegates]` in `gateway.toml`). Default false:
    /// the source is asked anonymously, whoever is signed in.
    #[serde(default)]
    pub identity: bool,
}

impl DataSourceConfig {
    fn default_deadline() -> u64 {
        300
    }
}

/// `[[slots]]`: one component placement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// `name = "main"`: the layout places it as `{{ slots.main }}`.
    pub name: Spanned<String>,
    /// `component = "ticket-picker"`.
    pub component: Spanned<String>,
    /// `version = "^1.2"`: the versions of the component this page accepts (a semver
    /// requirement). With components from a registry, a channel (stable or canary)
    /// whose version does not satisfy it is refused for this page and the site served
    /// now is kept. Components from a directory carry no version and are not checked.
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// `props = { default_quantity = 2 }`: given to the component as JSON.
    #[serde(default)]
    pub props: Option<toml::Table>,
    /// `fallback = "<p>Tickets are unavailable</p>"`: HTML used when the component fails.
    #[serde(default)]
    pub fallback: String,
    /// `critical = true`: if this component fails, the page answers 503 (so the CDN
    /// serves its stale copy) instead of rendering the fallback.
    #[serde(default)]
    pub critical: bool,
    /// `deadline_ms = 50`: overrides the site's component deadline.
    #[serde(default, deserialize_with = "bounded::optional_deadline")]
    pub deadline_ms: Option<u64>,
    /// `memory_mib = 64`: the linear memory cap of this slot's instances, overriding
    /// what the component's deploy asked for and the site's `component_memory_mib`;
    /// at most `limits.component_memory_ceiling_mib`.
    #[serde(default, deserialize_with = "bounded::optional_memory_mib")]
    pub memory_mib: Option<Spanned<usize>>,
    /// `reads = ["part-1"]`: of the topics the component subscribes to, the only ones
    /// this slot gives it (the others are absent to it), so the slot waits for nothing
    /// else. For a component placed several times, each placement choosing its topic
    /// by props. Each must be one the component subscribes to.
    #[serde(default)]
    pub reads: Option<Spanned<Vec<String>>>,
}

pub use oberon_config::{ConfigError, ConfigErrors, parse_toml};

/// Numbers with a sensible range, refused at load (with the value's position) rather
/// than overflowing or misbehaving at request time.
pub(crate) mod bounded {
    use serde::{Deserialize, Deserializer, de::Error};

    /// Every deadline: 1 ms to 60 s. A page is an interactive answer, and the CDN's
    /// stale copy is the better answer past a minute.
    pub const DEADLINE_MS: (u64, u64) = (1, 60_000);

    fn within<'de, D: Deserializer<'de>, T>(
        d: D,
        (lo, hi): (T, T),
        unit: &str,
    ) -> Result<T, D::Error>
    where
        T: Deserialize<'de> + PartialOrd + std::fmt::Display + Copy,
    {
        let v = T::deserialize(d)?;
        if v < lo || v > hi {
            return Err(D::Error::custom(format!(
                "{v} is out of range: must be between {lo} and {hi} {unit}"
            )));
        }
        Ok(v)
    }

    pub fn deadline<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, DEADLINE_MS, "ms")
    }

    pub fn optional_deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        deadline(d).map(Some)
    }

    /// A component instance's memory: 1 MiB to 4 GiB (a wasm32 memory's whole range).
    pub const MEMORY_MIB: (usize, usize) = (1, 4096);

    pub fn memory_mib<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        within(d, MEMORY_MIB, "MiB")
    }

    /// [`memory_mib`], keeping where it was written (a slot's is checked against the
    /// site's ceiling later, and the error points at it).
    pub fn optional_memory_mib<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<toml::Spanned<usize>>, D::Error> {
        let v = toml::Spanned::<usize>::deserialize(d)?;
        let (lo, hi) = MEMORY_MIB;
        if *v.get_ref() < lo || *v.get_ref() > hi {
            return Err(D::Error::custom(format!(
                "{} is out of range: must be between {lo} and {hi} MiB",
                v.get_ref()
            )));
        }
        Ok(Some(v))
    }

    pub fn instances<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        within(d, (1, 100_000), "instances")
    }

    /// The render cache: 0 (off) to 16 GiB.
    pub fn render_cache_mib<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, (0, 16_384), "MiB")
    }

    pub fn jitter<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, (0.0, crate::cache::MAX_JITTER), "(a share of the TTL)")
    }

    /// A share of the admission limit at which the fleet is busy: at least 5% (below
    /// that any render would raise the mode), at most all of it.
    pub fn busy_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        within(d, (0.05, 1.0), "(a share of limits.max_concurrent_renders)")
    }

    /// How long the mode's signals must stay calm before it falls: 1 s to 1 h.
    pub fn calm_period_s<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, (1, 3600), "s")
    }

    /// The window the render p99 is taken over: 1 s to 10 min.
    pub fn window_s<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        within(d, (1, 600), "s")
    }
}

/// `site.toml` in `dir`, parsed, and its text (for locating later errors).
pub fn read_site_config(dir: &Path) -> Result<(SiteConfig, String), ConfigError> {
    let file = dir.join("site.toml");
    let source = std::fs::read_to_string(&file).map_err(|e| {
        ConfigError::new(&file, format!("cannot read: {e}"))
            .help("point --site at a directory containing site.toml")
    })?;
    let config: SiteConfig = parse_toml(&file, &source)?;
    let limits = &config.limits;
    if limits.component_memory_mib > limits.component_memory_ceiling_mib {
        return Err(ConfigError::new(
            &file,
            format!(
                "[limits] component_memory_mib = {} is above component_memory_ceiling_mib = {}: no instance may have more than the ceiling",
                limits.component_memory_mib, limits.component_memory_ceiling_mib
            ),
        )
        .help("lower component_memory_mib, or raise component_memory_ceiling_mib"));
    }
    Ok((config, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_located() {
        let src = "route = \"/\"\nlayout = \"x.html\"\nteam = \"t\"\nslots = []\ncolour = 1\n";
        let err = parse_toml::<PageConfig>(Path::new("pages/home.toml"), src).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("pages/home.toml:5:1: unknown field `colour`"),
            "{text}"
        );
        assert!(text.contains("help: remove the field"), "{text}");
    }

    #[test]
    fn out_of_range_numbers_are_located() {
        let src = "route = \"/\"\nlayout = \"x.html\"\nteam = \"t\"\nslots = []\ndeadline_ms = 18446744073709551615\n";
        let text = parse_toml::<PageConfig>(Path::new("pages/home.toml"), src)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("pages/home.toml:5:15: 18446744073709551615 is out of range: must be between 1 and 60000 ms"),
            "{text}"
        );
        assert!(
            text.contains("help: use a value in the range given"),
            "{text}"
        );
        let site = "[limits]\nmax_instances = 0\n";
        let text = parse_toml::<SiteConfig>(Path::new("site.toml"), site)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("site.toml:2:17: 0 is out of range"),
            "{text}"
        );
        let site = "[render_cache]\nmax_mib = 20000\n";
        let text = parse_toml::<SiteConfig>(Path::new("site.toml"), site)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(
                "site.toml:2:11: 20000 is out of range: must be between 0 and 16384 MiB"
            ),
            "{text}"
        );
        for (toml, expected) in [
            ("", 64),
            ("[render_cache]\n", 64),
            ("[render_cache]\nmax_mib = 0\n", 0),
        ] {
            let config = parse_toml::<SiteConfig>(Path::new("site.toml"), toml).expect(toml);
            assert_eq!(config.render_cache.max_mib, expected, "{toml}");
        }
        for (mode, expected) in [
            (
                "p99_objective_ms = 0",
                "site.toml:2:20: 0 is out of range: must be between 1 and 60000 ms",
            ),
            (
                "busy_fraction = 1.5",
                "site.toml:2:17: 1.5 is out of range: must be between 0.05 and 1",
            ),
            (
                "calm_period_s = 0",
                "site.toml:2:17: 0 is out of range: must be between 1 and 3600 s",
            ),
            (
                "window_s = 86400",
                "site.toml:2:12: 86400 is out of range: must be between 1 and 600 s",
            ),
        ] {
            let site = format!("[mode]\n{mode}\n");
            let text = parse_toml::<SiteConfig>(Path::new("site.toml"), &site)
                .unwrap_err()
                .to_string();
            assert!(text.starts_with(expected), "{mode}: {text}");
        }
    }
}
