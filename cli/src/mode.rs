//! `oberon mode`: show or set a renderer's cache mode through its admin endpoint.

use std::time::Duration;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct ModeArgs {
    /// `normal`, `elevated` or `incident` sets the operator's floor; `auto` clears it
    /// (the signals alone decide). Without it, shows the mode.
    pub mode: Option<String>,
    /// The renderer's base URL (`oberon dev` prints it).
    #[arg(long)]
    pub renderer: String,
    /// The renderer's admin token (needed to set the mode).
    #[arg(long, env = "OBERON_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn run(args: ModeArgs) -> anyhow::Result<()> {
    let url = format!("{}/_oberon/mode", args.renderer.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let request = match &args.mode {
        None => client.get(&url),
        Some(mode) => {
            if !["normal", "elevated", "incident", "auto"].contains(&mode.as_str()) {
                bail!("unknown mode {mode:?}: use normal, elevated, incident or auto");
            }
            let Some(token) = &args.token else {
                bail!(
                    "setting the mode needs the renderer's admin token: set OBERON_ADMIN_TOKEN or pass --token"
                );
            };
            client
                .post(&url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "mode": mode }))
        }
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the renderer at {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the renderer answered {status}: {}", body.trim());
    }
    let value: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("not a mode status: {body}"))?;
    println!(
        "mode: {} (operator: {}, automatic: {})",
        value["mode"].as_str().unwrap_or("?"),
        value["operator"].as_str().unwrap_or("none"),
        value["automatic"].as_str().unwrap_or("?"),
    );
    println!("signals: {}", value["signals"]);
    Ok(())
}
