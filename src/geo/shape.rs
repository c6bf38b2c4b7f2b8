//! A region's shape: a WGS-84 (Multi)Polygon with its bounding box, answering "does it cover
//! this point" (boundary included) and "how far is this point", in metres.

use geo::{BoundingRect, Coord, CoordsIter, Intersects, MultiPolygon, Rect};

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
const METRES_PER_DEGREE: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    polygons: MultiPolygon<f64>,
    bbox: Rect<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("geometry is empty")]
    Empty,
    #[error("geometry has a coordinate that is not finite or not within WGS-84 range")]
    OutOfRange,
}

impl Shape {
    pub fn new(polygons: MultiPolygon<f64>) -> Result<Shape, ShapeError> {
        let in_range = polygons.coords_iter().all(|c| {
            c.x.is_finite()
                && c.y.is_finite()
                && (-180.0..=180.0).contains(&c.x)
                && (-90.0..=90.0).contains(&c.y)
        });
        if !in_range {
            return Err(ShapeError::OutOfRange);
        }
        let bbox = polygons.bounding_rect().ok_or(ShapeError::Empty)?;
        Ok(Shape { polygons, bbox })
    }

    pub fn polygons(&self) -> &MultiPolygon<f64> {
        &self.polygons
    }

    pub fn bbox(&self) -> Rect<f64> {
        self.bbox
    }

    /// Whether the point lies inside or on the boundary.
    pub fn covers(&self, lon: f64, lat: f64) -> bool {
        let c = Coord { x: lon, y: lat };
        let b = self.bbox;
        if c.x < b.min().x || c.x > b.max().x || c.y < b.min().y || c.y > b.max().y {
            return false;
        }
        self.polygons.intersects(&c)
    }

    /// Whether any edge of the shape meets the closed rectangle `r`.
    pub fn boundary_touches(&self, r: Rect<f64>) -> bool {
        let b = self.bbox;
        if b.max().x < r.min().x
            || b.min().x > r.max().x
            || b.max().y < r.min().y
            || b.min().y > r.max().y
        {
            return false;
        }
        self.polygons.iter().any(|polygon| {
            std::iter::once(polygon.exterior())
                .chain(polygon.interiors())
                .any(|ring| ring.lines().any(|l| segment_meets_rect(l.start, l.end, r)))
        })
    }

    /// Metres from the point to the nearest point of the shape (0 when covered), on a local
    /// equirectangular projection around the point: exact to well under a centimetre at the
    /// tens of metres that snapping cares about.
    pub fn distance_m(&self, lon: f64, lat: f64) -> f64 {
        if self.covers(lon, lat) {
            return 0.0;
        }
        let kx = METRES_PER_DEGREE * lat.to_radians().cos();
        let ky = METRES_PER_DEGREE;
        let project = |c: Coord<f64>| ((c.x - lon) * kx, (c.y - lat) * ky);
        let mut best = f64::INFINITY;
        for polygon in &self.polygons {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                for line in ring.lines() {
                    let d = distance_to_segment(project(line.start), project(line.end));
                    if d < best {
                        best = d;
                    }
                }
            }
        }
        best
    }
}

/// Whether the segment a–b meets the closed rectangle (Liang–Barsky clipping).
fn segment_meets_rect(a: Coord<f64>, b: Coord<f64>, r: Rect<f64>) -> bool {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (p, q) in [
        (-dx, a.x - r.min().x),
        (dx, r.max().x - a.x),
        (-dy, a.y - r.min().y),
        (dy, r.max().y - a.y),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

/// Distance from the origin to the segment a–b.
fn distance_to_segment(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
    };
    let (px, py) = (a.0 + t * dx, a.1 + t * dy);
    (px * px + py * py).sqrt()
}

/// Metres per degree of latitude, and of longitude at `lat`.
pub(crate) fn metres_per_degree(lat: f64) -> (f64, f64) {
    (
        METRES_PER_DEGREE * lat.to_radians().cos(),
        METRES_PER_DEGREE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn square() -> Shape {
        Shape::new(MultiPolygon(vec![polygon![
            (x: 119.0, y: 35.0), (x: 119.01, y: 35.0), (x: 119.01, y: 35.01), (x: 119.0, y: 35.01), (x: 119.0, y: 35.0)
        ]]))
        .unwrap()
    }

    #[test]
    fn the_boundary_is_covered() {
        let s = square();
        assert!(s.covers(119.005, 35.005));
        assert!(s.covers(119.0, 35.005), "edge");
        assert!(s.covers(119.01, 35.01), "vertex");
        assert!(!s.covers(119.0101, 35.005));
    }

    #[test]
    fn distance_is_in_metres() {
        let s = square();
        // 0.0001° of latitude is about 11.1 m.
        let d = s.distance_m(119.005, 35.0101);
        assert!((d - 11.12).abs() < 0.05, "{d}");
        // 0.0001° of longitude at 35° N is about 9.1 m.
        let d = s.distance_m(119.0101, 35.005);
        assert!((d - 9.11).abs() < 0.05, "{d}");
        assert_eq!(s.distance_m(119.005, 35.005), 0.0);
    }

    #[test]
    fn boundary_touching_is_exact_on_the_closed_rectangle() {
        let s = square();
        let rect = |x0: f64, y0: f64, x1: f64, y1: f64| {
            Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 })
        };
        assert!(
            !s.boundary_touches(rect(119.002, 35.002, 119.008, 35.008)),
            "strictly inside"
        );
        assert!(
            s.boundary_touches(rect(119.005, 35.005, 119.02, 35.008)),
            "crosses the east edge"
        );
        assert!(
            s.boundary_touches(rect(119.01, 35.002, 119.02, 35.008)),
            "touches the east edge"
        );
        assert!(
            !s.boundary_touches(rect(119.0101, 35.002, 119.02, 35.008)),
            "just beyond it"
        );
        assert!(
            s.boundary_touches(rect(118.9, 34.9, 119.1, 35.1)),
            "contains the whole square"
        );
    }

    #[test]
    fn coordinates_out_of_range_are_refused() {
        let bad = MultiPolygon(vec![
            polygon![(x: 190.0, y: 35.0), (x: 191.0, y: 35.0), (x: 191.0, y: 36.0), (x: 190.0, y: 35.0)],
        ]);
        assert_eq!(Shape::new(bad), Err(ShapeError::OutOfRange));
    }
}
