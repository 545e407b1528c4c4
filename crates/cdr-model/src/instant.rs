//! `Instant`: the server's clock values, kept as milliseconds since the Unix epoch.

use std::fmt;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// FHIR `instant` text with millisecond precision in UTC, as the server writes `meta.lastUpdated`.
const FHIR_INSTANT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// RFC 9110 `IMF-fixdate`, as in `Last-Modified`.
const HTTP_DATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Why a time value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} '{value}'")]
pub struct InstantError {
    kind: &'static str,
    value: String,
}

/// A point in time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    millis: i64,
}

impl Instant {
    #[must_use]
    pub fn from_millis(millis: i64) -> Instant {
        Instant { millis }
    }

    #[must_use]
    pub fn now() -> Instant {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Instant { millis: i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX) }
    }

    #[must_use]
    pub fn millis(self) -> i64 {
        self.millis
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.millis) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// FHIR `instant` text, e.g. `2026-11-22T10:15:30.250Z`.
    #[must_use]
    pub fn to_fhir(self) -> String {
        self.to_datetime().format(FHIR_INSTANT).unwrap_or_default()
    }

    /// HTTP date text, e.g. `Sun, 22 Nov 2026 10:15:30 GMT` (whole seconds).
    #[must_use]
    pub fn to_http_date(self) -> String {
        self.to_datetime().format(HTTP_DATE).unwrap_or_default()
    }

    /// Parses an HTTP `IMF-fixdate`, as sent in `If-Modified-Since`.
    ///
    /// # Errors
    /// When the text is not an `IMF-fixdate`.
    pub fn parse_http_date(text: &str) -> Result<Instant, InstantError> {
        let parsed = PrimitiveDateTime::parse(text.trim(), HTTP_DATE)
            .map_err(|_| InstantError { kind: "HTTP date", value: text.to_owned() })?;
        Ok(Instant::from_datetime(parsed.assume_utc()))
    }

    /// Parses a FHIR `instant` or a `dateTime` with at least day precision (a date alone means its
    /// first moment in UTC), as `_since` takes.
    ///
    /// # Errors
    /// When the text is neither.
    pub fn parse_fhir(text: &str) -> Result<Instant, InstantError> {
        let error = || InstantError { kind: "instant", value: text.to_owned() };
        if let Ok(parsed) =
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        {
            return Ok(Instant::from_datetime(parsed));
        }
        let date = time::Date::parse(text, format_description!("[year]-[month]-[day]"))
            .map_err(|_| error())?;
        Ok(Instant::from_datetime(date.midnight().assume_offset(UtcOffset::UTC)))
    }

    fn from_datetime(datetime: OffsetDateTime) -> Instant {
        let millis = datetime.unix_timestamp_nanos() / 1_000_000;
        Instant { millis: i64::try_from(millis).unwrap_or(i64::MAX) }
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_fhir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let instant = Instant::from_millis(1_795_335_330_250);
        assert_eq!(instant.to_fhir(), "2026-11-22T08:15:30.250Z");
        assert_eq!(instant.to_http_date(), "Sun, 22 Nov 2026 08:15:30 GMT");
    }

    #[test]
    fn parses() {
        let http = Instant::parse_http_date("Sun, 22 Nov 2026 08:15:30 GMT").unwrap();
        assert_eq!(http.millis(), 1_795_335_330_000);
        assert_eq!(
            Instant::parse_fhir("2026-11-22T08:15:30.250Z").unwrap().millis(),
            1_795_335_330_250
        );
        assert_eq!(
            Instant::parse_fhir("2026-11-22T09:15:30.250+01:00").unwrap().millis(),
            1_795_335_330_250
        );
        assert_eq!(Instant::parse_fhir("2026-11-22").unwrap().millis(), 1_795_305_600_000);
        assert!(Instant::parse_fhir("2026-11").is_err());
        assert!(Instant::parse_http_date("yesterday").is_err());
    }
}
