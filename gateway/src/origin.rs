//! Origin verification: proof that a request came through the CDN.
//!
//! Behind a CDN the gateway is still reachable on its own address, and a request sent
//! there directly skips everything the CDN does (caching, shielding, its rate limits,
//! its TLS policy). With `[origin]` configured, the CDN adds a secret header to every
//! request it forwards (`X-Origin-Verify` in `infra/cdn`) and the gateway refuses, with
//! 403, any request whose header does not carry one of the configured secrets.
//!
//! Shaped so because:
//! - The secret never sits in `gateway.toml` (which lives in a ConfigMap, readable by
//!   anyone who can read the deployment): the file names an environment variable or a
//!   file that holds it.
//! - Several secrets may be listed (separated by whitespace), so a rotation needs no
//!   flag day: list the new and the old, move the CDN, then drop the old.
//! - Values are compared as SHA-256 digests in constant time: neither the time taken
//!   nor the length of a guess tells how close it was.
//! - The header is removed once checked: upstreams (the teams' BFFs) never see it.
//! - Health endpoints and the gateway's public keys are exempt: probes and in-cluster
//!   services call the gateway directly, not through the CDN (see [`crate::app`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use http::header::HeaderName;
use http::{Request, Response, StatusCode};
use oberon_config::ConfigError;
use oberon_service::secret_eq;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::Gateway;
use crate::proxy::gateway_answer;

/// The shortest secret accepted: 32 characters of `[A-Za-z0-9_-]` (the Fastly
/// definition in `infra/cdn/fastly` enforces the same), e.g. `openssl rand -hex 32`.
pub const MIN_SECRET_LEN: usize = 32;

/// `[origin]` in `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// `header = "x-origin-verify"`: the request header the CDN sets (default
    /// `x-origin-verify`, what `infra/cdn` sends).
    #[serde(default = "OriginConfig::default_header")]
    pub header: Spanned<String>,
    /// `secret_env = "OBERON_ORIGIN_SECRET"`: the environment variable holding the
    /// secret(s). Exactly one of `secret_env` and `secret_file`.
    pub secret_env: Option<Spanned<String>>,
    /// `secret_file = "/etc/oberon/origin/secret"`: a file holding the secret(s),
    /// relative to this file's directory.
    pub secret_file: Option<Spanned<PathBuf>>,
}

impl OriginConfig {
    fn default_header() -> Spanned<String> {
        Spanned::new(0..0, "x-origin-verify".into())
    }
}

/// What `[origin]` becomes once its secrets are read.
#[derive(Clone)]
pub struct OriginGuard {
    header: HeaderName,
    /// SHA-256 of each accepted secret.
    secrets: Vec<[u8; 32]>,
}

impl std::fmt::Debug for OriginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginGuard")
            .field("header", &self.header)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl OriginGuard {
    /// Read the secrets `origin` points at; `env` looks up environment variables (the
    /// process's, or a map in tests). `file` and `source` locate errors.
    pub fn load(
        origin: &OriginConfig,
        file: &Path,
        source: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let err = |span: std::ops::Range<usize>, message: String, help: &str| {
            ConfigError::new(file, message)
                .at(source, span.start)
                .help(help.to_string())
        };
        let header = HeaderName::from_bytes(origin.header.get_ref().as_bytes()).map_err(|_| {
            err(
                origin.header.span(),
                format!("{:?} is not a header name", origin.header.get_ref()),
                "use a header name such as \"x-origin-verify\"",
            )
        })?;
        let (text, span, whence) = match (&origin.secret_env, &origin.secret_file) {
            (Some(var), None) => {
                let value = env(var.get_ref()).unwrap_or_default();
                (
                    value,
                    var.span(),
                    format!("environment variable {}", var.get_ref()),
                )
            }
            (None, Some(path)) => {
                let full = file.parent().unwrap_or(Path::new(".")).join(path.get_ref());
                let value = std::fs::read_to_string(&full).map_err(|e| {
                    err(
                        path.span(),
                        format!("cannot read {}: {e}", full.display()),
                        "mount the secret there, or name it with secret_env",
                    )
                })?;
                (value, path.span(), full.display().to_string())
            }
            _ => {
                return Err(err(
                    origin.header.span(),
                    "[origin] needs exactly one of secret_env and secret_file".into(),
                    "name the environment variable (secret_env = \"OBERON_ORIGIN_SECRET\") or the file (secret_file = \"...\") holding the CDN's secret",
                ));
            }
        };
        let mut secrets = Vec::new();
        for secret in text.split_whitespace() {
            let good = secret.len() >= MIN_SECRET_LEN
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !good {
                return Err(err(
                    span,
                    format!(
                        "{whence}: a secret is not at least {MIN_SECRET_LEN} characters of [A-Za-z0-9_-]"
                    ),
                    "generate one with `openssl rand -hex 32`; separate several (a rotation) with spaces",
                ));
            }
            secrets.push(digest(secret.as_bytes()));
        }
        if secrets.is_empty() {
            return Err(err(
                span,
                format!("{whence} holds no secret"),
                "set it to the secret the CDN sends (the same value as the CDN's origin_verify_secret)",
            ));
        }
        Ok(Self { header, secrets })
    }

    /// True when the request carries the header exactly once, with an accepted secret.
    pub fn verifies(&self, headers: &http::HeaderMap) -> bool {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let given = digest(value.as_bytes());
        // Every secret is compared, so the time taken does not tell which one matched.
        self.secrets
            .iter()
            .fold(false, |found, s| found | secret_eq(s, &given))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Middleware: 403 unless the request came through the CDN; the header is removed
/// before anything else sees it. Passes everything when `[origin]` is not configured.
pub async fn guard(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request<Body>,
    next: Next,
) -> Response<Body> {
    if let Some(origin) = &gateway.origin {
        if !origin.verifies(request.headers()) {
            tracing::info!(path = %request.uri().path(), "refused: not through the CDN (origin header missing or wrong)");
            metrics::counter!("oberon_gateway_origin_refusals_total").increment(1);
            return gateway_answer(
                StatusCode::FORBIDDEN,
                "this origin is reached through the CDN\n",
            );
        }
        request.headers_mut().remove(&origin.header);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn load(src: &str, env: &[(&str, &str)]) -> Result<OriginGuard, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            origin: OriginConfig,
        }
        let file = Path::new("gateway.toml");
        let parsed: File = oberon_config::parse_toml(file, src)?;
        OriginGuard::load(&parsed.origin, file, src, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append("x-origin-verify", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn secrets_from_the_environment_verify_and_others_do_not() {
        let old = "ffffffffffffffffffffffffffffffff_old";
        let guard = load(
            "[origin]\nsecret_env = \"ORIGIN\"\n",
            &[("ORIGIN", &format!("{SECRET}\n {old}"))],
        )
        .unwrap();
        assert!(guard.verifies(&headers(&[SECRET])));
        assert!(guard.verifies(&headers(&[old])), "a rotation lists both");
        assert!(!guard.verifies(&headers(&[])));
        assert!(!guard.verifies(&headers(&["0123456789abcdef0123456789abcdeX"])));
        assert!(!guard.verifies(&headers(&[&SECRET[..31]])));
        assert!(
            !guard.verifies(&headers(&[SECRET, "other"])),
            "a second value is refused, whatever the first"
        );
    }

    #[test]
    fn a_missing_or_weak_secret_is_located_with_a_fix() {
        let text = load("[origin]\nsecret_env = \"ORIGIN\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("gateway.toml:2:14: environment variable ORIGIN holds no secret"),
            "{text}"
        );
        assert!(
            text.contains("help: set it to the secret the CDN sends"),
            "{text}"
        );
        let text = load(
            "[origin]\nsecret_env = \"ORIGIN\"\n",
            &[("ORIGIN", "short")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("a secret is not at least 32 characters of [A-Za-z0-9_-]"),
            "{text}"
        );
        assert!(text.contains("openssl rand -hex 32"), "{text}");
    }

    #[test]
    fn exactly_one_source_and_a_valid_header_name() {
        let text = load(
            "[origin]\nsecret_env = \"A\"\nsecret_file = \"b\"\n",
            &[("A", SECRET)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("needs exactly one of secret_env and secret_file"),
            "{text}"
        );
        let text = load(
            "[origin]\nheader = \"x origin\"\nsecret_env = \"A\"\n",
            &[("A", SECRET)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("gateway.toml:2:10: \"x origin\" is not a header name"),
            "{text}"
        );
        let text = load("[origin]\nsecret_env = \"A\"\nsecrets = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown field `secrets`"), "{text}");
    }

    #[test]
    fn an_unreadable_file_names_the_path() {
        let text = load("[origin]\nsecret_file = \"no/such/file\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("gateway.toml:2:15: cannot read no/such/file"),
            "{text}"
        );
    }
}
