//! Oberon's renderer: maps a request to a page, fetches the page's data, runs its
//! WebAssembly components over a per-request state bus, and composes their HTML into a
//! layout with caching headers for the CDN.
//!
//! Start at [`lifecycle::Renderer`] and [`render`]; the HTTP surface is [`server::app`].

#![warn(clippy::too_many_lines)]

pub mod admission;
mod bindings;
pub mod bus;
pub mod cache;
pub mod code_cache;
pub mod component;
pub mod component_set;
pub mod compress;
pub mod config;
pub mod data;
pub mod data_client;
pub mod engine;
pub mod error;
pub mod error_page;
pub mod layout;
pub mod lifecycle;
pub mod metrics;
pub mod mode;
pub mod plan;
pub mod purge;
pub mod registry_source;
pub mod render;
pub mod render_cache;
pub mod server;
pub mod site;

pub use lifecycle::{Renderer, RendererOptions, StartError};
pub use render::{PageReply, PageResponse, ReplyBody};

/// Install a `tracing` subscriber reading `RUST_LOG` (default `info`), writing to
/// stdout: with colours on a terminal, plain text to a file or pipe; and exporting
/// traces when the `OTEL_*` variables ask for them (`oberon_service::trace`). For
/// binaries: keep what it returns until the process ends.
pub fn init_tracing(
    service: &str,
) -> Result<Option<oberon_service::trace::Tracing>, oberon_service::trace::TraceError> {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .fmt_fields(oberon_service::trace::LogFields);
    oberon_service::trace::init(service, filter, logs)
}
