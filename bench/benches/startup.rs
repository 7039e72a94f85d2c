//! Time from starting the `oberon-renderer` process to the first demo page served
//! (`/events/42`, 200, every component rendered), with the compiled-code cache cold,
//! warm, and without one. Target with a warm cache: under 200 ms.
//!
//! `cargo build --release -p oberon-renderer && cargo bench -p oberon-bench --bench
//! startup` (`-- RUNS` for more warm starts). The renderer is the release binary beside
//! this bench's. The components are the demo's, built from source: the Rust ones by
//! `oberon-test-artifacts`, the Python and JavaScript ones as `oberon dev` builds them
//! (their tools from `OBERON_TOOLS_DIR`, which `tests/run --setup-only` installs). The
//! events BFF is a loopback server answering the demo fixture.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EVENT: &str = include_str!("../../demo/fixtures/event-42.json");

/// Kills the renderer when a run ends, however it ends.
struct Renderer(Child);

impl Drop for Renderer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bff = rt.block_on(start_bff());

    let components = tempfile::tempdir().expect("tempdir");
    let other_languages = oberon_e2e_tests::demo::other_languages()
        .iter()
        .map(|built| built.artifact());
    let artifacts: Vec<_> = oberon_test_artifacts::examples()
        .chain(other_languages)
        .collect();
    for artifact in &artifacts {
        oberon_renderer::component_set::install(
            components.path(),
            artifact.name,
            artifact.wasm(),
            Some(&artifact.assets_dir()),
        )
        .expect("install");
    }
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().join("code-cache");

    let first_page =
        |cache: Option<&Path>| rt.block_on(start_to_first_page(components.path(), cache, bff));
    let uncached = first_page(None);
    let cold = first_page(Some(&cache_dir));
    let mut warm: Vec<Duration> = (0..runs).map(|_| first_page(Some(&cache_dir))).collect();
    warm.sort();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "process start to first /events/42 (200), demo site, {} components ({}):",
        artifacts.len(),
        artifacts
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  no code cache          {:8.1} ms", ms(uncached));
    println!(
        "  cold code cache        {:8.1} ms (compiles and writes)",
        ms(cold)
    );
    println!(
        "  warm code cache        {:8.1} ms median, {:.1} min, {:.1} max over {} starts (target < 200 ms)",
        ms(warm[warm.len() / 2]),
        ms(warm[0]),
        ms(warm[warm.len() - 1]),
        warm.len()
    );
}

async fn start_to_first_page(components: &Path, cache: Option<&Path>, bff: SocketAddr) -> Duration {
    let port = free_port();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    let mut command = Command::new(renderer_binary());
    command
        .arg("--site")
        .arg(&site)
        .arg("--components")
        .arg(components)
        .arg("--bff")
        .arg(format!("events=http://{bff}"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--watch-ms")
        .arg("0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(cache) = cache {
        command.arg("--code-cache").arg(cache);
    }
    let started = Instant::now();
    let _renderer = Renderer(command.spawn().expect("spawn oberon-renderer"));
    let url = format!("http://127.0.0.1:{port}/events/42");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no page within 60 s"
        );
        if let Ok(response) = client.get(&url).send().await
            && response.status() == 200
        {
            let elapsed = started.elapsed();
            let body = response.text().await.expect("body");
            assert!(
                body.contains("The Midnight Orchestra")
                    && body.contains(r#"class="delivery-for""#)
                    && body.contains(r#"class="cart-discount""#)
                    && !body.contains("unavailable right now"),
                "the first page is the whole page"
            );
            return elapsed;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The release `oberon-renderer`: `target/release/`, beside `deps/` where this runs.
fn renderer_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from target/<profile>/deps")
        .join("oberon-renderer");
    assert!(
        binary.is_file(),
        "{} is not built: run `cargo build --release -p oberon-renderer` first",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_bff() -> SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/events/{id}",
        get(|| async {
            (
                [
                    ("content-type", "application/json"),
                    ("cache-control", "max-age=60"),
                ],
                EVENT,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
