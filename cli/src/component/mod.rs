//! `oberon component …`: scaffold, build and deploy components, and move their
//! channels in the registry (`--registry PATH` or `--registry s3://bucket/prefix`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, bail};
use oberon_registry::{Channel, Registry, Resources, Target, Upload, Version, sha256_hex};

pub mod build;
pub mod javascript;
pub mod lang;
pub mod new;
pub mod python;
pub mod rust;
pub mod tools;
pub mod validate;

#[derive(Debug, clap::Args)]
pub struct ComponentArgs {
    #[command(subcommand)]
    pub command: ComponentCommand,
}

/// Where the registry is: a directory, or `s3://bucket/prefix` (endpoint, region and
/// credentials from `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`; `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArg {
    #[arg(long, env = "OBERON_REGISTRY", default_value = ".oberon/registry")]
    pub registry: String,
}

impl RegistryArg {
    fn open(&self) -> anyhow::Result<Registry> {
        Registry::open(&self.registry).with_context(|| format!("registry {}", self.registry))
    }
}

/// Who is acting, for the history: `--actor`, else `OBERON_ACTOR`, else `USER`.
#[derive(Debug, Clone, clap::Args)]
pub struct ActorArg {
    #[arg(long, env = "OBERON_ACTOR")]
    pub actor: Option<String>,
}

impl ActorArg {
    fn name(&self) -> String {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ComponentCommand {
    /// A new component project, ready to build: `oberon component new NAME
    /// [--lang rust|python|javascript]`.
    New(new::NewArgs),
    /// Build a component project with its language's toolchain (found from its
    /// `Cargo.toml`, `pyproject.toml` or `package.json`) and record the component's SHA-256 beside it.
    Build(build::BuildArgs),
    /// Validate a component and deploy it as a new version to stable or canary.
    Deploy(DeployArgs),
    /// Give the canary another share of traffic: `oberon component canary NAME --percent 50`.
    Canary {
        name: String,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Make the canary the stable version.
    Promote {
        name: String,
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Move stable back to the version it held before (or `--to VERSION`), or, with
    /// `--channel canary`, withdraw the canary.
    Rollback {
        name: String,
        #[arg(long, default_value = "stable")]
        channel: Channel,
        #[arg(long)]
        to: Option<Version>,
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Every component with its channels.
    List {
        #[command(flatten)]
        registry: RegistryArg,
    },
    /// One component: channels, versions and the history of channel moves.
    Status {
        name: String,
        #[command(flatten)]
        registry: RegistryArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// A built component. Without it, the project in `--dir` is built and deployed.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// The component project (for building, its version and its `assets/`).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The version to deploy (default: the project's version). Versions are immutable.
    #[arg(long)]
    pub version: Option<Version>,
    /// Where the declared client assets are (default: `assets/` in `--dir`).
    #[arg(long)]
    pub assets: Option<PathBuf>,
    /// The `.wasm`'s expected SHA-256 (default: from `<wasm>.sha256`, which
    /// `oberon component build` writes). A different file is a corrupt upload.
    #[arg(long)]
    pub sha256: Option<String>,
    #[arg(long, default_value = "stable")]
    pub channel: Channel,
    /// The canary's share of traffic, in percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub canary_percent: u8,
    /// Props (a JSON object) for the test render.
    #[arg(long, default_value = "{}")]
    pub test_props: String,
    /// The linear memory cap of its instances, in MiB, where the site's default
    /// (`component_memory_mib`, 16) is not enough: a Python or JavaScript component's
    /// runtime needs more. The renderer holds it to the site's
    /// `component_memory_ceiling_mib`; a page slot's `memory_mib` overrides it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory_mib: Option<u32>,
    #[command(flatten)]
    pub registry: RegistryArg,
    #[command(flatten)]
    pub actor: ActorArg,
}

pub async fn run(args: ComponentArgs) -> anyhow::Result<()> {
    match args.command {
        ComponentCommand::New(args) => new::run(args),
        ComponentCommand::Build(args) => {
            let built = build::run(args)?;
            println!(
                "{}  {}  {}",
                built.wasm.display(),
                built.sha256,
                built.version
            );
            Ok(())
        }
        ComponentCommand::Deploy(args) => deploy(args).await,
        ComponentCommand::Promote {
            name,
            registry,
            actor,
        } => {
            let moves = registry.open()?.promote(&name, &actor.name()).await?;
            for m in &moves {
                println!("{name}: {} {} → {}", m.channel, show(&m.from), show(&m.to));
            }
            Ok(())
        }
        ComponentCommand::Canary {
            name,
            percent,
            registry,
            actor,
        } => {
            let m = registry
                .open()?
                .set_canary_share(&name, percent, &actor.name())
                .await?;
            println!(
                "{name}: canary {} now gets {percent}% of traffic",
                show(&m.to)
            );
            Ok(())
        }
        ComponentCommand::Rollback {
            name,
            channel,
            to,
            registry,
            actor,
        } => {
            let m = registry
                .open()?
                .rollback(&name, channel, to.as_ref(), &actor.name())
                .await?;
            println!("{name}: {} {} → {}", m.channel, show(&m.from), show(&m.to));
            Ok(())
        }
        ComponentCommand::List { registry } => list(&registry.open()?).await,
        ComponentCommand::Status { name, registry } => status(&registry.open()?, &name).await,
    }
}

/// One long step on stderr: its name now, `ok` and its duration when done.
struct Step {
    started: Instant,
}

impl Step {
    fn start(what: &str) -> Step {
        eprintln!("oberon: {what} …");
        Step {
            started: Instant::now(),
        }
    }

    fn done(self, detail: &str) {
        eprintln!(
            "oberon:   ok ({:.2} s){}{detail}",
            self.started.elapsed().as_secs_f64(),
            if detail.is_empty() { "" } else { ": " }
        );
    }
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let (wasm_path, crate_version) = match &args.wasm {
        Some(path) => (path.clone(), None),
        None => {
            let built = build::run(build::BuildArgs {
                dir: args.dir.clone(),
            })?;
            (built.wasm, Some(built.version))
        }
    };
    let version = match (args.version.clone(), crate_version) {
        (Some(v), _) => v,
        (None, Some(v)) => v,
        (None, None) => {
            bail!("--version is required with --wasm (versions are semver, e.g. 1.2.0)")
        }
    };
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("cannot read {}", wasm_path.display()))?;
    let expected = match &args.sha256 {
        Some(h) => Some(h.clone()),
        None => read_sidecar(&wasm_path)?,
    };
    if let Some(expected) = &expected {
        let actual = sha256_hex(&wasm);
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            bail!(
                "corrupt upload: {} has sha256 {actual}, but its build recorded {}; rebuild it (`oberon component build`)",
                wasm_path.display(),
                expected.trim()
            );
        }
    }

    let step = Step::start(&format!("compiling and validating {}", wasm_path.display()));
    let engine = validate::engine()?;
    let validated = validate::validate(&engine, &wasm, &args.test_props, args.memory_mib)
        .await
        .with_context(|| format!("{} refused", wasm_path.display()))?;
    step.done(&format!(
        "{} (oberon:component@{}), test render {:.1} ms",
        validated.metadata.name,
        validated.wit,
        validated.render_time.as_secs_f64() * 1000.0
    ));
    if let Some(message) = &validated.render_error {
        eprintln!(
            "oberon: warning: the test render returned an error (a page would show the slot's fallback): {message}; pass --test-props if it needs props"
        );
    }

    let name = validated.metadata.name.clone();
    let assets_dir = args
        .assets
        .clone()
        .unwrap_or_else(|| args.dir.join("assets"));
    let assets = read_assets(&assets_dir, &validated.metadata.assets)?;
    let upload = Upload {
        component: name.clone(),
        version: version.clone(),
        wasm: wasm.into(),
        expected_wasm_sha256: expected,
        assets,
        metadata: validated.metadata,
        wit: validated.wit,
        resources: Resources {
            memory_mib: args.memory_mib,
        },
    };
    let target = match args.channel {
        Channel::Stable => Target::Stable,
        Channel::Canary => Target::Canary {
            percent: args.canary_percent,
        },
    };
    let registry = args.registry.open()?;
    let step = Step::start(&format!(
        "uploading {name} {version} to {}",
        registry.location()
    ));
    let m = registry.deploy(&upload, target, &args.actor.name()).await?;
    step.done("");
    let share = m.percent.map(|p| format!(" ({p}%)")).unwrap_or_default();
    println!(
        "deployed {name} {version} to {}{share} ({} → {})",
        m.channel,
        show(&m.from),
        show(&m.to)
    );
    Ok(())
}

fn read_sidecar(wasm: &Path) -> anyhow::Result<Option<String>> {
    let mut path = wasm.as_os_str().to_owned();
    path.push(".sha256");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", Path::new(&path).display())),
    }
}

fn read_assets(dir: &Path, declared: &[String]) -> anyhow::Result<BTreeMap<String, bytes::Bytes>> {
    let mut assets = BTreeMap::new();
    for path in declared {
        let file = dir.join(path);
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "describe() declares asset {path:?}, but {} cannot be read (pass --assets DIR)",
                file.display()
            )
        })?;
        assets.insert(path.clone(), bytes.into());
    }
    Ok(assets)
}

fn show(v: &Option<Version>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".into(), |v| v.to_string())
}

fn when(at_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

async fn list(registry: &Registry) -> anyhow::Result<()> {
    let index = registry.index().await?;
    if index.components.is_empty() {
        println!("no components in {}", registry.location());
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:<18} {:>8}",
        "COMPONENT", "STABLE", "CANARY", "VERSIONS"
    );
    for (name, entry) in &index.components {
        let canary = entry
            .channels
            .canary
            .as_ref()
            .map_or_else(|| "-".into(), |c| format!("{} ({}%)", c.version, c.percent));
        let stable = entry
            .channels
            .stable
            .as_ref()
            .map_or_else(|| "-".into(), |v| v.to_string());
        println!(
            "{name:<24} {stable:<12} {canary:<18} {:>8}",
            entry.versions.len()
        );
    }
    Ok(())
}

async fn status(registry: &Registry, name: &str) -> anyhow::Result<()> {
    let index = registry.index().await?;
    let entry = index.component(name)?;
    println!(
        "{name} in {} (generation {})",
        registry.location(),
        index.generation
    );
    println!("  stable: {}", show(&entry.channels.stable));
    match &entry.channels.canary {
        Some(c) => println!("  canary: {} ({}% of traffic)", c.version, c.percent),
        None => println!("  canary: (none)"),
    }
    println!("versions:");
    for (version, v) in &entry.versions {
        println!(
            "  {version:<12} sha256 {} {} asset(s) oberon:component@{}  {} by {}",
            v.wasm.sha256.get(..16).unwrap_or(&v.wasm.sha256),
            v.assets.len(),
            v.wit,
            when(v.deployed_at_ms),
            v.deployed_by
        );
    }
    println!("history:");
    for m in &entry.history {
        println!(
            "  {}  {:<8} {:<6} {} → {}{}  by {}",
            when(m.at_ms),
            m.action.to_string(),
            m.channel.to_string(),
            show(&m.from),
            show(&m.to),
            m.percent.map(|p| format!(" ({p}%)")).unwrap_or_default(),
            m.by
        );
    }
    Ok(())
}
