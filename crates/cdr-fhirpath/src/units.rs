//! Units of quantities: the UCUM units (and FHIRPath calendar duration keywords) the engine converts, and
//! UCUM unit terms built from them with `.`, `/` and exponents (`cm.m`, `mg/dL`, `m2`, `/min`).
//!
//! A unit is reduced to a factor and the exponents of three base units (`mm`, `mg`, `ms`), so quantities
//! of one dimension compare and convert whatever their units (`2.0 'cm' * 2.0 'm' = 0.040 'm2'`). Units
//! outside the table (annotations, `10*3`, other atoms) are left to compare by their text.

use rust_decimal::Decimal;

/// The largest exponent of a unit term (`m28`).
const MAX_EXPONENT: u32 = 28;

/// A unit as a factor to the base units (a fraction, so that `/min` stays exact) and the exponent of each
/// base, by base name; bases with a zero exponent are left out, so a dimensionless unit (`'1'`, `m/m`) has
/// none.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Canonical {
    numerator: Decimal,
    denominator: Decimal,
    pub(crate) dimension: Vec<(&'static str, i32)>,
}

/// The factor, base unit and exponent of the base of a single unit (an atom with its prefix).
fn atom(unit: &str) -> Option<(Decimal, &'static str, i32)> {
    let (factor, base, exponent): (i64, &str, i32) = match unit {
        "ms" | "millisecond" | "milliseconds" => (1, "ms", 1),
        "s" | "second" | "seconds" => (1000, "ms", 1),
        "min" | "minute" | "minutes" => (60_000, "ms", 1),
        "h" | "hour" | "hours" => (3_600_000, "ms", 1),
        "d" | "day" | "days" => (86_400_000, "ms", 1),
        "wk" | "week" | "weeks" => (604_800_000, "ms", 1),
        // UCUM's mean Julian month and year; a calendar month or year counts as them (see `ops`).
        "mo" | "month" | "months" => (2_629_800_000, "ms", 1),
        "a" | "year" | "years" => (31_557_600_000, "ms", 1),
        "mg" => (1, "mg", 1),
        "g" => (1000, "mg", 1),
        "kg" => (1_000_000, "mg", 1),
        "[lb_av]" => return Some((Decimal::new(45_359_237, 2), "mg", 1)),
        "mm" => (1, "mm", 1),
        "cm" => (10, "mm", 1),
        "m" => (1000, "mm", 1),
        "km" => (1_000_000, "mm", 1),
        "[in_i]" => return Some((Decimal::new(254, 1), "mm", 1)),
        "mL" => (1000, "mm", 3),
        "dL" => (100_000, "mm", 3),
        "L" | "l" => (1_000_000, "mm", 3),
        _ => return None,
    };
    Some((Decimal::from(factor), base, exponent))
}

/// The canonical form of a unit; `None` for a unit the engine does not convert.
pub(crate) fn canonical(unit: &str) -> Option<Canonical> {
    let (mut numerator, mut denominator) = (Decimal::ONE, Decimal::ONE);
    let mut dimension: Vec<(&'static str, i32)> = Vec::new();
    // `.` and `/` bind the next term alone, left to right: `g/m.s` is `g.s/m`. A leading `/` divides one.
    let mut rest = unit.strip_prefix('/').map_or(Some(('.', unit)), |tail| Some(('/', tail)));
    while let Some((operator, text)) = rest {
        let end = text.find(['.', '/']).unwrap_or(text.len());
        let (term, tail) = text.split_at(end);
        rest = tail.chars().next().map(|next| (next, &tail[1..]));
        if term == "1" {
            continue;
        }
        let digits = term.trim_end_matches(|c: char| c.is_ascii_digit());
        let name = digits.strip_suffix(['-', '+']).unwrap_or(digits);
        let power: i32 =
            if name.len() == term.len() { 1 } else { term[name.len()..].parse().ok()? };
        // Beyond this no factor but one fits a decimal; the bound keeps hostile exponents cheap.
        if power.unsigned_abs() > MAX_EXPONENT {
            return None;
        }
        let power = if operator == '/' { -power } else { power };
        let (atom_factor, base, base_exponent) = atom(name)?;
        for _ in 0..power.unsigned_abs() {
            if power > 0 {
                numerator = numerator.checked_mul(atom_factor)?;
            } else {
                denominator = denominator.checked_mul(atom_factor)?;
            }
        }
        match dimension.iter_mut().find(|(b, _)| *b == base) {
            Some((_, exponent)) => *exponent += power * base_exponent,
            None => dimension.push((base, power * base_exponent)),
        }
    }
    dimension.retain(|(_, exponent)| *exponent != 0);
    dimension.sort_unstable();
    Some(Canonical { numerator, denominator, dimension })
}

impl Canonical {
    /// `amount` of this unit in another unit of the same dimension (the base units when `to` is `None`).
    pub(crate) fn convert(&self, amount: Decimal, to: Option<&Canonical>) -> Option<Decimal> {
        let (to_numerator, to_denominator) =
            to.map_or((Decimal::ONE, Decimal::ONE), |to| (to.numerator, to.denominator));
        amount
            .checked_mul(self.numerator)?
            .checked_mul(to_denominator)?
            .checked_div(self.denominator.checked_mul(to_numerator)?)
    }

    /// Whether this unit is larger than `other` (of the same dimension).
    pub(crate) fn is_coarser_than(&self, other: &Canonical) -> bool {
        let (Some(mine), Some(theirs)) = (
            self.numerator.checked_mul(other.denominator),
            other.numerator.checked_mul(self.denominator),
        ) else {
            return false;
        };
        mine > theirs
    }

    /// The dimension as text (`mm2.ms-1`), for hashing and comparing dimensions.
    pub(crate) fn dimension_text(&self) -> String {
        let terms: Vec<String> = self
            .dimension
            .iter()
            .map(
                |(base, exponent)| {
                    if *exponent == 1 { (*base).to_owned() } else { format!("{base}{exponent}") }
                },
            )
            .collect();
        if terms.is_empty() { "1".to_owned() } else { terms.join(".") }
    }

    /// Whether the unit measures time alone (`s`, `wk`, `a`).
    pub(crate) fn is_time(&self) -> bool {
        self.dimension == [("ms", 1)]
    }
}

/// Converts `amount` from one unit to another of the same dimension.
pub(crate) fn convert(amount: Decimal, from: &str, to: &str) -> Option<Decimal> {
    let (from, to) = (canonical(from)?, canonical(to)?);
    if from.dimension != to.dimension {
        return None;
    }
    from.convert(amount, Some(&to)).map(|d| d.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_terms_reduce_to_base_units() {
        let area = canonical("cm.m").unwrap();
        assert_eq!(area.convert(Decimal::ONE, None), Some(Decimal::from(10_000)));
        assert_eq!(area.dimension_text(), "mm2");
        assert_eq!(canonical("m2").unwrap().dimension, area.dimension);
        // `/` binds the next term alone.
        assert_eq!(canonical("g/m.s").unwrap().dimension_text(), "mg.mm-1.ms");
        assert_eq!(canonical("kg/m/s").unwrap().dimension_text(), "mg.mm-1.ms-1");
        assert_eq!(canonical("/min").unwrap().dimension_text(), "ms-1");
        assert_eq!(canonical("m/m").unwrap().dimension_text(), "1");
        assert_eq!(canonical("mL").unwrap().dimension, canonical("cm3").unwrap().dimension);
        assert_eq!(convert(Decimal::from(1), "L", "dL"), Some(Decimal::from(10)));
        assert_eq!(convert(Decimal::from(200), "mg/dL", "g/L"), Some(Decimal::from(2)));
        for unknown in ["10*3/uL", "{beats}/min", "m2x", "", "m.", "mm999999999"] {
            assert_eq!(canonical(unknown), None, "{unknown}");
        }
        assert_eq!(convert(Decimal::ONE, "cm", "s"), None);
        assert_eq!(convert(Decimal::from(60), "/min", "/s"), Some(Decimal::ONE));
    }
}
