//! Decimals with their implicit precision range.
//!
//! FHIR compares numbers by the precision they were written with: `100` stands for `[99.5, 100.5)`,
//! `100.00` for `[99.995, 100.005)` and `1e2` for `[50, 150)` (R4 §3.1.1.4.1).
//! The range is half a unit of the last significant digit on each side, half-open. It is the range of a
//! search value; a stored value is compared as is (its `value`, a point), whatever precision it was written
//! with.

use std::str::FromStr;

use rust_decimal::Decimal;

/// A decimal as written, its exact value and its implicit precision range `[low, high)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecimalValue {
    /// The lexical form, unchanged.
    pub text: String,
    /// The exact value (trailing zeros are kept in its scale).
    pub value: Decimal,
    /// `value` minus half a unit of the last significant digit.
    pub low: Decimal,
    /// `value` plus half a unit of the last significant digit (excluded from the range).
    pub high: Decimal,
}

/// Why a number text was refused, with the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct NumberError {
    pub offset: usize,
    pub message: String,
}

/// Parses `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
///
/// # Errors
/// When the text is not a decimal or is beyond the 28 significant digits we compute with.
pub fn parse_decimal(text: &str) -> Result<DecimalValue, NumberError> {
    let bytes = text.as_bytes();
    let mut offset = 0;
    if bytes.first() == Some(&b'-') {
        offset += 1;
    }
    let n_integer_digits = count_digits(&bytes[offset..]);
    if n_integer_digits == 0 {
        return Err(NumberError { offset, message: "expected a digit".to_owned() });
    }
    offset += n_integer_digits;
    let mut n_fraction_digits = 0;
    if bytes.get(offset) == Some(&b'.') {
        offset += 1;
        n_fraction_digits = count_digits(&bytes[offset..]);
        if n_fraction_digits == 0 {
            return Err(NumberError { offset, message: "expected digits after '.'".to_owned() });
        }
        offset += n_fraction_digits;
    }
    let mut exponent: i64 = 0;
    if matches!(bytes.get(offset), Some(b'e' | b'E')) {
        offset += 1;
        let exponent_start = offset;
        if matches!(bytes.get(offset), Some(b'+' | b'-')) {
            offset += 1;
        }
        let n_exponent_digits = count_digits(&bytes[offset..]);
        if n_exponent_digits == 0 || n_exponent_digits > 3 {
            return Err(NumberError {
                offset,
                message: "expected one to three exponent digits".to_owned(),
            });
        }
        offset += n_exponent_digits;
        exponent = text[exponent_start..offset].parse().unwrap_or_default();
    }
    if offset != bytes.len() {
        return Err(NumberError { offset, message: "unexpected character in number".to_owned() });
    }
    let out_of_range =
        || NumberError { offset: 0, message: "number out of the supported range".to_owned() };
    let value = if exponent == 0 && !text.contains(['e', 'E']) {
        Decimal::from_str(text).map_err(|_| out_of_range())?
    } else {
        Decimal::from_scientific(text).map_err(|_| out_of_range())?
    };
    let fraction_digits = i64::try_from(n_fraction_digits).map_err(|_| out_of_range())?;
    // The last significant digit is worth 10^unit_exponent; half of it is 5 * 10^(unit_exponent - 1).
    let half_unit_exponent = exponent - fraction_digits - 1;
    let half_unit =
        power_of_ten(half_unit_exponent).and_then(|power| power.checked_mul(Decimal::from(5)));
    let half_unit = half_unit.ok_or_else(out_of_range)?;
    let low = value.checked_sub(half_unit).ok_or_else(out_of_range)?;
    let high = value.checked_add(half_unit).ok_or_else(out_of_range)?;
    Ok(DecimalValue { text: text.to_owned(), value, low, high })
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|byte| byte.is_ascii_digit()).count()
}

fn power_of_ten(exponent: i64) -> Option<Decimal> {
    if exponent < 0 {
        let scale = u32::try_from(-exponent).ok()?;
        return Decimal::try_new(1, scale).ok();
    }
    let mut power = Decimal::ONE;
    for _ in 0..exponent {
        power = power.checked_mul(Decimal::TEN)?;
    }
    Some(power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_written_precision() {
        let cases = [
            ("100", "100", "99.5", "100.5"),
            ("100.0", "100", "99.95", "100.05"),
            ("100.00", "100", "99.995", "100.005"),
            ("0", "0", "-0.5", "0.5"),
            ("-2.5", "-2.5", "-2.55", "-2.45"),
            ("1e2", "100", "50", "150"),
            ("1.0e2", "100", "95", "105"),
            ("2.5E-3", "0.0025", "0.00245", "0.00255"),
            ("007", "7", "6.5", "7.5"),
        ];
        for (text, value, low, high) in cases {
            let parsed = parse_decimal(text).unwrap();
            let actual = (
                parsed.value.normalize().to_string(),
                parsed.low.normalize().to_string(),
                parsed.high.normalize().to_string(),
            );
            let expected = (value.to_owned(), low.to_owned(), high.to_owned());
            assert_eq!(actual, expected, "ranges of {text}");
            assert_eq!(parsed.text, text);
        }
    }

    #[test]
    fn refuses_malformed_numbers_with_positions() {
        let cases = [
            ("", 0),
            ("-", 1),
            ("1.", 2),
            (".5", 0),
            ("1e", 2),
            ("1x", 1),
            ("1e1000", 2),
            ("1,5", 1),
        ];
        for (text, offset) in cases {
            let error = parse_decimal(text).unwrap_err();
            assert_eq!(error.offset, offset, "offset for {text:?}: {error}");
        }
    }
}
