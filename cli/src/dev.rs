//! `oberon dev`: the whole platform on one machine with the demo site.
//!
//! Builds the example components, installs them into `target/oberon-dev/components`,
//! starts the demo's BFF and the renderer, then watches the components' sources:
//! saving a component rebuilds and reinstalls it, and the renderer swaps the new
//! version in on its next look, with no restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use oberon_renderer::{Renderer, RendererOptions, server};

use crate::build;

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
    let crates = build::example_crates(&workspace)?;

    if !args.no_build {
        build::ensure_target()?;
        eprintln!("oberon: building {} components", crates.len());
        build::build(&workspace, &crates)?;
        build::install_all(&workspace, &crates, &installed)?;
    }

    let bff_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bff_addr = bff_listener.local_addr()?;
    let bff = crate::fixture_bff::app(site_dir.join("bff/events"));
    tokio::spawn(async move { axum::serve(bff_listener, bff).await });

    let renderer = Renderer::start(RendererOptions {
        site_dir,
        components_dir: Some(installed.clone()),
        bffs: BTreeMap::from([("events".to_string(), format!("http://{bff_addr}"))]),
        data_client: None,
        identity: None,
    })
    .await?;
    renderer.watch(Duration::from_millis(300));

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("oberon: demo site at http://{addr}/events/42 (events BFF at http://{bff_addr})");

    if !args.no_build {
        tokio::task::spawn_blocking(move || watch_sources(&workspace, &crates, &installed));
    }
    server::serve(listener, server::app(renderer), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Rebuild and reinstall when a source under the components workspace changes.
fn watch_sources(workspace: &Path, crates: &[build::ComponentCrate], installed: &Path) {
    let watched: Vec<PathBuf> = ["sdk", "examples", "wit"]
        .iter()
        .map(|d| workspace.join(d))
        .collect();
    let mut last = stamps(&watched);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = stamps(&watched);
        if now == last {
            continue;
        }
        last = now;
        eprintln!("oberon: component sources changed; rebuilding");
        match build::build(workspace, crates)
            .and_then(|()| build::install_all(workspace, crates, installed))
        {
            Ok(()) => eprintln!(
                "oberon: rebuilt; the renderer picks the new versions up on its next look"
            ),
            Err(e) => eprintln!("oberon: {e:#}; still serving the previous versions"),
        }
    }
}

fn stamps(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Option<SystemTime>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path, entry.metadata().ok().and_then(|m| m.modified().ok()));
            }
        }
    }
    out
}
