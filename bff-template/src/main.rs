//! `bff-template`: configure from the environment, bind, serve until SIGTERM.

use bff_template::{AppState, Listeners, config::Config, serve, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Structured JSON logs, one object per line, with the request's span fields.
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BFF_TEMPLATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
    Ok(())
}
