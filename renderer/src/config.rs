//! Site and page configuration: serde structs with `deny_unknown_fields`, and the
//! [`ConfigError`] that every configuration problem becomes — naming the file, the line
//! and what to change. Parsing is here; cross-checks that need components, layouts or
//! other pages are in [`crate::site`].

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
}

/// `[limits]` in `site.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `page_deadline_ms = 1000`: no page takes longer than this, whatever its parts do.
    pub page_deadline_ms: u64,
    /// `component_deadline_ms = 100`: default deadline of one component render.
    pub component_deadline_ms: u64,
    /// `component_memory_mib = 16`: linear memory cap of one component instance.
    pub component_memory_mib: usize,
    /// `max_instances = 256`: component instances alive at once, process-wide.
    pub max_instances: u32,
    /// `max_data_bytes = 4194304`: largest data-source body accepted.
    pub max_data_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            page_deadline_ms: 1000,
            component_deadline_ms: 100,
            component_memory_mib: 16,
            max_instances: 256,
            max_data_bytes: 4 << 20,
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
    pub deadline_ms: Option<u64>,
    /// `[[data]]`: data sources, each published on the bus as a topic.
    #[serde(default)]
    pub data: Vec<DataSourceConfig>,
    /// `[[slots]]`: the components placed by the layout, in page order.
    pub slots: Vec<SlotConfig>,
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
    #[serde(default = "DataSourceConfig::default_deadline")]
    pub deadline_ms: u64,
    /// `private = true`: keep the topic server-side (not embedded in the page for the
    /// client bus).
    #[serde(default)]
    pub private: bool,
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
    pub deadline_ms: Option<u64>,
}

pub use oberon_config::{ConfigError, ConfigErrors, parse_toml};

pub fn read_site_config(dir: &Path) -> Result<SiteConfig, ConfigError> {
    let file = dir.join("site.toml");
    let source = std::fs::read_to_string(&file).map_err(|e| {
        ConfigError::new(&file, format!("cannot read: {e}"))
            .help("point --site at a directory containing site.toml")
    })?;
    parse_toml(&file, &source)
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
}
