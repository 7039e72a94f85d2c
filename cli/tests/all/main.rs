//! The `oberon` binary as users run it: one integration-test binary (see STYLE.md).

// Helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod component;
mod component_js;
mod component_python;
mod containment;
mod dev;
mod new_bff;
