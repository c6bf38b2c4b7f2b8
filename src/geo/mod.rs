//! Geometry: region shapes, the grid index behind `Locate`, and coordinate-system conversion.

pub mod coord;
mod index;
mod shape;

pub use coord::{CoordSystem, to_wgs84};
pub use index::{GridIndex, Hit, SNAP_RADIUS_M, TIE_M};
pub use shape::{Shape, ShapeError};
