//! The faults, on a schedule scaled to the run: each has a window (a share of the
//! measured period), is printed as it starts and ends, and is recorded in the
//! [`FaultLog`] the policy reads (an answer may be an error only while a fault that
//! explains it is on). Where a fault's effect can be seen from outside (a deploy
//! served, a rollback served, the registry marked unreachable, a forced mode), the
//! schedule checks it and reports a violation if it is not seen in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fault::Fault;
use crate::site::DEPLOYED;
use crate::slowloris::{self, Slowloris};
use crate::stack::{self, ADMIN_TOKEN, Stack};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    EventsBffDown,
    EventsBffSlow,
    EventsBffGarbage,
    BackendHang,
    CheckoutBffDown,
    ComponentsMisbehave,
    DeployThenRollback,
    RegistryUnreachable,
    ModeForced,
    Slowloris,
}

impl FaultKind {
    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::EventsBffDown => "events BFF down (connections refused)",
            FaultKind::EventsBffSlow => "events BFF slow (1.5 s before every answer)",
            FaultKind::EventsBffGarbage => {
                "events BFF answering garbage (bad JSON, huge max-age and Age, short bodies, not HTTP)"
            }
            FaultKind::BackendHang => "events backend hanging (requests read, never answered)",
            FaultKind::CheckoutBffDown => "checkout BFF down",
            FaultKind::ComponentsMisbehave => {
                "components trapping, looping, exhausting memory, sleeping (/chaos in the load)"
            }
            FaultKind::DeployThenRollback => "deploy hello v2, then roll it back",
            FaultKind::RegistryUnreachable => "registry unreachable (its directory moved away)",
            FaultKind::ModeForced => "cache mode forced to incident, then back to auto",
            FaultKind::Slowloris => "slowloris connections against the gateway and the renderer",
        }
    }
}

/// (fault, start, end) as shares of the measured period; calm between them, and at
/// the end so that what follows a fault is measured too.
const PLAN: &[(FaultKind, f64, f64)] = &[
    (FaultKind::EventsBffDown, 0.03, 0.10),
    (FaultKind::EventsBffSlow, 0.12, 0.19),
    (FaultKind::EventsBffGarbage, 0.21, 0.28),
    (FaultKind::BackendHang, 0.30, 0.37),
    (FaultKind::CheckoutBffDown, 0.39, 0.44),
    (FaultKind::ComponentsMisbehave, 0.46, 0.53),
    (FaultKind::DeployThenRollback, 0.55, 0.63),
    (FaultKind::RegistryUnreachable, 0.65, 0.72),
    (FaultKind::ModeForced, 0.74, 0.81),
    (FaultKind::Slowloris, 0.83, 0.92),
];

/// When each fault was on.
#[derive(Default)]
pub struct FaultLog {
    windows: Mutex<Vec<(FaultKind, Instant, Option<Instant>)>>,
}

impl FaultLog {
    fn started(&self, kind: FaultKind) {
        self.lock().push((kind, Instant::now(), None));
    }

    fn ended(&self, kind: FaultKind) {
        let now = Instant::now();
        for w in self
            .lock()
            .iter_mut()
            .filter(|w| w.0 == kind && w.2.is_none())
        {
            w.2 = Some(now);
        }
    }

    /// Whether `kind` was on at any time in `[from, to]`, or within `grace` after it.
    pub fn overlaps(&self, kind: FaultKind, from: Instant, to: Instant, grace: Duration) -> bool {
        self.lock().iter().any(|(k, start, end)| {
            *k == kind && *start <= to && end.is_none_or(|end| from <= end + grace)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(FaultKind, Instant, Option<Instant>)>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the schedule saw: faults whose effect did not show, and the slowloris tally.
#[derive(Default)]
pub struct Outcome {
    pub violations: Vec<String>,
    pub slowloris: Vec<slowloris::Tally>,
}

pub struct Schedule<'a> {
    pub stack: &'a Stack,
    pub log: Arc<FaultLog>,
    pub chaos: Arc<AtomicBool>,
    pub slowloris_connections: usize,
    pub started: Instant,
    /// The version `hello` v2 is deployed as in this pass (versions are immutable, so
    /// each pass of the schedule has its own).
    pub deploy_version: &'a str,
}

impl Schedule<'_> {
    /// Run every fault of [`PLAN`] over `period`, then return.
    pub async fn run(&self, period: Duration) -> Outcome {
        let mut outcome = Outcome::default();
        let at = |share: f64| self.started + period.mul_f64(share);
        for &(kind, start, end) in PLAN {
            tokio::time::sleep_until(at(start).into()).await;
            self.say("start", kind);
            self.log.started(kind);
            let running = self.begin(kind, &mut outcome).await;
            tokio::time::sleep_until(at(end).into()).await;
            self.end(kind, running, &mut outcome).await;
            self.log.ended(kind);
            self.say("end  ", kind);
        }
        tokio::time::sleep_until((self.started + period).into()).await;
        outcome
    }

    fn say(&self, what: &str, kind: FaultKind) {
        eprintln!(
            "soak: [{:>7.1} s] {what} {}",
            self.started.elapsed().as_secs_f64(),
            kind.describe()
        );
    }

    async fn begin(&self, kind: FaultKind, outcome: &mut Outcome) -> Option<Slowloris> {
        let stack = self.stack;
        match kind {
            FaultKind::EventsBffDown => stack.events_bff.set(Fault::Down),
            FaultKind::EventsBffSlow => {
                stack
                    .events_bff
                    .set(Fault::Slow(Duration::from_millis(1500)));
            }
            FaultKind::EventsBffGarbage => stack.events_bff.set(Fault::Garbage),
            FaultKind::BackendHang => stack.events_backend.set(Fault::Hang),
            FaultKind::CheckoutBffDown => stack.checkout_bff.set(Fault::Down),
            FaultKind::ComponentsMisbehave => self.chaos.store(true, Ordering::Relaxed),
            FaultKind::DeployThenRollback => {
                let v2 = oberon_test_artifacts::artifact(stack::HELLO_DEPLOYED);
                let version = self.deploy_version;
                let deployed = stack::deploy(stack.oberon_path(), &stack.registry, v2, version)
                    .await
                    .map_err(|e| format!("{e:#}"));
                self.expect(outcome, deployed, &format!("deploying hello {version}"));
                let seen = self.until_body("<p>hello v2</p>").await;
                self.expect(outcome, seen, "hello v2 served within 15 s of its deploy");
            }
            FaultKind::RegistryUnreachable => {
                let moved = std::fs::rename(&stack.registry, away(&stack.registry))
                    .map_err(|e| e.to_string());
                self.expect(outcome, moved, "moving the registry away");
                let seen = self.until_registry(false).await;
                self.expect(
                    outcome,
                    seen,
                    "the renderer reports the registry unreachable",
                );
            }
            FaultKind::ModeForced => {
                let set = self.mode("incident").await;
                self.expect(outcome, set, "oberon mode incident");
                let seen = self.until_key("mode:incident", true).await;
                self.expect(outcome, seen, "pages rendered in incident mode within 15 s");
            }
            FaultKind::Slowloris => {
                return Some(Slowloris::start(
                    &[("gateway", stack.gateway), ("renderer", stack.renderer)],
                    self.slowloris_connections,
                ));
            }
        }
        None
    }

    async fn end(&self, kind: FaultKind, running: Option<Slowloris>, outcome: &mut Outcome) {
        let stack = self.stack;
        match kind {
            FaultKind::EventsBffDown | FaultKind::EventsBffSlow | FaultKind::EventsBffGarbage => {
                stack.events_bff.set(Fault::None);
            }
            FaultKind::BackendHang => stack.events_backend.set(Fault::None),
            FaultKind::CheckoutBffDown => stack.checkout_bff.set(Fault::None),
            FaultKind::ComponentsMisbehave => self.chaos.store(false, Ordering::Relaxed),
            FaultKind::DeployThenRollback => {
                let rolled = stack
                    .oberon(
                        &[
                            "component",
                            "rollback",
                            DEPLOYED,
                            "--registry",
                            &stack.registry.display().to_string(),
                            "--actor",
                            "soak",
                        ],
                        &[],
                    )
                    .await
                    .map_err(|e| format!("{e:#}"));
                self.expect(outcome, rolled, "oberon component rollback hello");
                let seen = self.until_body("<p>hello v1</p>").await;
                self.expect(outcome, seen, "hello v1 served within 15 s of the rollback");
            }
            FaultKind::RegistryUnreachable => {
                let moved = std::fs::rename(away(&stack.registry), &stack.registry)
                    .map_err(|e| e.to_string());
                self.expect(outcome, moved, "moving the registry back");
                let seen = self.until_registry(true).await;
                self.expect(
                    outcome,
                    seen,
                    "the renderer reports the registry reachable again",
                );
            }
            FaultKind::ModeForced => {
                let set = self.mode("auto").await;
                self.expect(outcome, set, "oberon mode auto");
                let seen = self.until_key("mode:incident", false).await;
                self.expect(
                    outcome,
                    seen,
                    "pages leave incident mode within 15 s of auto",
                );
            }
            FaultKind::Slowloris => {
                if let Some(running) = running {
                    // However short the window, long enough for every server to
                    // have had to close a connection.
                    running.run_at_least(slowloris::LONG_ENOUGH).await;
                    outcome.slowloris.extend(running.stop().await);
                }
            }
        }
    }

    fn expect(&self, outcome: &mut Outcome, result: Result<(), String>, what: &str) {
        if let Err(e) = result {
            eprintln!("soak: VIOLATION: {what}: {e}");
            outcome.violations.push(format!("{what}: {e}"));
        }
    }

    async fn mode(&self, mode: &str) -> Result<(), String> {
        let url = self.stack.renderer_url();
        self.stack
            .oberon(
                &["mode", mode, "--renderer", &url],
                &[("OBERON_ADMIN_TOKEN", ADMIN_TOKEN)],
            )
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// Until a fresh render straight from the renderer (a query never seen, so no
    /// cache answers it) has (or has not) `key` in its `Surrogate-Key`.
    async fn until_key(&self, key: &str, present: bool) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PROBE_WITHIN;
        let mut last = String::new();
        let mut n = 0u64;
        while Instant::now() < deadline {
            n += 1;
            let url = format!("{}/events/1?probe={n}", self.stack.renderer_url());
            if let Ok(response) = client.get(&url).send().await {
                last = response
                    .headers()
                    .get("surrogate-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if last.split_whitespace().any(|k| k == key) == present {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("last Surrogate-Key: {last:?}"))
    }

    /// Until a fresh render of an event page straight from the renderer contains
    /// `text`.
    async fn until_body(&self, text: &str) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PROBE_WITHIN;
        let mut n = 0u64;
        while Instant::now() < deadline {
            n += 1;
            let url = format!("{}/events/1?probe={n}", self.stack.renderer_url());
            if let Ok(response) = client.get(&url).send().await
                && let Ok(body) = response.text().await
                && body.contains(text)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("no fresh render contained {text:?}"))
    }

    /// Until `/_oberon/status` says the registry is (or is not) reachable.
    async fn until_registry(&self, reachable: bool) -> Result<(), String> {
        let client = reqwest::Client::new();
        let url = format!("{}/_oberon/status", self.stack.renderer_url());
        let deadline = Instant::now() + PROBE_WITHIN;
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Ok(response) = client.get(&url).send().await
                && let Ok(status) = response.json::<serde_json::Value>().await
            {
                last = status["registry"].clone();
                if last["reachable"].as_bool() == Some(reachable) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("last registry status: {last}"))
    }
}

const PROBE_WITHIN: Duration = Duration::from_secs(15);

fn away(registry: &std::path::Path) -> std::path::PathBuf {
    registry.with_extension("away")
}
