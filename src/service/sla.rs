//! The supervisor: fires the SLA levels that have come (warning, 督办 notice, escalation, red
//! card), on a tick from tokio-cron-scheduler, and catches up at start-up on whatever came while
//! no replica was running. Which replica fires a level does not matter: the database lets
//! exactly one of them (see `storage::sla::Scan`).

use std::{sync::Arc, time::Duration};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::{
    LiveDirectory,
    alerts::{ALERT_TICK, Alerts},
    events::Wake,
    stats::StatsService,
    time::TimeSource,
};
use crate::{
    domain::{
        calendar::SHANGHAI,
        case::Case,
        event::NewEvent,
        sla::{self, ClockMove, ClockResume},
        workflow::{self, Actor, Command},
    },
    storage::{self, StorageError},
};

/// Clocks one scan transaction handles at most.
pub const SCAN_BATCH: u64 = 500;

#[derive(Debug)]
pub struct Supervisor {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    time: Arc<dyn TimeSource>,
    /// One scan at a time in this process; a tick that finds one running waits its turn.
    running: tokio::sync::Mutex<()>,
    /// Set once the start-up catch-up has run.
    caught_up: tokio::sync::watch::Sender<bool>,
    /// Tells the event feed about the levels fired.
    wake: Wake,
}

impl Supervisor {
    pub fn new(
        db: DatabaseConnection,
        directory: Arc<LiveDirectory>,
        time: Arc<dyn TimeSource>,
    ) -> Supervisor {
        Supervisor {
            db,
            directory,
            time,
            running: tokio::sync::Mutex::new(()),
            caught_up: tokio::sync::watch::Sender::new(false),
            wake: Wake::default(),
        }
    }

    /// The supervisor, waking `wake` after each scan that fired something.
    pub fn with_wake(mut self, wake: Wake) -> Supervisor {
        self.wake = wake;
        self
    }

    /// Waits for a scan under way to finish (its transaction committed or rolled back): what
    /// shutdown does before letting go of the database.
    pub async fn idle(&self) {
        drop(self.running.lock().await);
    }

    /// Waits until the start-up catch-up (SLA levels and the monthly statistics) has run.
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Fires every level due now, oldest first, batch after batch until none is left (or what
    /// is left is being fired by another replica). Returns the levels this call fired.
    pub async fn run_due(&self) -> Result<usize, StorageError> {
        let _one_at_a_time = self.running.lock().await;
        let mut total = 0;
        loop {
            let fired = self.scan_once(self.time.now()).await?;
            total += fired.levels;
            if fired.resumed > 0 {
                tracing::info!(
                    resumed = fired.resumed,
                    "waits on the reporter ended by their limit"
                );
            }
            if fired.levels > 0 {
                tracing::info!(
                    levels = fired.levels,
                    due = fired.due,
                    skipped = fired.skipped,
                    "SLA levels fired"
                );
            }
            let drained = fired.due < usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX);
            if (drained && fired.skipped == 0) || fired.levels + fired.resumed == 0 {
                return Ok(total);
            }
        }
    }

    /// One scan: at most [`SCAN_BATCH`] due clocks, each level that has come fired in one
    /// transaction. Storage finds and locks the work and writes the outcome; the domain says
    /// which levels have come ([`sla::due_levels`]) and what each does to its case
    /// ([`workflow::apply`]).
    ///
    /// A paused clock (its case waits on the reporter) fires nothing: its `next_at` is the time
    /// its pause ends by itself, so the scan finds it only then, and resumes it as of that time
    /// ([`sla::pause_ended`], a compare-and-set on `paused_at`) with a `resumed` event before
    /// any level that has come since fires.
    pub async fn scan_once(&self, now: DateTime<Utc>) -> Result<Fired, StorageError> {
        let Some((scan, due)) = storage::sla::begin_scan(&self.db, now, SCAN_BATCH).await? else {
            return Ok(Fired::default());
        };
        let mut fired = Fired {
            due: due.due,
            skipped: due.skipped,
            levels: 0,
            resumed: 0,
        };
        let directory = self.directory.snapshot();
        let mut changes: BTreeMap<String, (Case, Vec<NewEvent>)> = BTreeMap::new();
        let resumes: Vec<ClockResume> = due
            .clocks
            .iter()
            .filter(|c| due.cases.contains_key(&c.case_id))
            .filter_map(|c| sla::pause_ended(c, now))
            .collect();
        let resumed = scan.resume_clocks(&resumes).await?;
        let mut clocks = due.clocks.clone();
        for r in resumes.iter().filter(|r| resumed.contains(&r.clock.id)) {
            let Some(case) = due.cases.get(&r.clock.case_id) else {
                continue;
            };
            let (case, events) = changes
                .entry(case.id.clone())
                .or_insert_with(|| (case.clone(), Vec::new()));
            let command = Command::PauseEnded {
                paused_at: r.paused_at,
                resumed_at: r.resumed_at,
            };
            let (next, more) =
                workflow::apply(case, Actor::Supervisor, &directory, command, now)
                    .map_err(|e| StorageError::corrupt(format!("end of a wait refused: {e}")))?;
            *case = next;
            events.extend(more);
            fired.resumed += 1;
            // Levels that have come since the limit fire in this scan too.
            if let Some(c) = clocks.iter_mut().find(|c| c.id == r.clock.id) {
                *c = r.resumed.clone();
            }
        }
        let moves: Vec<ClockMove> = clocks
            .iter()
            .filter(|c| due.cases.contains_key(&c.case_id))
            .filter_map(|c| sla::due_levels(c, now))
            .collect();
        let moved = scan.move_clocks(&moves).await?;
        for m in moves.iter().filter(|m| moved.contains(&m.clock.id)) {
            let Some(case) = due.cases.get(&m.clock.case_id) else {
                continue;
            };
            let (case, events) = changes
                .entry(case.id.clone())
                .or_insert_with(|| (case.clone(), Vec::new()));
            for &level in &m.levels {
                let command = Command::SlaLevel {
                    clock: Box::new(m.clock.clone()),
                    level,
                };
                // The supervisor's own commands cannot be refused; one that is marks a bug,
                // and the scan's transaction is dropped (nothing fired, tried again next tick).
                let (next, more) =
                    workflow::apply(case, Actor::Supervisor, &directory, command, now)
                        .map_err(|e| StorageError::corrupt(format!("SLA level refused: {e}")))?;
                *case = next;
                events.extend(more);
                fired.levels += 1;
            }
        }
        scan.record(changes.into_values().collect()).await?;
        scan.commit().await?;
        if fired.levels + fired.resumed > 0 {
            self.wake.events_committed();
            metrics::counter!("gridcase_sla_levels_fired_total").increment(fired.levels as u64);
        }
        Ok(fired)
    }
}

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// Levels fired (events appended for clocks).
    pub levels: usize,
    /// Clocks found due.
    pub due: usize,
    /// Due cases skipped because another replica holds them.
    pub skipped: usize,
    /// Waits on the reporter ended by their limit (paused clocks resumed).
    pub resumed: usize,
}

/// The scheduled work of one replica.
pub struct Scheduler {
    inner: JobScheduler,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

impl Scheduler {
    /// Starts the SLA scan every `tick`, the alert watcher every [`ALERT_TICK`] and the monthly
    /// statistics job at 00:05 on the 1st (Asia/Shanghai), and runs each once now to catch up.
    pub async fn start(
        supervisor: Arc<Supervisor>,
        stats: Arc<StatsService>,
        alerts: Arc<Alerts>,
        tick: Duration,
    ) -> anyhow::Result<Scheduler> {
        let inner = JobScheduler::new().await?;
        // Early warning: every ALERT_TICK, the cases received since the last look (the first
        // look runs at once and catches up on what came while no replica ran).
        let a = alerts.clone();
        inner
            .add(Job::new_repeated_async(ALERT_TICK, move |_, _| {
                let a = a.clone();
                Box::pin(async move {
                    if let Err(e) = a.run_due().await {
                        tracing::warn!(error = %e, "alert look failed; the next tick tries again");
                    }
                })
            })?)
            .await?;
        let s = supervisor.clone();
        inner
            .add(Job::new_repeated_async(tick, move |_, _| {
                let s = s.clone();
                Box::pin(async move {
                    tracing::trace!("SLA tick");
                    if let Err(e) = s.run_due().await {
                        tracing::warn!(error = %e, "SLA scan failed; the next tick tries again");
                    }
                })
            })?)
            .await?;
        let st = stats.clone();
        inner
            .add(Job::new_async_tz("0 5 0 1 * *", SHANGHAI, move |_, _| {
                let st = st.clone();
                Box::pin(async move {
                    if let Err(e) = st.run_monthly().await {
                        tracing::warn!(error = %e, "monthly statistics failed; retried at start-up");
                    }
                })
            })?)
            .await?;
        inner.start().await?;
        // Catch up on what came due while no replica ran.
        tokio::spawn(async move {
            if let Err(e) = alerts.run_due().await {
                tracing::warn!(error = %e, "alert catch-up failed; the next tick tries again");
            }
            match supervisor.run_due().await {
                Ok(n) if n > 0 => tracing::info!(levels = n, "SLA catch-up done"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "SLA catch-up failed; the next tick tries again")
                }
            }
            if let Err(e) = stats.run_monthly().await {
                tracing::warn!(error = %e, "monthly statistics catch-up failed");
            }
            supervisor.caught_up.send_replace(true);
        });
        Ok(Scheduler { inner })
    }

    pub async fn shutdown(mut self) {
        if let Err(e) = self.inner.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
    }
}
