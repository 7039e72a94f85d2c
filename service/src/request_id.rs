//! The request id: one per request, set by the gateway (or the first service that sees
//! the request), sent on as `x-request-id`, logged by every service and bound into the
//! gateway's identity assertions.

use http::HeaderMap;

/// The header that carries it.
pub const HEADER: &str = "x-request-id";

/// The longest id accepted.
pub const MAX_LEN: usize = 128;

/// An id we accept from a trusted hop: 1 to 128 bytes of `[A-Za-z0-9_.:-]`, safe to log,
/// echo and put in a header.
pub fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new id: 96 random bits as 24 lowercase hex digits. From the thread's CSPRNG
/// (seeded from the OS), not a system call per request: ids are made on every page's
/// path.
pub fn generate() -> String {
    use rand::RngCore;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// The valid id in `headers`, if there is one.
pub fn of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_valid(id))
}

/// The valid id in `headers`, or a new one.
pub fn of_or_generate(headers: &HeaderMap) -> String {
    of(headers).map_or_else(generate, str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_accepted() {
        assert!(is_valid("abc-123_x.y:z"));
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("a\"b"));
        assert!(!is_valid(&"a".repeat(MAX_LEN + 1)));
        assert!(is_valid(&"a".repeat(MAX_LEN)));
    }

    #[test]
    fn a_new_id_is_valid_and_new() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 24);
        assert!(is_valid(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn an_invalid_id_in_the_headers_is_replaced() {
        let mut headers = HeaderMap::new();
        assert_eq!(of(&headers), None);
        headers.insert(HEADER, "a b".parse().unwrap());
        assert_eq!(of(&headers), None);
        assert_ne!(of_or_generate(&headers), "a b");
        headers.insert(HEADER, "req-1".parse().unwrap());
        assert_eq!(of_or_generate(&headers), "req-1");
    }
}
