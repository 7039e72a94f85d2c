//! The gateway's integration tests, one binary (see STYLE.md): real servers on port 0
//! (an upstream that records what it saw, an issuer's JWKS, the gateway through its own
//! listener), driven over HTTP.
//!
//! - `matrix`: the security matrix, each case's status and whether the upstream saw it.
//! - `interop`: tokens minted by PyJWT (`../pyjwt_mint.py`).

// Helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

mod interop;
mod matrix;
