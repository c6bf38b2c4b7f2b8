//! The grid index behind `Locate`: an R-tree over the grids' bounding boxes, with exact
//! point-in-polygon tests on the few candidates a point's box query returns.
//!
//! Grids are kept sorted by code, so "the smallest code wins" on shared edges and vertices is
//! "the first covering candidate in index order".

use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

use super::{Shape, shape::metres_per_degree};

/// A point within this distance of a grid, and covered by none, snaps to the nearest grid.
pub const SNAP_RADIUS_M: f64 = 50.0;

/// Snapping distances closer than this (a millimetre, far below the data's 0.1 m precision)
/// are a tie, which the smallest code wins.
pub const TIE_M: f64 = 1e-3;

type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

#[derive(Debug)]
pub struct GridIndex {
    codes: Vec<String>,
    shapes: Vec<Shape>,
    tree: RTree<Entry>,
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

impl GridIndex {
    pub fn build(mut grids: Vec<(String, Shape)>) -> GridIndex {
        grids.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = grids
            .iter()
            .enumerate()
            .map(|(i, (_, shape))| {
                let b = shape.bbox();
                // Bounded by the number of grids, which a u32 holds with room to spare.
                #[allow(clippy::cast_possible_truncation)]
                let i = i as u32;
                Entry::new(
                    Rectangle::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]),
                    i,
                )
            })
            .collect();
        let (codes, shapes) = grids.into_iter().unzip();
        GridIndex {
            codes,
            shapes,
            tree: RTree::bulk_load(entries),
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
        let point = [lon, lat];
        let mut covering: Option<u32> = None;
        for entry in self.tree.locate_all_at_point(&point) {
            let i = entry.data;
            if covering.is_none_or(|c| i < c) && self.shapes[i as usize].covers(lon, lat) {
                covering = Some(i);
            }
        }
        if let Some(i) = covering {
            return Some(Hit {
                code: &self.codes[i as usize],
                snapped: false,
                distance_m: 0.0,
            });
        }
        self.nearest_within(lon, lat, SNAP_RADIUS_M)
    }

    fn nearest_within(&self, lon: f64, lat: f64, radius_m: f64) -> Option<Hit<'_>> {
        let (mx, my) = metres_per_degree(lat);
        // A little wider than the radius, so no grid within it is missed by the box query.
        let (dx, dy) = (radius_m * 1.01 / mx, radius_m * 1.01 / my);
        let query = AABB::from_corners([lon - dx, lat - dy], [lon + dx, lat + dy]);
        let mut best: Option<(f64, u32)> = None;
        for entry in self.tree.locate_in_envelope_intersecting(&query) {
            let i = entry.data;
            let d = self.shapes[i as usize].distance_m(lon, lat);
            // Equal distances (a point off a shared vertex) go to the smallest code.
            let better = match best {
                None => true,
                Some((bd, bi)) => d < bd - TIE_M || (d <= bd + TIE_M && i < bi),
            };
            if d <= radius_m && better {
                best = Some((d, i));
            }
        }
        best.map(|(d, i)| Hit {
            code: &self.codes[i as usize],
            snapped: true,
            distance_m: d,
        })
    }
}
