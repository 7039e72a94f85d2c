//! What a service's tests check of [`crate::listen`] (feature `testing`): that the
//! service really listens through it, with its header-read timeout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a slow client behaves on one connection.
#[derive(Debug, Clone, Copy)]
pub enum Slow {
    /// Sends a request head one byte every 500 ms, never finishing it.
    Dribble,
    /// Sends nothing at all.
    Silent,
    /// Sends one whole `GET`, reads the answer, then keeps the connection idle.
    IdleAfterAnswer,
}

/// How long the server at `addr` (`host:port`) kept a connection of a `how` client
/// open before closing it; `None` if it was still open after `limit`. `path` is what
/// the client asks for.
pub async fn held_open(addr: &str, path: &str, how: Slow, limit: Duration) -> Option<Duration> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let started = Instant::now();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    let mut dribble = head.into_bytes().into_iter().chain(std::iter::repeat(b'a'));
    if let Slow::IdleAfterAnswer = how {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write a request");
    }
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        if let Slow::Dribble = how {
            let byte = dribble.next().unwrap_or(b'a');
            if stream.write_all(&[byte]).await.is_err() {
                return Some(started.elapsed());
            }
        }
        // End of file or a reset: closed by the server. An answer (to the whole
        // request, or a 408) or nothing yet: read on until it closes.
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(started.elapsed());
        }
    }
    None
}

/// Slowloris, three ways: a connection to `addr` that dribbles its head, one that
/// sends nothing, and one to `idle_addr` left idle after a whole `GET path` are each
/// closed by the server at `timeout` — not before 90 % of it, and within 4 s after.
pub async fn assert_slow_clients_are_closed(
    addr: &str,
    idle_addr: &str,
    path: &str,
    timeout: Duration,
) {
    let limit = timeout + Duration::from_secs(4);
    let (dribble, silent, idle) = tokio::join!(
        held_open(addr, path, Slow::Dribble, limit),
        held_open(addr, path, Slow::Silent, limit),
        held_open(idle_addr, path, Slow::IdleAfterAnswer, limit),
    );
    for (how, held) in [("dribble", dribble), ("silent", silent), ("idle", idle)] {
        let held = held.unwrap_or_else(|| panic!("{how}: still open after {limit:?}"));
        println!("{how}: closed by the server after {held:?}");
        assert!(held >= timeout * 9 / 10, "{how}: closed early, {held:?}");
    }
}
