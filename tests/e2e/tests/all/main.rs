//! The end-to-end tests, one binary (run them with `cargo test -p oberon-e2e-tests`;
//! one module with `--test all MODULE::`). The tests that measure rates or drive a
//! browser take `oberon_e2e_tests::exclusive()`, so they run one at a time.

mod browser;
mod http_caching;
mod httplint;
mod languages;
mod metrics;
mod pages;
mod traces;
mod varnish;
