//! `oberon dev`: the whole platform on one machine with the demo site.
//!
//! Builds the example components (Rust crates with cargo; the Python and JavaScript
//! projects with componentize-py and ComponentizeJS, installed on first use into
//! `target/oberon-dev/tools` or `$OBERON_TOOLS_DIR`), installs them into `target/oberon-dev/components`,
//! and starts, each on its own loopback port and talking real HTTP (gRPC to the
//! backends): the demo's backend services (fixtures), its two BFFs (events, checkout), a development identity
//! provider, the renderer, and the gateway in front of them all on `--listen`. Then it
//! watches the components' sources: saving a component rebuilds and reinstalls it, and
//! the renderer swaps the new version in on its next look, with no restart.
//!
//! SIGINT (Ctrl-C) or SIGTERM stops every one of them: each stops accepting, finishes
//! what is in flight, and the process exits (within a second or two; the source
//! watcher is a plain thread that never holds the process).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use oberon_gateway::devidp::{self, DevIdp};
use oberon_gateway::{Gateway, GatewayOptions};
use oberon_identity::Verifier;
use oberon_renderer::{Renderer, RendererOptions, server};

use crate::component::tools::tools_dir_or;
use crate::{build, fixture_backend};

/// Set once, on SIGINT or SIGTERM: every service `oberon dev` started stops.
#[derive(Clone)]
struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// A stop that [`Stop::signals`] sets, and its sender.
    fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    /// Resolves when the stop is set: a service's shutdown future.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Whether the stop is set, for the source watcher's thread.
    fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}

/// A service of `oberon dev`, served until the stop.
type Service = tokio::task::JoinHandle<()>;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address for the site.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The repository (containing `components/` and `demo/`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    pub root: PathBuf,
    /// Do not build or watch the components; serve what is installed.
    #[arg(long)]
    pub no_build: bool,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("repository root {}", args.root.display()))?;
    let workspace = root.join("components");
    let site_dir = root.join("demo");
    let installed = root.join("target/oberon-dev/components");
    // Without a build, the root needs only `demo/` and the installed components.
    let demo_build = if args.no_build {
        None
    } else {
        let demo_build = DemoBuild {
            crates: build::example_crates(&workspace)?,
            projects: build::example_projects(&workspace)?,
            tools: tools_dir_or(root.join("target/oberon-dev/tools")),
            workspace,
            installed: installed.clone(),
        };
        demo_build.ready()?;
        build::ensure_target()?;
        eprintln!(
            "oberon: building {} components in Rust, {} in Python and JavaScript",
            demo_build.crates.len(),
            demo_build.projects.len()
        );
        demo_build.rust()?;
        demo_build.projects()?;
        Some(demo_build)
    };

    // Every service runs in this process and records to its one recorder: their
    // metrics are together on one ops port. Installed before any of them starts.
    let exporter =
        oberon_service::metrics::Exporter::install("oberon-dev", env!("CARGO_PKG_VERSION"));
    let (stop_tx, stop) = Stop::new();
    let mut services: Vec<Service> = Vec::new();

    // The gateway's address comes first: every other part names it.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = format!("http://{addr}");

    let events_backend =
        serve_fixtures(&site_dir.join("backends/events"), &stop, &mut services).await?;
    let checkout_backend =
        serve_fixtures(&site_dir.join("backends/checkout"), &stop, &mut services).await?;
    let gateway_jwks = format!("{public_url}{}", oberon_identity::assertion::JWKS_PATH);
    let events = start_events_bff(&events_backend, &stop, &mut services).await?;
    let checkout =
        start_checkout_bff(&checkout_backend, &gateway_jwks, &stop, &mut services).await?;

    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let idp_url = format!("http://{}", idp_listener.local_addr()?);
    let idp = DevIdp::new(
        DEV_ISSUER,
        &idp_url,
        "oberon",
        vec![format!("{public_url}/_gateway/session")],
    )?;
    let idp_stopped = stop.stopped();
    services.push(tokio::spawn(async move {
        let _ = axum::serve(idp_listener, devidp::app(Arc::new(idp)))
            .with_graceful_shutdown(idp_stopped)
            .await;
    }));

    let renderer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let renderer_url = format!("http://{}", renderer_listener.local_addr()?);
    let gateway = Gateway::load(GatewayOptions {
        config: site_dir.join("gateway.toml"),
        upstreams: BTreeMap::from([
            ("renderer".to_string(), renderer_url.clone()),
            ("events".to_string(), events.clone()),
            ("checkout".to_string(), checkout.clone()),
        ]),
        jwks_urls: HashMap::from([(
            DEV_ISSUER.to_string(),
            format!("{idp_url}/.well-known/jwks.json"),
        )]),
        sign_in_url: Some(format!("{idp_url}/sign-in")),
        public_url: Some(public_url.clone()),
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = Arc::new(gateway);

    // The renderer's admin endpoint (the cache mode): the operator's token from the
    // environment, or a fresh one for this run.
    let admin_token = std::env::var("OBERON_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("dev-{:016x}{:016x}", rand_u64(), rand_u64()));
    let renderer = Renderer::start(RendererOptions {
        site_dir,
        components_dir: Some(installed.clone()),
        bffs: BTreeMap::from([
            ("events".to_string(), events.clone()),
            ("checkout".to_string(), checkout.clone()),
        ]),
        data_client: None,
        // Its name in demo/gateway.toml's [upstreams], which assertions sent to it name.
        identity: Some(Arc::new(Verifier::fixed(
            &gateway.signer().jwks(),
            "renderer",
        ))),
        admin_token: Some(admin_token.clone()),
        // A second `oberon dev` loads unchanged components without compiling them.
        code_cache: Some(root.join("target/oberon-dev/code-cache")),
    })
    .await?;
    renderer.watch(Duration::from_millis(300));
    let metrics_url = serve_metrics(exporter, &renderer, &gateway, &stop, &mut services).await?;
    let renderer_served = server::serve(renderer_listener, server::app(renderer), stop.stopped());
    services.push(tokio::spawn(async move {
        let _ = renderer_served.await;
    }));

    eprintln!("oberon: demo site at {public_url}/events/42; sign in at {public_url}/account");
    eprintln!(
        "oberon: gateway {public_url}, renderer {renderer_url}, events BFF {events}, checkout BFF {checkout}, identity provider {idp_url}, ops {metrics_url}"
    );
    eprintln!("oberon: every service's metrics (Prometheus) at {metrics_url}/metrics");
    eprintln!(
        "oberon: cache mode: OBERON_ADMIN_TOKEN={admin_token} oberon mode --renderer {renderer_url} [normal|elevated|incident|auto]"
    );

    if let Some(demo_build) = demo_build {
        // A thread of its own, not the runtime's blocking pool, which the runtime waits
        // for at exit: a rebuild under way must not keep the process alive.
        let watching = stop.clone();
        std::thread::spawn(move || demo_build.watch(&watching));
    }
    tokio::spawn(async move {
        oberon_gateway::shutdown_signal().await;
        eprintln!("oberon: stopping");
        let _ = stop_tx.send(true);
    });
    oberon_gateway::serve(listener, oberon_gateway::app(gateway), stop.stopped()).await?;
    // Every other service got the same stop: wait for them to finish what is in flight.
    for service in services {
        let _ = service.await;
    }
    Ok(())
}

/// `iss` of the development identity provider's tokens (`demo/gateway.toml`).
const DEV_ISSUER: &str = "oberon-dev-idp";

/// The ops port of `oberon dev`: `GET /metrics` with what every service recorded, and
/// the renderer's and the gateway's state read as it is scraped. Its base URL.
async fn serve_metrics(
    exporter: oberon_service::metrics::Exporter,
    renderer: &Arc<Renderer>,
    gateway: &Arc<Gateway>,
    stop: &Stop,
    services: &mut Vec<Service>,
) -> anyhow::Result<String> {
    let (renderer, gateway) = (renderer.clone(), gateway.clone());
    let app = exporter.app(move || {
        oberon_renderer::metrics::observe(&renderer);
        oberon_gateway::metrics::observe(&gateway);
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = server::serve(listener, app, stop.stopped());
    services.push(tokio::spawn(async move {
        let _ = served.await;
    }));
    Ok(url)
}

/// The backend fixtures under `root`, as gRPC services on a free port; returns its URL.
async fn serve_fixtures(
    root: &Path,
    stop: &Stop,
    services: &mut Vec<Service>,
) -> anyhow::Result<String> {
    let fixtures = fixture_backend::load(root)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = oberon_demo_proto::fixtures::serve(listener, fixtures, stop.stopped());
    services.push(tokio::spawn(async move {
        let _ = served.await;
    }));
    Ok(url)
}

/// The events BFF, configured as its environment would configure it.
async fn start_events_bff(
    backend: &str,
    stop: &Stop,
    services: &mut Vec<Service>,
) -> anyhow::Result<String> {
    let vars = [
        ("BACKEND_URL", backend.to_string()),
        // No load balancer to drain away from: stop at once.
        ("DRAIN_MS", "0".to_string()),
    ];
    let bff = events_bff::service(oberon_bff::Env::from_pairs(events_bff::PREFIX, &vars))?;
    start_bff(bff, stop, services).await
}

/// The checkout BFF, which verifies the gateway's assertions with its JWKS.
async fn start_checkout_bff(
    backend: &str,
    gateway_jwks: &str,
    stop: &Stop,
    services: &mut Vec<Service>,
) -> anyhow::Result<String> {
    let vars = [
        ("BACKEND_URL", backend.to_string()),
        ("GATEWAY_JWKS_URL", gateway_jwks.to_string()),
        // Its name in demo/gateway.toml's [upstreams]: assertions good here name it.
        ("AUDIENCE", "checkout".to_string()),
        ("DRAIN_MS", "0".to_string()),
    ];
    let bff = checkout_bff::service(oberon_bff::Env::from_pairs(checkout_bff::PREFIX, &vars))?;
    start_bff(bff, stop, services).await
}

/// `bff` served on two free loopback ports until `stop`; returns its API's URL.
async fn start_bff(
    bff: oberon_bff::Service,
    stop: &Stop,
    services: &mut Vec<Service>,
) -> anyhow::Result<String> {
    let listeners = oberon_bff::Listeners {
        api: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        ops: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let url = format!("http://{}", listeners.api.local_addr()?);
    let served = oberon_bff::serve(listeners, bff, stop.stopped());
    services.push(tokio::spawn(async move {
        let _ = served.await;
    }));
    Ok(url)
}

/// The demo's components, as `oberon dev` builds, installs and watches them.
struct DemoBuild {
    workspace: PathBuf,
    crates: Vec<build::ComponentCrate>,
    projects: Vec<build::ComponentProject>,
    tools: PathBuf,
    installed: PathBuf,
}

/// What each build reads, under the components workspace: a change to one rebuilds it.
/// The Python and JavaScript projects build against the SDKs and contract embedded in
/// this binary (`component::lang::sdk_home`): after changing those, restart `oberon dev`
/// (`cargo run` rebuilds it with them).
const RUST_SOURCES: [&str; 3] = ["sdk", "examples", "wit"];
const PROJECT_SOURCES: [&str; 2] = ["examples-py", "examples-js"];

impl DemoBuild {
    /// Whether every project's toolchain is here: checked before the Rust build,
    /// which takes minutes the first time.
    fn ready(&self) -> anyhow::Result<()> {
        for project in &self.projects {
            project.lang.ready(&self.tools).with_context(|| {
                format!(
                    "the demo's {} component ({}) cannot be built here",
                    project.name,
                    project.lang.name()
                )
            })?;
        }
        Ok(())
    }

    /// The Rust crates, built with cargo and installed.
    fn rust(&self) -> anyhow::Result<()> {
        build::build(&self.workspace, &self.crates)?;
        build::install_all(&self.workspace, &self.crates, &self.installed)
    }

    /// The Python and JavaScript projects, built with their tools and installed.
    fn projects(&self) -> anyhow::Result<()> {
        build::build_and_install_projects(&self.projects, &self.tools, &self.installed)
    }

    /// Rebuild and reinstall what a changed source belongs to, until `stop`.
    fn watch(&self, stop: &Stop) {
        let sources = |dirs: &[&str]| -> Vec<PathBuf> {
            dirs.iter().map(|d| self.workspace.join(d)).collect()
        };
        type Rebuild = fn(&DemoBuild) -> anyhow::Result<()>;
        let watched: [(&str, Vec<PathBuf>, Rebuild); 2] = [
            ("Rust", sources(&RUST_SOURCES), Self::rust),
            (
                "Python and JavaScript",
                sources(&PROJECT_SOURCES),
                Self::projects,
            ),
        ];
        let mut last: Vec<_> = watched.iter().map(|(_, dirs, _)| stamps(dirs)).collect();
        while !stop.is_set() {
            std::thread::sleep(Duration::from_millis(500));
            for ((what, dirs, rebuild), last) in watched.iter().zip(&mut last) {
                let now = stamps(dirs);
                if now == *last {
                    continue;
                }
                *last = now;
                eprintln!("oberon: {what} component sources changed; rebuilding");
                match rebuild(self) {
                    Ok(()) => eprintln!(
                        "oberon: rebuilt; the renderer picks the new versions up on its next look"
                    ),
                    Err(e) => eprintln!("oberon: {e:#}; still serving the previous versions"),
                }
            }
        }
    }
}

/// The modification time of every file under `paths` (each a directory or a file).
fn stamps(paths: &[PathBuf]) -> BTreeMap<PathBuf, Option<SystemTime>> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            stack.push(path.clone());
        } else {
            out.insert(path.clone(), modified(path));
        }
    }
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if crate::build::NOT_SOURCES
                .iter()
                .any(|n| entry.file_name() == *n)
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), modified(&path));
            }
        }
    }
    out
}

/// A random number for the development admin token, from the standard library's
/// randomly keyed hasher (no dependency for one token).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
