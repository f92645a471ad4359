//! Validation results: every problem with the JSON path of the value at fault.

use serde::Serialize;
use utoipa::ToSchema;

/// One validation problem, e.g. `inputs[1].url: unsupported scheme "ftp"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the offending value (`inputs[1].url`); empty for the whole document.
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects [`FieldError`]s while walking a document.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Record a problem when `value` is outside `lo..=hi`.
    pub fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        path: impl Into<String>,
        value: T,
        lo: T,
        hi: T,
    ) {
        if value < lo || value > hi {
            self.push(path, format!("must be between {lo} and {hi}, got {value}"));
        }
    }

    /// Record a problem when `value` is longer than `max` characters.
    pub fn max_len(&mut self, path: impl Into<String>, value: &str, max: usize) {
        let n = value.chars().count();
        if n > max {
            self.push(path, format!("must be at most {max} characters, got {n}"));
        }
    }

    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Join a JSON path prefix and a field name.
pub fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}
