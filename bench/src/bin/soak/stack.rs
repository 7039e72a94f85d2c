//! The platform under soak, every part a process of its own on loopback:
//!
//! ```text
//! load → Varnish (oberon.vcl) → gateway → renderer → fault proxy → events BFF → fault proxy → events backend
//!                                  │          │     → fault proxy → checkout BFF → checkout backend
//!                                  │          └─ components: a registry directory (deploy, rollback
//!                                  │             with `oberon component`; "unreachable" by moving it away)
//!                                  └──► BFFs' API routes (directly)
//! ```
//!
//! The fault proxies (`fault`) run in the harness; the identity provider too (the test
//! issuer of `tests/e2e`, whose tokens the gateway accepts). Every process is the
//! leader of its own process group and dies with the harness (`oberon_bench::process`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use oberon_bench::process::{Server, free_port, open_fds, rss_kib, tree};
use oberon_e2e_tests::origin::{ISSUER, Issuer};
use oberon_e2e_tests::varnish::{Varnish, reserve_port, storage_mib};
use sha2::Digest;
use tempfile::TempDir;

use crate::fault::FaultProxy;
use crate::site;

/// The builds of `hello` (`site::DEPLOYED`): stable at the start, and deployed on the
/// schedule. Each renders its own text (`<p>hello v1</p>`, `<p>hello v2</p>`).
pub const HELLO_STABLE: &str = "hello-v1";
pub const HELLO_DEPLOYED: &str = "hello-v2";

/// The renderer's admin token (a soak's own, never a real one).
pub const ADMIN_TOKEN: &str = "soak-admin-token-0123456789abcdef";
const ORIGIN_SECRET: &str = "soak-origin-secret-0123456789abcdef";

/// Where the binaries are (`bench/soak` builds them in release mode).
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn get(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        anyhow::ensure!(
            path.is_file(),
            "{} is not built: run bench/soak, which builds it",
            path.display()
        );
        Ok(path)
    }
}

/// Everything running; dropped, it stops it all (servers first, then the scratch).
pub struct Stack {
    pub varnish: Varnish,
    pub servers: Vec<Server>,
    pub events_bff: FaultProxy,
    pub checkout_bff: FaultProxy,
    pub events_backend: FaultProxy,
    pub issuer: std::sync::Arc<Issuer>,
    pub gateway: SocketAddr,
    pub renderer: SocketAddr,
    pub registry: PathBuf,
    oberon: PathBuf,
    /// Site, fixtures, registry, logs, code cache. Kept (and named) with `--keep`.
    pub scratch: TempDir,
}

impl Stack {
    pub async fn start(
        binaries: &Binaries,
        events: u32,
        users: u32,
        keep: bool,
    ) -> anyhow::Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("oberon-soak-")
            .disable_cleanup(keep)
            .tempdir()?;
        let dir = scratch.path().to_path_buf();
        let log = |name: &str| dir.join(format!("{name}.log"));
        site::write_site(&dir.join("site"))?;
        site::write_events(&dir.join("backends/events"), events)?;
        site::write_orders(&dir.join("backends/checkout"), ISSUER, users)?;
        let issuer = std::sync::Arc::new(Issuer::start().await);

        let oberon = binaries.get("oberon")?;
        let registry = dir.join("registry");
        deploy_all(&oberon, &registry).await?;

        let mut servers = Vec::new();
        let (events_backend_addr, server) =
            fixtures(&oberon, &dir, "events", log("events-backend"))?;
        servers.push(server);
        let (checkout_backend_addr, server) =
            fixtures(&oberon, &dir, "checkout", log("checkout-backend"))?;
        servers.push(server);
        let events_backend = FaultProxy::start(events_backend_addr).await?;

        let gateway: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let renderer: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let gateway_jwks = format!("http://{gateway}/.well-known/oberon/jwks.json");

        let events_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let events_ops: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        servers.push(Server::start(
            "events-bff",
            None,
            &binaries.get("events-bff")?,
            &[],
            &[
                ("EVENTS_BFF_LISTEN", &events_addr.to_string()),
                ("EVENTS_BFF_OPS_LISTEN", &events_ops.to_string()),
                ("EVENTS_BFF_BACKEND_URL", &events_backend.url()),
                ("EVENTS_BFF_LOG", "warn"),
            ],
            log("events-bff"),
        )?);
        let checkout_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let checkout_ops: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        servers.push(Server::start(
            "checkout-bff",
            None,
            &binaries.get("checkout-bff")?,
            &[],
            &[
                ("CHECKOUT_BFF_LISTEN", &checkout_addr.to_string()),
                ("CHECKOUT_BFF_OPS_LISTEN", &checkout_ops.to_string()),
                (
                    "CHECKOUT_BFF_BACKEND_URL",
                    &format!("http://{checkout_backend_addr}"),
                ),
                ("CHECKOUT_BFF_GATEWAY_JWKS_URL", &gateway_jwks),
                // Its name in the gateway's [upstreams]: the assertions it accepts.
                ("CHECKOUT_BFF_AUDIENCE", "checkout"),
                ("CHECKOUT_BFF_LOG", "warn"),
            ],
            log("checkout-bff"),
        )?);
        let events_bff = FaultProxy::start(events_addr).await?;
        let checkout_bff = FaultProxy::start(checkout_addr).await?;

        let varnish_port = reserve_port();
        let config = dir.join("gateway.toml");
        std::fs::write(
            &config,
            site::gateway_config(
                &format!("http://127.0.0.1:{varnish_port}"),
                ISSUER,
                &issuer.jwks_url,
                &[
                    ("renderer", format!("http://{renderer}")),
                    ("events", format!("http://{events_addr}")),
                    ("checkout", format!("http://{checkout_addr}")),
                ],
            ),
        )?;
        servers.push(Server::start(
            "gateway",
            None,
            &binaries.get("oberon-gateway")?,
            &[
                "--config".into(),
                config.display().to_string(),
                "--listen".into(),
                gateway.to_string(),
            ],
            &[
                ("OBERON_ORIGIN_SECRET", ORIGIN_SECRET),
                ("RUST_LOG", "warn"),
            ],
            log("gateway"),
        )?);
        servers.push(Server::start(
            "renderer",
            None,
            &binaries.get("oberon-renderer")?,
            &[
                "--site".into(),
                dir.join("site").display().to_string(),
                "--registry".into(),
                registry.display().to_string(),
                "--bff".into(),
                format!("events={}", events_bff.url()),
                "--bff".into(),
                format!("checkout={}", checkout_bff.url()),
                "--identity-jwks".into(),
                gateway_jwks.clone(),
                "--identity-audience".into(),
                "renderer".into(),
                "--code-cache".into(),
                dir.join("code-cache").display().to_string(),
                "--listen".into(),
                renderer.to_string(),
            ],
            &[("OBERON_ADMIN_TOKEN", ADMIN_TOKEN), ("RUST_LOG", "warn")],
            log("renderer"),
        )?);
        let mut stack_servers = servers;
        wait_ready(
            &mut stack_servers,
            &[
                format!("http://{events_backend_addr}/events/1"),
                format!("http://{checkout_backend_addr}/nothing-here-is-fine"),
                format!("http://{events_ops}/readyz"),
                format!("http://{checkout_ops}/readyz"),
                format!("http://{gateway}/_gateway/readyz"),
                format!("http://{renderer}/_oberon/readyz"),
            ],
        )
        .await?;
        // On this (worker) thread, not a blocking-pool one: varnishd's parent-death
        // signal fires when the thread that started it exits, and the pool's threads
        // exit when idle.
        let varnish = Varnish::start(varnish_port, gateway, ORIGIN_SECRET);
        Ok(Self {
            varnish,
            servers: stack_servers,
            events_bff,
            checkout_bff,
            events_backend,
            issuer,
            gateway,
            renderer,
            registry,
            oberon,
            scratch,
        })
    }

    /// Fails if any process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for server in &mut self.servers {
            server.check_alive()?;
        }
        Ok(())
    }

    /// Every process measured: (name, pid, KiB its RSS may grow by besides the
    /// growth limit), Varnish's manager and worker apart. The worker's cache storage
    /// is bounded and fills by design, so its size is allowed on top.
    pub fn processes(&self) -> Vec<(String, u32, u64)> {
        let mut out: Vec<(String, u32, u64)> = self
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.pid(), 0))
            .collect();
        let manager = self.varnish.pid();
        out.push(("varnishd (manager)".into(), manager, 0));
        for pid in tree(manager).into_iter().skip(1) {
            out.push(("varnishd (worker)".into(), pid, storage_mib() * 1024));
        }
        out
    }

    /// `oberon ARGS…` against this stack's registry or renderer; its output on failure.
    pub async fn oberon(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
        run_oberon(&self.oberon, args, env).await
    }

    pub fn oberon_path(&self) -> &Path {
        &self.oberon
    }

    pub fn renderer_url(&self) -> String {
        format!("http://{}", self.renderer)
    }

    /// The renderer's own account of what holds its memory, from `/_oberon/status`:
    /// the instance pool and the render cache. Beside its RSS it tells bounded slots
    /// and caches filling from a leak. `None` if the renderer does not answer.
    pub async fn renderer_accounts(&self) -> Option<String> {
        let url = format!("{}/_oberon/status", self.renderer_url());
        let status: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        let (pool, cache) = (&status["instance_pool"], &status["render_cache"]);
        let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / (1 << 20) as f64;
        Some(format!(
            "instances in use {}, pool memories in use {} + {} freed, freed slots resident: \
             memory {:.1} M, tables {:.1} M, stacks {:.1} M; render cache {} entries, {:.1} M",
            pool["instances_in_use"],
            pool["memories_in_use"],
            pool["memories_unused_warm"],
            mib(&pool["memory_bytes_resident_unused"]),
            mib(&pool["table_bytes_resident_unused"]),
            mib(&pool["stack_bytes_resident_unused"]),
            cache["entries"],
            mib(&cache["weighted_bytes"]),
        ))
    }

    pub fn log_dir(&self) -> &Path {
        self.scratch.path()
    }
}

/// One process's resident memory and open file descriptors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: u64,
}

pub fn usage(pid: u32) -> Option<Usage> {
    Some(Usage {
        rss_kib: rss_kib(pid)?,
        fds: open_fds(pid)?,
    })
}

/// `oberon fixtures` serving `<scratch>/backends/<name>` on a free port.
fn fixtures(
    oberon: &Path,
    dir: &Path,
    name: &str,
    log: PathBuf,
) -> anyhow::Result<(SocketAddr, Server)> {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let server = Server::start(
        &format!("{name}-backend"),
        None,
        oberon,
        &[
            "fixtures".into(),
            "--root".into(),
            dir.join("backends").join(name).display().to_string(),
            "--listen".into(),
            addr.to_string(),
        ],
        &[],
        log,
    )?;
    Ok((addr, server))
}

/// Deploy every demo component (Rust, Python and JavaScript), `misbehave` and `hello`
/// (its first build) as 1.0.0, through `oberon component deploy` (validation included),
/// into a new registry directory.
async fn deploy_all(oberon: &Path, registry: &Path) -> anyhow::Result<()> {
    let mut artifacts: Vec<_> = oberon_test_artifacts::examples().collect();
    artifacts.extend(
        oberon_e2e_tests::demo::other_languages()
            .iter()
            .map(|built| built.artifact()),
    );
    artifacts.push(oberon_test_artifacts::artifact("misbehave"));
    artifacts.push(oberon_test_artifacts::artifact(HELLO_STABLE));
    for artifact in artifacts {
        deploy(oberon, registry, artifact, "1.0.0").await?;
    }
    Ok(())
}

/// Deploy `artifact` as `version` to stable.
pub async fn deploy(
    oberon: &Path,
    registry: &Path,
    artifact: oberon_test_artifacts::Artifact,
    version: &str,
) -> anyhow::Result<()> {
    let wasm = std::fs::read(artifact.wasm())?;
    let sha256 = hex::encode(sha2::Sha256::digest(&wasm));
    let wasm_path = artifact.wasm().display().to_string();
    let assets = artifact.assets_dir().display().to_string();
    let registry = registry.display().to_string();
    let mut args = vec![
        "component",
        "deploy",
        "--wasm",
        &wasm_path,
        "--dir",
        artifact.crate_dir,
        "--version",
        version,
        "--sha256",
        &sha256,
        "--registry",
        &registry,
        "--actor",
        "soak",
    ];
    if artifact.assets_dir().is_dir() {
        args.extend(["--assets", &assets]);
    }
    run_oberon(oberon, &args, &[])
        .await
        .with_context(|| format!("deploying {} {version}", artifact.name))
}

async fn run_oberon(oberon: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(oberon)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        // Its own process group: a Ctrl-C reaches the harness, which stops it.
        .process_group(0)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", oberon.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "oberon {}: {}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Wait until every URL answers (any status), or a process exits, or 120 s pass.
async fn wait_ready(servers: &mut [Server], urls: &[String]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for url in urls {
        loop {
            for server in servers.iter_mut() {
                server.check_alive()?;
            }
            if let Ok(response) = client.get(url).send().await
                && (response.status().is_success() || response.status().as_u16() == 404)
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{url} not ready within 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
