//! The supervisor: fires the SLA levels that have come (warning, 督办 notice, escalation, red
//! card), on a tick from tokio-cron-scheduler, and catches up at start-up on whatever came while
//! no replica was running. Which replica fires a level does not matter: the database lets
//! exactly one of them (see `storage::sla`).

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::{LiveDirectory, stats::StatsService, time::TimeSource};
use crate::{domain::calendar::SHANGHAI, storage};

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
        }
    }

    /// Waits until the start-up catch-up (SLA levels and the monthly statistics) has run.
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Fires every level due now, oldest first, batch after batch until none is left (or what
    /// is left is being fired by another replica). Returns the levels this call fired.
    pub async fn run_due(&self) -> Result<usize, storage::StorageError> {
        let _one_at_a_time = self.running.lock().await;
        let mut total = 0;
        loop {
            let now = self.time.now();
            let directory = self.directory.snapshot();
            let fired = storage::sla::fire_due(&self.db, &directory, now, SCAN_BATCH).await?;
            total += fired.levels;
            if fired.levels > 0 {
                tracing::info!(
                    levels = fired.levels,
                    due = fired.due,
                    skipped = fired.skipped,
                    "SLA levels fired"
                );
            }
            let drained = fired.due < usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX);
            if (drained && fired.skipped == 0) || fired.levels == 0 {
                return Ok(total);
            }
        }
    }
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
    /// Starts the SLA scan every `tick` and the monthly statistics job at 00:05 on the 1st
    /// (Asia/Shanghai), and runs both once now to catch up.
    pub async fn start(
        supervisor: Arc<Supervisor>,
        stats: Arc<StatsService>,
        tick: Duration,
    ) -> anyhow::Result<Scheduler> {
        let inner = JobScheduler::new().await?;
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
