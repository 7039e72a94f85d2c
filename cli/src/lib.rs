//! The `oberon` command's implementation, as a library so tests can drive it.

pub mod build;
pub mod component;
pub mod dev;
pub mod fixture_backend;
pub mod mode;
pub mod new;
