//! Partial dates, date-times and times with their precision: parsing, formatting, precision-aware comparison
//! and calendar arithmetic.

use std::cmp::Ordering;
use std::fmt;

use cdr_model::calendar::{civil_from_days, days_from_civil, days_in_month};

/// Index of each component in [`Partial::parts`].
const YEAR: usize = 0;
const MONTH: usize = 1;
const DAY: usize = 2;
const HOUR: usize = 3;
const MINUTE: usize = 4;
const SECOND: usize = 5;
const MILLISECOND: usize = 6;

/// A date, date-time or time known to some precision.
///
/// `parts` holds year, month, day, hour, minute, second and millisecond; the components from `first` up to
/// (excluding) `precision` are known. Dates and date-times start at the year, times at the hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    pub(crate) parts: [i64; 7],
    pub(crate) first: u8,
    pub(crate) precision: u8,
    /// The time zone offset in minutes, when one was given.
    pub(crate) offset: Option<i32>,
}

/// The digits of the full form `YYYYMMDDhhmmssfff` up to each precision (1 for the year to 7 for the
/// millisecond).
const PRECISION_DIGITS: [i64; 7] = [4, 6, 8, 10, 12, 14, 17];

/// The kind of value a boundary is taken of, which bounds the precisions it may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoundaryOf {
    Date,
    DateTime,
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CalendarUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// Whether `unit` is a FHIRPath calendar duration keyword (`day`, `weeks`), not a UCUM code.
pub(crate) fn is_calendar_keyword(unit: &str) -> bool {
    unit.len() >= 3 && unit != "min" && CalendarUnit::from_unit(unit).is_some()
}

impl CalendarUnit {
    /// The calendar unit for a FHIRPath duration keyword or a definite-duration UCUM unit.
    pub(crate) fn from_unit(unit: &str) -> Option<CalendarUnit> {
        Some(match unit {
            "year" | "years" => CalendarUnit::Year,
            "month" | "months" => CalendarUnit::Month,
            "week" | "weeks" | "wk" => CalendarUnit::Week,
            "day" | "days" | "d" => CalendarUnit::Day,
            "hour" | "hours" | "h" => CalendarUnit::Hour,
            "minute" | "minutes" | "min" => CalendarUnit::Minute,
            "second" | "seconds" | "s" => CalendarUnit::Second,
            "millisecond" | "milliseconds" | "ms" => CalendarUnit::Millisecond,
            _ => return None,
        })
    }
}

impl Partial {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub(crate) fn parse_date(text: &str) -> Option<Partial> {
        let mut parts = [0, 1, 1, 0, 0, 0, 0];
        let mut precision = 0u8;
        for (idx, piece) in text.split('-').enumerate() {
            let expected_len = if idx == 0 { 4 } else { 2 };
            if idx > 2 || piece.len() != expected_len || !piece.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            parts[idx] = piece.parse().ok()?;
            precision += 1;
        }
        let date = Partial { parts, first: 0, precision, offset: None };
        date.is_valid().then_some(date)
    }

    /// Parses a date-time: a date, then optionally `T`, a time and a time zone. When `require_t` is false (FHIR
    /// `dateTime` values) a bare date is accepted too.
    pub(crate) fn parse_date_time(text: &str, require_t: bool) -> Option<Partial> {
        let (date_text, time_text) = match text.split_once('T') {
            Some((date_text, time_text)) => (date_text, Some(time_text)),
            None if require_t => return None,
            None => (text, None),
        };
        let mut value = Partial::parse_date(date_text)?;
        let Some(time_text) = time_text.filter(|t| !t.is_empty()) else { return Some(value) };
        let (time_text, offset) = split_offset(time_text)?;
        if time_text.is_empty() {
            value.offset = offset;
            return (value.precision == 3).then_some(value);
        }
        if value.precision != 3 {
            return None;
        }
        let time = Partial::parse_time(time_text)?;
        value.parts[HOUR..].copy_from_slice(&time.parts[HOUR..]);
        value.precision = time.precision;
        value.offset = offset;
        Some(value)
    }

    /// Parses `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff` (no time zone).
    pub(crate) fn parse_time(text: &str) -> Option<Partial> {
        let mut parts = [0, 1, 1, 0, 0, 0, 0];
        let mut precision = 3u8;
        let (main, fraction) = match text.split_once('.') {
            Some((main, fraction)) => (main, Some(fraction)),
            None => (text, None),
        };
        for (idx, piece) in main.split(':').enumerate() {
            if idx > 2 || piece.len() != 2 || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[HOUR + idx] = piece.parse().ok()?;
            precision += 1;
        }
        if let Some(fraction) = fraction {
            if precision != 6
                || fraction.is_empty()
                || !fraction.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
            parts[MILLISECOND] = millis.parse().ok()?;
            precision = 7;
        }
        let time = Partial { parts, first: 3, precision, offset: None };
        time.is_valid().then_some(time)
    }

    fn is_valid(&self) -> bool {
        let p = &self.parts;
        let known = |idx: usize| self.precision as usize > idx && self.first as usize <= idx;
        (!known(MONTH) || (1..=12).contains(&p[MONTH]))
            && (!known(DAY) || (1..=days_in_month(p[YEAR], p[MONTH])).contains(&p[DAY]))
            && (!known(HOUR) || (0..24).contains(&p[HOUR]))
            && (!known(MINUTE) || (0..60).contains(&p[MINUTE]))
            && (!known(SECOND) || (0..60).contains(&p[SECOND]))
    }

    pub(crate) fn is_time(&self) -> bool {
        self.first == 3
    }

    /// The date part alone.
    pub(crate) fn date_part(&self) -> Partial {
        Partial { parts: self.parts, first: 0, precision: self.precision.min(3), offset: None }
    }

    /// The precision with seconds and milliseconds counted as one.
    fn comparable_precision(&self) -> u8 {
        if self.precision == 6 { 7 } else { self.precision }
    }

    /// Compares by precision: `None` when the values differ in precision and agree on the common components.
    pub(crate) fn compare(&self, other: &Partial) -> Option<Ordering> {
        if self.first != other.first {
            return None;
        }
        let (left, right) = match (self.offset, other.offset) {
            (Some(_), Some(_)) => (self.to_utc(), other.to_utc()),
            // One side has a time zone and the other not: the instants cannot be compared.
            (Some(_), None) | (None, Some(_)) if self.precision > 3 && other.precision > 3 => {
                return None;
            }
            _ => (*self, *other),
        };
        let left_precision = left.comparable_precision();
        let right_precision = right.comparable_precision();
        let common = left_precision.min(right_precision) as usize;
        for idx in self.first as usize..common {
            match left.parts[idx].cmp(&right.parts[idx]) {
                Ordering::Equal => {}
                unequal => return Some(unequal),
            }
        }
        (left_precision == right_precision).then_some(Ordering::Equal)
    }

    /// Feeds `state` so that values [`compare`](Partial::compare) finds equal hash alike: the components to
    /// the comparable precision, in UTC when a time zone is given.
    pub(crate) fn hash_equal<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::Hash;
        // Without a time component `to_utc` keeps the components, as `compare` does for such values.
        let value = self.to_utc();
        let precision = value.comparable_precision();
        self.first.hash(state);
        precision.hash(state);
        value.parts[usize::from(self.first)..usize::from(precision)].hash(state);
    }

    fn to_utc(self) -> Partial {
        let Some(offset) = self.offset else { return self };
        if self.precision <= HOUR as u8 || offset == 0 {
            return Partial { offset: Some(0), ..self };
        }
        let mut value = self.add_minutes(-i64::from(offset));
        value.offset = Some(0);
        value
    }

    fn add_minutes(self, minutes: i64) -> Partial {
        let p = self.parts;
        let days = if self.is_time() { 0 } else { days_from_civil(p[YEAR], p[MONTH], p[DAY]) };
        let total = days * 1440 + p[HOUR] * 60 + p[MINUTE] + minutes;
        let mut value = self;
        let (new_days, minute_of_day) = (total.div_euclid(1440), total.rem_euclid(1440));
        if !self.is_time() {
            let (year, month, day) = civil_from_days(new_days);
            value.parts[YEAR] = year;
            value.parts[MONTH] = month;
            value.parts[DAY] = day;
        }
        value.parts[HOUR] = minute_of_day / 60;
        value.parts[MINUTE] = minute_of_day % 60;
        value
    }

    /// The number of digits of the value as `precision()` counts them: 4, 6 and 8 to the year, month and day,
    /// then 10, 12, 14 and 17 to the hour, minute, second and millisecond; a time counts 2, 4, 6 and 9.
    pub(crate) fn digits(&self) -> Option<i64> {
        let digits = PRECISION_DIGITS.get(usize::from(self.precision.checked_sub(1)?))?;
        Some(if self.is_time() { digits - PRECISION_DIGITS[DAY] } else { *digits })
    }

    /// The least (`low`) or greatest value this value stands for, to `digits` digits as
    /// [`digits`](Partial::digits) counts them (`@2014.highBoundary(6)` is `@2014-12`); `None` for a count
    /// the kind of value does not have.
    ///
    /// A date-time with a time part and no time zone takes the earliest zone (+14:00) as its low boundary
    /// and the latest (-12:00) as its high boundary, as the HL7 Java engine does and the HL7 suite expects.
    pub(crate) fn boundary(&self, digits: i64, low: bool, kind: BoundaryOf) -> Option<Partial> {
        let offset = if self.is_time() { PRECISION_DIGITS[DAY] } else { 0 };
        let target = PRECISION_DIGITS.iter().position(|d| d - offset == digits)? + 1;
        let allowed = match kind {
            BoundaryOf::Date => target <= DAY + 1,
            BoundaryOf::DateTime => true,
            BoundaryOf::Time => target > HOUR,
        };
        if !allowed {
            return None;
        }
        let mut value = *self;
        for idx in usize::from(self.precision)..target {
            value.parts[idx] = match (idx, low) {
                (MONTH | DAY, true) => 1,
                (_, true) => 0,
                (MONTH, false) => 12,
                (DAY, false) => days_in_month(value.parts[YEAR], value.parts[MONTH]),
                (HOUR, false) => 23,
                (MINUTE | SECOND, false) => 59,
                (_, false) => 999,
            };
        }
        // Components beyond the new precision go back to their defaults, as parsing leaves them.
        for (idx, part) in value.parts.iter_mut().enumerate().skip(target) {
            *part = if matches!(idx, MONTH | DAY) { 1 } else { 0 };
        }
        value.precision = u8::try_from(target).ok()?;
        value.offset = match (kind, self.offset) {
            (BoundaryOf::DateTime, _) if target <= DAY + 1 => None,
            (BoundaryOf::DateTime, None) => Some(if low { 14 * 60 } else { -12 * 60 }),
            (_, offset) => offset,
        };
        Some(value)
    }

    /// Adds a whole number of calendar units, working at the value's own precision.
    pub(crate) fn add(&self, amount: i64, unit: CalendarUnit) -> Option<Partial> {
        let mut value = *self;
        let precision = self.precision as usize;
        match unit {
            CalendarUnit::Year | CalendarUnit::Month if self.is_time() => return None,
            CalendarUnit::Year => value.parts[YEAR] += amount,
            CalendarUnit::Month if precision <= MONTH => value.parts[YEAR] += amount / 12,
            CalendarUnit::Month => {
                let months = value.parts[YEAR] * 12 + value.parts[MONTH] - 1 + amount;
                value.parts[YEAR] = months.div_euclid(12);
                value.parts[MONTH] = months.rem_euclid(12) + 1;
            }
            CalendarUnit::Week => return self.add(amount * 7, CalendarUnit::Day),
            CalendarUnit::Day if self.is_time() => return None,
            CalendarUnit::Day if precision <= DAY => {
                if precision <= MONTH {
                    return self.add(amount / 30, CalendarUnit::Month);
                }
                let p = value.parts;
                let (year, month, day) =
                    civil_from_days(days_from_civil(p[YEAR], p[MONTH], p[DAY]) + amount);
                value.parts[YEAR] = year;
                value.parts[MONTH] = month;
                value.parts[DAY] = day;
            }
            CalendarUnit::Day => value = value.add_minutes(amount * 1440),
            CalendarUnit::Hour if precision <= HOUR => {
                return self.add(amount / 24, CalendarUnit::Day);
            }
            CalendarUnit::Hour => value = value.add_minutes(amount * 60),
            CalendarUnit::Minute if precision <= HOUR => {
                return self.add(amount / 60, CalendarUnit::Hour);
            }
            CalendarUnit::Minute => value = value.add_minutes(amount),
            CalendarUnit::Second if precision <= MINUTE => {
                return self.add(amount / 60, CalendarUnit::Minute);
            }
            CalendarUnit::Second | CalendarUnit::Millisecond => {
                let millis = if unit == CalendarUnit::Second { amount * 1000 } else { amount };
                if precision <= SECOND && unit == CalendarUnit::Millisecond {
                    return self.add(amount / 1000, CalendarUnit::Second);
                }
                let total = value.parts[SECOND] * 1000 + value.parts[MILLISECOND] + millis;
                value = value.add_minutes(total.div_euclid(60_000));
                let rest = total.rem_euclid(60_000);
                value.parts[SECOND] = rest / 1000;
                value.parts[MILLISECOND] = rest % 1000;
            }
        }
        if precision > DAY && !self.is_time() {
            let max_day = days_in_month(value.parts[YEAR], value.parts[MONTH]);
            value.parts[DAY] = value.parts[DAY].min(max_day);
        }
        Some(value)
    }
}

impl fmt::Display for Partial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parts;
        let precision = self.precision as usize;
        if !self.is_time() {
            write!(f, "{:04}", p[YEAR])?;
            if precision > MONTH {
                write!(f, "-{:02}", p[MONTH])?;
            }
            if precision > DAY {
                write!(f, "-{:02}", p[DAY])?;
            }
            if precision > HOUR {
                f.write_str("T")?;
            }
        }
        if precision > HOUR {
            write!(f, "{:02}", p[HOUR])?;
        }
        if precision > MINUTE {
            write!(f, ":{:02}", p[MINUTE])?;
        }
        if precision > SECOND {
            write!(f, ":{:02}", p[SECOND])?;
        }
        if precision > MILLISECOND {
            write!(f, ".{:03}", p[MILLISECOND])?;
        }
        match self.offset {
            Some(0) if precision > HOUR => f.write_str("Z"),
            Some(offset) if precision > HOUR => {
                let sign = if offset < 0 { '-' } else { '+' };
                write!(f, "{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60)
            }
            _ => Ok(()),
        }
    }
}

fn split_offset(text: &str) -> Option<(&str, Option<i32>)> {
    if let Some(main) = text.strip_suffix('Z') {
        return Some((main, Some(0)));
    }
    let Some(sign_idx) = text.rfind(['+', '-']) else { return Some((text, None)) };
    let (main, zone) = text.split_at(sign_idx);
    let (hours, minutes) = zone[1..].split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let total = hours.parse::<i32>().ok()? * 60 + minutes.parse::<i32>().ok()?;
    Some((main, Some(if zone.starts_with('-') { -total } else { total })))
}

/// The current instant as a date-time in UTC with millisecond precision.
pub(crate) fn now_utc() -> Partial {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let millis = i64::try_from(since_epoch.as_millis()).unwrap_or(0);
    let (year, month, day) = civil_from_days(millis.div_euclid(86_400_000));
    let millis_of_day = millis.rem_euclid(86_400_000);
    Partial {
        parts: [
            year,
            month,
            day,
            millis_of_day / 3_600_000,
            millis_of_day / 60_000 % 60,
            millis_of_day / 1000 % 60,
            millis_of_day % 1000,
        ],
        first: 0,
        precision: 7,
        offset: Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_with_precision() {
        for text in [
            "2015",
            "2015-02",
            "2015-02-04",
            "2015-02-04T14",
            "2015-02-04T14:34:28.123Z",
            "2015-02-04T14:34-05:00",
        ] {
            assert_eq!(Partial::parse_date_time(text, false).unwrap().to_string(), text);
        }
        assert!(Partial::parse_date("2015-02-30").is_none());
        assert_eq!(Partial::parse_time("14:34").unwrap().to_string(), "14:34");
    }

    #[test]
    fn compares_across_time_zones_and_precisions() {
        let a = Partial::parse_date_time("2017-11-05T01:30:00.0-04:00", false).unwrap();
        let b = Partial::parse_date_time("2017-11-05T05:30:00.0Z", false).unwrap();
        assert_eq!(a.compare(&b), Some(Ordering::Equal));
        let year = Partial::parse_date("2012").unwrap();
        let day = Partial::parse_date("2012-04-15").unwrap();
        assert_eq!(year.compare(&day), None);
        assert_eq!(Partial::parse_date("2013").unwrap().compare(&day), Some(Ordering::Greater));
    }

    #[test]
    fn adds_calendar_units() {
        let date = Partial::parse_date("2016-01-31").unwrap();
        assert_eq!(date.add(1, CalendarUnit::Month).unwrap().to_string(), "2016-02-29");
        assert_eq!(date.add(-1, CalendarUnit::Year).unwrap().to_string(), "2015-01-31");
        assert_eq!(date.add(7, CalendarUnit::Day).unwrap().to_string(), "2016-02-07");
        let time = Partial::parse_time("23:30").unwrap();
        assert_eq!(time.add(45, CalendarUnit::Minute).unwrap().to_string(), "00:15");
    }
}
