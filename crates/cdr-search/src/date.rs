//! Dates and times as ranges of UTC instants.
//!
//! Every FHIR date, dateTime, instant and search date value stands for a span of time whose width is set by
//! its precision: `2024` is the whole year, `2024-03-05T10:00` the whole minute.
//! [`DateRange`] holds that span as a half-open interval `[low, high)` of microseconds since
//! 1970-01-01T00:00:00Z, so it can be stored as two `BIGINT`s and compared with plain integer operators.
//!
//! Time zone rule: a value without a time zone (every `date`, and a `dateTime` search value written without
//! `Z` or an offset) is read as UTC, the server's time zone.
//! Fractions of a second finer than a microsecond are truncated to the microsecond.

use std::fmt;

use cdr_model::calendar::{civil_from_days, days_from_civil, days_in_month};

/// Microseconds since 1970-01-01T00:00:00Z of 0001-01-01T00:00:00Z, the earliest instant we represent.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
/// Microseconds since 1970-01-01T00:00:00Z of 10000-01-01T00:00:00Z, the end of the latest representable year.
const MAX_MICROS: i64 = 253_402_300_800_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// A half-open span of UTC time `[low, high)`, in microseconds since the Unix epoch.
///
/// `low < high` always holds.
/// [`DateRange::UNBOUNDED`] (`0001-01-01T00:00:00Z..10000-01-01T00:00:00Z`) stands in for open ends,
/// as a Period without `start` or `end` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    /// First microsecond inside the range.
    pub low: i64,
    /// First microsecond after the range.
    pub high: i64,
}

/// How much of a date or time was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatePrecision {
    Year,
    Month,
    Day,
    /// `hh:mm`, accepted in search values.
    Minute,
    Second,
    /// Seconds with this many fraction digits (1 or more).
    Fraction(u8),
}

/// A parsed FHIR date, dateTime or instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateValue {
    /// The span the value stands for.
    pub range: DateRange,
    pub precision: DatePrecision,
    /// Whether a time zone (`Z` or `±hh:mm`) was written; if not, UTC was assumed.
    pub has_zone: bool,
}

/// Why a date text was refused, with the byte offset in the text where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct DateError {
    pub offset: usize,
    pub message: String,
}

impl DateRange {
    /// The whole representable time line, used for open ends.
    pub const UNBOUNDED: DateRange = DateRange { low: MIN_MICROS, high: MAX_MICROS };

    /// The earliest representable instant (stands for "no lower bound").
    pub const MIN: i64 = MIN_MICROS;

    /// The end of the latest representable instant (stands for "no upper bound").
    pub const MAX: i64 = MAX_MICROS;
}

impl fmt::Display for DateRange {
    /// Writes `low..high` in RFC 3339 UTC, with microseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", format_micros(self.low), format_micros(self.high))
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DDThh:mm:ss.ffffffZ`.
#[must_use]
pub fn format_micros(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / MICROS_PER_SECOND;
    let fraction = in_day % MICROS_PER_SECOND;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Parses `YYYY[-MM[-DD[Thh:mm[:ss[.f+]][Z|±hh:mm]]]]`.
///
/// # Errors
/// When the text does not follow that grammar or names an impossible date or time.
pub fn parse_date(text: &str) -> Result<DateValue, DateError> {
    let mut cursor = Cursor { bytes: text.as_bytes(), offset: 0 };
    let year = cursor.digits(4, "a four-digit year")?;
    if year == 0 {
        return Err(DateError { offset: 0, message: "year 0000 does not exist".to_owned() });
    }
    let mut fields = Fields { year, month: 1, day: 1, hour: 0, minute: 0, second: 0, micros: 0 };
    let mut precision = DatePrecision::Year;
    if cursor.eat(b'-') {
        let start = cursor.offset;
        fields.month = cursor.digits(2, "a two-digit month")?;
        if !(1..=12).contains(&fields.month) {
            return Err(DateError { offset: start, message: "month must be 01 to 12".to_owned() });
        }
        precision = DatePrecision::Month;
        if cursor.eat(b'-') {
            let start = cursor.offset;
            fields.day = cursor.digits(2, "a two-digit day")?;
            if fields.day == 0 || fields.day > days_in_month(fields.year, fields.month) {
                return Err(DateError {
                    offset: start,
                    message: "no such day in that month".to_owned(),
                });
            }
            precision = DatePrecision::Day;
            if cursor.eat(b'T') {
                precision = parse_time(&mut cursor, &mut fields)?;
            }
        }
    }
    let offset_minutes = match precision {
        DatePrecision::Year | DatePrecision::Month | DatePrecision::Day => None,
        DatePrecision::Minute | DatePrecision::Second | DatePrecision::Fraction(_) => {
            parse_zone(&mut cursor)?
        }
    };
    if cursor.offset != text.len() {
        return Err(DateError {
            offset: cursor.offset,
            message: "unexpected characters after the date".to_owned(),
        });
    }
    let range = fields.range(precision, offset_minutes.unwrap_or(0));
    Ok(DateValue { range, precision, has_zone: offset_minutes.is_some() })
}

struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
}

impl Fields {
    fn start_micros(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second;
        seconds * MICROS_PER_SECOND + self.micros
    }

    fn range(&self, precision: DatePrecision, offset_minutes: i64) -> DateRange {
        let zone_shift = offset_minutes * 60 * MICROS_PER_SECOND;
        let low = self.start_micros() - zone_shift;
        let high = match precision {
            DatePrecision::Year => {
                days_from_civil(self.year + 1, 1, 1) * MICROS_PER_DAY - zone_shift
            }
            DatePrecision::Month => {
                let (next_year, next_month) =
                    if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
                days_from_civil(next_year, next_month, 1) * MICROS_PER_DAY - zone_shift
            }
            DatePrecision::Day => low + MICROS_PER_DAY,
            DatePrecision::Minute => low + 60 * MICROS_PER_SECOND,
            DatePrecision::Second => low + MICROS_PER_SECOND,
            DatePrecision::Fraction(digits) => {
                low + 10_i64.pow(6_u32.saturating_sub(u32::from(digits)))
            }
        };
        DateRange { low: low.max(MIN_MICROS), high: high.min(MAX_MICROS) }
    }
}

fn parse_time(cursor: &mut Cursor<'_>, fields: &mut Fields) -> Result<DatePrecision, DateError> {
    let start = cursor.offset;
    fields.hour = cursor.digits(2, "a two-digit hour")?;
    if fields.hour > 23 {
        return Err(DateError { offset: start, message: "hour must be 00 to 23".to_owned() });
    }
    if !cursor.eat(b':') {
        return Err(DateError {
            offset: cursor.offset,
            message: "expected ':' after the hour".to_owned(),
        });
    }
    let start = cursor.offset;
    fields.minute = cursor.digits(2, "a two-digit minute")?;
    if fields.minute > 59 {
        return Err(DateError { offset: start, message: "minute must be 00 to 59".to_owned() });
    }
    if !cursor.eat(b':') {
        return Ok(DatePrecision::Minute);
    }
    let start = cursor.offset;
    fields.second = cursor.digits(2, "a two-digit second")?;
    if fields.second > 60 {
        return Err(DateError { offset: start, message: "second must be 00 to 60".to_owned() });
    }
    if !cursor.eat(b'.') {
        return Ok(DatePrecision::Second);
    }
    let start = cursor.offset;
    let mut n_digits: u8 = 0;
    while let Some(digit) = cursor.peek_digit() {
        cursor.offset += 1;
        n_digits = n_digits.saturating_add(1);
        if n_digits <= 6 {
            fields.micros = fields.micros * 10 + digit;
        }
    }
    if n_digits == 0 {
        return Err(DateError { offset: start, message: "expected digits after '.'".to_owned() });
    }
    for _ in n_digits..6 {
        fields.micros *= 10;
    }
    Ok(DatePrecision::Fraction(n_digits))
}

/// Reads `Z`, `+hh:mm` or `-hh:mm`; returns the offset east of UTC in minutes, or `None` if absent.
fn parse_zone(cursor: &mut Cursor<'_>) -> Result<Option<i64>, DateError> {
    let start = cursor.offset;
    let sign = match cursor.bytes.get(cursor.offset) {
        None => return Ok(None),
        Some(b'Z') => {
            cursor.offset += 1;
            return Ok(Some(0));
        }
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(b' ') => {
            return Err(DateError {
                offset: start,
                message:
                    "a time zone offset starts with '+' or '-' (a '+' in a URL must be sent as %2B)"
                        .to_owned(),
            });
        }
        Some(_) => {
            return Err(DateError {
                offset: start,
                message: "expected a time zone ('Z' or ±hh:mm)".to_owned(),
            });
        }
    };
    cursor.offset += 1;
    let hours = cursor.digits(2, "a two-digit zone hour")?;
    if !cursor.eat(b':') {
        return Err(DateError {
            offset: cursor.offset,
            message: "expected ':' in the time zone".to_owned(),
        });
    }
    let minutes = cursor.digits(2, "two-digit zone minutes")?;
    if hours > 14 || minutes > 59 {
        return Err(DateError {
            offset: start,
            message: "time zone offset out of range".to_owned(),
        });
    }
    Ok(Some(sign * (hours * 60 + minutes)))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.offset) == Some(&byte) {
            self.offset += 1;
            return true;
        }
        false
    }

    fn peek_digit(&self) -> Option<i64> {
        match self.bytes.get(self.offset) {
            Some(byte) if byte.is_ascii_digit() => Some(i64::from(byte - b'0')),
            _ => None,
        }
    }

    fn digits(&mut self, count: usize, what: &str) -> Result<i64, DateError> {
        let mut value = 0;
        for _ in 0..count {
            let Some(digit) = self.peek_digit() else {
                return Err(DateError { offset: self.offset, message: format!("expected {what}") });
            };
            value = value * 10 + digit;
            self.offset += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_constants_match_the_calendar() {
        assert_eq!(days_from_civil(1, 1, 1) * MICROS_PER_DAY, MIN_MICROS);
        assert_eq!(days_from_civil(10_000, 1, 1) * MICROS_PER_DAY, MAX_MICROS);
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        for days in [-719_468, -1, 0, 59, 11_016, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
