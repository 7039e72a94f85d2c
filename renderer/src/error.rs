//! Which side an error came from, as pingora tags its errors. The side decides what
//! the renderer does about it: an upstream's failure (a BFF, the registry's store, a
//! component) is contained — a fallback, a stale copy, the site kept as it is — and
//! logged as a warning about that upstream; a client's mistake is answered and logged
//! at most at debug; an internal failure is the renderer's own bug or environment.
//!
//! The error types stay where their code is (`DataError` in [`crate::data`],
//! `SlotFailure` in [`crate::render`], ...); each says its side with a `side()` method.

/// Where an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Something the renderer asks: a BFF, the registry's store, a component.
    Upstream,
    /// The request the client sent.
    Client,
    /// The renderer itself: its runtime, its disk, its own invariants.
    Internal,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Upstream => "upstream",
            Side::Client => "client",
            Side::Internal => "internal",
        })
    }
}
