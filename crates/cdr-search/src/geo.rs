//! Positions for `Location?near=[latitude]|[longitude]|[distance]|[units]` (R4 Location, search parameter `near`):
//! points on a sphere, the unit vectors the index stores, and the test a search runs on them.
//!
//! The Earth is a sphere of radius [`EARTH_RADIUS_KM`] (the IUGG mean radius R1 of the WGS84 ellipsoid, 6,371.0088
//! km); coordinates are WGS84 degrees. Distances are great-circle distances on that sphere, which differ from
//! distances on the ellipsoid by at most about 0.5%: R4 lets servers search "using various techniques that might
//! have differing accuracies".
//!
//! A stored point is its unit vector `(x, y, z)`, so that a database without trigonometric functions (SQLite) can
//! test it exactly: two points are within great-circle distance `d` iff the straight chord between their unit
//! vectors is at most `2 sin(d / 2R)`, i.e. `(x - cx)² + (y - cy)² + (z - cz)² <= (2 sin(d / 2R))²`. (This is the
//! dot-product test `p · c >= cos(d / R)` rewritten; unlike the dot product near 1 it keeps its precision for short
//! distances, and a point matches itself at distance 0 exactly.) A latitude band
//! `[lat - d/R, lat + d/R]` (degrees) bounds the index scan: no point outside it can be within `d`, as the
//! distance along a meridian never exceeds the great-circle distance. [`NearValue::contains`] is the same test
//! as the SQL the store writes, so unit tests here check the store's arithmetic too.

use std::hash::{Hash, Hasher};

/// The radius of the sphere distances are measured on: the IUGG mean Earth radius R1 (WGS84), in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The distance `near` uses when the value gives none (R4: "the server can use its own discretion"), in km.
pub(crate) const DEFAULT_NEAR_KM: f64 = 1.0;

/// Slack added to each side of the latitude band (degrees, about 0.1 mm), so that rounding in the band's
/// arithmetic can never leave out a point the exact chord test accepts.
const BAND_SLACK_DEGREES: f64 = 1e-9;

/// A WGS84 position in degrees: latitude in [-90, 90], longitude in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    latitude: f64,
    longitude: f64,
}

impl Eq for GeoPoint {}

impl Hash for GeoPoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Both coordinates are finite (see `new`), and +0.0 and -0.0 hash alike, as they compare equal.
        (self.latitude + 0.0).to_bits().hash(state);
        (self.longitude + 0.0).to_bits().hash(state);
    }
}

impl GeoPoint {
    /// The point at `latitude`, `longitude` (degrees), or `None` when either is out of range or not finite.
    #[must_use]
    pub fn new(latitude: f64, longitude: f64) -> Option<GeoPoint> {
        ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude))
            .then_some(GeoPoint { latitude, longitude })
    }

    #[must_use]
    pub fn latitude(self) -> f64 {
        self.latitude
    }

    #[must_use]
    pub fn longitude(self) -> f64 {
        self.longitude
    }

    /// The unit vector `(x, y, z)` of the point: x towards (0°, 0°), y towards (0°, 90°E), z towards the
    /// North Pole. A pole is one vector whatever its longitude (`cos 90°` is not exactly 0 in floating point).
    #[must_use]
    pub fn unit_vector(self) -> [f64; 3] {
        if self.latitude.abs() == 90.0 {
            return [0.0, 0.0, self.latitude.signum()];
        }
        let (latitude, longitude) = (self.latitude.to_radians(), self.longitude.to_radians());
        [latitude.cos() * longitude.cos(), latitude.cos() * longitude.sin(), latitude.sin()]
    }

    /// The great-circle distance to `other`, in km (haversine formula).
    #[must_use]
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let half_latitude = (other.latitude - self.latitude).to_radians() / 2.0;
        let half_longitude = (other.longitude - self.longitude).to_radians() / 2.0;
        let a = half_latitude.sin().powi(2)
            + self.latitude.to_radians().cos()
                * other.latitude.to_radians().cos()
                * half_longitude.sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// A `near` search value: a centre and the greatest distance from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearValue {
    pub center: GeoPoint,
    /// Kilometres, at least 0 (the value's distance in its units, else 1 km).
    pub distance_km: f64,
}

impl NearValue {
    /// The central angle of the distance, in radians, at most π (a distance past half the circumference is the
    /// whole sphere).
    fn angle(&self) -> f64 {
        (self.distance_km / EARTH_RADIUS_KM).min(std::f64::consts::PI)
    }

    /// The latitudes (degrees) a point within the distance lies between: the store's index range.
    #[must_use]
    pub fn latitude_band(&self) -> (f64, f64) {
        let reach = self.angle().to_degrees() + BAND_SLACK_DEGREES;
        ((self.center.latitude - reach).max(-90.0), (self.center.latitude + reach).min(90.0))
    }

    /// The greatest squared chord between the unit vectors of the centre and of a point within the distance.
    #[must_use]
    pub fn max_chord_squared(&self) -> f64 {
        (2.0 * (self.angle() / 2.0).sin()).powi(2)
    }

    /// Whether `point` is within the distance: the latitude band and the chord test, in the order and with the
    /// operations of the SQL the store writes (`(x - cx)·(x - cx) + (y - cy)·(y - cy) + (z - cz)·(z - cz)`).
    #[must_use]
    pub fn contains(&self, point: GeoPoint) -> bool {
        let (low, high) = self.latitude_band();
        let [x, y, z] = point.unit_vector();
        let [cx, cy, cz] = self.center.unit_vector();
        let chord = (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz);
        point.latitude >= low && point.latitude <= high && chord <= self.max_chord_squared()
    }
}

/// Kilometres per unit of a `near` distance: the UCUM codes `km`, `m`, `[mi_i]` (international mile) and
/// `[mi_us]` (US survey mile), and `mi` (not UCUM; read as the international mile, as clients write it).
#[must_use]
pub(crate) fn kilometres_per(unit: &str) -> Option<f64> {
    match unit {
        "km" => Some(1.0),
        "m" => Some(0.001),
        "[mi_i]" | "mi" => Some(1.609_344),
        "[mi_us]" => Some(1.609_347_218_694_437),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint::new(latitude, longitude).unwrap()
    }

    fn near(center: GeoPoint, distance_km: f64) -> NearValue {
        NearValue { center, distance_km }
    }

    /// One degree of a great circle on the sphere of radius R: 2πR / 360.
    const DEGREE_KM: f64 = 111.195_080_233_532_9;

    #[test]
    fn distances_between_known_places() {
        let toronto = point(43.6532, -79.3832);
        let ottawa = point(45.4215, -75.6972);
        let london = point(51.5074, -0.1278);
        let paris = point(48.8566, 2.3522);
        let cases = [
            (toronto, ottawa, 351.5, 352.5),
            (london, paris, 343.0, 344.5),
            (toronto, toronto, 0.0, 0.0),
            // across the antimeridian: one degree of the equator, not 359
            (point(0.0, 179.5), point(0.0, -179.5), DEGREE_KM - 1e-6, DEGREE_KM + 1e-6),
            // at a pole every longitude is the same point
            (point(90.0, 0.0), point(90.0, 137.0), 0.0, 1e-9),
            (point(90.0, 0.0), point(89.0, -45.0), DEGREE_KM - 1e-6, DEGREE_KM + 1e-6),
            (
                point(-90.0, 0.0),
                point(90.0, 0.0),
                180.0 * DEGREE_KM - 1e-6,
                180.0 * DEGREE_KM + 1e-6,
            ),
        ];
        for (from, to, low, high) in cases {
            let distance = from.distance_km(to);
            assert!((low..=high).contains(&distance), "{from:?} to {to:?}: {distance} km");
            assert!((distance - to.distance_km(from)).abs() < 1e-9);
        }
    }

    #[test]
    fn near_contains_the_points_within_its_distance() {
        let toronto = point(43.6532, -79.3832);
        let ottawa = point(45.4215, -75.6972);
        assert!(near(toronto, 353.0).contains(ottawa));
        assert!(!near(toronto, 351.0).contains(ottawa));
        assert!(near(ottawa, 353.0).contains(toronto));
        // the antimeridian and the poles
        assert!(near(point(0.0, 179.5), 112.0).contains(point(0.0, -179.5)));
        assert!(!near(point(0.0, 179.5), 110.0).contains(point(0.0, -179.5)));
        assert!(near(point(89.9, 0.0), 23.0).contains(point(89.9, 180.0)));
        assert!(!near(point(89.9, 0.0), 22.0).contains(point(89.9, 180.0)));
        assert!(near(point(90.0, 0.0), 0.0).contains(point(90.0, 99.0)));
        // distance 0 is the point itself, exactly
        assert!(near(toronto, 0.0).contains(toronto));
        assert!(!near(toronto, 0.0).contains(point(43.6532, -79.383_200_1)));
        // half the circumference and more is the whole sphere
        assert!(near(point(0.0, 0.0), 20_016.0).contains(point(0.0, 180.0)));
        assert!(near(point(10.0, 20.0), 1e9).contains(point(-10.0, -160.0)));
        assert!(!near(point(0.0, 0.0), 20_014.0).contains(point(0.0, 180.0)));
    }

    /// The band and chord test agree with the haversine distance everywhere, at every scale (up to rounding at
    /// the exact boundary).
    #[test]
    fn the_chord_test_agrees_with_the_great_circle_distance() {
        let centers =
            [point(43.6532, -79.3832), point(89.5, 10.0), point(-60.0, 179.9), point(0.0, 0.0)];
        for center in centers {
            for distance_km in [0.01, 1.0, 50.0, 900.0, 5_000.0, 15_000.0] {
                let value = near(center, distance_km);
                for latitude in (-90..=90).step_by(5) {
                    for longitude in (-180..=180).step_by(7) {
                        let other = point(f64::from(latitude), f64::from(longitude));
                        let distance = center.distance_km(other);
                        if (distance - distance_km).abs() > 1e-6 {
                            assert_eq!(
                                value.contains(other),
                                distance < distance_km,
                                "{center:?} {other:?} {distance} km, near {distance_km}"
                            );
                        }
                    }
                }
                // points just inside and just outside, along a meridian and along a parallel
                let reach = (distance_km / EARTH_RADIUS_KM).to_degrees();
                if center.latitude + reach < 90.0 {
                    assert!(
                        value.contains(point(center.latitude + reach * 0.999, center.longitude))
                    );
                    assert!(
                        !value.contains(point(center.latitude + reach * 1.001, center.longitude))
                    );
                }
            }
        }
    }

    #[test]
    fn the_latitude_band_is_clamped_to_the_poles() {
        assert_eq!(near(point(89.0, 0.0), 500.0).latitude_band().1, 90.0);
        assert_eq!(near(point(-89.0, 0.0), 500.0).latitude_band().0, -90.0);
        let (low, high) = near(point(10.0, 0.0), DEGREE_KM).latitude_band();
        assert!((low - 9.0).abs() < 1e-6 && (high - 11.0).abs() < 1e-6);
    }

    #[test]
    fn units_and_ranges() {
        assert_eq!(kilometres_per("km"), Some(1.0));
        assert_eq!(kilometres_per("m"), Some(0.001));
        assert_eq!(kilometres_per("[mi_i]"), kilometres_per("mi"));
        assert!(kilometres_per("[mi_us]").unwrap() > kilometres_per("[mi_i]").unwrap());
        assert_eq!(kilometres_per("KM"), None);
        assert!(GeoPoint::new(90.0, -180.0).is_some());
        assert!(GeoPoint::new(90.1, 0.0).is_none());
        assert!(GeoPoint::new(0.0, 180.1).is_none());
        assert!(GeoPoint::new(f64::NAN, 0.0).is_none());
        assert_eq!(point(0.0, -0.0), point(-0.0, 0.0));
    }
}
