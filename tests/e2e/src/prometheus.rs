//! A real Prometheus (Debian's `prometheus` package) on loopback, scraping the targets a
//! test gives it every second and evaluating the repository's rules
//! (`infra/observability/prometheus/rules`), queried over its HTTP API. Stopped when
//! dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::platform::{debian_program, free_addr};

/// `prometheus`: `$OBERON_PROMETHEUS`, else Debian's path, else whatever is on `PATH`.
fn prometheus() -> PathBuf {
    debian_program("OBERON_PROMETHEUS", "/usr/bin/prometheus")
}

/// The repository's rules file.
fn rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/observability/prometheus/rules/oberon.rules.yaml")
}

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
    client: reqwest::Client,
}

impl Prometheus {
    /// Start it scraping `jobs` (job name, its targets' `host:port`) at `/metrics`, and
    /// wait until it answers.
    pub async fn start(jobs: &[(&str, Vec<SocketAddr>)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nscrape_configs:\n",
            rules().display().to_string()
        );
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|a| format!("\"{a}\"")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        let config_file = dir.path().join("prometheus.yaml");
        std::fs::write(&config_file, config).expect("prometheus.yaml");
        let addr = free_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(prometheus())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (install Debian's prometheus: tests/run does, or point OBERON_PROMETHEUS at one)",
                    prometheus().display()
                )
            });
        let mut prometheus = Prometheus {
            child,
            addr,
            dir,
            client: reqwest::Client::new(),
        };
        prometheus.wait_until_ready().await;
        prometheus
    }

    async fn wait_until_ready(&mut self) {
        let url = format!("http://{}/-/ready", self.addr);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if let Ok(r) = self.client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "prometheus not ready within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant vector `query` evaluates to now: each series' labels and value.
    pub async fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let response: Value = self
            .client
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", query)])
            .send()
            .await
            .expect("query prometheus")
            .bytes()
            .await
            .ok()
            .and_then(|body| serde_json::from_slice(&body).ok())
            .expect("prometheus answers JSON");
        assert_eq!(response["status"], "success", "{query}: {response}");
        assert_eq!(response["data"]["resultType"], "vector", "{query}");
        response["data"]["result"]
            .as_array()
            .expect("a result list")
            .iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// Wait (up to 30 s: a few scrapes and rule evaluations) until `query` has exactly
    /// one series and its value is `expected`; panic with what it last was.
    pub async fn expect(&self, query: &str, expected: f64) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.query(query).await;
            if let [(_, value)] = result.as_slice()
                && (*value - expected).abs() < 1e-9
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "{query}: expected one series of {expected}, got {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
