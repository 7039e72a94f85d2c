//! `bff-template`: configure from the environment, bind, serve until SIGTERM.

use bff_template::{AppState, Listeners, config::Config, serve, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Spans exported when the OTEL_* variables ask; kept to the end: dropped, it sends
    // the last spans.
    let tracing = bff_template::trace::Tracing::from_env()?;
    // Structured JSON logs, one object per line, with the request's span fields.
    tracing_subscriber::registry()
        .with(tracing.as_ref().map(bff_template::trace::Tracing::layer))
        .with(
            tracing_subscriber::EnvFilter::try_from_env("BFF_TEMPLATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true),
        )
        .init();
    let config = Config::from_env()?;
    let listeners = Listeners::bind(&config).await?;
    tracing::info!(
        listen = %config.listen,
        ops_listen = %config.ops_listen,
        backend = %config.backend_url,
        "bff-template serving"
    );
    let state = AppState::new(config)?;
    serve(listeners, state, shutdown_signal()).await?;
    drop(tracing);
    Ok(())
}
