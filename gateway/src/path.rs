//! Path normalisation: the one form of a request path that routes are matched on *and*
//! that is sent upstream, so an upstream never sees a path other than the one whose
//! route policy was applied.
//!
//! Percent-encoded octets are decoded (an encoded `/`, `\` or control character is
//! refused rather than decoded, since upstreams disagree on what it means), `.` and `..`
//! segments are resolved (climbing above the root is refused), and runs of `/` are
//! collapsed. The query is never part of it.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Why a path was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("the path contains an encoded `/` or `\\`")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a control character")]
    Control,
    #[error("the path is not valid percent-encoded UTF-8")]
    BadEncoding,
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// The normalised form of `raw` (the path part of a request target, without query).
pub fn normalise(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    // Check every escape before decoding anything: an encoded separator must not
    // become a real one, and a malformed escape is not passed through as text.
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
            let octet = u8::from_str_radix(hex, 16).map_err(|_| PathError::BadEncoding)?;
            match octet {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::Control),
                _ => {}
            }
            i += 3;
        } else {
            if bytes[i] < 0x20 || bytes[i] == 0x7f {
                return Err(PathError::Control);
            }
            i += 1;
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for segment in raw[1..].split('/') {
        let decoded = percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| PathError::BadEncoding)?;
        // Empty segments (`//`) collapse; a path ending in `/`, `.` or `..` names a
        // directory and keeps its trailing slash.
        trailing_slash = matches!(decoded.as_ref(), "" | "." | "..");
        match decoded.as_ref() {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => out.push(s.to_string()),
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

/// Characters escaped when a normalised path is written into an upstream request.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// A normalised path as it goes on the wire (non-ASCII and reserved octets escaped;
/// `/` left alone, since a normalised path has no encoded one).
pub fn encode(normalised: &str) -> String {
    utf8_percent_encode(normalised, PATH_ESCAPE).to_string()
}

/// Where every Oberon service behind the gateway (the renderer, the BFFs) keeps its
/// own endpoints: status, cache mode, health. Never reachable from outside: no route
/// may match under it (`config::check`) and the gateway answers 404 there.
pub const SERVICES_OWN: &str = "/_oberon";

/// Whether the normalised `path` is [`SERVICES_OWN`] or under it.
pub fn is_reserved(path: &str) -> bool {
    path.strip_prefix(SERVICES_OWN)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether route pattern `pattern` could match a path under [`SERVICES_OWN`]: its
/// first segment is that name, or holds a parameter whose literal start is a start of
/// that name (`/{*rest}`, `/{page}`, `/_o{x}`).
pub fn pattern_reaches_reserved(pattern: &str) -> bool {
    let name = &SERVICES_OWN[1..];
    let first = pattern
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    match first.find('{') {
        Some(open) => name.starts_with(&first[..open]),
        None => first == name,
    }
}

/// Whether `target` is a safe place to send a browser back to after sign-in: a path
/// on this site, never another origin (`//evil`, `/\evil`, `https://evil`, and their
/// encoded forms are all refused).
pub fn is_local_return_path(target: &str) -> bool {
    if target.len() > 2048 || !target.starts_with('/') {
        return false;
    }
    let decoded = percent_decode_str(target).decode_utf8_lossy();
    if target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    for candidate in [target, decoded.as_ref()] {
        if candidate.starts_with("//")
            || candidate.contains('\\')
            || candidate.chars().any(char::is_control)
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_own_paths_are_reserved() {
        assert!(is_reserved("/_oberon"));
        assert!(is_reserved("/_oberon/status"));
        assert!(!is_reserved("/_oberonx"));
        assert!(!is_reserved("/events/_oberon"));
        for pattern in [
            "/_oberon/{*rest}",
            "/{*rest}",
            "/{page}",
            "/_o{x}/y",
            "/_oberon",
        ] {
            assert!(pattern_reaches_reserved(pattern), "{pattern}");
        }
        for pattern in ["/events/{id}", "/x{y}", "/_oberonx", "/assets/{*path}"] {
            assert!(!pattern_reaches_reserved(pattern), "{pattern}");
        }
    }

    #[test]
    fn normal_paths_stay_as_they_are() {
        for p in ["/", "/events/42", "/api/events/v1/items/7", "/a/"] {
            assert_eq!(normalise(p).unwrap(), p);
        }
    }

    #[test]
    fn dots_slashes_and_escapes_are_resolved() {
        let cases = [
            ("//account", "/account"),
            ("/public/../account", "/account"),
            ("/public/%2e%2e/account", "/account"),
            ("/public/%2E%2E/account", "/account"),
            ("/./account", "/account"),
            ("/acc%6Funt", "/account"),
            ("/events//42", "/events/42"),
            ("/events/42/.", "/events/42/"),
            ("/events/42/..", "/events/"),
            ("/caf%C3%A9", "/café"),
            ("/a//", "/a/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn dangerous_paths_are_refused() {
        let cases = [
            ("/public%2F..%2Faccount", PathError::EncodedSeparator),
            ("/public%2faccount", PathError::EncodedSeparator),
            ("/public%5Caccount", PathError::EncodedSeparator),
            ("/public\\account", PathError::Backslash),
            ("/..", PathError::AboveRoot),
            ("/a/../../etc", PathError::AboveRoot),
            ("/%2e%2e/x", PathError::AboveRoot),
            ("/a%00b", PathError::Control),
            ("/a%0d%0aSet-Cookie", PathError::Control),
            ("/a%zz", PathError::BadEncoding),
            ("/a%4", PathError::BadEncoding),
            ("/%ff%fe", PathError::BadEncoding),
            ("account", PathError::NotAbsolute),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn encoding_for_the_wire_round_trips() {
        for p in ["/café/x y", "/a?b#c", "/100%"] {
            let wire = encode(p);
            assert!(wire.is_ascii() && !wire.contains(['?', '#', ' ']), "{wire}");
            assert_eq!(normalise(&wire).unwrap(), p);
        }
    }

    #[test]
    fn only_local_paths_are_return_paths() {
        for ok in ["/", "/account", "/events/42?qty=2", "/a%20b"] {
            assert!(is_local_return_path(ok), "{ok}");
        }
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "javascript:alert(1)",
            "/a\r\nLocation: https://evil.example",
            "evil.example",
        ] {
            assert!(!is_local_return_path(bad), "{bad}");
        }
    }
}
