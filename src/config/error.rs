//! Errors of loading a configuration: [`ConfigError`], each on one line.
//!
//! Each message carries its cause's text and no variant returns a `source`:
//! `main.rs` prints errors with `{:#}`, which would show a cause that is both
//! twice.

use std::io;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying IO error.
        error: io::Error,
    },
    /// An error in the file at `path` (from [`Config::load`](super::Config::load)).
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },
    /// The text is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{at}: {message}")]
    Parse {
        /// Line, column and the line's text, e.g. ``line 4, column 14, `slice_size = "abc"` ``.
        at: String,
        /// What the TOML reader refused.
        message: String,
    },
    /// A key that has no default was not set.
    #[error("{key} is required")]
    Missing {
        /// Dotted key, e.g. `origin.address`.
        key: &'static str,
    },
    /// A value of the `index`-th `[[route]]` (counting from 0) is out of range or malformed.
    #[error("invalid route[{index}].{key} = {value}: {reason}")]
    InvalidRoute {
        /// Position of the route in the file, from 0.
        index: usize,
        /// Key within the route.
        key: String,
        /// The value as written.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A value parsed but is out of range or malformed.
    #[error("invalid {key} = {value}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `slice.slice_size`.
        key: &'static str,
        /// The rejected value, as written in TOML.
        value: String,
        /// What an acceptable value looks like.
        reason: String,
    },
}

/// The TOML error on one line: where (line, column and that line's text,
/// which shows the key and value) and what.
pub(super) fn parse_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_string();
    let Some(span) = error.span() else {
        return ConfigError::Parse {
            at: "TOML".into(),
            message,
        };
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("").trim();
    ConfigError::Parse {
        at: format!("line {line}, column {column}, `{line_text}`"),
        message,
    }
}
