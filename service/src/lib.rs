//! What every Oberon service does the same way, written once: the request id a
//! request is known by, its metrics and their exporter, its traces, the signal that stops a
//! service, how a secret is compared and how an error is printed with its causes.
//! Services link this crate rather than keep a copy, so the rules cannot drift apart.

pub mod metrics;
pub mod request_id;
pub mod trace;

/// `a == b` in time that depends only on the lengths, for secrets (tokens, `state`,
/// nonces) a caller could otherwise guess byte by byte.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// `e` and each of its sources, outermost first, joined by `": "`.
pub fn error_chain(e: &(dyn std::error::Error + '_)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): when a service should drain and stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                () = ctrl_c => {}
                _ = term.recv() => {}
            },
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_equal_only_when_every_byte_and_the_length_are() {
        assert!(secret_eq(b"token", b"token"));
        assert!(!secret_eq(b"token", b"tokem"));
        assert!(!secret_eq(b"token", b"token "));
        assert!(!secret_eq(b"", b"x"));
        assert!(secret_eq(b"", b""));
    }

    #[test]
    fn an_error_is_printed_with_its_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connecting to events")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "connecting to events: connection refused");
    }
}
