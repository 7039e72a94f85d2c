//! Configuration from the environment, validated whole at start-up: a service that
//! starts is a service that is configured. Every error names the variable and the fix.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Prefix of every variable this service reads.
pub const PREFIX: &str = "EVENTS_BFF_";

#[derive(Debug, Clone)]
pub struct Config {
    /// `EVENTS_BFF_LISTEN` (default `127.0.0.1:8081`): the API, which the gateway
    /// and the renderer call.
    pub listen: SocketAddr,
    /// `EVENTS_BFF_OPS_LISTEN` (default `127.0.0.1:9081`): the operational endpoints
    /// (`/livez`, `/readyz`, `/metrics`, `/openapi.json`), on a port of their own that
    /// only the cluster (probes, Prometheus) reaches, so no gateway route can expose
    /// them, whatever its pattern.
    pub ops_listen: SocketAddr,
    /// `EVENTS_BFF_BACKEND_URL`: base URL of the backend service (required).
    pub backend_url: String,
    /// `EVENTS_BFF_BACKEND_TIMEOUT_MS` (default 800, 1..=30000): whole backend call.
    pub backend_timeout: Duration,
    /// `EVENTS_BFF_DRAIN_MS` (default 2000, 0..=60000): after SIGTERM, how long
    /// `/readyz` answers 503 while requests are still accepted, so load balancers stop
    /// sending traffic before the listener closes.
    pub drain: Duration,
    /// `EVENTS_BFF_GATEWAY_JWKS_URL`: the gateway's public keys
    /// (`…/.well-known/oberon/jwks.json`), to verify who the user is. Unset: every
    /// request is anonymous.
    pub gateway_jwks_url: Option<String>,
    /// `EVENTS_BFF_AUDIENCE`: this service's name in the gateway's `[upstreams]` (required
    /// with `EVENTS_BFF_GATEWAY_JWKS_URL`). Only assertions whose `aud` names it are
    /// accepted: one made for another service is not good here.
    pub audience: Option<String>,
    /// `EVENTS_BFF_V1_DEPRECATED_AT`, `EVENTS_BFF_V1_SUNSET_AT` (RFC 3339) and
    /// `EVENTS_BFF_V1_DOCS_URL`: the lifecycle of `/v1`.
    pub v1: Lifecycle,
}

/// When an API version stops being recommended, when it goes away, and where its
/// consumers can read about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub deprecated_at: Option<SystemTime>,
    pub sunset_at: Option<SystemTime>,
    pub docs_url: Option<String>,
}

/// A variable that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}\n  help: {help}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
    pub help: String,
}

/// Every problem at once, so one restart fixes them all.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl Config {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let get = |suffix: &str| {
            let var = format!("{PREFIX}{suffix}");
            let value = lookup(&var).filter(|v| !v.trim().is_empty());
            (var, value)
        };
        let mut fail = |var: &str, problem: String, help: &str| {
            errors.push(ConfigError {
                var: var.to_string(),
                problem,
                help: help.to_string(),
            });
        };

        let mut address = |suffix: &str, default: SocketAddr| {
            let (var, value) = get(suffix);
            let parsed = value.map(|v| v.parse::<SocketAddr>().map_err(|_| v));
            match parsed {
                None => default,
                Some(Ok(addr)) => addr,
                Some(Err(v)) => {
                    fail(
                        &var,
                        format!("{v:?} is not an address"),
                        &format!("use HOST:PORT, e.g. 0.0.0.0:{}", default.port()),
                    );
                    default
                }
            }
        };
        let listen = address("LISTEN", SocketAddr::from(([127, 0, 0, 1], 8081)));
        let ops_listen = address("OPS_LISTEN", SocketAddr::from(([127, 0, 0, 1], 9081)));
        if ops_listen == listen {
            fail(
                &format!("{PREFIX}OPS_LISTEN"),
                format!("is {listen}, the API's address too"),
                "give the operational endpoints a port of their own, e.g. 0.0.0.0:9081",
            );
        }

        let (var, value) = get("BACKEND_URL");
        let backend_url = match value {
            None => {
                fail(
                    &var,
                    "is not set".into(),
                    "set it to the backend's base URL, e.g. http://127.0.0.1:9000",
                );
                String::new()
            }
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                v.trim_end_matches('/').to_string()
            }
            Some(v) => {
                fail(
                    &var,
                    format!("{v:?} is not an http(s) URL"),
                    "begin it with http:// or https://",
                );
                String::new()
            }
        };

        let (var, value) = get("BACKEND_TIMEOUT_MS");
        let backend_timeout = match value.map(|v| (v.parse::<u64>(), v)) {
            None => Duration::from_millis(800),
            Some((Ok(ms), _)) if (1..=30_000).contains(&ms) => Duration::from_millis(ms),
            Some((_, v)) => {
                fail(
                    &var,
                    format!("{v:?} is not a number of milliseconds in 1..=30000"),
                    "e.g. 800",
                );
                Duration::from_millis(800)
            }
        };

        let (var, value) = get("DRAIN_MS");
        let drain = match value.map(|v| (v.parse::<u64>(), v)) {
            None => Duration::from_millis(2000),
            Some((Ok(ms), _)) if ms <= 60_000 => Duration::from_millis(ms),
            Some((_, v)) => {
                fail(
                    &var,
                    format!("{v:?} is not a number of milliseconds in 0..=60000"),
                    "e.g. 2000",
                );
                Duration::from_millis(2000)
            }
        };

        let (var, value) = get("GATEWAY_JWKS_URL");
        let gateway_jwks_url = match value {
            None => None,
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => Some(v),
            Some(v) => {
                fail(
                    &var,
                    format!("{v:?} is not an http(s) URL"),
                    "e.g. http://gateway:8080/.well-known/oberon/jwks.json",
                );
                None
            }
        };

        let (var, audience) = get("AUDIENCE");
        if let Some(name) = audience.as_deref()
            && !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            fail(
                &var,
                format!("{name:?} is not a service name"),
                "use this service's name in the gateway's [upstreams], e.g. checkout",
            );
        }
        if gateway_jwks_url.is_some() && audience.is_none() {
            fail(
                &var,
                "is not set, but GATEWAY_JWKS_URL is: whose assertions would this service accept?"
                    .into(),
                "set it to this service's name in the gateway's [upstreams], e.g. checkout",
            );
        }

        let mut date = |suffix: &str| {
            let (var, value) = get(suffix);
            let v = value?;
            match time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Some(SystemTime::from(t)),
                Err(e) => {
                    fail(
                        &var,
                        format!("{v:?} is not an RFC 3339 date-time ({e})"),
                        "e.g. 2027-01-31T00:00:00Z",
                    );
                    None
                }
            }
        };
        let deprecated_at = date("V1_DEPRECATED_AT");
        let sunset_at = date("V1_SUNSET_AT");
        let (docs_var, docs_url) = get("V1_DOCS_URL");
        let v1 = Lifecycle {
            deprecated_at,
            sunset_at,
            docs_url,
        };
        if let (Some(d), Some(s)) = (v1.deprecated_at, v1.sunset_at)
            && s < d
        {
            fail(
                &format!("{PREFIX}V1_SUNSET_AT"),
                "is earlier than V1_DEPRECATED_AT: a version cannot go away before it is deprecated".into(),
                "move the sunset after the deprecation",
            );
        }
        if (v1.deprecated_at.is_some() || v1.sunset_at.is_some()) && v1.docs_url.is_none() {
            fail(
                &docs_var,
                "is not set, but /v1 has a deprecation or sunset date".into(),
                "link the migration guide consumers should read, e.g. https://docs.example.com/v1-to-v2",
            );
        }

        if errors.is_empty() {
            Ok(Self {
                listen,
                ops_listen,
                backend_url,
                backend_timeout,
                drain,
                gateway_jwks_url,
                audience,
                v1,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_the_backend() {
        let c = config(&[("BACKEND_URL", "http://127.0.0.1:9000/")]).unwrap();
        assert_eq!(c.backend_url, "http://127.0.0.1:9000");
        assert_eq!(c.backend_timeout, Duration::from_millis(800));
        assert_eq!(c.v1, Lifecycle::default());
    }

    #[test]
    fn every_problem_is_reported_with_its_variable_and_fix() {
        let e = config(&[("LISTEN", "nowhere"), ("BACKEND_TIMEOUT_MS", "0")]).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.0.len(), 3, "{text}");
        assert!(
            text.contains("EVENTS_BFF_LISTEN: \"nowhere\" is not an address"),
            "{text}"
        );
        assert!(
            text.contains("EVENTS_BFF_BACKEND_URL: is not set"),
            "{text}"
        );
        assert!(text.contains("EVENTS_BFF_BACKEND_TIMEOUT_MS"), "{text}");
        assert!(text.contains("help: "), "{text}");
    }

    #[test]
    fn gateway_keys_need_the_services_audience() {
        let jwks = (
            "GATEWAY_JWKS_URL",
            "http://gateway:8080/.well-known/oberon/jwks.json",
        );
        let e = config(&[("BACKEND_URL", "http://b"), jwks]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration:\nEVENTS_BFF_AUDIENCE: is not set, but GATEWAY_JWKS_URL is: whose assertions would this service accept?\n  help: set it to this service's name in the gateway's [upstreams], e.g. checkout"
        );
        let c = config(&[("BACKEND_URL", "http://b"), jwks, ("AUDIENCE", "checkout")]).unwrap();
        assert_eq!(c.audience.as_deref(), Some("checkout"));
    }

    #[test]
    fn the_operational_endpoints_need_a_port_of_their_own() {
        let c = config(&[("BACKEND_URL", "http://b")]).unwrap();
        assert_ne!(c.ops_listen, c.listen);
        let e = config(&[
            ("BACKEND_URL", "http://b"),
            ("LISTEN", "0.0.0.0:8081"),
            ("OPS_LISTEN", "0.0.0.0:8081"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration:\nEVENTS_BFF_OPS_LISTEN: is 0.0.0.0:8081, the API's address too\n  \
             help: give the operational endpoints a port of their own, e.g. 0.0.0.0:9081"
        );
    }

    #[test]
    fn refuses_a_sunset_before_the_deprecation() {
        let e = config(&[
            ("BACKEND_URL", "http://b"),
            ("V1_DEPRECATED_AT", "2027-06-01T00:00:00Z"),
            ("V1_SUNSET_AT", "2027-01-01T00:00:00Z"),
            ("V1_DOCS_URL", "https://docs.example.com/v2"),
        ])
        .unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].var, "EVENTS_BFF_V1_SUNSET_AT");
        assert!(e.0[0].problem.contains("earlier than V1_DEPRECATED_AT"));
    }

    #[test]
    fn a_deprecation_needs_a_docs_link_and_a_valid_date() {
        let e = config(&[
            ("BACKEND_URL", "http://b"),
            ("V1_DEPRECATED_AT", "next tuesday"),
        ])
        .unwrap_err();
        assert_eq!(e.0[0].var, "EVENTS_BFF_V1_DEPRECATED_AT");
        let e = config(&[
            ("BACKEND_URL", "http://b"),
            ("V1_DEPRECATED_AT", "2027-01-01T00:00:00Z"),
        ])
        .unwrap_err();
        assert_eq!(e.0[0].var, "EVENTS_BFF_V1_DOCS_URL");
    }
}
