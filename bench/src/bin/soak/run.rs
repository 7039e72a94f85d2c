//! One soak, start to end (see the crate docs for the steps).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::Args;
use crate::load::{self, Client, Mix};
use crate::policy::Policy;
use crate::report::{Growth, Recorder, Summary};
use crate::schedule::{FaultLog, Outcome, Schedule};
use crate::stack::{self, Binaries, Stack};
use crate::tokens::Tokens;

/// Longer than every idle limit on the path (pooled clients 8 s, servers' keep-alive
/// 10 s, the harness's own pool 2 s), so that an idle measurement counts no
/// connection left over from the load.
const QUIET: Duration = Duration::from_secs(12);
/// Start-up, the two quiet periods' rounding, the end: what the measured period
/// leaves of `--minutes` besides warm-up and quiet.
const OVERHEAD: Duration = Duration::from_secs(30);

/// Whether the run kept every promise.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    let began = Instant::now();
    let binaries = Binaries {
        dir: match &args.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
        },
    };
    let measured = measured_period(&args)?;
    eprintln!("soak: starting the platform (components deployed through the registry)");
    let mut stack = Stack::start(&binaries, args.events, args.users, args.keep).await?;
    if args.keep {
        eprintln!("soak: logs and scratch in {}", stack.log_dir().display());
    }
    let faults = Arc::new(FaultLog::default());
    let recorder = Arc::new(Recorder::default());
    let policy = Arc::new(Policy {
        events: args.events,
        faults: faults.clone(),
    });
    let tokens = Arc::new(Tokens::new(stack.issuer.clone(), args.users));
    let client = Client::new(stack.varnish.url(""), tokens, policy, recorder.clone());
    let mix = Mix {
        events: args.events,
        users: args.users,
    };

    let warmup = warmup_period(&args);
    eprintln!(
        "soak: warming up: {} URLs once, then {} s of load with every fault",
        mix.every().len(),
        warmup.as_secs()
    );
    futures::stream::iter(mix.every())
        .for_each_concurrent(8, |planned| {
            let client = client.clone();
            async move { client.send(planned).await }
        })
        .await;
    let mut outcome = loaded(&stack, &client, &args, &faults, warmup, "2.0.0").await;
    stack.check_alive()?;
    tokio::time::sleep(QUIET).await;
    let start: Vec<_> = stack
        .processes()
        .into_iter()
        .filter_map(|(name, pid, allowance)| Some((name, pid, allowance, stack::usage(pid)?)))
        .collect();
    let accounts_start = stack.renderer_accounts().await;

    eprintln!(
        "soak: {:.1} min of load at {}/s with faults",
        measured.as_secs_f64() / 60.0,
        args.rate
    );
    let measured_outcome = loaded(&stack, &client, &args, &faults, measured, "3.0.0").await;
    outcome.violations.extend(measured_outcome.violations);
    outcome.slowloris.extend(measured_outcome.slowloris);
    stack.check_alive()?;

    tokio::time::sleep(QUIET).await;
    let growth: Vec<Growth> = start
        .into_iter()
        .map(|(name, pid, rss_allowance_kib, start)| Growth {
            name,
            pid,
            rss_allowance_kib,
            start,
            end: stack::usage(pid),
        })
        .collect();
    let accounts_end = stack.renderer_accounts().await;
    let summary = Summary {
        recorder: &recorder,
        outcome: &outcome,
        growth: &growth,
        measured,
        rate: args.rate,
    };
    summary.print();
    let unknown = || "(no answer)".to_string();
    println!(
        "\nThe renderer's accounts of its memory, from /_oberon/status\n  after warm-up: {}\n  after the run: {}",
        accounts_start.unwrap_or_else(unknown),
        accounts_end.unwrap_or_else(unknown),
    );
    let failures = summary.failures();
    println!(
        "\n{} after {:.1} min",
        if failures.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL: {}", failures.join("; "))
        },
        began.elapsed().as_secs_f64() / 60.0
    );
    if args.keep {
        println!("scratch kept in {}", stack.log_dir().display());
    }
    Ok(failures.is_empty())
}

fn warmup_period(args: &Args) -> Duration {
    Duration::from_secs(
        args.warmup_s
            .unwrap_or_else(|| ((args.minutes * 60.0 * 0.15) as u64).clamp(60, 300)),
    )
}

/// What `--minutes` leaves for the measured load with faults.
fn measured_period(args: &Args) -> anyhow::Result<Duration> {
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let fixed = warmup_period(args) + QUIET * 2 + OVERHEAD;
    let measured = total.checked_sub(fixed).unwrap_or_default();
    anyhow::ensure!(
        measured >= MIN_MEASURED,
        "--minutes {} leaves {} s for faults; give at least {:.1}",
        args.minutes,
        measured.as_secs(),
        (fixed + MIN_MEASURED).as_secs_f64() / 60.0
    );
    Ok(measured)
}

/// Short of this, a pass of the schedule gives its faults a few seconds each.
const MIN_MEASURED: Duration = Duration::from_secs(45);

/// The open-loop load and one pass of the fault schedule over `period`, then until
/// every request is answered.
async fn loaded(
    stack: &Stack,
    client: &Client,
    args: &Args,
    faults: &Arc<FaultLog>,
    period: Duration,
    deploy_version: &str,
) -> Outcome {
    let mix = Mix {
        events: args.events,
        users: args.users,
    };
    let chaos = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let loading = tokio::spawn(load::open_loop(
        client.clone(),
        mix,
        args.rate,
        chaos.clone(),
        stop.clone(),
    ));
    let schedule = Schedule {
        stack,
        log: faults.clone(),
        chaos,
        slowloris_connections: args.slowloris,
        started: Instant::now(),
        deploy_version,
    };
    let outcome = schedule.run(period).await;
    stop.store(true, Ordering::Relaxed);
    let _ = loading.await;
    outcome
}
