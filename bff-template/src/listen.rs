//! How this service listens: one accept loop with limits on what a connection may cost.
//! Without them (`axum::serve` sets no timer, so hyper applies no header-read timeout)
//! a client that opens connections and sends one header byte a minute, or nothing at
//! all, holds a file descriptor each until the service starves.
//!
//! - **Header read**: a client has [`ListenLimits::header_read_timeout`] to send a
//!   request's whole head. Hyper starts that timer whenever the connection waits for a
//!   head, on a new connection and between the requests of a kept-alive one, so it is
//!   also the keep-alive idle limit. (Oberon's gateway and renderer keep idle pooled
//!   connections to a BFF for 8 s, less than that.)
//! - **Connections**: at most [`ListenLimits::max_connections`] open at once; past it
//!   the loop stops accepting and new connections wait in the kernel's backlog.
//! - **Shutdown**: when `shutdown` resolves the listener closes, idle connections close,
//!   and requests in flight finish before [`serve`] returns.
//!
//! (Oberon's own services listen the same way, with the same limits.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What the service allows its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// Time to send a request head, counted from when the connection starts waiting for
    /// one; hence also how long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ListenLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves, then finish the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, slot)) = accepted else {
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a head timeout): nothing to do.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The next connection, once a slot is free. `None` after an accept error, which is
/// the client's (a reset before accept) or the process's (out of file descriptors):
/// either way the loop goes on, after a pause for the latter.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, slot))
        }
        Err(e) => {
            if !matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionRefused
            ) {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        }
    }
}
