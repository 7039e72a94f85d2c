//! The demo's backend services, from fixtures: the gRPC services of `proto/`
//! (`EventsService` from `<root>/events/`, `OrdersService` from `<root>/issuers/`), as
//! `oberon_demo_proto::fixtures` implements them. The demo BFFs (`demo/bffs/*`) call
//! these as they would call a team's real backends.

use std::path::{Path, PathBuf};

use anyhow::Context;
use oberon_demo_proto::fixtures::{Fixtures, serve};

/// `oberon fixtures --root DIR --listen ADDR` (hidden).
#[derive(Debug, clap::Args)]
pub struct FixturesArgs {
    /// The fixtures' directory (`demo/backends/events`, `demo/backends/checkout`).
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
}

/// Serve `args.root` on `args.listen` until SIGTERM or Ctrl-C.
pub async fn run(args: FixturesArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let fixtures = load(&args.root)?;
    eprintln!(
        "oberon: fixtures from {} on http://{} (gRPC)",
        args.root.display(),
        listener.local_addr()?
    );
    serve(listener, fixtures, oberon_gateway::shutdown_signal()).await?;
    Ok(())
}

/// The fixtures under `root`, read whole before the first call: a broken file stops the
/// start, naming it.
pub fn load(root: &Path) -> anyhow::Result<Fixtures> {
    Fixtures::load(root).with_context(|| format!("the fixtures in {}", root.display()))
}
