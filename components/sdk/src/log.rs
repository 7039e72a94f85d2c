//! Logging to the host's structured log (tagged there with component and request).

use crate::bindings::oberon::component::log as raw;

/// The log levels of the contract.
pub use raw::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
