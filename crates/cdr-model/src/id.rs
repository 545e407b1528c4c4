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
    /// The text is not an entity tag of the form `W/"n"` or `"n"`.
    #[error("invalid entity tag '{0}': expected a version tag such as W/\"3\"")]
    InvalidETag(String),
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

    /// The entity tag of this version, as the `ETag` header and a Bundle entry's `response.etag` carry it.
    #[must_use]
    pub fn etag(self) -> ETag {
        ETag { version: self }
    }
}

/// The weak entity tag of a version: `W/"3"` (FHIR R4 http.html#versioning); `Display` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag {
    version: VersionId,
}

impl ETag {
    /// Parses an entity tag as clients send it in `If-Match` and `If-None-Match`: `W/"3"`, or `"3"`.
    ///
    /// # Errors
    /// [`IdError::InvalidETag`] when the text is not a quoted decimal number, weak or not;
    /// [`IdError::InvalidVersion`] when it is one but names no version (`W/"0"`), which matches no resource.
    pub fn parse(text: &str) -> Result<ETag, IdError> {
        let invalid = || IdError::InvalidETag(text.to_owned());
        let trimmed = text.trim();
        let quoted = trimmed.strip_prefix("W/").unwrap_or(trimmed);
        let digits = quoted.strip_prefix('"').and_then(|rest| rest.strip_suffix('"'));
        let Some(digits) = digits.filter(|digits| {
            !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
        }) else {
            return Err(invalid());
        };
        let number = digits.parse::<i64>().map_err(|_| invalid())?;
        Ok(ETag { version: VersionId::from_number(number)? })
    }

    #[must_use]
    pub fn version(self) -> VersionId {
        self.version
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "W/\"{}\"", self.version.value)
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
    fn etags() {
        let three = VersionId::parse("3").unwrap();
        assert_eq!(three.etag().to_string(), "W/\"3\"");
        assert_eq!(ETag::parse("W/\"3\"").unwrap().version(), three);
        assert_eq!(ETag::parse(" \"12\" ").unwrap().version().get(), 12);
        for bad in ["3", "W/3", "W/\"\"", "W/\"a\"", "*", "W/\"-1\"", "W/\"99999999999999999999\""]
        {
            assert!(matches!(ETag::parse(bad), Err(IdError::InvalidETag(_))), "{bad}");
        }
        assert!(matches!(ETag::parse("W/\"0\""), Err(IdError::InvalidVersion(_))));
    }

    #[test]
    fn versions() {
        assert_eq!(VersionId::parse("12").unwrap().get(), 12);
        for bad in ["0", "-1", "+1", "1.0", "", "abc"] {
            assert!(VersionId::parse(bad).is_err(), "{bad}");
        }
    }
}
