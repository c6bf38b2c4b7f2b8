//! `Locate` against a brute-force reference on the Rizhao grids: every grid tested for every
//! point, with geo's own point-in-polygon and distance, on 100,000+ points: random, on shared
//! edges and vertices, in holes, just outside the city (snap and no snap), and sent as GCJ-02
//! and BD-09. Zero disagreements.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use geo::coordinate_position::CoordPos;
use geo::{
    BoundingRect, Coord, CoordinatePosition, Distance, Euclidean, LineString, MapCoords,
    MultiPolygon, Point, Polygon, Rect,
};
use gridcase::{
    domain::{bundle, directory::Directory, directory::Tier},
    geo::{CoordSystem, GridIndex, Shape, TIE_M, coord, to_wgs84},
};

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

struct Reference {
    grids: Vec<(String, MultiPolygon<f64>, Rect<f64>)>,
}

impl Reference {
    /// Smallest covering code; else the nearest within 50 m (smallest code on ties); else None.
    fn locate(&self, lon: f64, lat: f64) -> Option<(String, bool, f64)> {
        let c = Coord { x: lon, y: lat };
        // Every grid, in code order, with geo's boundary-inclusive position test.
        for (code, polygons, bbox) in &self.grids {
            // Outside the box is outside the polygon: an exact shortcut.
            let in_box = (bbox.min().x..=bbox.max().x).contains(&lon)
                && (bbox.min().y..=bbox.max().y).contains(&lat);
            if in_box && polygons.coordinate_position(&c) != CoordPos::Outside {
                return Some((code.clone(), false, 0.0));
            }
        }
        let kx = METRES_PER_DEGREE * lat.to_radians().cos();
        let ky = METRES_PER_DEGREE;
        let mut best: Option<(f64, &str)> = None;
        for (code, polygons, bbox) in &self.grids {
            // The box is a lower bound on the distance: skipping boxes over 60 m away is exact.
            let bx = (bbox.min().x - lon).max(lon - bbox.max().x).max(0.0) * kx;
            let by = (bbox.min().y - lat).max(lat - bbox.max().y).max(0.0) * ky;
            if (bx * bx + by * by).sqrt() > 60.0 {
                continue;
            }
            let projected = polygons.map_coords(|p| Coord {
                x: (p.x - lon) * kx,
                y: (p.y - lat) * ky,
            });
            let d = Euclidean.distance(&Point::new(0.0, 0.0), &projected);
            let better = match best {
                None => true,
                // Within a millimetre is a tie, which the smaller code (met first) keeps.
                Some((bd, _)) => d < bd - TIE_M,
            };
            if d <= 50.0 && better {
                best = Some((d, code));
            }
        }
        best.map(|(d, code)| (code.to_owned(), true, d))
    }
}

fn agree(index: &GridIndex, reference: &Reference, lon: f64, lat: f64) -> Result<(), String> {
    let got = index
        .locate(lon, lat)
        .map(|h| (h.code.to_owned(), h.snapped, h.distance_m));
    let want = reference.locate(lon, lat);
    let same = match (&got, &want) {
        (None, None) => true,
        (Some(g), Some(w)) => g.0 == w.0 && g.1 == w.1 && (g.2 - w.2).abs() < 1e-3,
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "({lon:.9}, {lat:.9}): index {got:?}, reference {want:?}"
        ))
    }
}

/// A square hole of a quarter of the grid's box, centred, for grids whose box centre is inside.
fn with_hole(polygon: &Polygon<f64>) -> Option<Polygon<f64>> {
    let b = polygon.bounding_rect()?;
    let (cx, cy) = ((b.min().x + b.max().x) / 2.0, (b.min().y + b.max().y) / 2.0);
    let (hx, hy) = (b.width() / 8.0, b.height() / 8.0);
    let ring = LineString::from(vec![
        (cx - hx, cy - hy),
        (cx + hx, cy - hy),
        (cx + hx, cy + hy),
        (cx - hx, cy + hy),
        (cx - hx, cy - hy),
    ]);
    let inside = ring
        .0
        .iter()
        .all(|c| polygon.coordinate_position(c) == CoordPos::Inside);
    inside.then(|| Polygon::new(polygon.exterior().clone(), vec![ring]))
}

#[test]
fn locate_agrees_with_a_brute_force_reference_on_100_000_rizhao_points() {
    let parsed = bundle::parse(gridcase::demo::RIZHAO_BUNDLE, &Directory::empty()).expect("bundle");
    let mut rng = Rng(0x5EED_2026_1123);
    // Every 20th grid gets a hole, so points in holes are tested too.
    let mut holes = Vec::new();
    let mut grids: Vec<(String, MultiPolygon<f64>)> = Vec::new();
    let mut city_boundary = Vec::new();
    for r in &parsed.regions {
        if r.region.tier == Tier::City {
            for p in r.shape.polygons() {
                city_boundary.extend(p.exterior().0.iter().copied());
            }
        }
        if r.region.tier != Tier::Grid {
            continue;
        }
        let mut polygons = r.shape.polygons().clone();
        if grids.len().is_multiple_of(20)
            && polygons.0.len() == 1
            && let Some(holed) = with_hole(&polygons.0[0])
        {
            holes.push(holed.interiors()[0].clone());
            polygons = MultiPolygon(vec![holed]);
        }
        grids.push((r.region.code.clone(), polygons));
    }
    grids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(grids.len(), 5938);
    assert!(holes.len() > 200, "{} holes", holes.len());
    let index = GridIndex::build(
        grids
            .iter()
            .map(|(c, p)| (c.clone(), Shape::new(p.clone()).expect("shape")))
            .collect(),
    );
    let reference = Reference {
        grids: grids
            .iter()
            .map(|(c, p)| (c.clone(), p.clone(), p.bounding_rect().expect("bbox")))
            .collect(),
    };
    let bbox = reference
        .grids
        .iter()
        .fold(reference.grids[0].2, |acc, (_, _, b)| {
            Rect::new(
                Coord {
                    x: acc.min().x.min(b.min().x),
                    y: acc.min().y.min(b.min().y),
                },
                Coord {
                    x: acc.max().x.max(b.max().x),
                    y: acc.max().y.max(b.max().y),
                },
            )
        });

    let mut points: Vec<(&str, f64, f64)> = Vec::new();
    // Uniform over the city's box, a little beyond it.
    for _ in 0..40_000 {
        let lon = bbox.min().x - 0.01 + rng.unit() * (bbox.width() + 0.02);
        let lat = bbox.min().y - 0.01 + rng.unit() * (bbox.height() + 0.02);
        points.push(("random", lon, lat));
    }
    // On grid edges (mostly shared with a neighbour) and exactly on vertices.
    for _ in 0..20_000 {
        let (_, polygons) = &grids[rng.below(grids.len())];
        let ring = &polygons.0[0].exterior().0;
        let k = rng.below(ring.len() - 1);
        let (a, b) = (ring[k], ring[k + 1]);
        let t = rng.unit();
        points.push(("edge", a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)));
    }
    for _ in 0..10_000 {
        let (_, polygons) = &grids[rng.below(grids.len())];
        let ring = &polygons.0[0].exterior().0;
        let v = ring[rng.below(ring.len())];
        points.push(("vertex", v.x, v.y));
    }
    // In holes.
    for _ in 0..5_000 {
        let hole = &holes[rng.below(holes.len())];
        let (a, c) = (hole.0[0], hole.0[2]);
        let (u, v) = (rng.unit(), rng.unit());
        points.push(("hole", a.x + u * (c.x - a.x), a.y + v * (c.y - a.y)));
    }
    // Just outside the city: up to 120 m from a boundary vertex, so some snap and some do not.
    for _ in 0..15_000 {
        let v = city_boundary[rng.below(city_boundary.len())];
        let angle = rng.unit() * std::f64::consts::TAU;
        let metres = rng.unit() * 120.0;
        let kx = METRES_PER_DEGREE * v.y.to_radians().cos();
        points.push((
            "outside",
            v.x + metres * angle.cos() / kx,
            v.y + metres * angle.sin() / METRES_PER_DEGREE,
        ));
    }

    let snapped = points
        .iter()
        .filter(|(_, lon, lat)| index.locate(*lon, *lat).is_some_and(|h| h.snapped))
        .count();
    let not_found = points
        .iter()
        .filter(|(_, lon, lat)| index.locate(*lon, *lat).is_none())
        .count();
    // The same kinds of points sent as GCJ-02 and BD-09 too: converted, then located.
    let mut checks: Vec<(String, f64, f64)> = points
        .iter()
        .map(|(kind, lon, lat)| ((*kind).to_owned(), *lon, *lat))
        .collect();
    for (i, (kind, lon, lat)) in points.iter().enumerate().step_by(5) {
        let system = if i % 2 == 0 {
            CoordSystem::Gcj02
        } else {
            CoordSystem::Bd09
        };
        let (x, y) = coord::from_wgs84(system, *lon, *lat);
        let (wlon, wlat) = to_wgs84(system, x, y);
        assert!(
            ((wlon - lon) * 90_000.0).abs() < 0.5 && ((wlat - lat) * 111_000.0).abs() < 0.5,
            "{system:?} round trip off by more than 0.5 m at ({lon}, {lat})"
        );
        checks.push((format!("{kind} via {system:?}"), wlon, wlat));
    }
    let total = checks.len();
    // The reference is slow by design; both cores share it.
    let disagreements: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = checks
            .chunks(total.div_ceil(2))
            .map(|chunk| {
                let (index, reference) = (&index, &reference);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(kind, lon, lat)| {
                            agree(index, reference, *lon, *lat)
                                .err()
                                .map(|e| format!("{kind} {e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    assert!(total >= 100_000, "{total} points");
    assert!(
        snapped > 500,
        "only {snapped} snapped points: the outside set is too far"
    );
    assert!(not_found > 500, "only {not_found} unlocated points");
    assert!(
        disagreements.is_empty(),
        "{} of {total} points disagree; first: {:#?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(10)]
    );
}
