//! `gridcase-load`: drives `SubmitReport` over real gRPC connections with many concurrent
//! simulated handsets, in the spirit of pgbench and redis-benchmark, and prints acknowledged
//! reports per second and latency percentiles.
//!
//! Each handset is one Rizhao grid member on a connection of its own, reporting from inside
//! its grid with a fresh `client_report_id` each time; a report counts once its answer arrives.
//! Tokens are minted with the configured key (the same settings as `gridcase token`).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use geo::Centroid;
use gridcase::{
    auth::{self, Minter},
    config::Settings,
    domain::{Role, bundle, directory::Directory, directory::Tier},
    proto::v1::{
        CoordSystem, Location, SubmitReportRequest, report_service_client::ReportServiceClient,
    },
};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(name = "gridcase-load", about = "Load generator for SubmitReport")]
struct Args {
    /// The server to drive.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Simulated handsets, each with its own connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before measuring (not counted).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Settings for minting tokens (the server's key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A directory bundle whose grid members are the handsets; default the shipped Rizhao one.
    #[arg(long)]
    bundle: Option<PathBuf>,
}

struct Handset {
    token: String,
    lat: f64,
    lon: f64,
    /// Half the grid's box, in degrees: reports come from anywhere around the grid's centre.
    spread: (f64, f64),
}

const CATEGORIES: &[&str] = &[
    "dispute.neighbor",
    "dispute.family",
    "safety.fire",
    "city.clutter",
    "environment.noise",
];

/// A number in [-1, 1) from a xorshift state.
fn jitter(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref())?;
    let secret = auth::resolve_secret(&settings.jwt, &settings.data_dir)?;
    let minter = Minter::new(&settings.jwt, secret.as_ref())?;
    let bytes = match &args.bundle {
        Some(path) => std::fs::read(path)?,
        None => gridcase::demo::RIZHAO_BUNDLE.to_vec(),
    };
    let parsed = bundle::parse(&bytes, &Directory::empty()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let categories: Vec<String> = CATEGORIES
        .iter()
        .filter(|c| parsed.categories.iter().any(|k| k.code == **c))
        .map(|c| (*c).to_owned())
        .chain(parsed.categories.first().map(|c| c.code.clone()))
        .collect();
    let grids: Vec<_> = parsed
        .regions
        .iter()
        .filter(|r| r.region.tier == Tier::Grid)
        .collect();
    anyhow::ensure!(!grids.is_empty(), "the bundle has no grids");
    let mut handsets = Vec::with_capacity(args.concurrency);
    for k in 0..args.concurrency {
        // Spread the handsets over the city.
        let grid = grids[(k * 7919) % grids.len()];
        let member = parsed
            .members
            .iter()
            .find(|m| m.grid_codes.contains(&grid.region.code))
            .ok_or_else(|| anyhow::anyhow!("grid {} has no member", grid.region.code))?;
        let centre = grid
            .shape
            .polygons()
            .centroid()
            .ok_or_else(|| anyhow::anyhow!("grid {} has no centroid", grid.region.code))?;
        let bbox = grid.shape.bbox();
        handsets.push(Handset {
            token: minter.mint(&member.sub, Role::GridMember, Duration::from_secs(3600))?,
            lat: centre.y(),
            lon: centre.x(),
            spread: (bbox.width() / 2.0, bbox.height() / 2.0),
        });
    }
    let categories = Arc::new(categories);
    println!(
        "gridcase-load: {} handsets → {} for {:?} (+{:?} warm-up)",
        args.concurrency, args.target, args.duration, args.warmup
    );
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let stop_at = measure_from + args.duration;
    let mut tasks = Vec::new();
    for (k, handset) in handsets.into_iter().enumerate() {
        let channel = Channel::from_shared(args.target.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let categories = categories.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = ReportServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut n = 0usize;
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (k as u64 + 1);
            while Instant::now() < stop_at {
                n += 1;
                let mut request = tonic::Request::new(SubmitReportRequest {
                    client_report_id: uuid::Uuid::new_v4().to_string(),
                    category_code: categories[(k + n) % categories.len()].clone(),
                    description: format!("压测上报 {k}-{n}"),
                    location: Some(Location {
                        lat: handset.lat + handset.spread.1 * jitter(&mut seed),
                        lon: handset.lon + handset.spread.0 * jitter(&mut seed),
                        coord_system: CoordSystem::Wgs84.into(),
                        accuracy_m: 8.0,
                    }),
                    ..SubmitReportRequest::default()
                });
                if let Ok(value) = format!("Bearer {}", handset.token).parse() {
                    request.metadata_mut().insert("authorization", value);
                }
                let sent = Instant::now();
                let result = client.submit_report(request).await;
                let done = Instant::now();
                if sent >= measure_from && done <= stop_at {
                    match result {
                        Ok(_) => latencies.push(done - sent),
                        Err(status) => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("error: {status:?}");
                            }
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let rate = latencies.len() as f64 / args.duration.as_secs_f64();
    println!(
        "acknowledged={} errors={errors} reports_per_s={rate:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}
