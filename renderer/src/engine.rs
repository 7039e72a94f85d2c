//! The wasmtime host: one [`ComponentEngine`] per process, one [`LoadedComponent`] per
//! component version, one fresh `Store` per component per request.
//!
//! Shaped for the two numbers that matter on the hot path: instantiation cost (pooling
//! allocator, memory kept resident, `InstancePre` built once at load) and containment
//! (a memory cap per store, a wall-clock deadline enforced through epoch interruption,
//! WASI linked with an empty context). Anything a guest does wrong — trap, panic, loop,
//! exhaust memory — comes back as a [`ComponentError`] for that one slot.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, InstancePre, Linker, ResourceTable,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, Contract, ContractError};
use crate::bus::{BusSnapshot, ComponentBus};
use crate::code_cache::{CodeCache, ContentDigest};
use crate::component::{ComponentMetadata, Described, Fragment, MetadataError, RequestContext};

/// How often the engine's epoch advances. A running guest checks its deadline (and yields
/// to the async runtime) once per tick, so this is the granularity of deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits that apply to every component instance this engine creates.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Linear memory cap of a component instance whose render asks for none, in bytes.
    pub memory_bytes: usize,
    /// The most any one instance may be given ([`Budget::memory_bytes`] is held to it),
    /// in bytes: the size of the pool's memory slots. A slot reserves address space,
    /// not memory; what an instance touches is resident while it lives, and at most
    /// `linear_memory_keep_resident` of it after.
    pub memory_ceiling_bytes: usize,
    /// Component instances that may be alive at once (across all requests). Past this,
    /// instantiation fails and the slot falls back rather than the process growing.
    pub max_instances: u32,
    /// Freed instance slots kept for the module that used them, its memory image still
    /// mapped, so that a page rendering different components one after another does not
    /// map each one's image again (see the pool's settings in [`ComponentEngine::new`]).
    pub warm_slots: u32,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 << 20,
            memory_ceiling_bytes: 256 << 20,
            max_instances: 256,
            warm_slots: 32,
        }
    }
}

/// What one render may use: its time and its instance's memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// When the render is stopped and its slot falls back.
    pub deadline: Instant,
    /// Linear memory cap of the render's instance, in bytes, held to
    /// [`EngineLimits::memory_ceiling_bytes`].
    pub memory_bytes: usize,
}

/// Why a component did not produce a fragment. Every variant is contained to one slot.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("component {component}: did not finish within its {deadline_ms} ms deadline")]
    Timeout {
        component: Arc<str>,
        deadline_ms: u128,
    },
    #[error("component {component}: trapped: {message}")]
    Trap {
        component: Arc<str>,
        message: String,
        /// The instance had asked for memory past its cap before it trapped: out of
        /// memory, most likely the trap's cause.
        out_of_memory: bool,
    },
    #[error("component {component}: returned an error: {message}")]
    Guest {
        component: Arc<str>,
        message: String,
    },
    #[error("component {component}: could not be instantiated: {message}")]
    Instantiate {
        component: Arc<str>,
        message: String,
    },
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error("{0}")]
    Contract(#[from] ContractError),
    #[error("does not implement the oberon:component@{version} world: {message}")]
    World {
        version: &'static str,
        message: String,
    },
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("invalid metadata: {0}")]
    Metadata(MetadataError),
}

/// Per-store host state: what one component instance may see and do.
pub(crate) struct HostState {
    /// Built on a guest's first WASI call: most renders make none, and building a
    /// context (it seeds random generators) is a measurable share of a render.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limits: CappedMemory,
    pub(crate) bus: ComponentBus,
    pub(crate) component: Arc<str>,
    pub(crate) request_id: Arc<str>,
    deadline: Instant,
    /// The last line the guest logged at error level: a trap says only that the guest
    /// trapped, and a guest that dies on an exception it cannot return (Python's
    /// `describe`) logs its reason first.
    last_error: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(empty_wasi_ctx),
            table: &mut self.table,
        }
    }
}

/// A store's limits, remembering whether a memory growth was refused: a guest that
/// traps after that ran out of memory (its allocator gives up), which the metrics
/// tell apart from other traps.
struct CappedMemory {
    limits: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for CappedMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The process-wide engine: compiler, instance pool, linker and epoch ticker.
pub struct ComponentEngine {
    engine: Engine,
    linker: Linker<HostState>,
    limits: EngineLimits,
    ticker_stop: Arc<AtomicBool>,
    code_cache: Option<Arc<CodeCache>>,
}

/// The instance pool's use and residency, for `/_oberon/status` (a soak watches
/// these to tell a leak from slots filling).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    pub instances_in_use: u64,
    pub memories_in_use: usize,
    pub memories_unused_warm: u32,
    pub memory_bytes_resident_unused: usize,
    pub table_bytes_resident_unused: usize,
    /// `None` where stacks are not pooled.
    pub stack_bytes_resident_unused: Option<usize>,
}

impl Drop for ComponentEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl ComponentEngine {
    pub fn new(limits: EngineLimits) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        // A compiled Rust component is one core module plus the small shim modules
        // wit-component adds for lowering imports; these bounds leave room for that.
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 8)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 8)
            .total_stacks(limits.max_instances)
            .max_memory_size(limits.memory_ceiling_bytes.max(limits.memory_bytes))
            .max_memories_per_component(4)
            .max_core_instances_per_component(16)
            .max_tables_per_component(16)
            // Memory kept resident is reset with memset on reuse instead of being
            // madvised away and page-faulted back in by the next instance. The reset
            // covers a guest's whole accessible memory (stack, data and heap), so its
            // cost grows with the guest's stack size: Rust's default 1 MiB stack made
            // the memset half of an instance+render. Our components link a 16 KiB
            // stack (components/.cargo/config.toml), so stack, data and heap fit in
            // one 64 KiB page: 1 MiB -> 32 KiB took 33 -> 15 µs, 32 -> 16 KiB halved
            // the reset again for components that use serde_json.
            // PAGEMAP_SCAN (reset only written pages) measured slower here; not used.
            // For big guests it is the one pool setting that helps, and still not
            // worth it: `bench --bench languages` (debug build, loaded 2-core
            // machine), fresh instance + render, criterion --quick, baseline ->
            // pagemap_scan on with 1 MiB kept: JS 792 -> 363 µs, JS greeting
            // 985 -> 552 µs, Python 1.99 -> 1.72 ms, but Rust 38 -> 44 µs
            // (event-details) and 33 -> 37 µs (misbehave); with 32 MiB kept, Rust
            // +50 % and Python +12 %. Python's cost is mostly instantiation itself
            // (perf: resolving funcrefs between its many core modules, then page
            // faults), which no pool setting changes.
            //
            // Measured again with warm slots (release, `bench --bench languages`,
            // medians in a row, pagemap_scan off -> on): promo-banner (JS) 869 -> 403 µs,
            // delivery-options (Python) 1.71 -> 1.62 ms, the Rust ones +15 to +65 %.
            // Still not used: Rust must not get slower. A second pool (engine) for
            // the big guests alone would give them this.
            //
            // What a freed slot keeps resident stays resident for the life of the
            // process, so it is bounded twice. Per slot: 1 MiB of memory, beyond our
            // components' one 64 KiB page and a few pages of heap growth (4 MiB let a
            // guest that grew to its cap keep 4 MiB per slot it ever used). And in
            // slots: past `warm_slots` unused ones, none is taken fresh while a freed
            // one exists (a module's own freed slots always come first), so the slots
            // ever used are the most instances alive at once plus `warm_slots`. wasmtime's
            // default, 100, let every deploy's new modules take fresh slots: the
            // renderer's RSS grew 27 % over a 30-minute soak (bench/soak). With none,
            // RSS was flat, but a page renders different components one after
            // another, and each instance then took a slot another module had used and
            // mapped its own memory image into it again. `cargo bench --bench
            // languages` (release) measures both in one run, fresh instance + render
            // of the demo's components, medians of 400 interleaved, none -> 32 warm
            // slots: event-details 144 -> 55 µs, ticket-picker 91 -> 48 µs,
            // cart-summary 75 -> 36 µs, promo-banner (JS) 1.38 -> 1.20 ms,
            // delivery-options (Python) 2.31 -> 2.16 ms; in a row, unchanged (9-14 µs,
            // 0.9 and 1.8 ms). 32 is a slot per component of a large page, each
            // keeping its module's image mapped: at most 32 × (1 MiB + 64 KiB + 512
            // KiB) more resident, far less for Rust guests, which touch a few pages.
            // wasmtime shares them out among its pool's shards, one per core (at most
            // 16), each thread allocating from its own: 16 per worker here.
            .linear_memory_keep_resident(1 << 20)
            .max_unused_warm_slots(limits.warm_slots.min(limits.max_instances))
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(512 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Every contract version served, side by side: their interfaces have distinct
        // versioned names, so each component links against the one it was built for.
        bindings::v0_1::Component::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
        bindings::v0_2::Component::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone())?;
        Ok(Self {
            engine,
            linker,
            limits,
            ticker_stop,
            code_cache: None,
        })
    }

    /// Keep compiled components in `dir` (created if missing), so that the next
    /// process with the same engine loads them without compiling.
    pub fn with_code_cache(mut self, dir: &Path) -> std::io::Result<Self> {
        self.code_cache = Some(Arc::new(CodeCache::open(dir, &self.engine)?));
        Ok(self)
    }

    pub fn code_cache(&self) -> Option<&CodeCache> {
        self.code_cache.as_deref()
    }

    pub fn limits(&self) -> &EngineLimits {
        &self.limits
    }

    /// A render's budget until `deadline`, with the default memory cap.
    pub fn budget(&self, deadline: Instant) -> Budget {
        Budget {
            deadline,
            memory_bytes: self.limits.memory_bytes,
        }
    }

    /// The instance pool now: what is in use, and what freed slots keep resident.
    pub fn pool(&self) -> PoolStats {
        let Some(m) = self.engine.pooling_allocator_metrics() else {
            return PoolStats::default();
        };
        PoolStats {
            instances_in_use: m.component_instances(),
            memories_in_use: m.memories(),
            memories_unused_warm: m.unused_warm_memories(),
            memory_bytes_resident_unused: m.unused_memory_bytes_resident(),
            table_bytes_resident_unused: m.unused_table_bytes_resident(),
            stack_bytes_resident_unused: m.unused_stack_bytes_resident(),
        }
    }

    /// Compile a component, link it, and read its metadata by calling `describe` once.
    /// Everything that can be done before a request arrives is done here.
    pub async fn load(&self, wasm: &[u8]) -> Result<LoadedComponent, LoadError> {
        // Compiling takes up to seconds of CPU: never on an async worker thread, where
        // it would hold up every request scheduled there.
        let (engine, cache, wasm) = (self.engine.clone(), self.code_cache.clone(), wasm.to_vec());
        let (component, digest) = tokio::task::spawn_blocking(move || {
            let digest = ContentDigest::of(&wasm);
            let component = match &cache {
                Some(cache) => cache.load(&engine, &wasm, &digest).map(|(c, _)| c),
                None => Component::new(&engine, &wasm),
            };
            component.map(|c| (c, digest))
        })
        .await
        .map_err(|e| LoadError::Compile(format!("the compilation did not finish: {e}")))?
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let imports = component.component_type();
        let contract = Contract::of_imports(imports.imports(&self.engine).map(|(name, _)| name))?
            // Without any `oberon:component` import it cannot be a component of ours;
            // the oldest world's check says what is missing.
            .unwrap_or(Contract::V0_1);
        let world = |message: String| LoadError::World {
            version: contract.version(),
            message,
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| world(format!("{e:#}")))?;
        let render_export = component
            .get_export_index(None, "render")
            .ok_or_else(|| world("no `render` export".into()))?;

        let name: Arc<str> = Arc::from("(loading)");
        // Which slots a version will fill, and with how much memory, is not known
        // yet: `describe` may use up to the ceiling.
        let mut store = self.store(
            name,
            Arc::from("load"),
            ComponentBus::closed(),
            Budget {
                deadline: Instant::now() + Duration::from_secs(5),
                memory_bytes: self.limits.memory_ceiling_bytes,
            },
        );
        // The guest's own reason, when it logged one before it trapped, comes first.
        let describe_failed = |e: wasmtime::Error, logged: Option<String>| {
            LoadError::Describe(match logged {
                Some(reason) => format!("{reason} (its last error log line); then {e:#}"),
                None => format!("{e:#}"),
            })
        };
        // The generated bindings type-check every export of the component against
        // its contract's world, once, here.
        // The same steps for each version, through that version's typed bindings.
        macro_rules! describe {
            ($v:ident) => {{
                let pre = bindings::$v::ComponentPre::new(pre.clone())
                    .map_err(|e| world(format!("{e:#}")))?;
                let instance = match pre.instantiate_async(&mut store).await {
                    Ok(instance) => instance,
                    Err(e) => return Err(describe_failed(e, store.data_mut().last_error.take())),
                };
                match instance.call_describe(&mut store).await {
                    Ok(described) => described.into(),
                    Err(e) => return Err(describe_failed(e, store.data_mut().last_error.take())),
                }
            }};
        }
        let described: Described = match contract {
            Contract::V0_1 => describe!(v0_1),
            Contract::V0_2 => describe!(v0_2),
        };
        let metadata = ComponentMetadata::from_described(described).map_err(LoadError::Metadata)?;
        Ok(LoadedComponent {
            inner: Arc::new(Loaded {
                pre,
                render_export,
                contract,
                metadata,
                digest,
            }),
        })
    }

    fn store(
        &self,
        component: Arc<str>,
        request_id: Arc<str>,
        bus: ComponentBus,
        budget: Budget,
    ) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(budget.memory_bytes.min(self.limits.memory_ceiling_bytes))
            .instances(32)
            .tables(32)
            .memories(4)
            .build();
        let state = HostState {
            wasi: None,
            table: ResourceTable::new(),
            limits: CappedMemory {
                limits,
                refused: false,
            },
            bus,
            component,
            request_id,
            deadline: budget.deadline,
            last_error: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Check the deadline at every epoch tick; yield to the runtime in between so a
        // busy guest shares its thread with the rest of the process.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Run one render of `component` in a fresh instance.
    pub async fn render(
        &self,
        component: &LoadedComponent,
        ctx: &RequestContext,
        props: &str,
        bus: &Arc<BusSnapshot>,
        budget: Budget,
    ) -> RenderResult {
        let deadline = budget.deadline;
        let meta = component.metadata();
        let name = meta.name.clone();
        let started = Instant::now();
        let component_bus = ComponentBus::new(bus.clone(), meta);
        let mut store = self.store(name.clone(), ctx.request_id.clone(), component_bus, budget);
        let timed_out = |store: &Store<HostState>| Instant::now() >= store.data().deadline;

        // The epoch callback stops a guest that is running wasm; this bound also stops
        // one that is parked in a host call (a WASI sleep or poll), where no epoch
        // check happens. Dropping the call unwinds the guest's fiber; the store, and
        // with it the instance, goes back to the pool.
        let run = async {
            let instance = component
                .inner
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| ComponentError::Instantiate {
                    component: name.clone(),
                    message: format!("{e:#}"),
                })?;
            let export = &component.inner.render_export;
            let instantiate_failed = |e: wasmtime::Error| ComponentError::Instantiate {
                component: name.clone(),
                message: format!("{e:#}"),
            };
            // The same call in every contract version, through that version's types.
            let called = match component.inner.contract {
                Contract::V0_1 => {
                    use bindings::v0_1::oberon::component::types as wit;
                    let render = instance
                        .get_typed_func::<(&wit::Context, &str), (Result<wit::Fragment, String>,)>(
                            &mut store, export,
                        )
                        .map_err(instantiate_failed)?;
                    let wit_ctx = wit::Context::from(ctx);
                    render
                        .call_async(&mut store, (&wit_ctx, props))
                        .await
                        .map(|(r,)| r.map(Fragment::from))
                }
                Contract::V0_2 => {
                    use bindings::v0_2::oberon::component::types as wit;
                    let render = instance
                        .get_typed_func::<(&wit::Context, &str), (Result<wit::Fragment, String>,)>(
                            &mut store, export,
                        )
                        .map_err(instantiate_failed)?;
                    let wit_ctx = wit::Context::from(ctx);
                    render
                        .call_async(&mut store, (&wit_ctx, props))
                        .await
                        .map(|(r,)| r.map(Fragment::from))
                }
            };
            match called {
                Ok(Ok(fragment)) => Ok(fragment),
                Ok(Err(message)) => Err(ComponentError::Guest {
                    component: name.clone(),
                    message,
                }),
                Err(e)
                    if timed_out(&store) || e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) =>
                {
                    Err(ComponentError::Timeout {
                        component: name.clone(),
                        deadline_ms: deadline.saturating_duration_since(started).as_millis(),
                    })
                }
                Err(e) => Err(ComponentError::Trap {
                    component: name.clone(),
                    message: trap_message(&e),
                    out_of_memory: store.data().limits.refused,
                }),
            }
        };
        let outcome = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ComponentError::Timeout {
                component: name.clone(),
                deadline_ms: deadline.saturating_duration_since(started).as_millis(),
            }),
        };
        let published = match &outcome {
            // A failed component's topics stay absent: its publishes are discarded.
            Ok(_) => store.data_mut().bus.take_published(),
            Err(_) => Vec::new(),
        };
        RenderResult {
            outcome,
            published,
            elapsed: started.elapsed(),
        }
    }
}

/// What one component render produced.
pub struct RenderResult {
    pub outcome: Result<Fragment, ComponentError>,
    /// Topics published by the component, in order; empty when it failed.
    pub published: Vec<(Arc<str>, Arc<str>)>,
    pub elapsed: Duration,
}

/// An empty WASI context: no arguments, environment, preopened directories, sockets or
/// name lookups. Std-built guests import WASI and must link, but get nothing from it;
/// stdout and stderr go nowhere.
fn empty_wasi_ctx() -> WasiCtx {
    WasiCtx::builder().build()
}

fn trap_message(e: &wasmtime::Error) -> String {
    // The first line names the trap ("wasm trap: wasm `unreachable` instruction
    // executed", "out of bounds memory access", ...); the backtrace follows.
    let full = format!("{e:#}");
    full.lines().next().unwrap_or("trap").to_string()
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("oberon-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
    Ok(())
}

/// A compiled, linked component version, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct LoadedComponent {
    inner: Arc<Loaded>,
}

struct Loaded {
    /// Linked and type-checked against the world (by `bindings::ComponentPre` at load).
    pre: InstancePre<HostState>,
    /// `render`, looked up once; a render type-checks only this export, not every
    /// export the way the generated bindings' instantiate does.
    render_export: ComponentExportIndex,
    /// The contract version it was built against, so the version it is called through.
    contract: Contract,
    metadata: ComponentMetadata,
    /// Of the `.wasm` it was loaded from.
    digest: ContentDigest,
}

impl LoadedComponent {
    pub fn metadata(&self) -> &ComponentMetadata {
        &self.inner.metadata
    }

    /// The digest of the `.wasm` it was loaded from.
    pub fn digest(&self) -> &ContentDigest {
        &self.inner.digest
    }

    /// The `oberon:component` version it was built against, e.g. `0.2.0`.
    pub fn contract_version(&self) -> &'static str {
        self.inner.contract.version()
    }

    /// This very load of the component, for as long as anything remembers it.
    pub fn identity(&self) -> LoadIdentity {
        LoadIdentity(Arc::downgrade(&self.inner))
    }
}

/// One load of a component version: [`LoadIdentity::is`] holds for that load only,
/// never for another version (or another load of the same bytes), whatever their
/// hashes. It keeps no compiled code alive: a weak reference only keeps the address
/// from being reused.
#[derive(Clone)]
pub struct LoadIdentity(std::sync::Weak<Loaded>);

impl LoadIdentity {
    pub fn is(&self, component: &LoadedComponent) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&component.inner))
    }
}

impl std::fmt::Debug for LoadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LoadIdentity")
            .field(&self.0.as_ptr())
            .finish()
    }
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("metadata", &self.inner.metadata)
            .finish()
    }
}

// --- host side of the component's imports, for every contract version ---------------

macro_rules! host_imports {
    ($v:ident) => {
        impl bindings::$v::oberon::component::types::Host for HostState {}

        impl bindings::$v::oberon::component::bus::Host for HostState {
            fn get(&mut self, topic: String) -> Option<String> {
                self.bus.get(&topic)
            }

            fn publish(&mut self, topic: String, value: String) -> Result<(), String> {
                // The contract's error is the message, for the guest.
                self.bus.publish(&topic, value).map_err(|e| e.to_string())
            }
        }

        impl bindings::$v::oberon::component::log::Host for HostState {
            fn log(&mut self, level: bindings::$v::oberon::component::log::Level, message: String) {
                use bindings::$v::oberon::component::log::Level;
                // Bound what a guest can push into the host's logs per call.
                let message: String = message.chars().take(2048).collect();
                let (component, request_id) = (&*self.component, &*self.request_id);
                match level {
                    Level::Debug => tracing::debug!(component, request_id, "{message}"),
                    Level::Info => tracing::info!(component, request_id, "{message}"),
                    Level::Warn => tracing::warn!(component, request_id, "{message}"),
                    Level::Error => {
                        tracing::error!(component, request_id, "{message}");
                        self.last_error = Some(message);
                    }
                }
            }
        }
    };
}

host_imports!(v0_1);
host_imports!(v0_2);
