//! A site: its pages, routed and planned against the loaded component versions.
//!
//! [`SiteSource`] is what was read from disk (parsed once at start); [`Site`] is built
//! from a source and a [`ComponentSet`] — again whenever a component version changes —
//! and is only ever built whole: any configuration error rejects it, so the renderer
//! never runs half-configured.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::component::{Cacheability, HeadEntry, is_valid_topic};
use crate::component_set::{ComponentSet, ComponentVersion};
use crate::config::{
    ConfigError, ConfigErrors, DataSourceConfig, Limits, PageConfig, PageHead, SiteConfig,
    SlotConfig, parse_toml, read_site_config,
};
use crate::data::UrlTemplate;
use crate::error_page::ErrorPages;
use crate::layout::{Layouts, PageText, Skeleton};
use crate::metrics::{PageMetrics, SlotMetrics, SourceMetrics};
use crate::plan::{BusPlan, PlanSlot, plan};
use oberon_registry::{Channel, VersionReq};

/// Topic seeded on every page with the request's path, parameters, query and locale.
pub const REQUEST_TOPIC: &str = "request";

/// Path prefixes the renderer serves itself; no page may claim them.
const RESERVED_PREFIXES: &[&str] = &["/assets/", "/_oberon/"];

/// The site as read from disk.
pub struct SiteSource {
    pub dir: PathBuf,
    pub config: SiteConfig,
    /// `site.toml`'s text, for locating errors found after it parsed.
    pub site_toml: String,
    pub pages: Vec<PageFile>,
    pub layouts: Arc<Layouts>,
    /// The site's error pages, rendered from its layouts.
    pub errors: Arc<ErrorPages>,
}

/// One parsed page file, with its text for locating later errors.
pub struct PageFile {
    pub path: PathBuf,
    pub source: String,
    pub config: PageConfig,
}

impl SiteSource {
    /// Read `site.toml`, every page and every layout under `dir`. BFF base URLs in
    /// `bff_overrides` replace (or add to) those in `site.toml`.
    pub fn read(
        dir: &Path,
        bff_overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigErrors> {
        let (mut config, site_toml) = read_site_config(dir)?;
        config
            .bffs
            .extend(bff_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut errors = Vec::new();
        let layouts = match Layouts::load(&dir.join(&config.layouts)) {
            Ok(l) => Some(l),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let pages_dir = dir.join(&config.pages);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&pages_dir) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) => {
                errors.push(
                    ConfigError::new(&pages_dir, format!("cannot read pages directory: {e}"))
                        .help("create it, or set `pages = \"...\"` in site.toml"),
                );
                Vec::new()
            }
        };
        files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        files.sort();
        let mut pages = Vec::new();
        for path in files {
            let source = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(ConfigError::new(&path, format!("cannot read: {e}")));
                    continue;
                }
            };
            match parse_toml::<PageConfig>(&path, &source) {
                Ok(config) => pages.push(PageFile {
                    path,
                    source,
                    config,
                }),
                Err(e) => errors.push(e),
            }
        }
        let mut source = match layouts {
            Some(layouts) if errors.is_empty() => Self {
                dir: dir.to_path_buf(),
                config,
                site_toml,
                pages,
                layouts: Arc::new(layouts),
                errors: Arc::default(),
            },
            _ => return Err(ConfigErrors(errors)),
        };
        source.errors = Arc::new(ErrorPages::render(&source).map_err(|e| ConfigErrors(vec![e]))?);
        Ok(source)
    }

    pub fn components_dir(&self) -> PathBuf {
        self.dir.join(&self.config.components)
    }
}

/// A data source ready to fetch.
#[derive(Debug)]
pub struct DataSource {
    pub topic: Arc<str>,
    pub url: UrlTemplate,
    pub deadline: Duration,
    pub private: bool,
    /// With `identity = true`: the BFF's name, the audience the user's assertion must
    /// name to be sent to this source. `None`: the source is always asked anonymously.
    pub identity: Option<Arc<str>>,
    /// Its fetches, by outcome.
    pub metrics: SourceMetrics,
}

/// NAME of a data-source url that starts with `{bff.NAME}`.
fn leading_bff(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("{bff.")?;
    let (name, _) = rest.split_once('}')?;
    (!name.is_empty()).then_some(name)
}

/// A slot bound to a component version.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub component: Arc<ComponentVersion>,
    /// The channel `component` came from (always stable from a directory).
    pub channel: Channel,
    /// The slot's props as JSON text.
    pub props: String,
    pub fallback: String,
    pub critical: bool,
    pub deadline: Duration,
    /// The linear memory cap of its instances, in bytes.
    pub memory_bytes: usize,
    /// `reads`: the only subscribed topics this slot gives its component; `None`: all.
    pub reads: Option<BTreeSet<Arc<str>>>,
    /// Where the slot names its component in the page file, for errors.
    span: std::ops::Range<usize>,
    /// Its renders, by outcome.
    pub metrics: SlotMetrics,
    /// `, slot-<name>;dur=`: its `Server-Timing` entry up to the time, written once
    /// (the name with anything a metric name may not hold as `_`).
    pub timing_entry: String,
}

/// A page, ready to serve.
#[derive(Debug)]
pub struct Page {
    /// The layout rendered once for this page, with holes for slots, head and scripts.
    pub skeleton: Skeleton,
    pub route: String,
    pub team: String,
    pub layout: String,
    pub class: Cacheability,
    pub ttl_s: u32,
    pub deadline: Duration,
    pub data: Vec<DataSource>,
    /// `variants[0]` has every slot on its stable version; then one per distinct
    /// canary share among the page's components, by share ascending.
    pub variants: Vec<PageVariant>,
    /// Topics not embedded for the client bus.
    pub private_topics: HashSet<String>,
    /// Its answers, by status and class.
    pub metrics: Arc<PageMetrics>,
    /// `[head]`: its title and description where no component gives them.
    pub head: Vec<HeadEntry>,
}

/// One combination of component versions for a page's slots, with its bus plan.
#[derive(Debug)]
pub struct PageVariant {
    /// 0 for the stable variant; else the canary share (in %) every canary version in
    /// it has at least.
    pub canary_share: u8,
    pub slots: Vec<Slot>,
    pub plan: BusPlan,
    /// Its surrogate keys (route, team, each component and version), per mode.
    pub keys: crate::cache::PageKeys,
    /// Per slot, what its render waits for: the page's data sources and the slots
    /// that publish what it reads, by index. Built with the site, not per request.
    pub waits: Vec<SlotWaits>,
}

/// What one slot's render waits for (see [`PageVariant::waits`]).
#[derive(Debug, Clone, Default)]
pub struct SlotWaits {
    pub sources: Vec<usize>,
    pub publishers: Vec<usize>,
}

/// [`PageVariant::waits`] of `slots` on a page with `data`.
fn slot_waits(data: &[DataSource], slots: &[Slot]) -> Vec<SlotWaits> {
    slots
        .iter()
        .map(|slot| SlotWaits {
            sources: (data.iter().enumerate())
                .filter(|(_, d)| slot.reads(&d.topic))
                .map(|(i, _)| i)
                .collect(),
            publishers: (slots.iter().enumerate())
                .filter(|(_, p)| {
                    let publishes = &p.component.component.metadata().publishes;
                    publishes.iter().any(|t| slot.reads(t))
                })
                .map(|(i, _)| i)
                .collect(),
        })
        .collect()
}

impl Slot {
    /// Whether this slot gives its component `topic` (one the component subscribes to).
    pub fn reads(&self, topic: &str) -> bool {
        let subscribes = &self.component.component.metadata().subscribes;
        subscribes.contains(topic) && self.reads.as_ref().is_none_or(|r| r.contains(topic))
    }
}

impl PageVariant {
    pub fn is_canary(&self) -> bool {
        self.canary_share > 0
    }
}

impl Page {
    /// The variant for a request's canary draw (uniform in `[0, 100)`): the smallest
    /// share above the draw, so the request gets the canary of every component whose
    /// share is above its draw, and the stable version of the others. One draw per
    /// request, so a page is consistent (a component in two slots is one version).
    pub fn variant(&self, draw: f64) -> &PageVariant {
        &self.variants[self.variant_index(draw)]
    }

    /// The index in `variants` of [`Page::variant`].
    pub fn variant_index(&self, draw: f64) -> usize {
        self.variants[1..]
            .iter()
            .position(|v| draw < f64::from(v.canary_share))
            .map_or(0, |i| i + 1)
    }
}

/// Every page of a site, routed.
pub struct Site {
    pub router: matchit::Router<usize>,
    pub pages: Vec<Page>,
    pub layouts: Arc<Layouts>,
    pub components: ComponentSet,
    pub locale: String,
    /// The answers no page's route matched (their route label empty). The site's, like
    /// every page's: its handles belong to whatever recorder is installed when it is
    /// first used, so nothing built before the exporter keeps a no-op.
    pub unmatched: Arc<PageMetrics>,
    /// What the renderer answers when no page can (`[errors]`).
    pub errors: Arc<ErrorPages>,
}

impl Site {
    /// Check every page against `components` and the layouts, and plan its bus.
    pub fn build(source: &SiteSource, components: ComponentSet) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut router = matchit::Router::new();
        let mut pages = Vec::new();
        let mut routes: BTreeMap<String, &Path> = BTreeMap::new();
        for file in &source.pages {
            let Some(page) = build_page(source, file, &components, &mut errors) else {
                continue;
            };
            let route_offset = file.config.route.span().start;
            if let Some(other) = routes.get(&page.route) {
                errors.push(
                    ConfigError::new(
                        &file.path,
                        format!(
                            "route {:?} is also the route of {}",
                            page.route,
                            other.display()
                        ),
                    )
                    .at(&file.source, route_offset)
                    .help("give each page its own route"),
                );
                continue;
            }
            if let Err(e) = router.insert(page.route.clone(), pages.len()) {
                errors.push(
                    ConfigError::new(
                        &file.path,
                        format!("route {:?} cannot be added: {e}", page.route),
                    )
                    .at(&file.source, route_offset)
                    .help(
                        "routes look like `/events/{id}`; two routes may not match the same paths",
                    ),
                );
                continue;
            }
            routes.insert(page.route.clone(), &file.path);
            pages.push(page);
        }
        if errors.is_empty() {
            Ok(Self {
                router,
                pages,
                layouts: source.layouts.clone(),
                components,
                locale: source.config.locale.clone(),
                unmatched: Arc::new(PageMetrics::new("")),
                errors: source.errors.clone(),
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// Why a page's route is not one the renderer can serve (the site author's to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RouteError {
    #[error("a route must start with `/`")]
    Relative,
    #[error("paths under {0} are served by the renderer itself")]
    Reserved(&'static str),
    #[error("segment {0:?} must be a whole `{{name}}` parameter")]
    UnclosedParameter(String),
    #[error("parameter name {0:?} must be letters, digits or `_`")]
    ParameterName(String),
    #[error("segment {0:?} mixes text and a parameter")]
    Mixed(String),
}

/// Route parameters of a pattern like `/events/{id}/{*rest}`, or why it is invalid.
fn route_params(route: &str) -> Result<Vec<String>, RouteError> {
    if !route.starts_with('/') {
        return Err(RouteError::Relative);
    }
    if let Some(prefix) = RESERVED_PREFIXES
        .iter()
        .find(|p| route.starts_with(*p) || route == p.trim_end_matches('/'))
    {
        return Err(RouteError::Reserved(prefix));
    }
    let mut params = Vec::new();
    for segment in route.split('/') {
        if let Some(inner) = segment.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else {
                return Err(RouteError::UnclosedParameter(segment.to_string()));
            };
            let name = name.strip_prefix('*').unwrap_or(name);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(RouteError::ParameterName(name.to_string()));
            }
            params.push(name.to_string());
        } else if segment.contains(['{', '}']) {
            return Err(RouteError::Mixed(segment.to_string()));
        }
    }
    Ok(params)
}

/// Where in the page file an error at `offset` of a data source's URL is: there, if the
/// TOML string holds the URL as written (the span starts at its opening quote); at the
/// string itself if escapes make the two differ.
fn url_error_offset(file: &PageFile, url: &toml::Spanned<String>, offset: usize) -> usize {
    let start = url.span().start;
    let written = file.source.get(start + 1..start + 1 + url.get_ref().len());
    if written == Some(url.get_ref().as_str()) {
        start + 1 + offset
    } else {
        start
    }
}

/// Where an error in a page file is: `span` of the file's source, with `help`.
fn error_at(
    file: &PageFile,
    span: std::ops::Range<usize>,
    message: String,
    help: String,
) -> ConfigError {
    ConfigError::new(&file.path, message)
        .at(&file.source, span.start)
        .help(help)
}

/// One page, whole: its route, layout, data sources, slots (stable and each canary
/// share) and skeleton, every problem pushed to `errors` (all of a page's at once).
fn build_page(
    source: &SiteSource,
    file: &PageFile,
    components: &ComponentSet,
    errors: &mut Vec<ConfigError>,
) -> Option<Page> {
    let cfg = &file.config;
    let before = errors.len();
    let limits = &source.config.limits;
    let params = check_route_and_layout(source, file, errors);
    let (data, seeded) = data_sources(source, file, &params, errors);
    let slots = bind_slots(source, file, components, None, errors);
    check_slots_placed(source, file, errors);
    // Every problem of the page is reported at once: the slots' and the layout's.
    let slots = slots.filter(|_| errors.len() == before)?;
    let variants = variants(source, file, components, &seeded, &data, slots, errors)?;
    if errors.len() > before {
        return None;
    }
    let skeleton = skeleton(source, file, errors)?;
    Some(Page {
        skeleton,
        metrics: Arc::new(PageMetrics::new(cfg.route.get_ref())),
        route: cfg.route.get_ref().clone(),
        team: cfg.team.clone(),
        layout: cfg.layout.get_ref().clone(),
        class: cfg.cache.class,
        ttl_s: cfg.cache.ttl_s,
        deadline: Duration::from_millis(cfg.deadline_ms.unwrap_or(limits.page_deadline_ms)),
        private_topics: cfg
            .data
            .iter()
            .filter(|d| d.private)
            .map(|d| d.topic.get_ref().clone())
            .collect(),
        data,
        variants,
        head: default_head(&cfg.head),
    })
}

/// `[head]` as the head entries it stands for.
fn default_head(head: &PageHead) -> Vec<HeadEntry> {
    let title = head.title.as_ref().map(|title| HeadEntry {
        tag: "title".into(),
        attrs: Vec::new(),
        content: Some(title.clone()),
    });
    let description = head.description.as_ref().map(|d| HeadEntry {
        tag: "meta".into(),
        attrs: vec![
            ("name".into(), "description".into()),
            ("content".into(), d.clone()),
        ],
        content: None,
    });
    title.into_iter().chain(description).collect()
}

/// The route's parameters (none if the route is invalid), and the layout checked to
/// exist.
fn check_route_and_layout(
    source: &SiteSource,
    file: &PageFile,
    errors: &mut Vec<ConfigError>,
) -> Vec<String> {
    let cfg = &file.config;
    let params = match route_params(cfg.route.get_ref()) {
        Ok(p) => p,
        Err(e) => {
            errors.push(error_at(
                file,
                cfg.route.span(),
                format!("invalid route {:?}: {e}", cfg.route.get_ref()),
                "routes look like `/events/{id}`".into(),
            ));
            Vec::new()
        }
    };
    if !source.layouts.contains(cfg.layout.get_ref()) {
        errors.push(error_at(
            file,
            cfg.layout.span(),
            format!("unknown layout {:?}", cfg.layout.get_ref()),
            format!(
                "use one of the site's layouts: {}",
                source.layouts.names().join(", ")
            ),
        ));
    }
    params
}

/// The page's data sources, and every topic seeded before components run (theirs and
/// `request`).
fn data_sources(
    source: &SiteSource,
    file: &PageFile,
    params: &[String],
    errors: &mut Vec<ConfigError>,
) -> (Vec<DataSource>, BTreeSet<Arc<str>>) {
    let mut data = Vec::new();
    let mut seeded: BTreeSet<Arc<str>> = BTreeSet::from([Arc::from(REQUEST_TOPIC)]);
    for d in &file.config.data {
        let topic = d.topic.get_ref();
        if !is_valid_topic(topic) {
            errors.push(error_at(
                file,
                d.topic.span(),
                format!("invalid topic name {topic:?}"),
                "topics are 1 to 64 characters of a-z, 0-9, '-', '_' or '.'".into(),
            ));
            continue;
        }
        if !seeded.insert(Arc::from(topic.as_str())) {
            errors.push(error_at(
                file,
                d.topic.span(),
                format!("topic {topic:?} is already provided on this page"),
                format!("give this data source another topic (`{REQUEST_TOPIC}` is reserved)"),
            ));
            continue;
        }
        if let Some(source) = data_source(source, file, d, params, errors) {
            data.push(source);
        }
    }
    (data, seeded)
}

/// One data source: its URL template parsed, and to whom it passes the user.
fn data_source(
    source: &SiteSource,
    file: &PageFile,
    d: &DataSourceConfig,
    params: &[String],
    errors: &mut Vec<ConfigError>,
) -> Option<DataSource> {
    let topic = d.topic.get_ref();
    let url = UrlTemplate::parse(
        d.url.get_ref(),
        |b| source.config.bffs.get(b).cloned(),
        params,
    );
    let identity = match (d.identity, leading_bff(d.url.get_ref())) {
        (false, _) => None,
        (true, Some(bff)) => Some(Arc::from(bff)),
        (true, None) => {
            // +1: the span starts at the opening quote of the TOML string.
            errors.push(error_at(
                file,
                d.url.span().start + 1..d.url.span().end,
                format!(
                    "data source {topic:?} receives the user's identity, but its url does not start with a BFF"
                ),
                "start the url with `{bff.NAME}`: the user's assertion goes only to a BFF the gateway made it good for (NAME in its [delegates])".into(),
            ));
            None
        }
    };
    match url {
        Ok(url) => Some(DataSource {
            metrics: SourceMetrics::new(topic),
            topic: Arc::from(topic.as_str()),
            url,
            deadline: Duration::from_millis(d.deadline_ms),
            private: d.private,
            identity,
        }),
        Err(e) => {
            errors.push(
                ConfigError::new(&file.path, e.message)
                    .at(&file.source, url_error_offset(file, &d.url, e.offset))
                    .help(e.help),
            );
            None
        }
    }
}

/// Every slot of the page is placed by its layout.
fn check_slots_placed(source: &SiteSource, file: &PageFile, errors: &mut Vec<ConfigError>) {
    let cfg = &file.config;
    let Some(placed) = source.layouts.placed_slots(cfg.layout.get_ref()) else {
        return;
    };
    for s in &cfg.slots {
        if !placed.contains(s.name.get_ref()) {
            errors.push(error_at(
                file,
                s.name.span(),
                format!(
                    "layout {:?} does not place slot {:?}",
                    cfg.layout.get_ref(),
                    s.name.get_ref()
                ),
                format!(
                    "add `{{{{ slots.{} }}}}` to the layout, or remove the slot",
                    s.name.get_ref()
                ),
            ));
        }
    }
}

/// The page's variants: all stable (from `stable`, the slots already bound), then one
/// per distinct canary share among its components. A request whose draw is under a
/// share gets the canary of every component with at least that share, so a page is
/// always one whole, planned and checked combination.
fn variants(
    source: &SiteSource,
    file: &PageFile,
    components: &ComponentSet,
    seeded: &BTreeSet<Arc<str>>,
    data: &[DataSource],
    stable: Vec<Slot>,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<PageVariant>> {
    let mut variants = vec![plan_variant(file, seeded, data, 0, stable, errors)?];
    let shares: BTreeSet<u8> = (file.config.slots.iter())
        .filter_map(|s| components.canary.get(s.component.get_ref()))
        .map(|c| c.percent)
        .filter(|p| *p > 0)
        .collect();
    for share in shares {
        let slots = bind_slots(source, file, components, Some(share), errors)?;
        variants.push(plan_variant(file, seeded, data, share, slots, errors)?);
    }
    Some(variants)
}

/// The page's layout rendered once, with holes.
fn skeleton(
    source: &SiteSource,
    file: &PageFile,
    errors: &mut Vec<ConfigError>,
) -> Option<Skeleton> {
    let cfg = &file.config;
    let names: Vec<&str> = (cfg.slots.iter())
        .map(|s| s.name.get_ref().as_str())
        .collect();
    let text = PageText {
        route: cfg.route.get_ref(),
        team: &cfg.team,
        lang: &source.config.locale,
    };
    match source.layouts.skeleton(cfg.layout.get_ref(), text, &names) {
        Ok(skeleton) => Some(skeleton),
        Err(e) => {
            errors.push(error_at(
                file,
                cfg.layout.span(),
                format!("layout {:?} cannot be composed: {e}", cfg.layout.get_ref()),
                "a layout is rendered once per page with holes for `slots.NAME`, `head` and `scripts`".into(),
            ));
            None
        }
    }
}

/// The page's slots bound to versions: the stable ones, or (`canary_share`) the canary
/// of every component whose canary share is at least that. Each version is checked
/// against the slot's `version` requirement.
fn bind_slots(
    source: &SiteSource,
    file: &PageFile,
    components: &ComponentSet,
    canary_share: Option<u8>,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<Slot>> {
    let limits = &source.config.limits;
    let before = errors.len();
    let mut slots = Vec::new();
    let mut names = HashSet::new();
    for s in &file.config.slots {
        let name = s.name.get_ref();
        if canary_share.is_none() && !names.insert(name.clone()) {
            errors.push(error_at(
                file,
                s.name.span(),
                format!("slot {name:?} appears twice"),
                "give each slot its own name".into(),
            ));
        }
        let Some((component, channel)) =
            slot_version(source, file, components, s, canary_share, errors)
        else {
            continue;
        };
        if !meets_requirement(file, s, component, channel, canary_share, errors) {
            continue;
        }
        let Some(reads) = slot_reads(file, s, component, errors) else {
            continue;
        };
        let Some(memory_bytes) = slot_memory(file, s, component, limits, errors) else {
            continue;
        };
        let props = match &s.props {
            Some(table) => serde_json::to_string(table).unwrap_or_else(|_| "{}".into()),
            None => "{}".into(),
        };
        slots.push(Slot {
            name: name.clone(),
            component: component.clone(),
            channel,
            props,
            fallback: s.fallback.clone(),
            critical: s.critical,
            deadline: Duration::from_millis(s.deadline_ms.unwrap_or(limits.component_deadline_ms)),
            memory_bytes,
            reads,
            span: s.component.span(),
            metrics: SlotMetrics::new(s.component.get_ref()),
            timing_entry: timing_entry(name),
        });
    }
    (errors.len() == before).then_some(slots)
}

fn timing_entry(slot: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let name: String = slot
        .chars()
        .map(|c| if token(c) { c } else { '_' })
        .collect();
    format!(", slot-{name};dur=")
}

/// The version slot `s` gets: its component's canary when `canary_share` calls for
/// it, else the stable version; `None` (and an error) for an unknown component.
fn slot_version<'a>(
    source: &SiteSource,
    file: &PageFile,
    components: &'a ComponentSet,
    s: &SlotConfig,
    canary_share: Option<u8>,
    errors: &mut Vec<ConfigError>,
) -> Option<(&'a Arc<ComponentVersion>, Channel)> {
    let canary = canary_share.and_then(|share| {
        components
            .canary
            .get(s.component.get_ref())
            .filter(|c| c.percent >= share)
    });
    if let Some(c) = canary {
        return Some((&c.version, Channel::Canary));
    }
    if let Some(v) = components.get(s.component.get_ref()) {
        return Some((v, Channel::Stable));
    }
    let from_registry = components.all().any(|v| v.version.is_some());
    let where_ = if from_registry {
        "the registry (`oberon component deploy`)".to_string()
    } else {
        source.components_dir().display().to_string()
    };
    let known: Vec<&str> = components.by_name.keys().map(String::as_str).collect();
    errors.push(error_at(
        file,
        s.component.span(),
        format!(
            "unknown component {:?} in slot {:?}",
            s.component.get_ref(),
            s.name.get_ref()
        ),
        format!(
            "deploy it to {where_}, or use one of: {}",
            if known.is_empty() {
                "(no components loaded)".into()
            } else {
                known.join(", ")
            }
        ),
    ));
    None
}

/// The memory cap of slot `s`'s instances, in bytes: the slot's `memory_mib`, else
/// what `component`'s deploy asked for, else the site's `component_memory_mib`. An
/// error when that is above the site's ceiling. (A canary binding runs only after the
/// stable one succeeded, so each error is reported once.)
fn slot_memory(
    file: &PageFile,
    s: &SlotConfig,
    component: &ComponentVersion,
    limits: &Limits,
    errors: &mut Vec<ConfigError>,
) -> Option<usize> {
    let ceiling = limits.component_memory_ceiling_mib;
    let (mib, asked, help) = match (&s.memory_mib, component.memory_mib) {
        (Some(mib), _) => (
            *mib.get_ref(),
            format!("slot {:?} asks for", s.name.get_ref()),
            "lower the slot's `memory_mib`, or raise `component_memory_ceiling_mib` under [limits] in site.toml",
        ),
        (None, Some(mib)) => (
            mib,
            format!(
                "component {:?}{} was deployed asking for",
                s.component.get_ref(),
                component
                    .version
                    .as_ref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            ),
            "give the slot a `memory_mib` within the ceiling, deploy it asking for less (`--memory-mib`), or raise `component_memory_ceiling_mib` under [limits] in site.toml",
        ),
        (None, None) => return Some(limits.component_memory_mib << 20),
    };
    if mib <= ceiling {
        return Some(mib << 20);
    }
    let span = s
        .memory_mib
        .as_ref()
        .map_or(s.component.span(), |m| m.span());
    errors.push(error_at(
        file,
        span,
        format!("{asked} {mib} MiB per instance, above this site's ceiling of {ceiling} MiB"),
        help.into(),
    ));
    None
}

/// Whether `component` (from `channel`) satisfies slot `s`'s `version` requirement,
/// if it has one; an error when not, or when the requirement does not parse (reported
/// once, for the stable binding).
fn meets_requirement(
    file: &PageFile,
    s: &SlotConfig,
    component: &ComponentVersion,
    channel: Channel,
    canary_share: Option<u8>,
    errors: &mut Vec<ConfigError>,
) -> bool {
    let Some(requirement) = &s.version else {
        return true;
    };
    let name = s.name.get_ref();
    let req = match VersionReq::parse(requirement.get_ref()) {
        Ok(req) => req,
        Err(e) => {
            if canary_share.is_none() {
                errors.push(error_at(
                    file,
                    requirement.span(),
                    format!(
                        "invalid version requirement {:?} in slot {name:?}: {e}",
                        requirement.get_ref()
                    ),
                    "write a semver requirement, such as `version = \"^1.2\"`".into(),
                ));
            }
            return false;
        }
    };
    let Some(version) = component.version.as_ref().filter(|v| !req.matches(v)) else {
        return true;
    };
    let refused = oberon_registry::RegistryError::RequirementNotMet {
        component: s.component.get_ref().clone(),
        channel,
        version: version.clone(),
        requirement: req,
    };
    errors.push(error_at(
        file,
        requirement.span(),
        format!("slot {name:?}: {refused}"),
        format!(
            "this page is not served with {channel} until it matches; roll {channel} back (`oberon component rollback`) or change `version` here"
        ),
    ));
    false
}

/// The topics slot `s` reads: `Some(None)` for all its component subscribes to,
/// `Some(Some(topics))` for its `reads`; `None` (and an error) when `reads` names a
/// topic the component does not subscribe to.
fn slot_reads(
    file: &PageFile,
    s: &SlotConfig,
    component: &ComponentVersion,
    errors: &mut Vec<ConfigError>,
) -> Option<Option<BTreeSet<Arc<str>>>> {
    let Some(reads) = &s.reads else {
        return Some(None);
    };
    let subscribes = &component.component.metadata().subscribes;
    let unknown: Vec<&String> = (reads.get_ref().iter())
        .filter(|t| !subscribes.contains(t.as_str()))
        .collect();
    if !unknown.is_empty() {
        let declared: Vec<&str> = subscribes.iter().map(|t| &**t).collect();
        errors.push(error_at(
            file,
            reads.span(),
            format!(
                "slot {:?} reads {unknown:?}, which component {:?} does not subscribe to",
                s.name.get_ref(),
                s.component.get_ref()
            ),
            format!("`reads` narrows the component's subscriptions: {declared:?}"),
        ));
        return None;
    }
    Some(Some(
        (reads.get_ref().iter())
            .map(|t| Arc::from(t.as_str()))
            .collect(),
    ))
}

/// Plan the bus of one combination of versions.
fn plan_variant(
    file: &PageFile,
    seeded: &BTreeSet<Arc<str>>,
    data: &[DataSource],
    canary_share: u8,
    slots: Vec<Slot>,
    errors: &mut Vec<ConfigError>,
) -> Option<PageVariant> {
    let plan_slots: Vec<PlanSlot<'_>> = slots
        .iter()
        .map(|s| PlanSlot {
            slot: &s.name,
            meta: s.component.component.metadata(),
        })
        .collect();
    match plan(&plan_slots, seeded) {
        Ok(plan) => Some(PageVariant {
            keys: crate::cache::PageKeys::new(
                file.config.route.get_ref(),
                &file.config.team,
                slots
                    .iter()
                    .map(|s| (s.component.name(), s.component.hash.as_str())),
            ),
            canary_share,
            waits: slot_waits(data, &slots),
            slots,
            plan,
        }),
        Err(e) => {
            let with = if canary_share > 0 {
                "with the canary versions: "
            } else {
                ""
            };
            errors.push(
                ConfigError::new(&file.path, format!("{with}{}", e.message))
                    .at(&file.source, slots[e.slot].span.start)
                    .help(e.help),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_draw_picks_the_canaries_whose_share_is_above_it() {
        let variant = |canary_share| PageVariant {
            canary_share,
            slots: Vec::new(),
            plan: BusPlan { stages: Vec::new() },
            keys: crate::cache::PageKeys::new("/", "t", []),
            waits: Vec::new(),
        };
        // Components with canary shares 10 % and 30 %: variants all-stable, both
        // canaries (share >= 10), only the 30 % one.
        let page = Page {
            skeleton: Default::default(),
            route: "/".into(),
            team: "t".into(),
            layout: "l".into(),
            class: Cacheability::Public,
            ttl_s: 0,
            deadline: Duration::from_secs(1),
            data: Vec::new(),
            variants: vec![variant(0), variant(10), variant(30)],
            private_topics: HashSet::new(),
            metrics: Arc::new(PageMetrics::new("/")),
            head: Vec::new(),
        };
        let share = |draw| page.variant(draw).canary_share;
        assert_eq!(share(0.0), 10, "under both shares: both canaries");
        assert_eq!(share(9.99), 10);
        assert_eq!(share(10.0), 30, "under 30 only: the 30 % canary");
        assert_eq!(share(29.9), 30);
        assert_eq!(share(30.0), 0, "above both: stable");
        assert_eq!(share(99.9), 0);
    }

    #[test]
    fn routes() {
        assert_eq!(route_params("/events/{id}").unwrap(), vec!["id"]);
        assert_eq!(route_params("/docs/{*rest}").unwrap(), vec!["rest"]);
        let error = |route| route_params(route).unwrap_err().to_string();
        assert!(error("events").contains("start with"));
        assert!(error("/e/x{id}").contains("mixes"));
        assert!(error("/assets/x").contains("renderer itself"));
        assert!(error("/e/{i d}").contains("parameter name"));
    }
}
