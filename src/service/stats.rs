//! `GetStats`, live or from a month's snapshot, and the monthly job that takes the snapshots.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::DatabaseConnection;

use super::{LiveDirectory, rules::LiveRules, time::TimeSource};
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        calendar::SHANGHAI,
        directory::Directory,
        scope::Scope,
        stats::{Accumulator, Stats},
    },
    storage::{
        self,
        entities::stats_snapshot,
        stats::{CohortRow, CohortScope},
    },
};

/// The job name monthly snapshots are claimed under.
pub const MONTHLY_JOB: &str = "monthly_stats";

/// What statistics are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsTarget {
    Region(String),
    Unit(String),
    /// The caller's own region.
    Own,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsAnswer {
    pub stats: Stats,
    pub snapshot: bool,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct StatsService {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
    /// Who this replica is, in job claims.
    replica: String,
}

/// `YYYY-MM` → the month's bounds, [first day 00:00, next first day 00:00) Asia/Shanghai.
pub fn month_bounds(month: &str) -> DomainResult<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || DomainError::invalid("month", format!("{month:?} is not YYYY-MM"));
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if month.len() != 7 {
        return Err(bad());
    }
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    let at = |d: NaiveDate| {
        SHANGHAI
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)
    };
    Ok((at(first)?, at(next)?))
}

/// The month before the one `now` falls in (Asia/Shanghai), as `YYYY-MM`.
pub fn previous_month(now: DateTime<Utc>) -> String {
    let today = now.with_timezone(&SHANGHAI).date_naive();
    let first = today.with_day(1).unwrap_or(today);
    let prev = first
        .checked_sub_months(chrono::Months::new(1))
        .unwrap_or(first);
    prev.format("%Y-%m").to_string()
}

impl StatsService {
    pub fn new(
        db: DatabaseConnection,
        directory: Arc<LiveDirectory>,
        rules: Arc<LiveRules>,
        time: Arc<dyn TimeSource>,
    ) -> StatsService {
        StatsService {
            db,
            directory,
            rules,
            time,
            replica: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The cohort scope of a request, checked against the caller's own region.
    fn target(
        &self,
        caller: &Caller,
        directory: &Directory,
        target: &StatsTarget,
    ) -> DomainResult<(CohortScope, &'static str, String)> {
        let Scope::Region { code: own, .. } = Scope::of(caller, directory)? else {
            return Err(DomainError::PermissionDenied(
                "statistics are for supervisors and dispatchers of a region".into(),
            ));
        };
        let within = |region: &str| directory.chain(region).iter().any(|r| r.code == own);
        match target {
            StatsTarget::Own | StatsTarget::Region(_) => {
                let code = match target {
                    StatsTarget::Region(c) => c.as_str(),
                    _ => own.as_str(),
                };
                let region = directory.region(code).ok_or_else(|| {
                    DomainError::invalid("region_code", format!("unknown region {code:?}"))
                })?;
                if !within(code) {
                    return Err(DomainError::PermissionDenied(format!(
                        "region {code} is outside your region {own}"
                    )));
                }
                Ok((
                    CohortScope::Region(region.tier, region.code.clone()),
                    "region",
                    region.code.clone(),
                ))
            }
            StatsTarget::Unit(code) => {
                let unit = directory.unit(code).ok_or_else(|| {
                    DomainError::invalid("unit_code", format!("unknown unit {code:?}"))
                })?;
                if !within(&unit.region_code) {
                    return Err(DomainError::PermissionDenied(format!(
                        "unit {code} is outside your region {own}"
                    )));
                }
                Ok((CohortScope::Unit(unit.code.clone()), "unit", unit.code))
            }
        }
    }

    /// Live figures over `[from, to)`.
    pub async fn live(
        &self,
        caller: &Caller,
        target: &StatsTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> DomainResult<StatsAnswer> {
        if to <= from {
            return Err(DomainError::invalid("to", "must be after from"));
        }
        let directory = self.directory.snapshot();
        let (scope, _, _) = self.target(caller, &directory, target)?;
        let now = self.time.now();
        let rows = storage::stats::cohort(&self.db, &scope, from, to, now).await?;
        let rules = self.rules.snapshot();
        let mut acc = Accumulator::default();
        for r in &rows {
            acc.add(&r.case, &rules.calendar);
        }
        Ok(StatsAnswer {
            stats: acc.finish(),
            snapshot: false,
            computed_at: now,
        })
    }

    /// A month's figures: its snapshot when one was taken, else live over the month.
    pub async fn month(
        &self,
        caller: &Caller,
        target: &StatsTarget,
        month: &str,
    ) -> DomainResult<StatsAnswer> {
        let (from, to) = month_bounds(month)?;
        let directory = self.directory.snapshot();
        let (_, kind, code) = self.target(caller, &directory, target)?;
        if let Some(s) = storage::stats::snapshot(&self.db, month, kind, &code).await? {
            let stats: Stats = serde_json::from_str(&s.stats).map_err(DomainError::internal)?;
            return Ok(StatsAnswer {
                stats,
                snapshot: true,
                computed_at: s.computed_at,
            });
        }
        self.live(caller, target, from, to).await
    }

    /// Takes the snapshots of `month` for every region subtree and every unit, once across all
    /// replicas: `Ok(false)` when another run has it (or had it).
    pub async fn snapshot_month(&self, month: &str) -> anyhow::Result<bool> {
        let (from, to) = month_bounds(month)?;
        let now = self.time.now();
        if !storage::stats::claim(&self.db, MONTHLY_JOB, month, &self.replica, now).await? {
            return Ok(false);
        }
        let rows = storage::stats::cohort(&self.db, &CohortScope::All, from, to, now).await?;
        let rules = self.rules.snapshot();
        let directory = self.directory.snapshot();
        let snapshots = split(&rows, &directory, &rules.calendar, month, now);
        let count = snapshots.len();
        let stored = storage::stats::store_month(
            &self.db,
            MONTHLY_JOB,
            month,
            &self.replica,
            snapshots,
            now,
        )
        .await?;
        if stored {
            tracing::info!(
                month,
                cases = rows.len(),
                scopes = count,
                "monthly statistics snapshot taken"
            );
        }
        Ok(stored)
    }

    /// The monthly job: last month's snapshot unless taken already (also run at start-up, so a
    /// replica down on the 1st catches up).
    pub async fn run_monthly(&self) -> anyhow::Result<bool> {
        let month = previous_month(self.time.now());
        if storage::stats::finished(&self.db, MONTHLY_JOB, &month).await? {
            return Ok(false);
        }
        self.snapshot_month(&month).await
    }
}

/// Every region subtree and every lead unit with at least one case in the cohort.
fn split(
    rows: &[CohortRow],
    directory: &Directory,
    calendar: &crate::domain::calendar::Calendar,
    month: &str,
    now: DateTime<Utc>,
) -> Vec<stats_snapshot::Model> {
    let mut by_scope: HashMap<(&'static str, String), Accumulator> = HashMap::new();
    for r in rows {
        for code in r.chain.iter().flatten() {
            by_scope
                .entry(("region", code.clone()))
                .or_default()
                .add(&r.case, calendar);
        }
        by_scope
            .entry(("unit", r.unit_code.clone()))
            .or_default()
            .add(&r.case, calendar);
    }
    // Regions with no cases get their (empty) figures too, so a snapshot answers for them.
    for code in directory.region_codes() {
        by_scope.entry(("region", code.to_owned())).or_default();
    }
    by_scope
        .into_iter()
        .map(|((kind, code), acc)| stats_snapshot::Model {
            month: month.to_owned(),
            scope_kind: kind.to_owned(),
            scope_code: code,
            stats: serde_json::to_string(&acc.finish()).unwrap_or_else(|_| "{}".into()),
            computed_at: now,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_bounded_in_shanghai_time() {
        let (from, to) = month_bounds("2026-02").unwrap();
        assert_eq!(from.to_rfc3339(), "2026-01-31T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-02-28T16:00:00+00:00");
        assert!(month_bounds("2026-13").is_err());
        assert!(month_bounds("2026-2").is_err());
        assert!(month_bounds("").is_err());
        // 00:30 on 1 December in Shanghai is still 30 November in UTC.
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap();
        assert_eq!(previous_month(at), "2026-11");
        let at = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        assert_eq!(previous_month(at), "2025-12");
    }
}
