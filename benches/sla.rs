//! SLA scan benchmarks (issue 6), on PostgreSQL: `cargo bench --bench sla` with
//! `GRIDCASE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test` (a scratch database
//! `gridcase_bench_sla` is made next to it and dropped afterwards). `CASES` sets the number of
//! open cases (default 1,000,000), `BREACHES` the number breaching at once (default 10,000).
//!
//! - `empty scan`: the scheduler's scan when nothing is due, as it runs (`scan_once`), over
//!   CASES open cases each with a running resolve clock. Baseline in the same run: the same
//!   question asked without the partial index on `next_at` (what a scan over every open
//!   clock costs).
//! - `breaches`: BREACHES clocks due at once, all fired by `Supervisor::run_due` (each level
//!   an event on its case's hash chain, the clock moved by compare-and-set). Baseline in the
//!   same run: the bare database work for as many other clocks — one UPDATE of the clocks and
//!   one INSERT … SELECT of their events in a single statement each, no hashing, no chains.

// A benchmark's set-up failing should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use gridcase::{
    service::{
        LiveDirectory,
        sla::Supervisor,
        time::{SystemTime, TimeSource},
    },
    storage,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

const DB: &str = "gridcase_bench_sla";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("GRIDCASE_BENCH_POSTGRES_URL") else {
        eprintln!("sla: set GRIDCASE_BENCH_POSTGRES_URL to run (PostgreSQL only)");
        return;
    };
    let cases = env_usize("CASES", 1_000_000);
    let breaches = env_usize("BREACHES", 10_000);
    let base = url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    let admin = Database::connect(&url).await.unwrap();
    exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
    )
    .await;
    exec(&admin, &format!("CREATE DATABASE {DB}")).await;
    let db = storage::connect(&format!("{base}/{DB}"), 8).await.unwrap();
    storage::migrate(&db).await.unwrap();
    let directory = Arc::new(LiveDirectory::load(db.clone(), 64 << 20).await.unwrap());
    directory
        .import(gridcase::demo::RIZHAO_BUNDLE.to_vec(), None)
        .await
        .unwrap();

    eprintln!("# generating {cases} open cases, each with a running resolve clock");
    let started = Instant::now();
    exec(
        &db,
        &format!(
            "INSERT INTO cases (id, code, status, source, category_code, severity, description, \
             city_code, district_code, grid_code, region_code, tier, unit_code, lat, lon, geo_cell, \
             snapped, snap_distance_m, reporter_sub, received_at, updated_at, version, cycle, \
             reopen_count, escalation_level, red_card, request_hash, attachment_ids, last_event_hash) \
             SELECT lpad(to_hex(g), 12, '0') || '-bench', 'S' || g, \
             (ARRAY['accepted','in_progress'])[1 + g % 2], 'handset', 'dispute.neighbor', 'general', \
             '生成的案件', '371100', (ARRAY['371102','371103','371121','371122'])[1 + g % 4], NULL, \
             (ARRAY['371102','371103','371121','371122'])[1 + g % 4], 'district', '371102.center', \
             35.4, 119.4, 0, false, 0, 'gm-bench', now() - (g || ' seconds')::interval, \
             now() - (g || ' seconds')::interval, 1, 1, 0, 0, false, md5(g::text), '[]', md5(g::text) \
             FROM generate_series(1, {cases}) AS g"
        ),
    )
    .await;
    exec(
        &db,
        &format!(
            "INSERT INTO sla_clocks (case_id, kind, cycle, unit_code, attempt, duration, started_at, \
             due_at, warn_at, escalate_at, red_card_at, next_at, stage, escalations) \
             SELECT lpad(to_hex(g), 12, '0') || '-bench', 'resolve', 1, '', 0, '7wd', \
             now() - (g || ' seconds')::interval, now() + interval '7 days' + (g || ' seconds')::interval, \
             now() + interval '5 days' + (g || ' seconds')::interval, \
             now() + interval '10 days', now() + interval '14 days', \
             now() + interval '5 days' + (g || ' seconds')::interval, 0, 0 \
             FROM generate_series(1, {cases}) AS g"
        ),
    )
    .await;
    exec(&db, "ANALYZE cases").await;
    exec(&db, "ANALYZE sla_clocks").await;
    eprintln!("# generated in {:.0} s", started.elapsed().as_secs_f64());

    // Empty scan: the scheduler's own call, nothing due.
    let scanner = Supervisor::new(db.clone(), directory.clone(), Arc::new(SystemTime));
    let now = SystemTime.now();
    for _ in 0..20 {
        scanner.scan_once(now).await.unwrap();
    }
    let mut ours = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let fired = scanner.scan_once(now).await.unwrap();
        ours.push(t.elapsed());
        assert_eq!(fired.levels, 0);
    }
    let mut naive = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let n = scalar(
            &db,
            "SELECT COUNT(*) FROM (SELECT case_id FROM sla_clocks \
             WHERE stopped_at IS NULL AND least(warn_at, due_at, escalate_at, red_card_at) <= now() \
             AND stage < 4 ORDER BY next_at LIMIT 500) AS due",
        )
        .await;
        naive.push(t.elapsed());
        assert_eq!(n, 0);
    }
    let (p50, p99) = (percentile(&mut ours, 0.5), percentile(&mut ours, 0.99));
    let base_p50 = percentile(&mut naive, 0.5);
    println!(
        "empty scan over {cases} open cases: p50 {:.3} ms, p99 {:.3} ms; baseline (no next_at index) p50 {:.1} ms; ratio {:.0}x",
        ms(p50),
        ms(p99),
        ms(base_p50),
        base_p50.as_secs_f64() / p50.as_secs_f64()
    );

    // Breaches at once: BREACHES clocks warned already and now past due.
    let every = (cases / breaches).max(2);
    exec(
        &db,
        &format!(
            "UPDATE sla_clocks SET stage = 1, warned_at = now() - interval '2 hours', \
             warn_at = now() - interval '2 hours', due_at = now() - interval '1 minute', \
             next_at = now() - interval '1 minute' WHERE id % {every} = 0"
        ),
    )
    .await;
    let due = scalar(
        &db,
        "SELECT COUNT(*) FROM sla_clocks WHERE next_at <= now()",
    )
    .await;
    let supervisor = Supervisor::new(db.clone(), directory.clone(), Arc::new(SystemTime));
    let t = Instant::now();
    let fired = supervisor.run_due().await.unwrap();
    let elapsed = t.elapsed();
    let breached = scalar(
        &db,
        "SELECT COUNT(*) FROM case_events WHERE kind = 'sla_breach'",
    )
    .await;
    assert_eq!(fired as i64, due);
    assert_eq!(breached, due);

    // Baseline: the bare writes for as many other clocks, in two set-based statements.
    exec(
        &db,
        &format!(
            "UPDATE sla_clocks SET stage = 1, due_at = now() - interval '1 minute', \
             next_at = now() + interval '1 year' WHERE id % {every} = 1"
        ),
    )
    .await;
    let t = Instant::now();
    exec(
        &db,
        &format!(
            "WITH moved AS (UPDATE sla_clocks SET stage = 2, breached_at = now(), next_at = escalate_at \
             WHERE id % {every} = 1 RETURNING id, case_id) \
             INSERT INTO case_events (seq, case_id, kind, actor_sub, actor_role, at, reason, details, \
             prev_hash, hash) SELECT 10000000000 + id, case_id, 'sla_breach', 'gridcase-sla', 'system', \
             now(), '', '{{}}', '', '' FROM moved"
        ),
    )
    .await;
    let bare = t.elapsed();
    println!(
        "{due} clocks breaching at once: all noticed in {:.2} s ({:.0} notices/s); baseline (bare set-based SQL, no chains) {:.2} s; ratio {:.1}x the bare work",
        elapsed.as_secs_f64(),
        due as f64 / elapsed.as_secs_f64(),
        bare.as_secs_f64(),
        elapsed.as_secs_f64() / bare.as_secs_f64()
    );
    drop(db);
    exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
    )
    .await;
}
