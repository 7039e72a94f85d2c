//! The fleet's cache [`Mode`], raised by load and lowered by calm.
//!
//! The mode rises at once on a local signal — renders in flight near the limit, the
//! render p99 over its objective, load being shed, a BFF's circuit open — or on an
//! operator's word, and falls one level at a time, each only after the signals have
//! stayed below it for a calm period, so it does not flap. Nothing here needs other
//! instances: each renderer judges its own load, and the CDN sees the highest mode of
//! whichever instances answer it.
//!
//! Its settings are configuration ([`crate::config::ModeSettings`]): this module uses
//! [`crate::config`], never the other way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admission::Admission;
use crate::cache::Mode;
use crate::config::ModeSettings;

/// Renders a p99 is not judged on fewer than: a handful of slow requests on an idle
/// instance is not an incident.
const MIN_SAMPLES: usize = 20;
/// Renders remembered for the p99, at most.
const MAX_SAMPLES: usize = 4096;

/// What raised (or holds) the mode, for health output and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Signals {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub p99_ms: Option<u64>,
    pub shed_since_last_look: u64,
    pub open_breakers: usize,
}

impl Signals {
    /// The mode these signals call for on their own.
    pub fn mode(&self, settings: &ModeSettings) -> Mode {
        let objective = settings.p99_objective_ms;
        let p99 = self.p99_ms.unwrap_or(0);
        if self.shed_since_last_look > 0 || p99 > objective.saturating_mul(2) {
            Mode::Incident
        } else if p99 > objective
            || self.open_breakers > 0
            || (self.max_in_flight > 0
                && self.in_flight as f64 >= settings.busy_fraction * self.max_in_flight as f64)
        {
            Mode::Elevated
        } else {
            Mode::Normal
        }
    }
}

/// The mode as the fleet's operator and the signals have set it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModeStatus {
    pub mode: Mode,
    /// Set by an operator: the mode is at least this until they clear it.
    pub operator: Option<Mode>,
    /// What the signals alone have raised it to (with hysteresis).
    pub automatic: Mode,
    pub signals: Signals,
}

/// A change of the effective mode, as [`FleetMode::look`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: Mode,
    pub to: Mode,
}

/// The renderer's mode and its inputs. Reading the mode is one atomic load.
pub struct FleetMode {
    settings: ModeSettings,
    current: AtomicU8,
    state: Mutex<State>,
    latencies: Mutex<VecDeque<(Instant, Duration)>>,
    /// The render limit: its places taken and the requests it shed are signals.
    admission: Arc<Admission>,
}

struct State {
    operator: Option<Mode>,
    automatic: Mode,
    /// Since when the signals have called for less than `automatic`.
    calm_since: Option<Instant>,
    last_signals: Signals,
}

impl FleetMode {
    pub fn new(settings: ModeSettings, max_in_flight: usize) -> Self {
        Self {
            settings,
            current: AtomicU8::new(Mode::Normal as u8),
            state: Mutex::new(State {
                operator: None,
                automatic: Mode::Normal,
                calm_since: None,
                last_signals: Signals::default(),
            }),
            latencies: Mutex::new(VecDeque::new()),
            admission: Admission::new(max_in_flight),
        }
    }

    /// The mode to cache by, now.
    pub fn current(&self) -> Mode {
        match self.current.load(Ordering::Relaxed) {
            0 => Mode::Normal,
            1 => Mode::Elevated,
            _ => Mode::Incident,
        }
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Record one page render's latency.
    pub fn record(&self, elapsed: Duration) {
        let mut l = lock(&self.latencies);
        if l.len() == MAX_SAMPLES {
            l.pop_front();
        }
        l.push_back((Instant::now(), elapsed));
    }

    /// An operator's floor: the mode stays at least `mode` until cleared with `None`.
    pub fn set_operator(&self, mode: Option<Mode>, now: Instant) -> Option<Change> {
        let mut state = lock(&self.state);
        state.operator = mode;
        self.publish(&state, now)
    }

    /// Look at the signals (`open_breakers` from the data client), move the automatic
    /// mode, and report a change of the effective mode. Called periodically.
    pub fn look(&self, open_breakers: usize, now: Instant) -> Option<Change> {
        let signals = Signals {
            in_flight: self.admission.in_flight(),
            max_in_flight: self.admission.max(),
            p99_ms: self.p99(now),
            shed_since_last_look: self.admission.take_shed(),
            open_breakers,
        };
        let wanted = signals.mode(&self.settings);
        let mut state = lock(&self.state);
        state.last_signals = signals;
        if wanted > state.automatic {
            state.automatic = wanted;
            state.calm_since = None;
        } else if wanted < state.automatic {
            let since = *state.calm_since.get_or_insert(now);
            if now.duration_since(since) >= Duration::from_secs(self.settings.calm_period_s) {
                // One level at a time, each after its own calm period.
                state.automatic = match state.automatic {
                    Mode::Incident => Mode::Elevated,
                    _ => Mode::Normal,
                };
                state.calm_since = (wanted < state.automatic).then_some(now);
            }
        } else {
            state.calm_since = None;
        }
        self.publish(&state, now)
    }

    pub fn status(&self) -> ModeStatus {
        let state = lock(&self.state);
        ModeStatus {
            mode: self.current(),
            operator: state.operator,
            automatic: state.automatic,
            signals: state.last_signals.clone(),
        }
    }

    fn publish(&self, state: &State, _now: Instant) -> Option<Change> {
        let to = state.automatic.max(state.operator.unwrap_or(Mode::Normal));
        let from = self.current();
        self.current.store(to as u8, Ordering::Relaxed);
        (from != to).then_some(Change { from, to })
    }

    fn p99(&self, now: Instant) -> Option<u64> {
        let window = Duration::from_secs(self.settings.window_s);
        let mut l = lock(&self.latencies);
        while l
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            l.pop_front();
        }
        if l.len() < MIN_SAMPLES {
            return None;
        }
        let mut v: Vec<Duration> = l.iter().map(|(_, d)| *d).collect();
        let rank = (v.len() * 99).div_ceil(100) - 1;
        let (_, p99, _) = v.select_nth_unstable(rank);
        Some(p99.as_millis() as u64)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ModeSettings {
        ModeSettings {
            p99_objective_ms: 100,
            busy_fraction: 0.8,
            calm_period_s: 10,
            window_s: 10,
        }
    }

    #[test]
    fn signals_map_to_modes() {
        let s = settings();
        let base = Signals {
            max_in_flight: 10,
            ..Signals::default()
        };
        assert_eq!(base.mode(&s), Mode::Normal);
        let busy = Signals {
            in_flight: 8,
            ..base.clone()
        };
        assert_eq!(busy.mode(&s), Mode::Elevated);
        let slow = Signals {
            p99_ms: Some(150),
            ..base.clone()
        };
        assert_eq!(slow.mode(&s), Mode::Elevated);
        let very_slow = Signals {
            p99_ms: Some(201),
            ..base.clone()
        };
        assert_eq!(very_slow.mode(&s), Mode::Incident);
        let shedding = Signals {
            shed_since_last_look: 1,
            ..base.clone()
        };
        assert_eq!(shedding.mode(&s), Mode::Incident);
        let breaker = Signals {
            open_breakers: 1,
            ..base
        };
        assert_eq!(breaker.mode(&s), Mode::Elevated);
    }

    #[test]
    fn shedding_raises_at_once_and_calm_lowers_one_level_per_period() {
        let m = FleetMode::new(settings(), 10);
        let t0 = Instant::now();
        m.admission().record_shed();
        assert_eq!(
            m.look(0, t0),
            Some(Change {
                from: Mode::Normal,
                to: Mode::Incident
            })
        );
        // Calm, but not for long enough.
        assert_eq!(m.look(0, t0 + Duration::from_secs(1)), None);
        assert_eq!(m.look(0, t0 + Duration::from_secs(10)), None);
        assert_eq!(m.current(), Mode::Incident);
        // Ten calm seconds: one level down; ten more: normal.
        assert_eq!(
            m.look(0, t0 + Duration::from_secs(11)),
            Some(Change {
                from: Mode::Incident,
                to: Mode::Elevated
            })
        );
        assert_eq!(m.look(0, t0 + Duration::from_secs(15)), None);
        // A breaker opening holds elevated and restarts the calm period.
        assert_eq!(m.look(1, t0 + Duration::from_secs(16)), None);
        assert_eq!(m.look(0, t0 + Duration::from_secs(25)), None);
        assert_eq!(m.look(0, t0 + Duration::from_secs(34)), None);
        assert_eq!(
            m.look(0, t0 + Duration::from_secs(35)),
            Some(Change {
                from: Mode::Elevated,
                to: Mode::Normal
            })
        );
    }

    #[test]
    fn the_operator_sets_a_floor_until_cleared() {
        let m = FleetMode::new(settings(), 10);
        let t0 = Instant::now();
        assert_eq!(
            m.set_operator(Some(Mode::Incident), t0),
            Some(Change {
                from: Mode::Normal,
                to: Mode::Incident
            })
        );
        assert_eq!(m.look(0, t0 + Duration::from_secs(100)), None);
        assert_eq!(m.current(), Mode::Incident);
        assert_eq!(m.status().operator, Some(Mode::Incident));
        assert_eq!(
            m.set_operator(None, t0 + Duration::from_secs(101)),
            Some(Change {
                from: Mode::Incident,
                to: Mode::Normal
            })
        );
    }

    #[test]
    fn a_slow_p99_needs_enough_samples() {
        let m = FleetMode::new(settings(), 10);
        let t0 = Instant::now();
        for _ in 0..(MIN_SAMPLES - 1) {
            m.record(Duration::from_millis(500));
        }
        assert_eq!(m.look(0, t0), None);
        m.record(Duration::from_millis(500));
        assert_eq!(
            m.look(0, Instant::now()).map(|c| c.to),
            Some(Mode::Incident)
        );
        assert_eq!(m.status().signals.p99_ms, Some(500));
    }
}
