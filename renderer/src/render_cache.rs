//! The render cache: never run the same component on the same inputs twice.
//!
//! A component that declares `reuse` (contract `oberon:component@0.2.0`) promises that
//! its render is a pure function of its inputs: its version, the slot's props, the
//! values of the topics it subscribes to at its turn on the bus, and the request's
//! path, route parameters, query and locale (everything in the context but the
//! request id and the user, and a reusable render never has a user). So the renderer
//! keeps the **whole outcome** of such a render — fragment HTML, head entries and the
//! topics it published, in order — and gives it again when the same inputs come back:
//! its subscribers see exactly what a fresh render would have published.
//!
//! Shaped by what must never happen:
//! - **Another version's output.** The entry remembers the very load of the component
//!   it came from ([`LoadIdentity`]), and a hit must be that load: a hot swap, a
//!   deploy or a rollback can never be answered with the previous version's fragment,
//!   whatever the versions' hashes (the hash is in the key too, so the lookup misses
//!   first).
//! - **A collision.** The key is XXH3-128 of the inputs with a seed drawn at start
//!   (so inputs cannot be crafted against it), and every entry keeps its inputs and
//!   compares them on a hit. Topic values are `Arc`s shared with the bus, so a hit
//!   usually compares pointers.
//! - **Anything personal.** Never for a request with a user, with `Cookie` or
//!   `Authorization`, on a page that is personal by configuration or by a data
//!   source's answer, for a `personal` component, or for a canary variant
//!   ([`Reuse::for_request`]).
//! - **A failure.** Only successful renders are kept; a fallback is never reused.
//! - **Unbounded memory.** moka with a weigher (an entry weighs what it keeps alive,
//!   inputs included) and `[render_cache] max_mib`; an entry lives at most its
//!   component's declared seconds (per-entry expiry). `max_mib = 0`: off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_128_with_seed;

use crate::bus::BusSnapshot;
use crate::component::{Cacheability, ComponentMetadata, Fragment, RequestContext};
use crate::component_set::ComponentVersion;
use crate::engine::{Budget, ComponentEngine, LoadIdentity, RenderResult};

/// What an entry costs besides its strings: the entry, the key, moka's bookkeeping.
const ENTRY_OVERHEAD_BYTES: usize = 256;

/// Whether a request's slots may be reused, decided once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    Allowed,
    Never(NoReuse),
}

/// Why a request renders every slot afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReuse {
    /// `[render_cache] max_mib = 0`.
    Off,
    /// The gateway verified a user for it.
    SignedIn,
    /// It carries `Cookie` or `Authorization`: its page is personal.
    Credentials,
    /// The page is `personal` by configuration, or a data source answered `private`.
    PersonalPage,
    /// The page's variant has a canary version.
    Canary,
}

impl Reuse {
    /// The rules of the render cache for one request. `has_credentials`: the request
    /// carries `Cookie` or `Authorization`. `page_class`: the page's configured class
    /// raised by its data sources' answers.
    pub fn for_request(
        cache: &RenderCache,
        ctx: &RequestContext,
        has_credentials: bool,
        page_class: Cacheability,
        canary: bool,
    ) -> Reuse {
        let never = if !cache.is_on() {
            NoReuse::Off
        } else if ctx.user.is_some() {
            NoReuse::SignedIn
        } else if has_credentials {
            NoReuse::Credentials
        } else if page_class == Cacheability::Personal {
            NoReuse::PersonalPage
        } else if canary {
            NoReuse::Canary
        } else {
            return Reuse::Allowed;
        };
        Reuse::Never(never)
    }
}

/// A slot's render, fresh or reused.
pub struct SlotRender {
    /// What the engine's render returned, or what it returned for the same inputs
    /// before: the same fragment and the same published topics, in the same order.
    pub result: RenderResult,
    pub reused: bool,
}

/// The render cache of one renderer. See the module's documentation.
pub struct RenderCache {
    /// `None` when off.
    entries: Option<moka::sync::Cache<u128, Arc<Entry>>>,
    max_bytes: u64,
    seed: u64,
    reused: AtomicU64,
    rendered: AtomicU64,
}

/// A kept outcome and the inputs it was rendered from.
struct Entry {
    inputs: Inputs,
    fragment: Fragment,
    published: Vec<(Arc<str>, Arc<str>)>,
    /// The component's declared `reuse`.
    keep_for: Duration,
    weight: u32,
}

/// What a render depended on, kept to check a hit against (beside the key's hash).
struct Inputs {
    load: LoadIdentity,
    component: Arc<str>,
    version_hash: String,
    props: String,
    /// Each subscribed topic, in name order, and its value (`None`: absent).
    topics: Vec<(Arc<str>, Option<Arc<str>>)>,
    path: String,
    params: Vec<(String, String)>,
    query: Vec<(String, String)>,
    locale: String,
}

/// The inputs of a render about to happen, borrowed.
struct InputsRef<'a> {
    version: &'a ComponentVersion,
    props: &'a str,
    bus: &'a BusSnapshot,
    ctx: &'a RequestContext,
}

impl InputsRef<'_> {
    fn meta(&self) -> &ComponentMetadata {
        self.version.component.metadata()
    }

    fn topics(&self) -> impl Iterator<Item = (&Arc<str>, Option<&Arc<str>>)> {
        self.meta()
            .subscribes
            .iter()
            .map(|topic| (topic, self.bus.get(topic)))
    }

    /// XXH3-128 over every input, each length-prefixed (so no two different inputs
    /// are the same byte stream) and an absent topic distinct from any value. The
    /// inputs are laid end to end and hashed in one call: a page's slots have dozens
    /// of small inputs, and feeding each through the streaming state cost more than
    /// hashing the bytes.
    fn key(&self, seed: u64) -> u128 {
        // A few kilobytes hold a typical slot's inputs without growing.
        let mut bytes = Vec::with_capacity(4096);
        let mut field = |b: &[u8]| {
            bytes.extend_from_slice(&(b.len() as u64).to_le_bytes());
            bytes.extend_from_slice(b);
        };
        field(self.meta().name.as_bytes());
        field(self.version.hash.as_bytes());
        field(self.props.as_bytes());
        for (topic, value) in self.topics() {
            field(topic.as_bytes());
            match value {
                None => field(b"\x00absent"),
                Some(v) => {
                    field(b"\x01");
                    field(v.as_bytes());
                }
            }
        }
        field(self.ctx.path.as_bytes());
        for (list, tag) in [(&self.ctx.params, b"params"), (&self.ctx.query, b"query!")] {
            field(tag);
            field(&(list.len() as u64).to_le_bytes());
            for (k, v) in list {
                field(k.as_bytes());
                field(v.as_bytes());
            }
        }
        field(self.ctx.locale.as_bytes());
        xxh3_128_with_seed(&bytes, seed)
    }

    /// Whether `kept` are these inputs, exactly, for this very load of the component.
    fn matches(&self, kept: &Inputs) -> bool {
        kept.load.is(&self.version.component)
            && *kept.component == *self.meta().name
            && kept.version_hash == self.version.hash
            && kept.props == self.props
            && kept.topics.len() == self.meta().subscribes.len()
            && kept
                .topics
                .iter()
                .zip(self.topics())
                .all(|((kt, kv), (t, v))| {
                    kt == t
                        && match (kv, v) {
                            (None, None) => true,
                            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                            _ => false,
                        }
                })
            && kept.path == self.ctx.path
            && kept.params == self.ctx.params
            && kept.query == self.ctx.query
            && kept.locale == self.ctx.locale
    }

    fn to_owned(&self) -> Inputs {
        Inputs {
            load: self.version.component.identity(),
            component: self.meta().name.clone(),
            version_hash: self.version.hash.clone(),
            props: self.props.to_string(),
            topics: self
                .topics()
                .map(|(t, v)| (t.clone(), v.cloned()))
                .collect(),
            path: self.ctx.path.clone(),
            params: self.ctx.params.clone(),
            query: self.ctx.query.clone(),
            locale: self.ctx.locale.clone(),
        }
    }
}

impl Inputs {
    fn bytes(&self) -> usize {
        let pairs =
            |v: &[(String, String)]| v.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        self.component.len()
            + self.version_hash.len()
            + self.props.len()
            + self
                .topics
                .iter()
                .map(|(t, v)| t.len() + v.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
            + self.path.len()
            + pairs(&self.params)
            + pairs(&self.query)
            + self.locale.len()
    }
}

impl Entry {
    fn new(
        inputs: Inputs,
        fragment: Fragment,
        published: Vec<(Arc<str>, Arc<str>)>,
        keep_for: Duration,
    ) -> Self {
        let fragment_bytes = fragment.html.len()
            + fragment
                .head
                .iter()
                .map(|h| {
                    h.tag.len()
                        + h.attrs
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>()
                        + h.content.as_ref().map_or(0, String::len)
                })
                .sum::<usize>();
        let published_bytes: usize = published.iter().map(|(t, v)| t.len() + v.len()).sum();
        let weight = ENTRY_OVERHEAD_BYTES + inputs.bytes() + fragment_bytes + published_bytes;
        Self {
            inputs,
            fragment,
            published,
            keep_for,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        }
    }
}

/// Each entry lives its component's declared `reuse`, from its (last) insertion.
struct KeepFor;

impl moka::Expiry<u128, Arc<Entry>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &u128,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }

    fn expire_after_update(
        &self,
        _key: &u128,
        value: &Arc<Entry>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

/// The render cache's counters and size, for `/_oberon/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RenderCacheStats {
    pub enabled: bool,
    /// Slots answered from the cache since start.
    pub reused: u64,
    /// Slots the engine rendered since start (reusable or not).
    pub rendered: u64,
    pub entries: u64,
    /// What the entries weigh, in bytes; never above `max_bytes` once moka has
    /// caught up with its pending evictions.
    pub weighted_bytes: u64,
    pub max_bytes: u64,
}

impl RenderCache {
    /// A cache of at most `max_mib` MiB; off for 0.
    pub fn new(max_mib: u64) -> Self {
        let max_bytes = max_mib << 20;
        let entries = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_key: &u128, entry: &Arc<Entry>| entry.weight)
                .expire_after(KeepFor)
                .build()
        });
        Self {
            entries,
            max_bytes,
            seed: rand::random(),
            reused: AtomicU64::new(0),
            rendered: AtomicU64::new(0),
        }
    }

    pub fn is_on(&self) -> bool {
        self.entries.is_some()
    }

    /// Render `version` for one slot, or reuse the outcome of an earlier render of it
    /// with the same inputs when `reuse` allows and the component declared `reuse`
    /// (and is not `personal`). A fresh successful render of such a component is kept.
    #[allow(clippy::too_many_arguments)]
    pub async fn render_or_reuse(
        &self,
        engine: &ComponentEngine,
        reuse: Reuse,
        version: &ComponentVersion,
        ctx: &RequestContext,
        props: &str,
        bus: &Arc<BusSnapshot>,
        budget: Budget,
    ) -> SlotRender {
        let meta = version.component.metadata();
        let cache = match (&self.entries, reuse, meta.reuse) {
            (Some(cache), Reuse::Allowed, Some(keep_for))
                if meta.cacheability != Cacheability::Personal =>
            {
                Some((cache, keep_for))
            }
            _ => None,
        };
        let Some((cache, keep_for)) = cache else {
            return self.fresh(engine, version, ctx, props, bus, budget).await;
        };
        let started = Instant::now();
        let inputs = InputsRef {
            version,
            props,
            bus,
            ctx,
        };
        let key = inputs.key(self.seed);
        if let Some(entry) = cache.get(&key)
            && inputs.matches(&entry.inputs)
        {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return SlotRender {
                result: RenderResult {
                    outcome: Ok(entry.fragment.clone()),
                    published: entry.published.clone(),
                    elapsed: started.elapsed(),
                },
                reused: true,
            };
        }
        let rendered = self.fresh(engine, version, ctx, props, bus, budget).await;
        // Only a success is kept: a failure's fallback must not outlive its cause.
        if let Ok(fragment) = &rendered.result.outcome {
            let entry = Entry::new(
                inputs.to_owned(),
                fragment.clone(),
                rendered.result.published.clone(),
                keep_for,
            );
            cache.insert(key, Arc::new(entry));
        }
        rendered
    }

    async fn fresh(
        &self,
        engine: &ComponentEngine,
        version: &ComponentVersion,
        ctx: &RequestContext,
        props: &str,
        bus: &Arc<BusSnapshot>,
        budget: Budget,
    ) -> SlotRender {
        self.rendered.fetch_add(1, Ordering::Relaxed);
        SlotRender {
            result: engine
                .render(&version.component, ctx, props, bus, budget)
                .await,
            reused: false,
        }
    }

    /// Counters and size. Runs moka's pending maintenance first, so the size is
    /// exact (and within the bound).
    pub fn stats(&self) -> RenderCacheStats {
        let (entries, weighted_bytes) = match &self.entries {
            None => (0, 0),
            Some(cache) => {
                cache.run_pending_tasks();
                (cache.entry_count(), cache.weighted_size())
            }
        };
        RenderCacheStats {
            enabled: self.is_on(),
            reused: self.reused.load(Ordering::Relaxed),
            rendered: self.rendered.load(Ordering::Relaxed),
            entries,
            weighted_bytes,
            max_bytes: self.max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::EngineLimits;

    fn ctx() -> RequestContext {
        RequestContext {
            path: "/events/42".into(),
            params: vec![("id".into(), "42".into())],
            query: vec![("qty".into(), "2".into())],
            locale: "en-GB".into(),
            user: None,
            request_id: Arc::from("r-1"),
        }
    }

    #[test]
    fn who_may_reuse() {
        let on = RenderCache::new(1);
        let anonymous = ctx();
        let allowed = Reuse::for_request;
        assert_eq!(
            allowed(&on, &anonymous, false, Cacheability::Public, false),
            Reuse::Allowed
        );
        assert_eq!(
            allowed(&on, &anonymous, false, Cacheability::Volatile, false),
            Reuse::Allowed
        );
        assert_eq!(
            allowed(
                &RenderCache::new(0),
                &anonymous,
                false,
                Cacheability::Public,
                false
            ),
            Reuse::Never(NoReuse::Off)
        );
        let mut signed_in = ctx();
        signed_in.user = Some(crate::component::User {
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            roles: vec![],
        });
        assert_eq!(
            allowed(&on, &signed_in, false, Cacheability::Public, false),
            Reuse::Never(NoReuse::SignedIn)
        );
        assert_eq!(
            allowed(&on, &anonymous, true, Cacheability::Public, false),
            Reuse::Never(NoReuse::Credentials)
        );
        assert_eq!(
            allowed(&on, &anonymous, false, Cacheability::Personal, false),
            Reuse::Never(NoReuse::PersonalPage)
        );
        assert_eq!(
            allowed(&on, &anonymous, false, Cacheability::Public, true),
            Reuse::Never(NoReuse::Canary)
        );
    }

    async fn load(engine: &ComponentEngine, crate_name: &str, name: &str) -> ComponentVersion {
        let wasm = std::fs::read(oberon_test_artifacts::artifact(crate_name).wasm())
            .expect("built component");
        let version = oberon_registry::Version::new(1, 0, 0);
        crate::component_set::load_artifact(engine, name, &version, &wasm, &BTreeMap::new())
            .await
            .expect("loads")
    }

    fn inputs<'a>(
        version: &'a ComponentVersion,
        bus: &'a BusSnapshot,
        ctx: &'a RequestContext,
        props: &'a str,
    ) -> InputsRef<'a> {
        InputsRef {
            version,
            props,
            bus,
            ctx,
        }
    }

    #[tokio::test]
    async fn the_key_covers_every_input_and_a_hit_checks_them_and_the_load() {
        let engine = ComponentEngine::new(EngineLimits {
            max_instances: 4,
            ..EngineLimits::default()
        })
        .expect("engine");
        // chain-sink subscribes `n` and `n2`.
        let sink = load(&engine, "chain-sink", "chain-sink").await;
        let bus = |n: Option<&str>| {
            let mut bus = BusSnapshot::default();
            if let Some(n) = n {
                bus.insert(Arc::from("n"), Arc::from(n));
            }
            // Not subscribed: never part of the key.
            bus.insert(Arc::from("other"), Arc::from("1"));
            bus
        };
        let base_bus = bus(Some("1"));
        let base_ctx = ctx();
        let base = inputs(&sink, &base_bus, &base_ctx, "{}");
        let key = base.key(7);
        let (same_bus, same_ctx) = (bus(Some("1")), ctx());
        assert_eq!(key, inputs(&sink, &same_bus, &same_ctx, "{}").key(7));
        assert_ne!(key, base.key(8), "the seed takes part");

        let mut other_bus = bus(Some("1"));
        other_bus.insert(Arc::from("other"), Arc::from("2"));
        assert_eq!(key, inputs(&sink, &other_bus, &base_ctx, "{}").key(7));

        let mut ctxs = Vec::new();
        for change in 0..5 {
            let mut c = ctx();
            match change {
                0 => c.path = "/events/43".into(),
                1 => c.params[0].1 = "43".into(),
                2 => c.query.push(("type".into(), "vip".into())),
                3 => c.locale = "fr-FR".into(),
                _ => c.query[0] = ("qty2".into(), "".into()),
            }
            ctxs.push(c);
        }
        let absent = bus(None);
        let null = bus(Some("null"));
        let two = bus(Some("2"));
        let different = [
            inputs(&sink, &two, &base_ctx, "{}"),
            inputs(&sink, &absent, &base_ctx, "{}"),
            inputs(&sink, &null, &base_ctx, "{}"),
            inputs(&sink, &base_bus, &base_ctx, "{\"a\":1}"),
            inputs(&sink, &base_bus, &ctxs[0], "{}"),
            inputs(&sink, &base_bus, &ctxs[1], "{}"),
            inputs(&sink, &base_bus, &ctxs[2], "{}"),
            inputs(&sink, &base_bus, &ctxs[3], "{}"),
            inputs(&sink, &base_bus, &ctxs[4], "{}"),
        ];
        let kept = base.to_owned();
        assert!(base.matches(&kept));
        for (i, d) in different.iter().enumerate() {
            assert_ne!(d.key(7), key, "change {i} is in the key");
            assert!(!d.matches(&kept), "change {i} is checked on a hit");
        }
        // One byte changed in a long value changes the key.
        let long = "x".repeat(1000);
        let long_too = format!("{}y{}", &long[..500], &long[501..]);
        let (long_bus, long_too_bus, long_again) =
            (bus(Some(&long)), bus(Some(&long_too)), bus(Some(&long)));
        let long_key = inputs(&sink, &long_bus, &base_ctx, "{}").key(7);
        assert_eq!(long_key, inputs(&sink, &long_again, &base_ctx, "{}").key(7));
        assert_ne!(
            long_key,
            inputs(&sink, &long_too_bus, &base_ctx, "{}").key(7)
        );
        assert_ne!(long_key, key);

        // The request id is not an input.
        let mut other_id = ctx();
        other_id.request_id = Arc::from("r-2");
        assert_eq!(inputs(&sink, &base_bus, &other_id, "{}").key(7), key);

        // The same bytes loaded again are another load: never a hit.
        let again = load(&engine, "chain-sink", "chain-sink").await;
        assert_eq!(again.hash, sink.hash);
        let reloaded = InputsRef {
            version: &again,
            props: "{}",
            bus: &base_bus,
            ctx: &base_ctx,
        };
        assert_eq!(reloaded.key(7), key, "same hash, same key");
        assert!(!reloaded.matches(&kept), "but not the same load");
    }

    #[tokio::test]
    async fn reuse_is_only_for_declared_components_and_successes() {
        let engine = ComponentEngine::new(EngineLimits {
            max_instances: 4,
            ..EngineLimits::default()
        })
        .expect("engine");
        let cache = RenderCache::new(1);
        let source = load(&engine, "chain-source", "chain-source").await;
        let sink = load(&engine, "chain-sink", "chain-sink").await;
        assert_eq!(source.component.contract_version(), "0.2.0");
        assert_eq!(sink.component.contract_version(), "0.1.0");
        assert_eq!(sink.component.metadata().reuse, None);
        let bus = Arc::new(BusSnapshot::default());
        let ctx = ctx();
        let render = |version, reuse, props| {
            cache.render_or_reuse(
                &engine,
                reuse,
                version,
                &ctx,
                props,
                &bus,
                Budget {
                    deadline: Instant::now() + Duration::from_secs(2),
                    memory_bytes: 16 << 20,
                },
            )
        };
        let first = render(&source, Reuse::Allowed, "{\"n\":3}").await;
        assert!(!first.reused);
        let second = render(&source, Reuse::Allowed, "{\"n\":3}").await;
        assert!(second.reused);
        assert_eq!(
            second.result.outcome.as_ref().expect("ok").html,
            first.result.outcome.as_ref().expect("ok").html
        );
        assert_eq!(second.result.published, first.result.published);
        assert_eq!(
            second.result.published,
            vec![(Arc::from("n"), Arc::from("3"))]
        );
        // Not for a request that may not reuse.
        let never = Reuse::Never(NoReuse::Credentials);
        assert!(!render(&source, never, "{\"n\":3}").await.reused);
        // Not for a 0.1.0 component.
        assert!(!render(&sink, Reuse::Allowed, "{}").await.reused);
        assert!(!render(&sink, Reuse::Allowed, "{}").await.reused);
        // A failure is not kept.
        for _ in 0..2 {
            let failed = render(&source, Reuse::Allowed, "{\"fail\":true}").await;
            assert!(!failed.reused && failed.result.outcome.is_err());
        }
        let stats = cache.stats();
        assert_eq!((stats.reused, stats.rendered, stats.entries), (1, 6, 1));
        assert!(stats.weighted_bytes > ENTRY_OVERHEAD_BYTES as u64);
    }
}
