//! `oberon dev` as a newcomer runs it: the real binary, stopped by a signal. Every
//! service it started must stop, and the process exit, within 2 s of SIGINT or SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The most a stop may take, from the signal to the process's exit.
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// `oberon dev` on a free port, and the base URL of every service it printed.
fn start() -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oberon"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run oberon dev");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    // "oberon: gateway URL, renderer URL, events BFF URL, checkout BFF URL, identity
    // provider URL, ops URL": every service it serves.
    let urls = loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "oberon dev did not start"
        );
        let line = lines
            .next()
            .expect("oberon dev exited before serving")
            .expect("stderr");
        if line.starts_with("oberon: gateway ") {
            break line
                .split_whitespace()
                .filter(|w| w.starts_with("http://"))
                .map(|w| w.trim_end_matches(',').to_string())
                .collect::<Vec<_>>();
        }
    };
    // Keep reading, so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(urls.len(), 6, "{urls:?}");
    (child, urls)
}

/// The status line of `GET path` on `base`, or `None` if nothing listens there.
fn status_of(base: &str, path: &str) -> Option<String> {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
}

#[test]
fn oberon_dev_stops_every_service_within_two_seconds_of_sigint_or_sigterm() {
    // One after the other: both install into the repository's target/oberon-dev.
    for name in ["TERM", "INT"] {
        let (mut child, urls) = start();
        let gateway = &urls[0];
        assert_eq!(
            status_of(gateway, "/_gateway/readyz").as_deref(),
            Some("HTTP/1.1 200 OK"),
            "SIG{name}: the gateway serves"
        );
        let ops = &urls[5];
        assert_eq!(
            status_of(ops, "/metrics").as_deref(),
            Some("HTTP/1.1 200 OK"),
            "SIG{name}: the metrics are served"
        );
        signal(&child, name);
        let signalled = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                break exit;
            }
            if signalled.elapsed() > STOP_WITHIN {
                let _ = child.kill();
                panic!("SIG{name}: oberon dev still running {STOP_WITHIN:?} after the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        println!("SIG{name}: exited {exit} after {:?}", signalled.elapsed());
        assert!(exit.success(), "SIG{name}: {exit}");
        for url in &urls {
            assert_eq!(
                status_of(url, "/"),
                None,
                "SIG{name}: {url} still answers after oberon dev exited"
            );
        }
    }
}
