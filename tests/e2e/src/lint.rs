//! The HTTP linter httplint (PyPI's `httplint`, the engine of REDbot) over raw responses.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `$OBERON_HTTPLINT`, else `httplint` on `PATH`.
fn httplint() -> PathBuf {
    std::env::var_os("OBERON_HTTPLINT").map_or_else(|| PathBuf::from("httplint"), PathBuf::from)
}

/// One thing httplint says about a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The section it is printed under: `Caching`, `General`, `Validation`, ...
    pub category: String,
    /// `GOOD`, `INFO`, `WARN` or `BAD`.
    pub level: String,
    pub text: String,
}

/// The response to `GET path` from `addr` with extra request headers, exactly as it
/// came off the wire (the connection is closed after it).
pub async fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    response
}

/// Run httplint over a raw response (taken as received just now).
pub fn lint(raw: &[u8]) -> Vec<Note> {
    let program = httplint();
    let mut child = Command::new(&program)
        .arg("--now")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}\nThese tests need httplint: run the tests with `tests/run`, which installs it (tests/requirements.txt), or set OBERON_HTTPLINT",
                program.display()
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(raw)
        .expect("write to httplint");
    let output = child.wait_with_output().expect("httplint");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() || !text.trim().is_empty(),
        "httplint failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&text)
}

/// httplint's text report: `### Category` headings, then `* [LEVEL] text` lines
/// (sub-notes indented).
pub fn parse(report: &str) -> Vec<Note> {
    let mut category = String::new();
    let mut notes = Vec::new();
    for line in report.lines() {
        let line = line.trim();
        if let Some(heading) = line.strip_prefix("### ") {
            category = heading.trim().to_string();
        } else if let Some((level, text)) = line
            .strip_prefix("* [")
            .and_then(|rest| rest.split_once("] "))
        {
            notes.push(Note {
                category: category.clone(),
                level: level.to_string(),
                text: text.trim().to_string(),
            });
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_read_by_category_and_level() {
        let report = "\n### Caching\n\n* [INFO] This response allows all caches to store it.\n  * [BAD] nested\n\n### General\n\n* [WARN] This response doesn't have a Date header.\n";
        let notes = parse(report);
        assert_eq!(notes.len(), 3);
        assert_eq!(notes[1].category, "Caching");
        assert_eq!(notes[1].level, "BAD");
        assert_eq!(notes[2].category, "General");
        assert_eq!(notes[2].text, "This response doesn't have a Date header.");
    }
}
