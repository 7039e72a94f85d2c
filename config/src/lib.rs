//! Configuration errors for every Oberon service: each names its file, its line and
//! column when it has one, and what to change. A service collects them all and starts
//! only when there are none. And [`listen`], how every service listens.

pub mod listen;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub location: Option<(usize, usize)>,
    pub message: String,
    /// What to change.
    pub help: Option<String>,
}

impl ConfigError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
            help: None,
        }
    }

    /// Locate the error at a byte offset of `source`.
    pub fn at(mut self, source: &str, offset: usize) -> Self {
        self.location = Some(line_col(source, offset));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a site's configuration. The renderer starts only when there
/// are none: it never runs half-configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    // An offset inside a multi-byte character is that character's place.
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Parse a TOML file into `T`, turning a syntax or schema error into a located
/// [`ConfigError`].
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &Path,
    source: &str,
) -> Result<T, ConfigError> {
    toml::from_str(source).map_err(|e| {
        let mut err = ConfigError::new(file, e.message().trim_end().to_string());
        if let Some(span) = e.span() {
            err = err.at(source, span.start);
        }
        let help = if e.message().contains("unknown field") {
            "remove the field or fix its spelling; the expected fields are listed above"
        } else if e.message().contains("missing field") {
            "add the field"
        } else if e.message().contains("unknown variant") {
            "use one of the values listed above"
        } else if e.message().contains("is out of range") {
            "use a value in the range given above"
        } else {
            "fix the TOML syntax at this position"
        };
        err.help(help)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("a\n", 2), (2, 1));
    }

    #[test]
    fn an_offset_inside_a_character_is_located_at_that_character() {
        // A caller's offset can land inside a multi-byte character (one computed in
        // a TOML string's decoded value, say): found by fuzz/site_toml.
        assert_eq!(line_col("x\né", 3), (2, 1));
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
