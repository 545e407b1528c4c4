//! Logical ids and version ids, parsed at the boundary.

use std::fmt;

/// Why a type name, id or version id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The name is not a concrete FHIR R4 resource type.
    #[error("unknown resource type '{0}'")]
    UnknownResourceType(String),
    /// The id does not match `[A-Za-z0-9\-\.]{1,64}`.
    #[error("invalid id '{0}': ids are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")]
    InvalidId(String),
    /// The version id is not a positive integer.
    #[error("invalid version id '{0}': version ids are positive integers")]
    InvalidVersion(String),
}

/// A resource's logical id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogicalId {
    /// Matches `[A-Za-z0-9\-\.]{1,64}` (FHIR R4 `id` datatype).
    value: String,
}

impl LogicalId {
    /// # Errors
    /// When `value` is not a valid FHIR id.
    pub fn parse(value: &str) -> Result<LogicalId, IdError> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
        if !valid {
            return Err(IdError::InvalidId(value.to_owned()));
        }
        Ok(LogicalId { value: value.to_owned() })
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// A resource version: the server numbers versions 1, 2, 3, … per resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId {
    /// Always at least 1.
    value: i64,
}

impl VersionId {
    pub const FIRST: VersionId = VersionId { value: 1 };

    /// # Errors
    /// When `value` is not a positive decimal integer.
    pub fn parse(value: &str) -> Result<VersionId, IdError> {
        match value.parse::<i64>() {
            Ok(number) if number >= 1 && value.bytes().all(|byte| byte.is_ascii_digit()) => {
                Ok(VersionId { value: number })
            }
            _ => Err(IdError::InvalidVersion(value.to_owned())),
        }
    }

    /// # Errors
    /// When `value` is below 1.
    pub fn from_number(value: i64) -> Result<VersionId, IdError> {
        if value < 1 {
            return Err(IdError::InvalidVersion(value.to_string()));
        }
        Ok(VersionId { value })
    }

    #[must_use]
    pub fn get(self) -> i64 {
        self.value
    }

    #[must_use]
    pub fn next(self) -> VersionId {
        VersionId { value: self.value + 1 }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "example", "A-1.b", &"x".repeat(64)] {
            assert!(LogicalId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a_b", "é", "a/b", &"x".repeat(65)] {
            assert!(LogicalId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(VersionId::parse("12").unwrap().get(), 12);
        for bad in ["0", "-1", "+1", "1.0", "", "abc"] {
            assert!(VersionId::parse(bad).is_err(), "{bad}");
        }
    }
}
