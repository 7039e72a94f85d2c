//! The renderer's integration tests: real components built from source
//! (`oberon-test-artifacts`), a real renderer serving HTTP on port 0, and real data
//! sources on port 0.

mod support;

mod caching;
mod code_cache;
mod components;
mod config_errors;
mod data_client;
mod data_sources;
mod hot_swap;
mod http;
mod identity;
mod metrics;
mod registry_channels;
mod render_cache;
mod streaming;
