//! How an Oberon service listens: one accept loop, shared by the gateway, the renderer
//! and every BFF (`oberon-bff`, which a scaffold vendors with this crate), with limits on what a connection may cost. Without them (`axum::serve`
//! sets no timer, so hyper applies no header-read timeout) a client that opens
//! connections and sends one header byte a minute, or nothing at all, holds a file
//! descriptor each until the service starves.
//!
//! - **Header read**: a client has [`ListenLimits::header_read_timeout`] to send a
//!   request's whole head. Hyper starts that timer whenever the connection waits for a
//!   head, on a new connection and between the requests of a kept-alive one, so it is
//!   also the keep-alive idle limit. Clients that pool connections to these services
//!   (the gateway's and the renderer's) keep an idle connection for less than that.
//! - **Connections**: at most [`ListenLimits::max_connections`] open at once; past it
//!   the loop stops accepting and new connections wait in the kernel's backlog.
//! - **Shutdown**: when `shutdown` resolves the listener closes, idle connections close,
//!   and requests in flight finish before [`serve`] returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What one service allows its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// Time to send a request head, counted from when the connection starts waiting for
    /// one; hence also how long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// How long a pooling client of an Oberon service may keep an idle connection: less
/// than [`ListenLimits::header_read_timeout`]'s default, so a client never reuses a
/// connection the service is closing.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(8);

impl Default for ListenLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// [`serve`] `app` on `listener` and, when there is one, the ops app (`/metrics`) on
/// its own listener, both within `limits` and both until `shutdown` resolves; returns
/// once both have finished what they had in flight.
pub async fn serve_with_ops(
    listener: TcpListener,
    app: Router,
    ops: Option<(TcpListener, Router)>,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let ops = ops.map(|(listener, app)| tokio::spawn(serve(listener, app, limits, stopped())));
    let stop_ops = stop.clone();
    let served = serve(listener, app, limits, async move {
        shutdown.await;
        let _ = stop_ops.send(true);
    })
    .await;
    // The main listener may have failed on its own: the ops port stops with it.
    let _ = stop.send(true);
    if let Some(ops) = ops {
        ops.await.map_err(std::io::Error::other)??;
    }
    served
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves, then finish the
/// requests in flight. Each request carries the peer's [`ConnectInfo<SocketAddr>`].
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
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
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
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer, slot))
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
