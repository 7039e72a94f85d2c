//! Configuration from the environment, validated whole at start-up: a service that
//! starts is a service that is configured. Every variable a BFF reads begins with its
//! prefix (`EVENTS_BFF_`, …); every problem names the variable and its fix, and all of
//! them are reported at once, so one restart fixes them all.
//!
//! [`Env`] reads and checks variables and collects what is wrong; [`Settings`] is what
//! the platform itself needs. A BFF reads its own variables from the same [`Env`]:
//!
//! ```
//! use oberon_bff::config::{Env, Settings};
//! use oberon_bff::versions::Lifecycle;
//!
//! let vars = [("PAYMENTS_BFF_BACKEND_URL", "http://127.0.0.1:9000")];
//! let mut env = Env::new("PAYMENTS_BFF_", |name| {
//!     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
//! });
//! let settings = Settings::read(&mut env);
//! let v1 = Lifecycle::read(&mut env, "V1");
//! let (settings, v1) = env.finish((settings, v1)).unwrap();
//! assert_eq!(settings.backend_url, "http://127.0.0.1:9000");
//! assert!(!v1.is_deprecated());
//! ```

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

/// A variable that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}\n  help: {help}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
    pub help: String,
}

/// Every problem at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// How a variable's value is found: by its full name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// The variables under one prefix, and the problems found in them so far.
pub struct Env<'a> {
    prefix: String,
    lookup: Lookup<'a>,
    errors: Vec<ConfigError>,
}

impl<'a> Env<'a> {
    /// Variables named `prefix` + suffix, read through `lookup` (a map in tests).
    pub fn new(prefix: &str, lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            prefix: prefix.to_string(),
            lookup: Box::new(lookup),
            errors: Vec::new(),
        }
    }

    /// Variables given as (suffix, value) pairs: for `oberon dev`, which runs BFFs in
    /// its own process, and for tests.
    pub fn from_pairs(prefix: &str, pairs: &[(&str, String)]) -> Env<'static> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect();
        Env::new(prefix, move |k| map.get(k).cloned())
    }

    /// The process's environment.
    pub fn process(prefix: &str) -> Env<'static> {
        Env::new(prefix, |name| std::env::var(name).ok())
    }

    /// The full name of the variable `suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The value of `suffix`; unset and blank alike are `None`.
    pub fn get(&self, suffix: &str) -> Option<String> {
        (self.lookup)(&self.name(suffix)).filter(|v| !v.trim().is_empty())
    }

    /// Records a problem with `suffix`.
    pub fn fail(&mut self, suffix: &str, problem: impl Into<String>, help: impl Into<String>) {
        self.errors.push(ConfigError {
            var: self.name(suffix),
            problem: problem.into(),
            help: help.into(),
        });
    }

    /// `value` if nothing was wrong, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// `HOST:PORT`, `default` when unset.
    pub fn address(&mut self, suffix: &str, default: SocketAddr) -> SocketAddr {
        let Some(v) = self.get(suffix) else {
            return default;
        };
        v.parse().unwrap_or_else(|_| {
            let help = format!("use HOST:PORT, e.g. 0.0.0.0:{}", default.port());
            self.fail(suffix, format!("{v:?} is not an address"), help);
            default
        })
    }

    /// An `http://` or `https://` URL without its trailing `/`, if set; `example` goes
    /// in the help.
    pub fn url(&mut self, suffix: &str, example: &str) -> Option<String> {
        let v = self.get(suffix)?;
        if v.starts_with("http://") || v.starts_with("https://") {
            return Some(v.trim_end_matches('/').to_string());
        }
        let problem = format!("{v:?} is not an http(s) URL");
        self.fail(
            suffix,
            problem,
            format!("begin it with http:// or https://, e.g. {example}"),
        );
        None
    }

    /// Like [`Env::url`], and a problem when unset.
    pub fn required_url(&mut self, suffix: &str, example: &str) -> String {
        if self.get(suffix).is_none() {
            self.fail(suffix, "is not set", format!("set it, e.g. {example}"));
        }
        self.url(suffix, example).unwrap_or_default()
    }

    /// A number of milliseconds within `range`, `default` when unset.
    pub fn millis(&mut self, suffix: &str, default: u64, range: RangeInclusive<u64>) -> Duration {
        let Some(v) = self.get(suffix) else {
            return Duration::from_millis(default);
        };
        match v.parse::<u64>() {
            Ok(ms) if range.contains(&ms) => Duration::from_millis(ms),
            _ => {
                let (lo, hi) = (range.start(), range.end());
                let problem = format!("{v:?} is not a number of milliseconds in {lo}..={hi}");
                self.fail(suffix, problem, format!("e.g. {default}"));
                Duration::from_millis(default)
            }
        }
    }

    /// An RFC 3339 date-time, if set.
    pub fn date(&mut self, suffix: &str) -> Option<SystemTime> {
        let v = self.get(suffix)?;
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        match time::OffsetDateTime::parse(&v, rfc3339) {
            Ok(t) => Some(SystemTime::from(t)),
            Err(e) => {
                let problem = format!("{v:?} is not an RFC 3339 date-time ({e})");
                self.fail(suffix, problem, "e.g. 2027-01-31T00:00:00Z");
                None
            }
        }
    }

    /// A service's name (`[A-Za-z0-9._-]`), if set; `example` goes in the help.
    pub fn service_name(&mut self, suffix: &str, example: &str) -> Option<String> {
        let v = self.get(suffix)?;
        let valid = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            return Some(v);
        }
        self.fail(suffix, format!("{v:?} is not a service name"), example);
        None
    }
}

/// What every BFF is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN` (default `127.0.0.1:8081`): the API, which the gateway and the
    /// renderer call.
    pub listen: SocketAddr,
    /// `OPS_LISTEN` (default `127.0.0.1:9081`): the operational endpoints (`/livez`,
    /// `/readyz`, `/metrics`, `/openapi.json`), on a port of their own that only the
    /// cluster (probes, Prometheus) reaches, so no gateway route can expose them,
    /// whatever its pattern.
    pub ops_listen: SocketAddr,
    /// `BACKEND_URL` (required): base URL of the backend service.
    pub backend_url: String,
    /// `BACKEND_TIMEOUT_MS` (default 800, 1..=30000): the deadline of one backend call,
    /// retries included.
    pub backend_timeout: Duration,
    /// `DRAIN_MS` (default 2000, 0..=60000): after SIGTERM, how long `/readyz`
    /// answers 503 while requests are still accepted, so load balancers stop sending
    /// traffic before the listener closes.
    pub drain: Duration,
    /// `GATEWAY_JWKS_URL`: the gateway's public keys (`…/.well-known/oberon/jwks.json`),
    /// to verify who the user is. Unset: every request is anonymous.
    pub gateway_jwks_url: Option<String>,
    /// `AUDIENCE`: this service's name in the gateway's `[upstreams]` (required with
    /// `GATEWAY_JWKS_URL`). Only assertions whose `aud` names it are accepted.
    pub audience: Option<String>,
    /// `GATEWAY_KEYS_MAX_AGE_MS` (default 900000, 1000..=86400000): how long fetched
    /// gateway keys are used before they are fetched again, so a key the gateway
    /// withdrew stops being accepted within it (when the keys can be fetched: a failed
    /// fetch keeps the keys there were).
    pub keys_max_age: Duration,
}

const API: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);
const OPS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9081);

impl Settings {
    /// Reads the platform's variables from `env`, recording what is wrong there.
    pub fn read(env: &mut Env) -> Self {
        let listen = env.address("LISTEN", API);
        let ops_listen = env.address("OPS_LISTEN", OPS);
        if ops_listen == listen {
            env.fail(
                "OPS_LISTEN",
                format!("is {listen}, the API's address too"),
                "give the operational endpoints a port of their own, e.g. 0.0.0.0:9081",
            );
        }
        let backend_url = env.required_url("BACKEND_URL", "http://127.0.0.1:9000");
        let backend_timeout = env.millis("BACKEND_TIMEOUT_MS", 800, 1..=30_000);
        let drain = env.millis("DRAIN_MS", 2000, 0..=60_000);
        let gateway_jwks_url = env.url(
            "GATEWAY_JWKS_URL",
            "http://gateway:8080/.well-known/oberon/jwks.json",
        );
        let audience = env.service_name(
            "AUDIENCE",
            "use this service's name in the gateway's [upstreams], e.g. checkout",
        );
        let jwks = env.name("GATEWAY_JWKS_URL");
        match (env.get("GATEWAY_JWKS_URL"), env.get("AUDIENCE")) {
            (Some(_), None) => env.fail(
                "AUDIENCE",
                format!("is not set, but {jwks} is: whose assertions would this service accept?"),
                "set it to this service's name in the gateway's [upstreams], e.g. checkout",
            ),
            (None, Some(_)) => env.fail(
                "AUDIENCE",
                format!("is set, but {jwks} is not: no assertion could be verified, every user would be anonymous"),
                "set the gateway's keys too, or unset this",
            ),
            _ => {}
        }
        let keys_max_age = env.millis("GATEWAY_KEYS_MAX_AGE_MS", 900_000, 1000..=86_400_000);
        Self {
            listen,
            ops_listen,
            backend_url,
            backend_timeout,
            drain,
            gateway_jwks_url,
            audience,
            keys_max_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const PREFIX: &str = "SOME_BFF_";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        let mut env = Env::new(PREFIX, |k| map.get(k).cloned());
        let settings = Settings::read(&mut env);
        env.finish(settings)
    }

    #[test]
    fn defaults_need_only_the_backend() {
        let c = settings(&[("BACKEND_URL", "http://127.0.0.1:9000/")]).unwrap();
        assert_eq!(c.backend_url, "http://127.0.0.1:9000");
        assert_eq!(c.backend_timeout, Duration::from_millis(800));
        assert_eq!(c.keys_max_age, Duration::from_secs(15 * 60));
        assert_ne!(c.ops_listen, c.listen);
    }

    #[test]
    fn every_problem_is_reported_with_its_variable_and_fix() {
        let e = settings(&[("LISTEN", "nowhere"), ("BACKEND_TIMEOUT_MS", "0")]).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.0.len(), 3, "{text}");
        assert!(
            text.contains("SOME_BFF_LISTEN: \"nowhere\" is not an address\n  help: use HOST:PORT"),
            "{text}"
        );
        assert!(text.contains("SOME_BFF_BACKEND_URL: is not set"), "{text}");
        assert!(
            text.contains(
                "SOME_BFF_BACKEND_TIMEOUT_MS: \"0\" is not a number of milliseconds in 1..=30000"
            ),
            "{text}"
        );
    }

    #[test]
    fn gateway_keys_need_the_services_audience() {
        let jwks = (
            "GATEWAY_JWKS_URL",
            "http://gateway:8080/.well-known/oberon/jwks.json",
        );
        let e = settings(&[("BACKEND_URL", "http://b"), jwks]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration:\nSOME_BFF_AUDIENCE: is not set, but SOME_BFF_GATEWAY_JWKS_URL is: whose assertions would this service accept?\n  help: set it to this service's name in the gateway's [upstreams], e.g. checkout"
        );
        let c = settings(&[("BACKEND_URL", "http://b"), jwks, ("AUDIENCE", "checkout")]).unwrap();
        assert_eq!(c.audience.as_deref(), Some("checkout"));
        let e = settings(&[("BACKEND_URL", "http://b"), jwks, ("AUDIENCE", "a b")]).unwrap_err();
        assert_eq!(e.0[0].var, "SOME_BFF_AUDIENCE");
        // An audience without keys would verify nothing: every user anonymous.
        let e = settings(&[("BACKEND_URL", "http://b"), ("AUDIENCE", "checkout")]).unwrap_err();
        assert!(
            e.0[0]
                .problem
                .contains("is set, but SOME_BFF_GATEWAY_JWKS_URL is not"),
            "{e}"
        );
    }

    #[test]
    fn the_operational_endpoints_need_a_port_of_their_own() {
        let e = settings(&[
            ("BACKEND_URL", "http://b"),
            ("LISTEN", "0.0.0.0:8081"),
            ("OPS_LISTEN", "0.0.0.0:8081"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration:\nSOME_BFF_OPS_LISTEN: is 0.0.0.0:8081, the API's address too\n  \
             help: give the operational endpoints a port of their own, e.g. 0.0.0.0:9081"
        );
    }

    #[test]
    fn urls_and_dates_are_checked() {
        let e = settings(&[
            ("BACKEND_URL", "ftp://b"),
            ("GATEWAY_JWKS_URL", "gateway"),
            ("AUDIENCE", "me"),
        ])
        .unwrap_err();
        let vars: Vec<_> = e.0.iter().map(|e| e.var.as_str()).collect();
        assert_eq!(vars, ["SOME_BFF_BACKEND_URL", "SOME_BFF_GATEWAY_JWKS_URL"]);
        let map = HashMap::from([("X_AT".to_string(), "next tuesday".to_string())]);
        let mut env = Env::new("X_", |k| map.get(k).cloned());
        assert_eq!(env.date("AT"), None);
        assert_eq!(env.finish(()).unwrap_err().0[0].var, "X_AT");
    }
}
