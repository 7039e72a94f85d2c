//! Channel names: the vocabulary the index, the errors and the CLI share. A leaf
//! module: it uses nothing else of this crate, so [`crate::error`] and
//! [`crate::model`] can both name a channel without using each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A channel: a named pointer at one version of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// What every request gets, except the canary's share.
    Stable,
    /// A candidate that gets `percent` of the traffic until promoted or rolled back.
    Canary,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Stable => "stable",
            Channel::Canary => "canary",
        })
    }
}

/// A channel name that is neither `stable` nor `canary` (the caller's mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}: use `stable` or `canary`")]
pub struct UnknownChannel(pub String);

impl std::str::FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" => Ok(Channel::Stable),
            "canary" => Ok(Channel::Canary),
            other => Err(UnknownChannel(other.to_string())),
        }
    }
}
