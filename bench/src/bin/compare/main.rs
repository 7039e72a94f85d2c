//! `compare`: Oberon side by side with Podium, Tailor and the static-bytes limit
//! (issue 7). `bench/run` builds the renderer and this harness, then runs it:
//!
//! 1. installs the Node peers (`npm ci` in `bench/peers`) if they are missing;
//! 2. starts the parts server (Oberon's BFF, Podium's podlets, Tailor's fragments),
//!    then Oberon, and reads the four parts' HTML and the page from Oberon;
//! 3. for each system in turn (the limit, Oberon, Podium, Tailor), alone on the
//!    servers' CPU: starts it, checks its page, warms it up, measures it with `wrk`
//!    (pinned to the load CPU) and a time-to-first-byte probe beside it, reads its
//!    peak memory, times the slow-part pages, and stops it;
//! 4. prints the table and writes `bench/RESULTS.md`.
//!
//! Every process it starts is stopped when it ends, fails, panics or is interrupted.

mod http;
mod parts;
mod probe;
mod report;
mod run;
mod systems;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The same allocator as the `oberon-renderer` binary (for the static-bytes server).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Oberon side by side with Podium, Tailor and the static-bytes limit")]
pub struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
    /// Seconds of load before measuring, per system.
    #[arg(long, default_value_t = 5)]
    pub warmup_s: u64,
    /// Seconds of measured load, per system.
    #[arg(long, default_value_t = 15)]
    pub duration_s: u64,
    /// Timeout of every part, in every system (Podium's default is 1000, Tailor's 3000).
    #[arg(long, default_value_t = 1000)]
    pub part_timeout_ms: u64,
    /// Delay of the slow, non-critical part in `/slow`.
    #[arg(long, default_value_t = 1500)]
    pub slow_part_ms: u64,
    /// Delay of the critical part in `/critical`.
    #[arg(long, default_value_t = 400)]
    pub critical_part_ms: u64,
    /// Timed requests per slow-part page and system.
    #[arg(long, default_value_t = 5)]
    pub slow_samples: usize,
    /// CPUs of the load generator (and the parts server); empty: not pinned.
    #[arg(long, default_value = "0")]
    pub load_cpus: String,
    /// CPUs of the system under test; empty: not pinned.
    #[arg(long, default_value = "1")]
    pub server_cpus: String,
    /// The `oberon-renderer` binary (default: beside this one).
    #[arg(long)]
    pub renderer: Option<PathBuf>,
    /// Another `oberon-renderer` binary (an earlier commit's, say) to measure beside
    /// this one on the same site and load, as the system `oberon-baseline`, which is
    /// then run right after `oberon`: a change's cost read within one run.
    #[arg(long)]
    pub baseline_renderer: Option<PathBuf>,
    /// Rounds of the alternating measurement of each cost (Oberon traced, or the
    /// baseline renderer, against Oberon): both servers up, short loads taking turns
    /// (one order, then the other), so the machine's drift in the meantime falls on
    /// both alike. Its median ratio is the one held to a target. 0: none. Many short
    /// turns rather than a few long ones: the two of a round are closer in time, and
    /// the median of more rounds moves less (traces on, none sampled: rounds of
    /// 96.3–102 % with 16 of 2 s, of 85.6–105.6 % with 6 of 5 s).
    #[arg(long, default_value_t = 16)]
    pub alternating_rounds: u32,
    /// Seconds of each turn of the alternating measurement.
    #[arg(long, default_value_t = 2)]
    pub alternating_s: u64,
    /// Where to write the results document.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md"))]
    pub results: PathBuf,
    /// After Oberon's measurement, load it once more with `perf record -g` attached
    /// and write the profile here (`perf report -i FILE --no-children`).
    #[arg(long)]
    pub perf_record: Option<PathBuf>,
    /// Systems to run (limit, oberon, oberon-uncached, oberon-varied, podium, tailor,
    /// oberon-baseline, oberon-traced), comma-separated.
    #[arg(
        long,
        default_value = "limit,oberon,oberon-traced,oberon-uncached,oberon-varied,podium,tailor",
        value_delimiter = ','
    )]
    pub systems: Vec<String>,
}

#[derive(Subcommand)]
enum Role {
    /// Serve the parts (used by the harness itself).
    ServeParts {
        #[arg(long)]
        listen: String,
        /// Directory with `part-N.html`.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Serve one file's bytes for every request (the limit; used by the harness).
    ServeStatic {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        body: PathBuf,
    },
}

impl Args {
    pub fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_s)
    }
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s)
    }
    pub fn load_cpus(&self) -> Option<&str> {
        Some(self.load_cpus.as_str()).filter(|c| !c.is_empty())
    }
    pub fn server_cpus(&self) -> Option<&str> {
        Some(self.server_cpus.as_str()).filter(|c| !c.is_empty())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.role {
        Some(Role::ServeParts { listen, html }) => parts::serve(listen, html.as_deref()),
        Some(Role::ServeStatic { listen, body }) => serve_static(listen, body),
        None => run::main(args),
    }
}

fn serve_static(listen: &str, body: &std::path::Path) -> anyhow::Result<()> {
    let body = bytes::Bytes::from(std::fs::read(body)?);
    http::run_server(listen, move |_req| {
        let body = body.clone();
        async move { http::answer(200, "text/html; charset=utf-8", &[], body) }
    })
}
