//! `GetStats`, live or from a period's snapshot (a month, a quarter, a year), and the job that
//! takes the snapshots on the 1st of each month.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::DatabaseConnection;

use super::{LiveDirectory, rules::LiveRules, time::TimeSource};
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        calendar::SHANGHAI,
        directory::Directory,
        directory::Tier,
        scope::Scope,
        stats::{self as figures, Accumulator, Figure, Stats, TargetCheck},
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

/// One line of a ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub rank: u32,
    pub code: String,
    pub name: String,
    pub stats: Stats,
    pub targets: Vec<TargetCheck>,
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
    local_bounds(first, 1).ok_or_else(bad)
}

/// A period's bounds, Asia/Shanghai: a month `2026-11`, a quarter `2026-Q4` (October to
/// December) or a year `2026`, each [its first day 00:00, the next period's first day 00:00).
pub fn period_bounds(period: &str) -> DomainResult<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || {
        DomainError::invalid(
            "period",
            format!("{period:?} is not a month (2026-11), a quarter (2026-Q4) or a year (2026)"),
        )
    };
    let year = |y: &str| -> DomainResult<i32> {
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        y.parse().map_err(|_| bad())
    };
    let (first, months) = match period.split_once('-') {
        None => (NaiveDate::from_ymd_opt(year(period)?, 1, 1), 12),
        Some((y, q)) if q.len() == 2 && q.starts_with('Q') => {
            let n: u32 = match q.as_bytes()[1] {
                b @ b'1'..=b'4' => u32::from(b - b'0'),
                _ => return Err(bad()),
            };
            (NaiveDate::from_ymd_opt(year(y)?, 3 * n - 2, 1), 3)
        }
        Some(_) => return month_bounds(period).map_err(|_| bad()),
    };
    local_bounds(first.ok_or_else(bad)?, months).ok_or_else(bad)
}

/// [`first` 00:00, `first` + `months` 00:00), Asia/Shanghai.
fn local_bounds(first: NaiveDate, months: u32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let next = first.checked_add_months(chrono::Months::new(months))?;
    let at = |d: NaiveDate| {
        SHANGHAI
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((at(first)?, at(next)?))
}

/// The quarter and the year before the ones `now` falls in (Asia/Shanghai): `2026-Q3` and
/// `2025` for a day in November 2026.
pub fn previous_quarter_and_year(now: DateTime<Utc>) -> (String, String) {
    let today = now.with_timezone(&SHANGHAI).date_naive();
    let quarter = (today.month0() / 3) as i32;
    let (year, quarter) = if quarter == 0 {
        (today.year() - 1, 4)
    } else {
        (today.year(), quarter)
    };
    (format!("{year}-Q{quarter}"), (today.year() - 1).to_string())
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

    /// A period's figures (a month `2026-11`, a quarter `2026-Q4`, a year `2026`): its
    /// snapshot when one was taken, else live over the period. A quarter's or a year's cohort
    /// is the union of its months' cohorts: the cases received in it.
    pub async fn period(
        &self,
        caller: &Caller,
        target: &StatsTarget,
        period: &str,
    ) -> DomainResult<StatsAnswer> {
        let (from, to) = period_bounds(period)?;
        let directory = self.directory.snapshot();
        let (_, kind, code) = self.target(caller, &directory, target)?;
        if let Some(s) = storage::stats::snapshot(&self.db, period, kind, &code).await? {
            let stats: Stats = serde_json::from_str(&s.stats).map_err(DomainError::internal)?;
            return Ok(StatsAnswer {
                stats,
                snapshot: true,
                computed_at: s.computed_at,
            });
        }
        self.live(caller, target, from, to).await
    }

    /// `RankUnits`: the units within a region of the caller's (or, with `regions`, the regions
    /// one tier below it), each with the figures of the cases received in `period` that it led
    /// (or that lie in it), ranked by `figure`. Every active unit and child region is listed,
    /// those with no case last.
    pub async fn rank(
        &self,
        caller: &Caller,
        target: &StatsTarget,
        period: &str,
        figure: Figure,
        regions: bool,
    ) -> DomainResult<(Vec<Ranked>, DateTime<Utc>)> {
        if matches!(target, StatsTarget::Unit(_)) {
            return Err(DomainError::invalid(
                "region_code",
                "rankings are of a region's units or child regions",
            ));
        }
        let (from, to) = period_bounds(period)?;
        let directory = self.directory.snapshot();
        let (scope, _, code) = self.target(caller, &directory, target)?;
        let region = directory
            .region(&code)
            .ok_or_else(|| DomainError::NotFound(format!("no region {code:?}")))?
            .clone();
        let now = self.time.now();
        let rows = storage::stats::cohort(&self.db, &scope, from, to, now).await?;
        let rules = self.rules.snapshot();
        // (name, tier) of each entry, and its sums.
        let mut entries: HashMap<String, (String, Tier, Accumulator)> = HashMap::new();
        if regions {
            let Some(child) = Tier::ALL
                .iter()
                .position(|t| *t == region.tier)
                .and_then(|i| Tier::ALL.get(i + 1).copied())
            else {
                return Err(DomainError::invalid(
                    "regions",
                    format!("{} is a grid: it has no regions below it", region.code),
                ));
            };
            let level = Tier::ALL.iter().position(|t| *t == child).unwrap_or(0);
            let children = directory
                .entry(&region.code)
                .map(|e| e.children.as_slice())
                .unwrap_or_default();
            for c in children.iter().filter_map(|c| directory.region(c)) {
                if !c.retired {
                    entries.insert(
                        c.code.clone(),
                        (c.name.clone(), c.tier, Accumulator::default()),
                    );
                }
            }
            for r in &rows {
                let Some(Some(c)) = r.chain.get(level) else {
                    continue;
                };
                let name = directory
                    .region(c)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                entries
                    .entry(c.clone())
                    .or_insert_with(|| (name, child, Accumulator::default()))
                    .2
                    .add(&r.case, &rules.calendar);
            }
        } else {
            let tier_of = |unit_region: &str| {
                directory
                    .region(unit_region)
                    .map_or(region.tier, |r| r.tier)
            };
            for u in directory.units() {
                if !u.retired && directory.is_within(&u.region_code, &region.code) {
                    entries.insert(
                        u.code.clone(),
                        (
                            u.name.clone(),
                            tier_of(&u.region_code),
                            Accumulator::default(),
                        ),
                    );
                }
            }
            for r in &rows {
                let (name, tier) = directory
                    .unit(&r.unit_code)
                    .map_or((String::new(), region.tier), |u| {
                        (u.name.clone(), tier_of(&u.region_code))
                    });
                entries
                    .entry(r.unit_code.clone())
                    .or_insert_with(|| (name, tier, Accumulator::default()))
                    .2
                    .add(&r.case, &rules.calendar);
            }
        }
        let finished: Vec<((String, String, Tier), Stats)> = entries
            .into_iter()
            .map(|(code, (name, tier, acc))| ((code, name, tier), acc.finish()))
            .collect();
        let ranked = figures::rank(finished, figure, |(code, _, _)| code.as_str())
            .into_iter()
            .map(|(rank, (code, name, tier), stats)| Ranked {
                rank,
                targets: figures::targets(&stats, tier),
                code,
                name,
                stats,
            })
            .collect();
        Ok((ranked, now))
    }

    /// Takes the snapshots of a period (a month, a quarter, a year: see [`period_bounds`]) for
    /// every region subtree and every unit, once across all replicas: `Ok(false)` when another
    /// run has it (or had it).
    pub async fn snapshot_month(&self, month: &str) -> anyhow::Result<bool> {
        let (from, to) = period_bounds(month)?;
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
                period = month,
                cases = rows.len(),
                scopes = count,
                "statistics snapshot taken"
            );
        }
        Ok(stored)
    }

    /// The monthly job: last month's snapshot, and last quarter's and last year's (月统计、季通报、
    /// 年考核), each unless taken already (also run at start-up, so a replica down on the 1st
    /// catches up). Answers whether this run took last month's.
    pub async fn run_monthly(&self) -> anyhow::Result<bool> {
        let now = self.time.now();
        let month = previous_month(now);
        let took_month = !storage::stats::finished(&self.db, MONTHLY_JOB, &month).await?
            && self.snapshot_month(&month).await?;
        let (quarter, year) = previous_quarter_and_year(now);
        for period in [quarter, year] {
            if !storage::stats::finished(&self.db, MONTHLY_JOB, &period).await? {
                self.snapshot_month(&period).await?;
            }
        }
        Ok(took_month)
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

    #[test]
    fn quarters_and_years_are_bounded_in_shanghai_time() {
        let (from, to) = period_bounds("2026-Q4").unwrap();
        assert_eq!(from.to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        let (from, to) = period_bounds("2026-Q1").unwrap();
        assert_eq!(from.to_rfc3339(), "2025-12-31T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-03-31T16:00:00+00:00");
        let (from, to) = period_bounds("2026").unwrap();
        assert_eq!(from.to_rfc3339(), "2025-12-31T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert_eq!(
            period_bounds("2026-11").unwrap(),
            month_bounds("2026-11").unwrap()
        );
        for bad in [
            "",
            "2026-Q0",
            "2026-Q5",
            "2026-q4",
            "26",
            "2026-",
            "2026-13",
            "Q4",
            "２０２６",
        ] {
            let e = period_bounds(bad).unwrap_err();
            assert!(e.to_string().contains("period"), "{bad:?}: {e}");
        }
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        assert_eq!(
            previous_quarter_and_year(at(2026, 11, 30)),
            ("2026-Q3".into(), "2025".into())
        );
        // 00:30 on 1 January in Shanghai: the last quarter and year just ended.
        let new_year = Utc.with_ymd_and_hms(2026, 12, 31, 16, 30, 0).unwrap();
        assert_eq!(
            previous_quarter_and_year(new_year),
            ("2026-Q4".into(), "2026".into())
        );
    }
}
