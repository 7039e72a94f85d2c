//! Slowloris: connections that send a request head one byte a second (or nothing at
//! all) and never finish it. The platform's promise ("No connection is free"): the
//! gateway and the renderer close such a connection within 10 s of its arrival. Each
//! connection is opened again as soon as it is closed, for as long as the fault lasts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The services' header-read timeout (`oberon_config::listen`), and the slack allowed
/// over it for scheduling on a busy machine.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_secs(3);
/// The least a slowloris fault lasts: every connection opened at its start has had to
/// be closed by then.
pub const LONG_ENOUGH: Duration = Duration::from_secs(16);

/// One target's connections.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub target: &'static str,
    /// Connections the server closed.
    pub closed: u64,
    /// Connections still open when the fault ended, held longer than the limit.
    pub held_too_long: u64,
    /// The longest any connection was held open by the server.
    pub longest: Duration,
    /// Connections that could not be opened.
    pub refused: u64,
}

impl Tally {
    pub fn violations(&self) -> Option<String> {
        (self.held_too_long > 0 || self.longest > HEADER_READ_TIMEOUT + SLACK).then(|| {
            format!(
                "slowloris against the {}: {} connections held past {} s (longest {:.1} s)",
                self.target,
                self.held_too_long,
                (HEADER_READ_TIMEOUT + SLACK).as_secs(),
                self.longest.as_secs_f64()
            )
        })
    }
}

pub struct Slowloris {
    started: Instant,
    stop: Arc<AtomicBool>,
    /// One task per connection slot: the target's index and what each of its
    /// connections came to.
    tasks: JoinSet<(usize, Vec<Outcome>)>,
    targets: Vec<&'static str>,
}

enum Outcome {
    Closed(Duration),
    StillOpen(Duration),
    Refused,
}

impl Slowloris {
    /// `per_target` connections against each target, half dribbling, half silent.
    pub fn start(targets: &[(&'static str, SocketAddr)], per_target: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for (index, &(_, addr)) in targets.iter().enumerate() {
            for i in 0..per_target {
                let stop = stop.clone();
                tasks.spawn(async move {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        outcomes.push(hold(addr, i % 2 == 0, &stop).await);
                    }
                    (index, outcomes)
                });
            }
        }
        Self {
            started: Instant::now(),
            stop,
            tasks,
            targets: targets.iter().map(|t| t.0).collect(),
        }
    }

    /// Return once it has run for `at_least`.
    pub async fn run_at_least(&self, at_least: Duration) {
        tokio::time::sleep_until((self.started + at_least).into()).await;
    }

    /// Stop, and tally every connection.
    pub async fn stop(mut self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let mut tallies: Vec<Tally> = self
            .targets
            .iter()
            .map(|&target| Tally {
                target,
                ..Tally::default()
            })
            .collect();
        while let Some(Ok((index, outcomes))) = self.tasks.join_next().await {
            let Some(tally) = tallies.get_mut(index) else {
                continue;
            };
            for outcome in outcomes {
                match outcome {
                    Outcome::Closed(held) => {
                        tally.closed += 1;
                        tally.longest = tally.longest.max(held);
                    }
                    Outcome::StillOpen(held) => {
                        if held > HEADER_READ_TIMEOUT + SLACK {
                            tally.held_too_long += 1;
                            tally.longest = tally.longest.max(held);
                        }
                    }
                    Outcome::Refused => tally.refused += 1,
                }
            }
        }
        tallies
    }
}

/// One connection: open, dribble (or stay silent) until the server closes it or we
/// are told to stop.
async fn hold(addr: SocketAddr, dribble: bool, stop: &AtomicBool) -> Outcome {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        return Outcome::Refused;
    };
    let opened = Instant::now();
    let head = b"GET /events/1 HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
    let mut sent = 0usize;
    let mut buf = [0u8; 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Outcome::StillOpen(opened.elapsed());
        }
        if dribble {
            let byte = head.get(sent).copied().unwrap_or(b'a');
            if stream.write_all(&[byte]).await.is_err() {
                return Outcome::Closed(opened.elapsed());
            }
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            // The server closed (or answered, then closed: a 408 is a close too).
            Ok(Ok(0)) | Ok(Err(_)) => return Outcome::Closed(opened.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
}
