//! Support for the end-to-end tests: a real Varnish running the
//! repository's `infra/cdn/varnish/oberon.vcl` ([`varnish`]), the origin behind it —
//! gateway, renderer and a backend, all on loopback ([`origin`]) — an origin answering
//! the headers a test chooses ([`scripted`]), a bounded load
//! ([`load`]), the HTTP linter httplint ([`lint`]), a real browser, headless
//! chromium driven over WebDriver ([`browser`]), Lighthouse and axe-core in it
//! ([`audit`]), the platform's real binaries as separate processes ([`platform`]), the
//! whole demo as `oberon dev` serves it ([`demo`]) and a real Prometheus scraping them
//! ([`prometheus`]).
//!
//! The tests themselves are in `tests/all` (one binary). They need Debian's `varnish`,
//! `prometheus`, `chromium` and `chromium-driver`, PyPI's `httplint`, and npm's
//! Lighthouse and axe-core; `tests/run` sets them up.

pub mod audit;
pub mod browser;
pub mod demo;
pub mod lint;
pub mod load;
pub mod origin;
pub mod otlp;
pub mod platform;
pub mod prometheus;
pub mod scripted;
pub mod varnish;

/// The tests measure rates and hit ratios: one at a time, so that they do not load
/// each other's origins on a small machine.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
