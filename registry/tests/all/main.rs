//! The registry's integration tests: one binary (see STYLE.md). Each backend is driven
//! through the same scenarios; the S3 one against a real moto server on loopback.

// Helpers and scenarios outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod fs;
mod s3;
mod scenarios;
mod support;
