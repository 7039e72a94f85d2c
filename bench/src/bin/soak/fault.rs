//! A fault proxy: a TCP relay in front of one service (a BFF, a backend) that the
//! schedule turns bad and good again. TCP rather than HTTP so that it relays whatever
//! the service says byte for byte when healthy, and can misbehave below HTTP (a refused
//! connection, a peer that never answers, bytes that are not HTTP) when not.
//!
//! A change of fault also drops every connection in flight: a pooled keep-alive
//! connection opened while healthy must not keep the client out of the fault (nor a
//! hanging one keep it in).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the proxied service behaves, as its clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relays both ways.
    None,
    /// Accepts and closes at once: the service is down (its port still answers, as a
    /// load balancer with no healthy target does).
    Down,
    /// Relays, but holds the request for this long first.
    Slow(Duration),
    /// Reads the request and never answers.
    Hang,
    /// Answers every request with one of [`GARBAGE`], in turn.
    Garbage,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::None => f.write_str("healthy"),
            Fault::Down => f.write_str("down"),
            Fault::Slow(d) => write!(f, "slow ({} ms)", d.as_millis()),
            Fault::Hang => f.write_str("hanging"),
            Fault::Garbage => f.write_str("answering garbage"),
        }
    }
}

/// What a service answering garbage says: not JSON; headers that once panicked the
/// renderer (finding 1 of issue 18: delta-seconds past `u64` arithmetic); a body
/// shorter than its `Content-Length`; and bytes that are not HTTP at all.
const GARBAGE: &[&str] = &[
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: public, max-age=60\r\ncontent-length: 17\r\n\r\n{\"id\": \"42\", oops",
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: public, max-age=18446744073709551615, stale-if-error=18446744073709551615\r\nage: 18446744073709551615\r\ncontent-length: 2\r\n\r\n{}",
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{\"id\": \"42\", \"name\": \"trunc",
    "\u{0}\u{1}SSH-2.0-garbage\r\n\r\n\u{ff}",
];

/// A running fault proxy; it stops with the harness's runtime.
pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
}

impl FaultProxy {
    /// Listen on a free loopback port and relay to `target`, healthy.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, watching) = watch::channel(Fault::None);
        tokio::spawn(accept(listener, target, watching));
        Ok(Self { addr, fault })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, fault: watch::Receiver<Fault>) {
    let mut turn = 0usize;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        turn = turn.wrapping_add(1);
        let mut fault = fault.clone();
        let now = *fault.borrow_and_update();
        tokio::spawn(async move {
            tokio::select! {
                () = serve(client, target, now, turn) => {}
                // A new fault (or the end of one) drops this connection.
                _ = fault.changed() => {}
            }
        });
    }
}

async fn serve(mut client: TcpStream, target: SocketAddr, fault: Fault, turn: usize) {
    match fault {
        Fault::None => relay(client, target).await,
        Fault::Down => drop(client),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            relay(client, target).await;
        }
        Fault::Hang => {
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Fault::Garbage => {
            let mut head = [0u8; 4096];
            let _ = client.read(&mut head).await;
            let _ = client
                .write_all(GARBAGE[turn % GARBAGE.len()].as_bytes())
                .await;
            let _ = client.shutdown().await;
        }
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
