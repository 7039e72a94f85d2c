//! Purging the CDN by surrogate key: when a component version is swapped out, and when
//! the fleet leaves a mode (pages cached for longer in that mode are refreshed).
//!
//! A purge is `PURGE /` with the keys, space-separated, in `Surrogate-Key`, sent to
//! every configured endpoint (`infra/cdn/varnish/oberon.vcl` takes exactly this). It
//! runs in the background: a CDN that does not answer delays nothing and is logged.

use std::time::Duration;

/// Sends purges to the CDN's endpoints. Cheap to clone.
#[derive(Clone)]
pub struct Purger {
    endpoints: Vec<String>,
    http: reqwest::Client,
}

impl Purger {
    pub fn new(endpoints: Vec<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { endpoints, http })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Purge `keys` everywhere and wait for the answers. Returns how many endpoints
    /// confirmed.
    pub async fn purge(&self, keys: &[String]) -> usize {
        if keys.is_empty() {
            return 0;
        }
        let header = keys.join(" ");
        let method = http::Method::from_bytes(b"PURGE").unwrap_or(http::Method::DELETE);
        let sends = self.endpoints.iter().map(|endpoint| {
            let request = self
                .http
                .request(method.clone(), endpoint)
                .header("surrogate-key", &header);
            let header = &header;
            async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        tracing::info!(endpoint, keys = %header, "purged");
                        true
                    }
                    Ok(r) => {
                        tracing::warn!(endpoint, keys = %header, status = %r.status(), "purge refused");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(endpoint, keys = %header, "purge failed: {e}");
                        false
                    }
                }
            }
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// [`Purger::purge`] in the background.
    pub fn purge_later(&self, keys: Vec<String>) {
        if keys.is_empty() || self.endpoints.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.purge(&keys).await;
        });
    }
}
