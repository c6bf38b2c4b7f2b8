//! Directory benchmarks (issue 3), run with `cargo bench --bench directory` or, with PostGIS
//! installed and compared, `bench/directory.sh`.
//!
//! - Locate in process on one core: the Rizhao grids, and a 148,450-grid directory made by
//!   cutting every Rizhao grid 5 × 5; with the memory each index takes (counted by a wrapping
//!   allocator, so it is measured, not estimated).
//! - The same random points through PostGIS (`ST_Covers` on a GiST index), the usual alternative,
//!   in the same run, when `GRIDCASE_BENCH_POSTGRES_URL` names a server with PostGIS available.
//! - Importing the Rizhao bundle on SQLite, and on PostgreSQL when that variable is set.

// A benchmark's set-up failing should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::atomic::{AtomicIsize, Ordering},
    time::{Duration, Instant},
};

use geo::{BooleanOps, BoundingRect, MultiPolygon, Rect, coord};
use gridcase::{
    domain::{
        bundle,
        directory::{Directory, Tier},
    },
    geo::{GridIndex, Shape},
    service::LiveDirectory,
    storage,
};
use sea_orm::{ConnectionTrait, Database, Statement};

/// Counts live heap bytes, to measure what an index really takes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Random points over the grids' bounding box (most fall inside a grid; the rest exercise
/// snapping and not-found).
fn random_points(bbox: Rect<f64>, n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            (
                bbox.min().x + rng.unit() * bbox.width(),
                bbox.min().y + rng.unit() * bbox.height(),
            )
        })
        .collect()
}

/// Lookups per second on this thread, best of three runs over `points`.
fn locate_rate(index: &GridIndex, points: &[(f64, f64)]) -> (f64, usize) {
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..3 {
        let started = Instant::now();
        found = 0;
        for &(lon, lat) in points {
            if black_box(index.locate(lon, lat)).is_some() {
                found += 1;
            }
        }
        best = best.min(started.elapsed());
    }
    (points.len() as f64 / best.as_secs_f64(), found)
}

fn build_measured(grids: Vec<(String, Shape)>) -> (GridIndex, isize, Duration) {
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let index = GridIndex::build(grids);
    let took = started.elapsed();
    (index, LIVE.load(Ordering::Relaxed) - before, took)
}

/// Every grid cut into `n` × `n` pieces along its bounding box.
fn subdivide(grids: &[(String, MultiPolygon<f64>)], n: usize) -> Vec<(String, Shape)> {
    let mut out = Vec::with_capacity(grids.len() * n * n);
    for (code, polygons) in grids {
        let b = polygons.bounding_rect().expect("bbox");
        let (w, h) = (b.width() / n as f64, b.height() / n as f64);
        for i in 0..n {
            for j in 0..n {
                let x0 = b.min().x + w * i as f64;
                let y0 = b.min().y + h * j as f64;
                let cell = Rect::new(coord! { x: x0, y: y0 }, coord! { x: x0 + w, y: y0 + h });
                let piece = polygons.intersection(&cell.to_polygon());
                if piece.0.is_empty() {
                    continue;
                }
                if let Ok(shape) = Shape::new(piece) {
                    out.push((format!("{code}{:02}", i * n + j), shape));
                }
            }
        }
    }
    out
}

async fn postgis_rate(
    url: &str,
    grids: &[(String, MultiPolygon<f64>)],
    points: &[(f64, f64)],
) -> Result<(f64, usize), String> {
    let admin = Database::connect(url).await.map_err(|e| e.to_string())?;
    let name = format!("gridcase_bench_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| e.to_string())?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    let db = Database::connect(format!("{base}/{name}"))
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        db.execute_unprepared("CREATE EXTENSION postgis")
            .await
            .map_err(|e| {
                format!("PostGIS is not installed here (bench/directory.sh installs it): {e}")
            })?;
        db.execute_unprepared(
            "CREATE TABLE grids (code text PRIMARY KEY, geom geometry(MultiPolygon, 4326) NOT NULL);
             CREATE TABLE points (id serial PRIMARY KEY, geom geometry(Point, 4326) NOT NULL);",
        )
        .await
        .map_err(|e| e.to_string())?;
        for chunk in grids.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|(code, polygons)| {
                    let geometry = geojson::Geometry::from(polygons);
                    format!(
                        "('{code}', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON('{}'), 4326)))",
                        serde_json::to_string(&geometry).expect("json")
                    )
                })
                .collect();
            db.execute_unprepared(&format!("INSERT INTO grids VALUES {}", values.join(",")))
                .await
                .map_err(|e| e.to_string())?;
        }
        for chunk in points.chunks(5000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|(lon, lat)| format!("(ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326))"))
                .collect();
            db.execute_unprepared(&format!(
                "INSERT INTO points (geom) VALUES {}",
                values.join(",")
            ))
            .await
            .map_err(|e| e.to_string())?;
        }
        db.execute_unprepared(
            "CREATE INDEX grids_geom ON grids USING gist (geom); ANALYZE grids; ANALYZE points;",
        )
        .await
        .map_err(|e| e.to_string())?;
        // All points in one statement, server side: no round trips, so this is PostGIS's own
        // cost on the one core its backend runs on — the most favourable case for it.
        let sql = "SELECT count(g.code) FROM points p
                   LEFT JOIN LATERAL (SELECT code FROM grids WHERE ST_Covers(grids.geom, p.geom)
                                      ORDER BY code LIMIT 1) g ON true";
        let mut best = Duration::MAX;
        let mut found = 0usize;
        for _ in 0..3 {
            let started = Instant::now();
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no row")?;
            best = best.min(started.elapsed());
            let count: i64 = row.try_get_by_index(0).map_err(|e| e.to_string())?;
            found = usize::try_from(count).unwrap_or(0);
        }
        Ok::<_, String>((points.len() as f64 / best.as_secs_f64(), found))
    }
    .await;
    db.close().await.ok();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .ok();
    result
}

async fn import_time(url: &str) -> Duration {
    let db = storage::connect(url, 4).await.expect("connect");
    storage::migrate(&db).await.expect("migrate");
    let directory = LiveDirectory::load(db, 64 << 20).await.expect("load");
    let started = Instant::now();
    let report = directory
        .import(gridcase::demo::RIZHAO_BUNDLE.to_vec(), None)
        .await
        .expect("import");
    let took = started.elapsed();
    assert_eq!(report.regions.created, 7720);
    took
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, so ignore them all.
    let postgres = std::env::var("GRIDCASE_BENCH_POSTGRES_URL").ok();
    println!("# gridcase directory benchmarks");
    println!(
        "# machine: {} cores; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );

    let parsed = bundle::parse(gridcase::demo::RIZHAO_BUNDLE, &Directory::empty()).expect("bundle");
    let grids: Vec<(String, MultiPolygon<f64>)> = parsed
        .regions
        .iter()
        .filter(|r| r.region.tier == Tier::Grid)
        .map(|r| (r.region.code.clone(), r.shape.polygons().clone()))
        .collect();
    let bbox = grids
        .iter()
        .map(|(_, p)| p.bounding_rect().expect("bbox"))
        .reduce(|a, b| {
            Rect::new(
                coord! { x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y) },
                coord! { x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y) },
            )
        })
        .expect("grids");
    let points = random_points(bbox, 1_000_000, 0xB0A7);

    let shapes: Vec<(String, Shape)> = grids
        .iter()
        .map(|(c, p)| (c.clone(), Shape::new(p.clone()).expect("shape")))
        .collect();
    let (index, bytes, built) = build_measured(shapes);
    let (rate, found) = locate_rate(&index, &points);
    println!(
        "locate/rizhao        grids={:>7} lookups_per_s_one_core={:>10.0} located={:.1}% index_mib={:.2} build_ms={}",
        index.len(),
        rate,
        100.0 * found as f64 / points.len() as f64,
        mib(bytes),
        built.as_millis()
    );

    // Only points some grid covers: what handsets in the city send.
    let covered: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(lon, lat)| index.locate(*lon, *lat).is_some_and(|h| !h.snapped))
        .collect();
    let (covered_rate, _) = locate_rate(&index, &covered);
    println!(
        "locate/rizhao-in-grid grids={:>6} lookups_per_s_one_core={:>10.0} points={}",
        index.len(),
        covered_rate,
        covered.len()
    );

    let pieces = subdivide(&grids, 5);
    let (big, big_bytes, big_built) = build_measured(pieces);
    let (big_rate, big_found) = locate_rate(&big, &points);
    println!(
        "locate/subdivided5x5 grids={:>7} lookups_per_s_one_core={:>10.0} located={:.1}% index_mib={:.2} build_ms={}",
        big.len(),
        big_rate,
        100.0 * big_found as f64 / points.len() as f64,
        mib(big_bytes),
        big_built.as_millis()
    );
    let (big_covered_rate, _) = locate_rate(&big, &covered);
    println!(
        "locate/subdivided-in-grid grids={:>6} lookups_per_s_one_core={:>10.0} points={}",
        big.len(),
        big_covered_rate,
        covered.len()
    );
    drop(big);

    match &postgres {
        None => println!(
            "postgis: skipped (set GRIDCASE_BENCH_POSTGRES_URL, or run bench/directory.sh)"
        ),
        Some(url) => {
            let sample = &points[..50_000];
            match postgis_rate(url, &grids, sample).await {
                Ok((pg_rate, pg_found)) => {
                    let (ours, ours_found) = locate_rate(&index, sample);
                    let exact_covers = sample
                        .iter()
                        .filter(|(lon, lat)| index.locate(*lon, *lat).is_some_and(|h| !h.snapped))
                        .count();
                    println!(
                        "locate/postgis       grids={:>7} lookups_per_s_one_core={pg_rate:>10.0} covered={pg_found} (gridcase covered={exact_covers}, located={ours_found})",
                        grids.len()
                    );
                    println!(
                        "locate/ratio         gridcase_over_postgis={:.0}x (same {} points, one core each)",
                        ours / pg_rate,
                        sample.len()
                    );
                }
                Err(e) => println!("postgis: not measured: {e}"),
            }
        }
    }

    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    println!(
        "import/sqlite        rizhao_ms={}",
        import_time(&sqlite).await.as_millis()
    );
    if let Some(url) = &postgres {
        let admin = Database::connect(url.as_str()).await.expect("postgres");
        let name = format!("gridcase_bench_import_{}", std::process::id());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create");
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let took = import_time(&format!("{base}/{name}")).await;
        println!("import/postgres      rizhao_ms={}", took.as_millis());
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .ok();
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
