//! The demo directory shipped inside the project: 日照市 (Rizhao), 5,938 grids, so a new user
//! has a real-outline city to try at once (`gridcase serve --demo`).

/// The Rizhao bundle (DESIGN.md "Directory bundle"); see `demo/README.md` for its provenance.
pub const RIZHAO_BUNDLE: &[u8] = include_bytes!("../demo/rizhao-directory.geojson");
