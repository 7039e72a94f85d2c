//! `oberon-renderer`: serve a site. Parses flags, binds, and hands over to the library.

#![warn(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use oberon_identity::{RemoteKeySet, RemoteKeySetOptions, Verifier};
use oberon_renderer::{Renderer, RendererOptions, server};

/// mimalloc: instantiating components and composing pages make many small, short-lived
/// allocations; measured on the demo page it is a few percent faster than glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Oberon's renderer: pages composed from WebAssembly components"
)]
struct Args {
    /// Site directory (containing site.toml).
    #[arg(long)]
    site: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Address of the ops port: `GET /metrics` (Prometheus). Never routed by the
    /// gateway; without it no metrics are kept.
    #[arg(long, env = "OBERON_RENDERER_OPS_LISTEN")]
    ops_listen: Option<String>,
    /// Components directory, instead of the one named in site.toml.
    #[arg(long, conflicts_with = "registry")]
    components: Option<PathBuf>,
    /// Serve the components of a registry (a directory, or `s3://bucket/prefix` with
    /// the `AWS_*` variables, as `oberon component deploy --registry`): each
    /// component's stable version, and its canary for the canary's share of requests.
    #[arg(long, env = "OBERON_REGISTRY")]
    registry: Option<String>,
    /// BFF base URL, as NAME=URL; repeatable. Replaces the one in site.toml.
    #[arg(long = "bff", value_parser = parse_bff)]
    bffs: Vec<(String, String)>,
    /// The gateway's JWKS URL (`…/.well-known/oberon/jwks.json`): identity assertions
    /// are verified with its keys. Without it every request renders anonymously.
    #[arg(long)]
    identity_jwks: Option<String>,
    /// This renderer's name in the gateway's `[upstreams]`: only assertions whose
    /// `aud` names it are accepted. Required with `--identity-jwks`.
    #[arg(long, env = "OBERON_IDENTITY_AUDIENCE")]
    identity_audience: Option<String>,
    /// Directory for compiled components, so that a restart does not compile them
    /// again (created if missing, private to this user). Without it every start
    /// compiles every component.
    #[arg(long, env = "OBERON_CODE_CACHE")]
    code_cache: Option<PathBuf>,
    /// How often to look for new component versions (in the directory, or a new
    /// generation of the registry's index), in milliseconds (0: never).
    #[arg(long, default_value_t = 1000)]
    watch_ms: u64,
    /// Threads serving requests (default: the CPUs this process may run on). With one,
    /// the runtime is single-threaded: no work stealing, no cross-thread wake-ups.
    #[arg(long, env = "OBERON_WORKERS")]
    workers: Option<usize>,
}

/// A `--bff` value without its `=` (the operator's to fix; clap shows the message).
#[derive(Debug, thiserror::Error)]
#[error("expected NAME=URL, got {0:?}")]
struct NotNameEqualsUrl(String);

fn parse_bff(s: &str) -> Result<(String, String), NotNameEqualsUrl> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| NotNameEqualsUrl(s.to_string()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Kept to the end: dropped, it sends the last spans.
    let _tracing = oberon_renderer::init_tracing("oberon-renderer")?;
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut runtime = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(workers);
        multi
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // Before anything records: handles taken earlier would stay no-ops.
    let exporter = args
        .ops_listen
        .as_ref()
        .map(|_| oberon_service::metrics::Exporter::install("renderer", env!("CARGO_PKG_VERSION")));
    let identity = match (&args.identity_jwks, &args.identity_audience) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!(
            "--identity-jwks needs --identity-audience (or OBERON_IDENTITY_AUDIENCE): this renderer's name in the gateway's [upstreams]"
        ),
        (Some(url), Some(audience)) => {
            let keys = Arc::new(RemoteKeySet::new(url, RemoteKeySetOptions::default()));
            match keys.refresh().await {
                Ok(n) => tracing::info!(url, keys = n, "gateway keys loaded"),
                Err(e) => tracing::warn!("gateway keys not loaded yet, will retry: {e}"),
            }
            Some(Arc::new(Verifier::remote(keys, audience)))
        }
    };
    let options = RendererOptions {
        site_dir: args.site,
        components_dir: args.components,
        bffs: args.bffs.into_iter().collect::<BTreeMap<_, _>>(),
        data_client: None,
        identity,
        // From the environment, not a flag: a flag would show in `ps`.
        admin_token: std::env::var("OBERON_ADMIN_TOKEN").ok(),
        code_cache: args.code_cache,
    };
    let renderer = match &args.registry {
        None => Renderer::start(options).await?,
        Some(location) => {
            let registry = oberon_registry::Registry::open(location)
                .with_context(|| format!("--registry {location}"))?;
            Renderer::start_from_registry(options, registry).await?
        }
    };
    if args.watch_ms > 0 {
        renderer.watch(Duration::from_millis(args.watch_ms));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!("renderer listening on http://{}", listener.local_addr()?);
    let ops = match (&args.ops_listen, exporter) {
        (Some(addr), Some(exporter)) => {
            let ops = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --ops-listen {addr}"))?;
            tracing::info!("renderer ops port on http://{}", ops.local_addr()?);
            Some((ops, server::ops_app(renderer.clone(), exporter)))
        }
        _ => None,
    };
    oberon_config::listen::serve_with_ops(
        listener,
        server::app(renderer),
        ops,
        oberon_config::listen::ListenLimits::default(),
        oberon_service::shutdown_signal(),
    )
    .await?;
    Ok(())
}
