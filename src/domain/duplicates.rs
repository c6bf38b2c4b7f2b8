//! Possible duplicates: a new case near an open case of the same item is flagged, for a
//! dispatcher to merge. The search reads a bounded number of ~100 m cells around the report.

use super::case::Position;

/// A new case within this distance and time of an open case of the same item is flagged as a
/// possible duplicate, for a dispatcher to merge; never merged automatically.
pub const DUPLICATE_RADIUS_M: f64 = 100.0;
pub const DUPLICATE_WINDOW_HOURS: i64 = 72;

/// The box (lon0, lat0, lon1, lat1) around a position that holds every point within
/// [`DUPLICATE_RADIUS_M`] of it.
pub fn duplicate_box(p: &Position) -> (f64, f64, f64, f64) {
    let (mx, my) = metres_per_degree(p.lat);
    let (dx, dy) = (
        DUPLICATE_RADIUS_M * 1.01 / mx,
        DUPLICATE_RADIUS_M * 1.01 / my,
    );
    (p.lon - dx, p.lat - dy, p.lon + dx, p.lat + dy)
}

fn metres_per_degree(lat: f64) -> (f64, f64) {
    let per_degree = 6_371_008.8 * std::f64::consts::PI / 180.0;
    (per_degree * lat.to_radians().cos().max(0.01), per_degree)
}

/// The nearest of `candidates` (id, lon, lat) within [`DUPLICATE_RADIUS_M`] of `p`.
pub fn nearest_duplicate<'a>(
    p: &Position,
    candidates: impl IntoIterator<Item = (&'a str, f64, f64)>,
) -> Option<String> {
    let (mx, my) = metres_per_degree(p.lat);
    candidates
        .into_iter()
        .filter_map(|(id, lon, lat)| {
            // The shorter way round, so neighbours across the antimeridian are near.
            let dlon = (lon - p.lon + 540.0).rem_euclid(360.0) - 180.0;
            let d = (dlon * mx).hypot((lat - p.lat) * my);
            (d <= DUPLICATE_RADIUS_M).then_some((d, id))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id.to_owned())
}

/// The side of a duplicate-search cell, in degrees (about 110 m north–south): a 100 m search
/// box touches at most 3 × 3 of them where a degree of longitude is longer than about 50 km
/// (everywhere south of 63° N or S, so all of China).
pub const GEO_CELL_DEG: f64 = 0.001;

/// Cells around the world (east–west) and from pole to pole.
const CELLS_X: i64 = 360_000;
const CELLS_Y: i64 = 180_000;

/// The most columns and rows of cells one duplicate search reads, whatever the position: near
/// the poles a 100 m box spans ever more columns of a thousandth of a degree (at the pole
/// itself, all of them), and a search must cost what any other search costs. Where the box is
/// wider than this, the search reads the columns nearest the position and may miss a duplicate
/// at the box's edge; the flag is a hint for a dispatcher, not a merge.
pub const MAX_SEARCH_COLUMNS: i64 = 5;
pub const MAX_SEARCH_ROWS: i64 = 3;

/// A cell's column: longitudes wrap at the antimeridian, so 180° and −180° share a column.
// Within range by construction (rem_euclid, clamp); a non-finite input saturates harmlessly.
#[allow(clippy::cast_possible_truncation)]
fn cell_x(lon: f64) -> i64 {
    (((lon + 180.0) / GEO_CELL_DEG).floor() as i64).rem_euclid(CELLS_X)
}

/// A cell's row: the poles' rows are the last ones, nothing lies beyond them.
#[allow(clippy::cast_possible_truncation)]
fn cell_y(lat: f64) -> i64 {
    (((lat + 90.0) / GEO_CELL_DEG).floor() as i64).clamp(0, CELLS_Y - 1)
}

/// The cell of a WGS-84 position, as one integer.
pub fn geo_cell(lon: f64, lat: f64) -> i64 {
    cell_y(lat) * 1_000_000 + cell_x(lon)
}

/// The cells a box (lon0, lat0, lon1, lat1) touches, at most [`MAX_SEARCH_COLUMNS`] ×
/// [`MAX_SEARCH_ROWS`] of them around its middle. A box may reach past the antimeridian (its
/// columns wrap) or past a pole (its rows stop there).
#[allow(clippy::cast_possible_truncation)]
pub fn geo_cells(lon0: f64, lat0: f64, lon1: f64, lat1: f64) -> Vec<i64> {
    // Unwrapped column numbers: a box across the antimeridian stays one run of columns.
    let column = |lon: f64| ((lon + 180.0) / GEO_CELL_DEG).floor() as i64;
    let (mut x0, mut x1) = (column(lon0), column(lon1));
    if x1 - x0 + 1 > MAX_SEARCH_COLUMNS || x1 < x0 {
        let middle = column((lon0 + lon1) / 2.0);
        (x0, x1) = (
            middle - MAX_SEARCH_COLUMNS / 2,
            middle + MAX_SEARCH_COLUMNS / 2,
        );
    }
    let (mut y0, mut y1) = (cell_y(lat0), cell_y(lat1));
    if y1 - y0 + 1 > MAX_SEARCH_ROWS || y1 < y0 {
        let middle = cell_y((lat0 + lat1) / 2.0);
        (y0, y1) = (
            (middle - MAX_SEARCH_ROWS / 2).max(0),
            (middle + MAX_SEARCH_ROWS / 2).min(CELLS_Y - 1),
        );
    }
    let mut out = Vec::with_capacity(((x1 - x0 + 1) * (y1 - y0 + 1)).unsigned_abs() as usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            out.push(y * 1_000_000 + x.rem_euclid(CELLS_X));
        }
    }
    out
}

/// The cells the duplicate search around `p` reads.
pub fn duplicate_cells(p: &Position) -> Vec<i64> {
    let (lon0, lat0, lon1, lat1) = duplicate_box(p);
    geo_cells(lon0, lat0, lon1, lat1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::CoordSystem;

    #[test]
    fn a_box_touches_the_cells_of_its_corners_and_between() {
        let cells = geo_cells(119.0001, 35.0001, 119.0021, 35.0011);
        assert_eq!(cells.len(), 3 * 2);
        assert!(cells.contains(&geo_cell(119.0001, 35.0001)));
        assert!(cells.contains(&geo_cell(119.0021, 35.0011)));
        assert!(cells.contains(&geo_cell(119.0011, 35.0005)));
        assert!(!cells.contains(&geo_cell(119.0031, 35.0005)));
    }

    fn at(lat: f64, lon: f64) -> Position {
        Position {
            reported_lat: lat,
            reported_lon: lon,
            coord_system: CoordSystem::Wgs84,
            accuracy_m: 0.0,
            lat,
            lon,
        }
    }

    #[test]
    fn a_search_reads_a_bounded_number_of_cells_wherever_it_is() {
        for (lat, lon) in [
            (-90.0, 0.0),
            (-89.9999, 0.0),
            (90.0, 180.0),
            (89.99, -179.9995),
            (0.0, 180.0),
            (0.0, -180.0),
            (35.42, 119.46),
            (53.5, 122.3),
            (-45.0, 179.9999),
        ] {
            let p = at(lat, lon);
            let cells = duplicate_cells(&p);
            assert!(
                !cells.is_empty() && cells.len() <= (MAX_SEARCH_COLUMNS * MAX_SEARCH_ROWS) as usize,
                "({lat}, {lon}): {} cells",
                cells.len()
            );
            assert!(
                cells.contains(&geo_cell(lon, lat)),
                "({lat}, {lon}) misses its own cell"
            );
            for cell in &cells {
                let (x, y) = (cell % 1_000_000, cell / 1_000_000);
                assert!(
                    (0..CELLS_X).contains(&x) && (0..CELLS_Y).contains(&y),
                    "{cell}"
                );
            }
        }
    }

    #[test]
    fn a_search_across_the_antimeridian_reads_both_sides() {
        let cells = duplicate_cells(&at(0.0, 179.99995));
        assert!(cells.contains(&geo_cell(-179.9995, 0.0)), "{cells:?}");
        assert!(cells.contains(&geo_cell(179.9995, 0.0)), "{cells:?}");
        assert_eq!(geo_cell(180.0, 0.0), geo_cell(-180.0, 0.0));
    }

    #[test]
    fn a_search_in_china_reads_every_cell_of_its_box() {
        // At 53.5° N, China's northern tip, a 100 m box is still inside 3 × 3 cells.
        let p = at(53.5004, 122.3004);
        let (lon0, lat0, lon1, lat1) = duplicate_box(&p);
        let cells = duplicate_cells(&p);
        for (lon, lat) in [(lon0, lat0), (lon1, lat0), (lon0, lat1), (lon1, lat1)] {
            assert!(cells.contains(&geo_cell(lon, lat)), "({lat}, {lon})");
        }
    }
}
