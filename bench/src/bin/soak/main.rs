//! `soak`: the whole platform, each part a process of its own on loopback, under a
//! mixed load for a bounded time while faults are injected on a schedule (issue 18).
//! `bench/soak` builds the binaries in release mode and runs it:
//!
//! 1. writes a scratch directory (the demo site with marked fallbacks and a chaos
//!    page, fixtures for many events and users, the gateway's configuration), deploys
//!    the components into a registry with `oberon component deploy`, and starts the
//!    backends, the BFFs, the gateway, the renderer and Varnish (`stack`);
//! 2. warms up (every URL once, then the load with one short pass of the fault
//!    schedule), waits until idle, and measures each process's memory and open file
//!    descriptors;
//! 3. runs the open-loop load (`load`) and the fault schedule (`schedule`) together,
//!    every answer checked against the policy (`policy`) as it arrives;
//! 4. waits until idle, measures again, prints the table (`report`) and exits non-zero
//!    on any response outside the policy, any fault whose effect was not seen, or a
//!    process growing more than 10 %.
//!
//! Nothing is written into the repository. Every process it starts is in its own
//! process group and is stopped when it ends, fails, panics or is interrupted
//! (Ctrl-C, SIGTERM). Killed outright (SIGKILL), it takes the services with it (a
//! parent-death signal) but not varnishd, which clears that signal when it changes
//! credentials for its worker.

mod fault;
mod load;
mod policy;
mod report;
mod run;
mod schedule;
mod site;
mod slowloris;
mod stack;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "The whole platform under load and faults, for a bounded time")]
pub struct Args {
    /// Minutes the whole run takes, start-up and warm-up included.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Requests per second, open loop (a moderate rate: the point is faults and
    /// growth, not peak throughput).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Events in the backend's fixtures (`/events/1..=N`, and a tenth past them).
    #[arg(long, default_value_t = 40)]
    pub events: u32,
    /// Signed-in users.
    #[arg(long, default_value_t = 20)]
    pub users: u32,
    /// Seconds of warm-up: load with one pass of the fault schedule, so that every
    /// path (and every cache, pool and buffer it fills) has been through before the
    /// first measurement. Default: 15 % of the run, between 60 and 300.
    #[arg(long)]
    pub warmup_s: Option<u64>,
    /// Slowloris connections per target (gateway, renderer) during that fault.
    #[arg(long, default_value_t = 100)]
    pub slowloris: usize,
    /// Keep the scratch directory (site, registry, every process's log) and print
    /// where it is.
    #[arg(long)]
    pub keep: bool,
    /// Where the release binaries are (default: beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            result = run::run(args) => match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("soak: error: {e:#}");
                    ExitCode::FAILURE
                }
            },
            signal = interrupted() => {
                eprintln!("soak: {signal}: stopping everything");
                ExitCode::from(130)
            }
        }
    });
    // Dropping the run (above) stopped every process; tasks still on the runtime
    // (the fault proxies, the load) go with it.
    runtime.shutdown_background();
    code
}

/// Resolves on Ctrl-C or SIGTERM, naming which.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}
