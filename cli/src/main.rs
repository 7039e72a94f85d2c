//! `oberon`: the platform's command line. Parses flags and calls into [`oberon_cli`].

use clap::{Parser, Subcommand};

/// mimalloc: instantiating components and composing pages make many small, short-lived
/// allocations; measured on the demo page it is a few percent faster than glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "oberon",
    version,
    about = "Oberon: micro-frontends composed at the edge from WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the example components and serve the demo site locally, rebuilding
    /// components when their sources change.
    Dev(oberon_cli::dev::DevArgs),
    /// Create something new from a template: `oberon new bff NAME`.
    New(oberon_cli::new::NewArgs),
    /// Keep a BFF made with `oberon new bff` current: `oberon bff upgrade`.
    Bff(oberon_cli::new::BffArgs),
    /// Show or set a renderer's cache mode: `oberon mode`, `oberon mode incident`,
    /// `oberon mode auto`.
    Mode(oberon_cli::mode::ModeArgs),
    /// Components and the registry: `new`, `build`, `deploy`, `canary`, `promote`,
    /// `rollback`, `list`, `status`.
    Component(oberon_cli::component::ComponentArgs),
    /// Serve a directory of fixtures as `oberon dev` serves the demo's backends (their
    /// gRPC services), on its own: `bench/soak` runs the backends as processes of their
    /// own.
    #[command(hide = true)]
    Fixtures(oberon_cli::fixture_backend::FixturesArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Kept to the end: dropped, it sends the last spans.
    let _tracing = match oberon_renderer::init_tracing("oberon") {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Dev(args) => oberon_cli::dev::run(args).await,
        Command::New(args) => oberon_cli::new::run(args),
        Command::Bff(args) => oberon_cli::new::run_bff(args),
        Command::Mode(args) => oberon_cli::mode::run(args).await,
        Command::Component(args) => oberon_cli::component::run(args).await,
        Command::Fixtures(args) => oberon_cli::fixture_backend::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The message, with its causes; never a backtrace for a user's mistake.
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
