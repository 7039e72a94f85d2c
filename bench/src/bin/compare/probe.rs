//! Timed requests from the harness itself: time to first byte (the response head)
//! and to the last byte, over one keep-alive connection.
//!
//! During the measured load, one probe connection beside wrk's asks for the page one
//! request after another: its samples are the time to first byte at that concurrency
//! (wrk reports only whole responses). The slow-part cases are probes on an idle
//! system.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One timed response.
#[derive(Debug, Clone)]
pub struct Sample {
    pub status: u16,
    pub first_byte: Duration,
    pub total: Duration,
    pub body: Bytes,
    /// The body's length (kept when the body itself is dropped).
    pub bytes: usize,
}

pub struct Probe {
    host: String,
    sender: SendRequest<Empty<Bytes>>,
}

impl Probe {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            host: addr.to_string(),
            sender,
        })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Sample> {
        let req = hyper::Request::get(path)
            .header(http::header::HOST, &self.host)
            .body(Empty::new())?;
        self.sender.ready().await?;
        let started = Instant::now();
        let response = self.sender.send_request(req).await?;
        let first_byte = started.elapsed();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Sample {
            status,
            first_byte,
            total: started.elapsed(),
            bytes: body.len(),
            body,
        })
    }
}

/// One request on a fresh connection.
pub async fn get(addr: &str, path: &str) -> anyhow::Result<Sample> {
    Probe::connect(addr).await?.get(path).await
}

/// Ask for `path` one request after another until `until`; the samples in order.
pub async fn sample_until(addr: &str, path: &str, until: Instant) -> anyhow::Result<Vec<Sample>> {
    let mut probe = Probe::connect(addr).await?;
    let mut samples = Vec::new();
    while Instant::now() < until {
        let mut s = probe.get(path).await?;
        s.body = Bytes::new();
        samples.push(s);
    }
    Ok(samples)
}

/// Wait until `GET path` answers 200 (the server is up), for at most `limit`.
pub async fn wait_ready(addr: &str, path: &str, limit: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    loop {
        match get(addr, path).await {
            Ok(s) if s.status == 200 => return Ok(()),
            Ok(s) if Instant::now() > until => anyhow::bail!("{addr}{path} answers {}", s.status),
            Err(e) if Instant::now() > until => return Err(e.context(format!("{addr}{path}"))),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
