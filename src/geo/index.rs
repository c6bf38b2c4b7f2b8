//! The grid index behind `Locate`: a uniform cell grid laid over the directory, each cell
//! holding the few grids that can matter for a point in it, so a lookup is one array index and
//! one or two exact point-in-polygon tests, whatever the size of the directory.
//!
//! Built with an R-tree (rstar) over the grids' boxes. Each cell is one of:
//! - *inside*: wholly inside one grid's interior and touching no other grid: the answer, with no
//!   geometry test at all (most cells in a tiled city);
//! - *empty*: no grid within the snap radius: nothing there;
//! - *mixed*: the grids whose box, widened by the snap radius, meets the cell, in code order:
//!   the first that covers the point wins (the smallest code on shared edges and vertices),
//!   else the nearest within the snap radius.

use geo::{Coord, Rect};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

use super::{Shape, shape::metres_per_degree};

/// A point within this distance of a grid, and covered by none, snaps to the nearest grid.
pub const SNAP_RADIUS_M: f64 = 50.0;

/// Snapping distances closer than this (a millimetre, far below the data's 0.1 m precision)
/// are a tie, which the smallest code wins.
pub const TIE_M: f64 = 1e-3;

/// Marks an item as "this cell lies inside this grid".
const INSIDE: u32 = 1 << 31;

/// Cells per median grid side: finer cells make more of them *inside* (no geometry test), at
/// the price of memory.
const CELLS_PER_GRID_SIDE: f64 = 3.0;

/// An upper bound on the number of cells, whatever the data.
const MAX_CELLS: f64 = 16_000_000.0;

/// Cells are classified on their rectangle widened by this much (degrees, ~0.1 mm), so a point
/// that rounding puts in a neighbouring cell is still within the rectangle its cell was judged on.
const CELL_SLACK: f64 = 1e-9;

type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

#[derive(Debug)]
pub struct GridIndex {
    codes: Vec<String>,
    shapes: Vec<Shape>,
    /// South-west corner of cell (0, 0), cell size and counts, in degrees.
    origin: Coord<f64>,
    cell: Coord<f64>,
    nx: usize,
    ny: usize,
    /// Cell `c`'s items are `items[offsets[c]..offsets[c + 1]]` (row-major, south to north).
    offsets: Vec<u32>,
    items: Vec<u32>,
}

/// The grid a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a> {
    pub code: &'a str,
    /// True when no grid covers the point and it was snapped to this one.
    pub snapped: bool,
    /// Metres to the grid when snapped; 0 when covered.
    pub distance_m: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

// Counts and offsets are bounded by MAX_CELLS and the number of grids, far below u32::MAX.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
impl GridIndex {
    pub fn build(mut grids: Vec<(String, Shape)>) -> GridIndex {
        grids.sort_by(|a, b| a.0.cmp(&b.0));
        let (codes, shapes): (Vec<String>, Vec<Shape>) = grids.into_iter().unzip();
        let Some(bounds) = shapes.iter().map(Shape::bbox).reduce(|a, b| {
            Rect::new(
                Coord {
                    x: a.min().x.min(b.min().x),
                    y: a.min().y.min(b.min().y),
                },
                Coord {
                    x: a.max().x.max(b.max().x),
                    y: a.max().y.max(b.max().y),
                },
            )
        }) else {
            return GridIndex {
                codes,
                shapes,
                origin: Coord { x: 0.0, y: 0.0 },
                cell: Coord { x: 1.0, y: 1.0 },
                nx: 0,
                ny: 0,
                offsets: vec![0],
                items: Vec::new(),
            };
        };
        // The snap radius in degrees, for the latitude where a degree of longitude is shortest,
        // widened 1 %: a superset of every grid within the radius of a point.
        let worst_lat = bounds.min().y.abs().max(bounds.max().y.abs()).min(89.0);
        let (mx, my) = metres_per_degree(worst_lat);
        let margin = Coord {
            x: SNAP_RADIUS_M * 1.01 / mx,
            y: SNAP_RADIUS_M * 1.01 / my,
        };
        let origin = Coord {
            x: bounds.min().x - margin.x,
            y: bounds.min().y - margin.y,
        };
        let span = Coord {
            x: bounds.width() + 2.0 * margin.x,
            y: bounds.height() + 2.0 * margin.y,
        };
        let mut cell = Coord {
            x: median(shapes.iter().map(|s| s.bbox().width()).collect()) / CELLS_PER_GRID_SIDE,
            y: median(shapes.iter().map(|s| s.bbox().height()).collect()) / CELLS_PER_GRID_SIDE,
        };
        if !(cell.x > 0.0 && cell.y > 0.0) {
            cell = Coord {
                x: span.x / 64.0,
                y: span.y / 64.0,
            };
        }
        let cells = (span.x / cell.x).ceil() * (span.y / cell.y).ceil();
        if cells > MAX_CELLS {
            let grow = (cells / MAX_CELLS).sqrt();
            cell = Coord {
                x: cell.x * grow,
                y: cell.y * grow,
            };
        }
        let nx = ((span.x / cell.x).ceil() as usize).max(1);
        let ny = ((span.y / cell.y).ceil() as usize).max(1);

        let tree = RTree::bulk_load(
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let b = s.bbox();
                    Entry::new(
                        Rectangle::from_corners(
                            [b.min().x - margin.x, b.min().y - margin.y],
                            [b.max().x + margin.x, b.max().y + margin.y],
                        ),
                        i as u32,
                    )
                })
                .collect(),
        );
        let mut offsets = Vec::with_capacity(nx * ny + 1);
        let mut items = Vec::new();
        let mut candidates = Vec::new();
        offsets.push(0);
        for cy in 0..ny {
            for cx in 0..nx {
                let x0 = origin.x + cx as f64 * cell.x;
                let y0 = origin.y + cy as f64 * cell.y;
                let rect = Rect::new(
                    Coord {
                        x: x0 - CELL_SLACK,
                        y: y0 - CELL_SLACK,
                    },
                    Coord {
                        x: x0 + cell.x + CELL_SLACK,
                        y: y0 + cell.y + CELL_SLACK,
                    },
                );
                candidates.clear();
                candidates.extend(
                    tree.locate_in_envelope_intersecting(&AABB::from_corners(
                        [rect.min().x, rect.min().y],
                        [rect.max().x, rect.max().y],
                    ))
                    .map(|e| e.data),
                );
                candidates.sort_unstable();
                match inside_of(&shapes, &candidates, rect) {
                    Some(i) => items.push(i | INSIDE),
                    None => items.extend_from_slice(&candidates),
                }
                offsets.push(items.len() as u32);
            }
        }
        items.shrink_to_fit();
        GridIndex {
            codes,
            shapes,
            origin,
            cell,
            nx,
            ny,
            offsets,
            items,
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    pub fn shape(&self, i: usize) -> &Shape {
        &self.shapes[i]
    }

    /// The grid covering a WGS-84 point (smallest code on shared boundaries), else the nearest
    /// grid within [`SNAP_RADIUS_M`] (smallest code on ties), else `None`.
    pub fn locate(&self, lon: f64, lat: f64) -> Option<Hit<'_>> {
        let fx = (lon - self.origin.x) / self.cell.x;
        let fy = (lat - self.origin.y) / self.cell.y;
        // Also false for NaN.
        if !(fx >= 0.0 && fy >= 0.0 && fx < self.nx as f64 && fy < self.ny as f64) {
            return None;
        }
        let c = fy as usize * self.nx + fx as usize;
        let items = &self.items[self.offsets[c] as usize..self.offsets[c + 1] as usize];
        if let [only] = items
            && only & INSIDE != 0
        {
            return Some(self.hit((only & !INSIDE) as usize, false, 0.0));
        }
        // In code order: the first that covers is the smallest covering code.
        if let Some(&i) = items
            .iter()
            .find(|&&i| self.shapes[i as usize].covers(lon, lat))
        {
            return Some(self.hit(i as usize, false, 0.0));
        }
        let mut best: Option<(f64, u32)> = None;
        for &i in items {
            let d = self.shapes[i as usize].distance_m(lon, lat);
            // Equal distances (a point off a shared vertex) go to the smallest code, which
            // comes first; only a clearly nearer grid replaces it.
            if d <= SNAP_RADIUS_M && best.is_none_or(|(bd, _)| d < bd - TIE_M) {
                best = Some((d, i));
            }
        }
        best.map(|(d, i)| self.hit(i as usize, true, d))
    }

    fn hit(&self, i: usize, snapped: bool, distance_m: f64) -> Hit<'_> {
        Hit {
            code: &self.codes[i],
            snapped,
            distance_m,
        }
    }
}

/// The grid whose interior holds all of `rect` while no other candidate meets it, if any.
fn inside_of(shapes: &[Shape], candidates: &[u32], rect: Rect<f64>) -> Option<u32> {
    let center = rect.center();
    let meets = |i: u32| {
        let s = &shapes[i as usize];
        s.boundary_touches(rect) || s.covers(center.x, center.y)
    };
    let holder = candidates.iter().copied().find(|&i| {
        let s = &shapes[i as usize];
        !s.boundary_touches(rect) && s.covers(center.x, center.y)
    })?;
    candidates
        .iter()
        .all(|&j| j == holder || !meets(j))
        .then_some(holder)
}
