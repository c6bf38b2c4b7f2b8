//! Chinese map coordinate systems. GCJ-02 (国测局, used by WeChat, Tencent and Amap maps) is
//! WGS-84 with a published obfuscation; BD-09 (Baidu) is GCJ-02 shifted again. Positions are
//! converted to WGS-84 before anything else looks at them.
//!
//! The forward GCJ-02 transform is the well-known public formula (Krasovsky ellipsoid); its
//! inverse has no closed form, so it is solved by fixed-point iteration to well under 0.5 m.

use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordSystem {
    Wgs84,
    Gcj02,
    Bd09,
}

impl CoordSystem {
    pub const ALL: [CoordSystem; 3] = [CoordSystem::Wgs84, CoordSystem::Gcj02, CoordSystem::Bd09];

    /// The name stored with a case's reported position.
    pub fn as_str(self) -> &'static str {
        match self {
            CoordSystem::Wgs84 => "wgs84",
            CoordSystem::Gcj02 => "gcj02",
            CoordSystem::Bd09 => "bd09",
        }
    }
}

impl std::str::FromStr for CoordSystem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CoordSystem::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown coordinate system {s:?}"))
    }
}

const KRASOVSKY_A: f64 = 6_378_245.0;
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
const BD_X_PI: f64 = PI * 3000.0 / 180.0;

/// Outside this box GCJ-02 equals WGS-84 (the published convention).
fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS-84 → GCJ-02, as (lon, lat).
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let mut dlat = transform_lat(lon - 105.0, lat - 35.0);
    let mut dlon = transform_lon(lon - 105.0, lat - 35.0);
    let radlat = lat / 180.0 * PI;
    let magic = 1.0 - KRASOVSKY_EE * radlat.sin() * radlat.sin();
    let sqrt_magic = magic.sqrt();
    dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * radlat.cos() * PI);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS-84 by fixed-point iteration: converges to ~1e-9° (sub-millimetre) in a few steps.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (elon, elat) = (glon - lon, glat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

/// GCJ-02 → BD-09.
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.00002 * (lat * BD_X_PI).sin();
    let theta = lat.atan2(lon) + 0.000003 * (lon * BD_X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02 (the published closed-form inverse).
pub fn bd09_to_gcj02_approx(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 0.0065;
    let y = lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * BD_X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * BD_X_PI).cos();
    (z * theta.cos(), z * theta.sin())
}

/// BD-09 → GCJ-02, refined by iteration on the forward transform so the round trip is exact.
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let (mut glon, mut glat) = bd09_to_gcj02_approx(lon, lat);
    for _ in 0..10 {
        let (blon, blat) = gcj02_to_bd09(glon, glat);
        let (elon, elat) = (blon - lon, blat - lat);
        glon -= elon;
        glat -= elat;
        if elon.abs() < 1e-11 && elat.abs() < 1e-11 {
            break;
        }
    }
    (glon, glat)
}

/// Any supported system → WGS-84, as (lon, lat).
pub fn to_wgs84(system: CoordSystem, lon: f64, lat: f64) -> (f64, f64) {
    match system {
        CoordSystem::Wgs84 => (lon, lat),
        CoordSystem::Gcj02 => gcj02_to_wgs84(lon, lat),
        CoordSystem::Bd09 => {
            let (glon, glat) = bd09_to_gcj02(lon, lat);
            gcj02_to_wgs84(glon, glat)
        }
    }
}

/// WGS-84 → any supported system (for tests, benchmarks and clients' reference).
pub fn from_wgs84(system: CoordSystem, lon: f64, lat: f64) -> (f64, f64) {
    match system {
        CoordSystem::Wgs84 => (lon, lat),
        CoordSystem::Gcj02 => wgs84_to_gcj02(lon, lat),
        CoordSystem::Bd09 => {
            let (glon, glat) = wgs84_to_gcj02(lon, lat);
            gcj02_to_bd09(glon, glat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64), eps: f64) -> bool {
        (a.0 - b.0).abs() < eps && (a.1 - b.1).abs() < eps
    }

    /// Reference pairs published with the widely used coordtransform library
    /// (wandergis/coordtransform README, input 116.404, 39.915 in Beijing).
    #[test]
    fn conversions_match_published_reference_pairs() {
        let p = (116.404, 39.915);
        assert!(close(
            wgs84_to_gcj02(p.0, p.1),
            (116.41024449916938, 39.91640428150164),
            1e-9
        ));
        assert!(close(
            gcj02_to_bd09(p.0, p.1),
            (116.41036949371029, 39.92133699351022),
            1e-9
        ));
        assert!(close(
            bd09_to_gcj02_approx(p.0, p.1),
            (116.39762729119315, 39.90865673957631),
            1e-9
        ));
        assert!(close(
            from_wgs84(CoordSystem::Bd09, p.0, p.1),
            (116.41662724378733, 39.922699552216216),
            1e-9
        ));
    }

    #[test]
    fn inverses_round_trip_to_well_under_half_a_metre_across_china() {
        // 1e-6° is about 0.1 m; the requirement is 0.5 m.
        let mut worst: f64 = 0.0;
        for lon10 in (735..=1345).step_by(7) {
            for lat10 in (185..=535).step_by(5) {
                let (lon, lat) = (lon10 as f64 / 10.0 + 0.0123, lat10 as f64 / 10.0 + 0.0456);
                for system in [CoordSystem::Gcj02, CoordSystem::Bd09] {
                    let (x, y) = from_wgs84(system, lon, lat);
                    let (blon, blat) = to_wgs84(system, x, y);
                    worst = worst.max((blon - lon).abs()).max((blat - lat).abs());
                }
            }
        }
        assert!(worst < 1e-6, "worst round-trip error {worst}°");
    }

    #[test]
    fn outside_china_gcj02_is_wgs84() {
        assert_eq!(wgs84_to_gcj02(2.35, 48.85), (2.35, 48.85));
        assert_eq!(gcj02_to_wgs84(2.35, 48.85), (2.35, 48.85));
    }
}
