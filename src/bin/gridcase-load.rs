//! `gridcase-load`: drives `SubmitReport` over real gRPC connections with many concurrent
//! simulated handsets, in the spirit of pgbench and redis-benchmark, and prints acknowledged
//! reports per second and latency percentiles.
//!
//! Each handset is one Rizhao grid member on a connection of its own, reporting from inside
//! its grid with a fresh `client_report_id` each time; a report counts once its answer arrives.
//! Tokens are minted with the configured key (the same settings as `gridcase token`).
//!
//! Two ways to load, as in pgbench:
//! - closed loop (the default): each handset sends its next report as soon as the last one is
//!   answered. This finds the most the server sustains; latency is then the handsets divided by
//!   that throughput, by construction.
//! - `--rate R`: open loop, like `pgbench --rate`. The handsets share a fixed schedule of R
//!   reports per second, whatever the server's answers. A report's latency runs from the time
//!   the schedule meant it to be sent, so a handset held up by a slow answer counts the delay
//!   against the reports queued behind it (no coordinated omission).
//!
//! `--watchers N` also follows `WatchEvents` on N streams (each on a connection of its own, as
//! an admin, who sees every case) and reports how long each report's `registered` event took
//! from the report's acknowledgement (its commit) to each stream: the push latency. With
//! `--concurrency 0` the streams only sit idle for the duration, for measuring what idle
//! streams cost the server.

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
    /// Offered load in reports per second across all handsets (open loop); default closed loop.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Load before measuring (not counted).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Settings for minting tokens (the server's key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A directory bundle whose grid members are the handsets; default the shipped Rizhao one.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Streams following WatchEvents while the handsets report.
    #[arg(long, default_value_t = 0)]
    watchers: usize,
}

/// When each report was acknowledged, by case id, and when each stream saw its `registered`
/// event before the acknowledgement arrived (an event may beat its own answer).
#[derive(Default)]
struct Pushes {
    acked: std::collections::HashMap<String, Instant>,
    early: std::collections::HashMap<String, Vec<Instant>>,
    latencies: Vec<Duration>,
    received: u64,
}

type SharedPushes = Arc<std::sync::Mutex<Pushes>>;

fn acked(pushes: &SharedPushes, case_id: String, at: Instant) {
    let Ok(mut p) = pushes.lock() else { return };
    if let Some(seen) = p.early.remove(&case_id) {
        let n = seen.len();
        p.latencies.extend(std::iter::repeat_n(Duration::ZERO, n));
    }
    p.acked.insert(case_id, at);
}

async fn watch(
    target: String,
    token: String,
    pushes: SharedPushes,
    measure_from: Instant,
    stop_at: Instant,
) -> anyhow::Result<()> {
    use gridcase::proto::v1::{WatchEventsRequest, gateway_service_client::GatewayServiceClient};
    use tokio_stream::StreamExt;
    let channel = Channel::from_shared(target)?.connect().await?;
    // Every event, as the busiest follower takes them; each report's `registered` is timed.
    let mut request = tonic::Request::new(WatchEventsRequest {
        after_sequence: 0,
        kinds: Vec::new(),
        region_code: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut stream = GatewayServiceClient::new(channel)
        .watch_events(request)
        .await?
        .into_inner();
    loop {
        let next = tokio::time::timeout_at(stop_at.into(), stream.next()).await;
        let Ok(Some(item)) = next else { return Ok(()) };
        let event = item?;
        let now = Instant::now();
        if now < measure_from || event.kind != "registered" {
            continue;
        }
        let Ok(mut p) = pushes.lock() else {
            continue;
        };
        p.received += 1;
        match p.acked.get(&event.case_id).copied() {
            Some(at) => p.latencies.push(now.saturating_duration_since(at)),
            None => p.early.entry(event.case_id).or_default().push(now),
        }
    }
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

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of reports per second"
        )),
    }
}

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
    let admin = minter.mint("gridcase-load", Role::Admin, Duration::from_secs(3600))?;
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
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate} reports/s"),
        None => "closed loop".to_owned(),
    };
    println!(
        "gridcase-load: {} handsets → {}, {mode}, for {:?} (+{:?} warm-up)",
        args.concurrency, args.target, args.duration, args.warmup
    );
    // Open loop: handset k sends at offset + k/R + j*N/R for j = 0, 1, ...
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.concurrency as f64 / rate));
    let handsets_n = args.concurrency as f64;
    let mut channels = Vec::with_capacity(handsets.len());
    for _ in &handsets {
        channels.push(
            Channel::from_shared(args.target.clone())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let stop_at = measure_from + args.duration;
    let pushes: SharedPushes = Arc::default();
    let mut watchers = Vec::with_capacity(args.watchers);
    for _ in 0..args.watchers {
        watchers.push(tokio::spawn(watch(
            args.target.clone(),
            admin.clone(),
            pushes.clone(),
            measure_from,
            stop_at,
        )));
    }
    if args.watchers > 0 {
        println!("gridcase-load: {} streams following", args.watchers);
    }
    let mut tasks = Vec::new();
    for (k, (handset, channel)) in handsets.into_iter().zip(channels).enumerate() {
        let categories = categories.clone();
        let pushes = pushes.clone();
        let watched = args.watchers > 0;
        tasks.push(tokio::spawn(async move {
            let mut client = ReportServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut n = 0usize;
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (k as u64 + 1);
            let mut due = interval.map(|every| started + every.mul_f64(k as f64 / handsets_n));
            loop {
                // When this report is meant to go: now (closed loop) or its slot in the schedule.
                let intended = match (due, interval) {
                    (Some(at), Some(every)) => {
                        due = Some(at + every);
                        if at < stop_at {
                            tokio::time::sleep_until(at.into()).await;
                        }
                        at
                    }
                    _ => Instant::now(),
                };
                if intended >= stop_at {
                    break;
                }
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
                let result = client.submit_report(request).await;
                let done = Instant::now();
                if watched
                    && let Ok(answer) = &result
                    && let Some(case) = &answer.get_ref().case
                {
                    acked(&pushes, case.id.clone(), done);
                }
                // Closed loop counts what was answered within the window; open loop counts every
                // report scheduled within it, however late its answer.
                let counted = intended >= measure_from && (interval.is_some() || done <= stop_at);
                if counted {
                    match result {
                        Ok(_) => latencies.push(done - intended),
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
    if args.watchers > 0 {
        if args.concurrency == 0 {
            tokio::time::sleep_until(stop_at.into()).await;
        }
        for w in watchers {
            if let Err(e) = w.await? {
                eprintln!("watcher: {e:#}");
            }
        }
        let mut p = pushes
            .lock()
            .map_err(|_| anyhow::anyhow!("a watcher panicked"))?;
        let received = p.received;
        let pushed = &mut p.latencies;
        pushed.sort();
        let at = |q: f64| {
            pushed
                .get(((pushed.len() as f64 * q) as usize).min(pushed.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "streams={} events_received={received} push_p50_ms={:.2} push_p90_ms={:.2} push_p99_ms={:.2} push_max_ms={:.2}",
            args.watchers,
            at(0.50),
            at(0.90),
            at(0.99),
            pushed.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        );
    }
    println!(
        "acknowledged={} errors={errors} reports_per_s={rate:.0} offered_per_s={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        args.rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}
