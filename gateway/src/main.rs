//! `oberon-gateway`: the front door. Parses flags, loads the configuration, binds, and
//! hands over to the library.

#![warn(clippy::too_many_lines)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use oberon_gateway::{Gateway, GatewayOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Oberon's gateway: authentication, routing and identity"
)]
struct Args {
    /// The gateway's configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Address of the ops port: `GET /metrics` (Prometheus), never among the routes.
    /// Without it no metrics are kept.
    #[arg(long, env = "OBERON_GATEWAY_OPS_LISTEN")]
    ops_listen: Option<String>,
    /// Upstream base URL, as NAME=URL; repeatable. Replaces the one in the configuration.
    #[arg(long = "upstream", value_parser = parse_pair)]
    upstreams: Vec<(String, String)>,
}

/// An `--upstream` value without the `=` between the name and the URL.
#[derive(Debug, thiserror::Error)]
#[error("expected NAME=URL, got {0:?}")]
struct NotAPair(String);

fn parse_pair(s: &str) -> Result<(String, String), NotAPair> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| NotAPair(s.to_string()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt::layer().json();
    // Kept to the end: dropped, it sends the last spans.
    let _tracing = match oberon_service::trace::init("oberon-gateway", filter, logs) {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Before anything records.
    let exporter = args
        .ops_listen
        .as_ref()
        .map(|_| oberon_service::metrics::Exporter::install("gateway", env!("CARGO_PKG_VERSION")));
    let gateway = Gateway::load(GatewayOptions {
        config: args.config,
        upstreams: args.upstreams.into_iter().collect(),
        ..GatewayOptions::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!("gateway listening on http://{}", listener.local_addr()?);
    let gateway = Arc::new(gateway);
    let ops = match (&args.ops_listen, exporter) {
        (Some(addr), Some(exporter)) => {
            let ops = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --ops-listen {addr}"))?;
            tracing::info!("gateway ops port on http://{}", ops.local_addr()?);
            Some((ops, oberon_gateway::ops_app(gateway.clone(), exporter)))
        }
        _ => None,
    };
    oberon_gateway::serve_with_ops(
        listener,
        oberon_gateway::app(gateway),
        ops,
        oberon_gateway::shutdown_signal(),
    )
    .await?;
    Ok(())
}
