//! The run itself: setup, each system in turn, the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Args;
use crate::parts;
use crate::probe::{self, Sample};
use crate::report::{self, Fidelity, SlowCase, SystemResult};
use crate::systems::{self, Delays, Observed, Paths, Running};
use crate::wrk::Load;
use oberon_bench::process;

pub fn main(mut args: Args) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        eprintln!("only {cpus} CPU: the load generator and the servers are not pinned");
        args.load_cpus.clear();
        args.server_cpus.clear();
    }
    // A baseline renderer is measured right after this one, under the same conditions.
    if args.baseline_renderer.is_some() && !args.systems.iter().any(|s| s == "oberon-baseline") {
        let at = args
            .systems
            .iter()
            .position(|s| s == "oberon")
            .map_or(0, |i| i + 1);
        args.systems.insert(at, "oberon-baseline".into());
    }
    // Before the runtime starts, so that every thread of the harness (and the probe)
    // stays on the load generator's CPU.
    if let Some(cpus) = args.load_cpus() {
        process::pin_self(cpus)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profiling = if args.perf_record.is_some() {
        args.duration()
    } else {
        Duration::ZERO
    };
    let per_system = args.warmup() + args.duration() + profiling + Duration::from_secs(30);
    let slow = Duration::from_millis(
        (args.part_timeout_ms + args.slow_part_ms + args.critical_part_ms)
            * args.slow_samples as u64,
    );
    let limit = (per_system + slow) * args.systems.len() as u32 + Duration::from_secs(180);
    runtime.block_on(async {
        tokio::select! {
            result = tokio::time::timeout(limit, run(&args)) => {
                result.map_err(|_| anyhow::anyhow!("stopped after {limit:?}: every server was stopped"))?
            }
            signal = interrupted() => {
                anyhow::bail!("{signal}: every server was stopped")
            }
        }
    })
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "hung up",
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let machine_before = report::Machine::read();
    let work = tempfile::Builder::new()
        .prefix("oberon-compare-")
        .tempdir()?;
    let paths = paths(args, work.path())?;
    ensure_peers(&paths.peers)?;
    let delays = Delays {
        slow_ms: args.slow_part_ms,
        critical_ms: args.critical_part_ms,
    };
    let load = Load {
        connections: args.connections,
        cpus: args.load_cpus().map(str::to_string),
        timeout: Duration::from_secs(5),
    };

    // The parts, served to Oberon as data from its BFF.
    let bff = systems::start_self("bff", &paths, &["serve-parts".into()], args.load_cpus())?;
    probe::wait_ready(&bff.addr, "/data/1", Duration::from_secs(20)).await?;
    let site = work.path().join("site");
    let uncached_site = work.path().join("site-uncached");
    for (dir, render_cache) in [(&site, true), (&uncached_site, false)] {
        systems::oberon_site(
            dir,
            &format!("http://{}", bff.addr),
            args.part_timeout_ms,
            delays,
            render_cache,
        )?;
    }
    let vary = work.path().join("vary.lua");
    std::fs::write(&vary, crate::wrk::VARY_QUERY)?;

    // The parts' HTML and the page, as Oberon renders them: what every system serves.
    eprintln!("reading the page from Oberon");
    let (parts_html, page) = {
        let mut oberon = systems::start_oberon(
            &paths,
            &paths.renderer,
            &site,
            args.server_cpus(),
            Observed::Metrics,
        )?;
        wait_up(&mut oberon, "/_oberon/readyz", Duration::from_secs(60)).await?;
        let mut parts_html = Vec::new();
        for n in parts::numbers() {
            let s = probe::get(&oberon.addr, &format!("/part/{n}")).await?;
            anyhow::ensure!(s.status == 200, "Oberon's /part/{n} answers {}", s.status);
            parts_html.push(String::from_utf8(s.body.to_vec())?);
        }
        let s = probe::get(&oberon.addr, "/bench").await?;
        anyhow::ensure!(s.status == 200, "Oberon's /bench answers {}", s.status);
        (parts_html, String::from_utf8(s.body.to_vec())?)
    };
    let skeleton = systems::skeleton(&page, &parts_html)?;
    let html_dir = work.path().join("html");
    std::fs::create_dir_all(&html_dir)?;
    for (i, html) in parts_html.iter().enumerate() {
        std::fs::write(html_dir.join(format!("part-{}.html", i + 1)), html)?;
    }
    let page_file = work.path().join("page.html");
    std::fs::write(&page_file, &page)?;
    let fragments = systems::start_self(
        "fragments",
        &paths,
        &[
            "serve-parts".into(),
            "--html".into(),
            html_dir.display().to_string(),
        ],
        args.load_cpus(),
    )?;
    probe::wait_ready(&fragments.addr, "/html/1", Duration::from_secs(20)).await?;
    let parts_origin = format!("http://{}", fragments.addr);

    // Where `oberon-traced` sends its spans: every export answered 200, on the load
    // generator's CPUs.
    let empty = work.path().join("empty");
    std::fs::write(&empty, "")?;
    let sink = systems::start_self(
        "sink",
        &paths,
        &[
            "serve-static".into(),
            "--body".into(),
            empty.display().to_string(),
        ],
        args.load_cpus(),
    )?;

    // Each system as it is measured: stopped (dropped) before the next starts.
    let start = |name: &str| -> anyhow::Result<Running> {
        Ok(match name {
            "limit" => systems::start_self(
                "limit",
                &paths,
                &[
                    "serve-static".into(),
                    "--body".into(),
                    page_file.display().to_string(),
                ],
                args.server_cpus(),
            )?,
            // The same page three ways: its renders reused (the default), the render
            // cache off, and its inputs changing on every request (nothing reused).
            "oberon" | "oberon-varied" => systems::start_oberon(
                &paths,
                &paths.renderer,
                &site,
                args.server_cpus(),
                Observed::Metrics,
            )?,
            "oberon-uncached" => systems::start_oberon(
                &paths,
                &paths.renderer,
                &uncached_site,
                args.server_cpus(),
                Observed::Metrics,
            )?,
            // Its traces go to the harness's own sink, which answers every export 200.
            "oberon-traced" => systems::start_oberon(
                &paths,
                &paths.renderer,
                &site,
                args.server_cpus(),
                Observed::MetricsAndTraces {
                    endpoint: &format!("http://{}", sink.addr),
                },
            )?,
            "oberon-baseline" => {
                let baseline = paths.baseline.as_deref().context(
                    "oberon-baseline needs --baseline-renderer PATH (another oberon-renderer binary)",
                )?;
                systems::start_oberon(
                    &paths,
                    baseline,
                    &site,
                    args.server_cpus(),
                    Observed::Nothing,
                )?
            }
            "podium" | "tailor" => {
                let port = process::free_port()?;
                let config = work.path().join(format!("{name}.json"));
                systems::peer_config(
                    &config,
                    port,
                    &parts_origin,
                    args.part_timeout_ms,
                    &skeleton,
                    delays,
                )?;
                let script = if name == "podium" {
                    "podium-layout.mjs"
                } else {
                    "tailor-layout.cjs"
                };
                systems::start_node(name, script, &paths, &config, port, args.server_cpus())?
            }
            other => anyhow::bail!(
                "unknown system {other:?}: use limit, oberon, oberon-uncached, oberon-varied, oberon-traced, podium, tailor, oberon-baseline"
            ),
        })
    };
    let mut results = Vec::new();
    for name in &args.systems {
        eprintln!("measuring {name}");
        let running = start(name)?;
        let script = (name == "oberon-varied").then_some(vary.as_path());
        let result = measure(name, running, args, &load, script, &page, &parts_html).await?;
        eprintln!("  {}", report::one_line(&result));
        results.push(result);
    }
    let mut alternating = Vec::new();
    for other in ["oberon-traced", "oberon-baseline"] {
        let measured = |name: &str| args.systems.iter().any(|s| s == name);
        if args.alternating_rounds > 0 && measured("oberon") && measured(other) {
            eprintln!("alternating oberon and {other}");
            let result = alternate(other, start("oberon")?, start(other)?, args, &load).await?;
            eprintln!("  {}", report::alternating_line(&result));
            alternating.push(result);
        }
    }
    drop((bff, fragments, sink));

    let machine_after = report::Machine::read();
    let doc = report::Document {
        args,
        machine_before,
        machine_after,
        versions: report::Versions::read(&paths),
        page_bytes: page.len(),
        part_bytes: parts_html.iter().map(String::len).collect(),
        results,
        alternating,
        elapsed: started.elapsed(),
    };
    let text = doc.render();
    println!("{text}");
    let kept = std::fs::read_to_string(&args.results).unwrap_or_default();
    std::fs::write(&args.results, report::keeping_history(&text, &kept))
        .with_context(|| format!("writing {}", args.results.display()))?;
    eprintln!("written to {}", args.results.display());
    Ok(())
}

async fn measure(
    name: &str,
    mut running: Running,
    args: &Args,
    load: &Load,
    script: Option<&Path>,
    page: &str,
    parts_html: &[String],
) -> anyhow::Result<SystemResult> {
    let ready_path = if name.starts_with("oberon") {
        "/_oberon/readyz"
    } else {
        "/bench"
    };
    wait_up(&mut running, ready_path, Duration::from_secs(60)).await?;
    let first = probe::get(&running.addr, "/bench").await?;
    anyhow::ensure!(
        first.status == 200,
        "{name}: /bench answers {}",
        first.status
    );
    let fidelity = fidelity(name, &first.body, page, parts_html)?;
    let url = format!("http://{}/bench", running.addr);

    load.run(&url, args.warmup(), script).await?;
    let until = Instant::now() + args.duration();
    let cpu_before = process::cpu_time(running.server.pid());
    let (wrk, probe) = tokio::join!(
        load.run(&url, args.duration(), script),
        probe::sample_until(&running.addr, "/bench", until)
    );
    let cpu_after = process::cpu_time(running.server.pid());
    let (wrk, probe) = (wrk?, probe?);
    running.server.check_alive()?;
    // The server's own CPU per page served: a figure the machine's speed of the moment
    // moves less than throughput, and one that shows a cost even where the server is
    // not the bottleneck.
    let pages = wrk.requests + probe.len() as u64;
    let cpu_per_page = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if pages > 0 => Some(a.saturating_sub(b) / pages as u32),
        _ => None,
    };
    anyhow::ensure!(
        probe.iter().all(|s| s.status == 200),
        "{name}: the probe got answers other than 200 under load"
    );

    let profile = match (&args.perf_record, name) {
        (Some(file), n) if n.starts_with("oberon") => {
            Some(profile(&running, args, load, script, &url, file).await?)
        }
        _ => None,
    };

    // The slow pages once per system: Oberon's variants differ only under load.
    let (slow, critical) = if matches!(name, "limit" | "oberon-uncached" | "oberon-varied") {
        (None, None)
    } else {
        let slow = slow_case(&running.addr, "/slow", args.slow_samples).await?;
        let critical = slow_case(&running.addr, "/critical", args.slow_samples).await?;
        let fallback = parts::fallback(systems::SLOW_PART);
        let shows = |s: &Sample| String::from_utf8_lossy(&s.body).contains(&fallback);
        let critical_part = &parts_html[systems::CRITICAL_PART - 1];
        let complete = |s: &Sample| String::from_utf8_lossy(&s.body).contains(critical_part);
        (
            Some(SlowCase::new(&slow, shows)),
            Some(SlowCase::new(&critical, complete)),
        )
    };
    running.server.check_alive()?;
    let peak_kib = running.server.peak_memory_kib();
    // Stopped before the next system starts: each is measured alone.
    drop(running);
    Ok(SystemResult {
        name: name.to_string(),
        fidelity,
        body_bytes: first.body.len(),
        wrk,
        ttfb: probe.iter().map(|s| s.first_byte).collect(),
        // A page of another length under load is one with a part missing (a fallback
        // after a timeout, say): cheaper, and not the page being compared.
        short_pages: probe.iter().filter(|s| s.bytes != first.body.len()).count(),
        probe_pages: probe.len(),
        peak_kib,
        cpu_per_page,
        slow,
        critical,
        profile,
    })
}

/// Oberon (`a`) and `name` (`b`) both up on the same CPU, loaded in turns of
/// `--alternating-s`, `--alternating-rounds` times, in the order a b, then b a: per
/// round, `b`'s throughput over `a`'s, and its CPU per page over `a`'s. A drift of the machine's speed between two
/// systems measured one after the other is the noise this cancels.
async fn alternate(
    name: &str,
    mut a: Running,
    mut b: Running,
    args: &Args,
    load: &Load,
) -> anyhow::Result<report::Alternating> {
    let turn = Duration::from_secs(args.alternating_s);
    for running in [&mut a, &mut b] {
        wait_up(running, "/_oberon/readyz", Duration::from_secs(60)).await?;
        load.run(&bench_url(running), args.warmup(), None).await?;
    }
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for round in 0..args.alternating_rounds {
        let order = if round % 2 == 0 { [&a, &b] } else { [&b, &a] };
        let mut turns = Vec::new();
        for running in order {
            turns.push(turn_of(running, turn, load).await?);
        }
        if round % 2 == 1 {
            turns.reverse();
        }
        let [(a_rps, a_cpu), (b_rps, b_cpu)] = [turns[0], turns[1]];
        anyhow::ensure!(a_rps > 0.0, "oberon served nothing in a turn");
        ratios.push(b_rps / a_rps);
        if let (Some(a_cpu), Some(b_cpu)) = (a_cpu, b_cpu) {
            cpu_ratios.push(b_cpu / a_cpu);
        }
    }
    a.server.check_alive()?;
    b.server.check_alive()?;
    Ok(report::Alternating {
        name: name.to_string(),
        turn,
        ratios,
        cpu_ratios,
    })
}

/// One turn of load: its throughput, and the server's CPU seconds per page.
async fn turn_of(
    running: &Running,
    turn: Duration,
    load: &Load,
) -> anyhow::Result<(f64, Option<f64>)> {
    let before = process::cpu_time(running.server.pid());
    let wrk = load.run(&bench_url(running), turn, None).await?;
    let after = process::cpu_time(running.server.pid());
    let cpu = match (before, after) {
        (Some(b), Some(a)) if wrk.requests > 0 => {
            Some(a.saturating_sub(b).as_secs_f64() / wrk.requests as f64)
        }
        _ => None,
    };
    Ok((wrk.requests_per_s, cpu))
}

fn bench_url(running: &Running) -> String {
    format!("http://{}/bench", running.addr)
}

/// The same load once more, with `perf record` attached to the server (not measured:
/// the profiler's own cost would be in the figures).
async fn profile(
    running: &Running,
    args: &Args,
    load: &Load,
    script: Option<&Path>,
    url: &str,
    file: &Path,
) -> anyhow::Result<String> {
    eprintln!(
        "  profiling {} into {}",
        running.server.name,
        file.display()
    );
    let mut perf = tokio::process::Command::new("perf");
    perf.args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
        .arg(file)
        .args(["-p", &running.server.pid().to_string(), "--", "sleep"])
        .arg(args.duration_s.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let perf = perf.spawn().context("running perf record")?;
    let (wrk, perf) = tokio::join!(
        load.run(url, args.duration(), script),
        perf.wait_with_output()
    );
    wrk?;
    anyhow::ensure!(perf?.status.success(), "perf record failed");
    // Self time by object (the renderer, its JIT-compiled guests, the kernel, libc).
    let report = tokio::process::Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--sort",
            "dso",
            "--stdio",
            "-g",
            "none",
            "-i",
        ])
        .arg(file)
        .output()
        .await
        .context("running perf report")?;
    Ok(String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(8)
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join("\n"))
}

async fn slow_case(addr: &str, path: &str, samples: usize) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut probe = probe::Probe::connect(addr).await?;
    for i in 0..samples {
        out.push(probe.get(&format!("{path}?r={i}")).await?);
    }
    Ok(out)
}

/// How a system's page compares with Oberon's bytes.
fn fidelity(
    name: &str,
    body: &[u8],
    page: &str,
    parts_html: &[String],
) -> anyhow::Result<Fidelity> {
    if body == page.as_bytes() {
        return Ok(Fidelity::Identical);
    }
    let text = String::from_utf8_lossy(body);
    systems::skeleton(&text, parts_html)
        .with_context(|| format!("{name}'s page does not hold the same four parts in order"))?;
    Ok(Fidelity::SameParts {
        extra_bytes: body.len() as i64 - page.len() as i64,
    })
}

async fn wait_up(running: &mut Running, path: &str, limit: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    loop {
        match probe::wait_ready(&running.addr, path, Duration::from_millis(500)).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > until => {
                return Err(e.context(format!("{} did not come up", running.server.name)));
            }
            Err(_) => {}
        }
        // A server that died will not come up: say why at once.
        running.server.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn paths(args: &Args, work: &Path) -> anyhow::Result<Paths> {
    let this_exe = std::env::current_exe()?;
    let renderer = match &args.renderer {
        Some(p) => p.clone(),
        None => this_exe
            .parent()
            .map(|d| d.join("oberon-renderer"))
            .unwrap_or_else(|| PathBuf::from("oberon-renderer")),
    };
    anyhow::ensure!(
        renderer.is_file(),
        "no renderer at {}: run `bench/run` (which builds it), or `cargo build --release -p oberon-renderer` first",
        renderer.display()
    );
    let node = find("node").context("node is not installed (Node 20 or later)")?;
    find("wrk").context("wrk is not installed (apt-get install wrk)")?;
    if let Some(b) = &args.baseline_renderer {
        anyhow::ensure!(b.is_file(), "no baseline renderer at {}", b.display());
    }
    Ok(Paths {
        peers: Path::new(env!("CARGO_MANIFEST_DIR")).join("peers"),
        renderer,
        baseline: args.baseline_renderer.clone(),
        node,
        this_exe,
        work: work.to_path_buf(),
    })
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `npm ci` in `bench/peers` unless its `node_modules` matches the lock file.
fn ensure_peers(peers: &Path) -> anyhow::Result<()> {
    let installed = peers.join("node_modules/.package-lock.json");
    let lock = peers.join("package-lock.json");
    let fresh = match (std::fs::metadata(&installed), std::fs::metadata(&lock)) {
        (Ok(i), Ok(l)) => i.modified()? >= l.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    eprintln!("installing the peers: npm ci in {}", peers.display());
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(peers)
        .status()
        .context("running npm")?;
    anyhow::ensure!(status.success(), "npm ci failed in {}", peers.display());
    Ok(())
}
