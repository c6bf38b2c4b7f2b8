//! The rules as the running service sees them: calendar, SLA policy and routing overrides in one
//! immutable snapshot, swapped whole when the stored `rules` version moves — whichever replica
//! made the change.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

pub use crate::domain::rules::Rules;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::{
    domain::{
        DomainError, DomainResult,
        calendar::{self, CalendarDay, DayKind, OfficeHours},
        directory::Directory,
        sla::PolicyRule,
    },
    storage,
};

/// The shared, hot-swappable rules.
#[derive(Debug)]
pub struct LiveRules {
    db: DatabaseConnection,
    /// The configured office hours, laid into every snapshot's calendar.
    office_hours: OfficeHours,
    current: ArcSwap<Rules>,
}

/// The largest calendar file accepted.
const MAX_CALENDAR_BYTES: usize = 1 << 20;

impl LiveRules {
    /// The stored rules, with working hours counted in `office_hours` (the `office_hours`
    /// setting).
    pub async fn load(
        db: DatabaseConnection,
        office_hours: OfficeHours,
    ) -> Result<LiveRules, storage::StorageError> {
        let rules = Rules::build(storage::rules::load(&db).await?, &office_hours);
        Ok(LiveRules {
            db,
            office_hours,
            current: ArcSwap::from_pointee(rules),
        })
    }

    pub fn snapshot(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    /// Loads the stored rules when their version moved. Never goes back: of two refreshes
    /// racing (the poll and a change's own), the one that read older rules does not replace
    /// newer ones already in place.
    pub async fn refresh(&self) -> Result<bool, storage::StorageError> {
        if storage::rules::version(&self.db).await? == self.current.load().version {
            return Ok(false);
        }
        let rules = Arc::new(Rules::build(
            storage::rules::load(&self.db).await?,
            &self.office_hours,
        ));
        let before = self.current.rcu(|current| {
            if rules.version > current.version {
                rules.clone()
            } else {
                current.clone()
            }
        });
        let replaced = rules.version > before.version;
        if replaced {
            tracing::info!(version = rules.version, "rules reloaded");
        }
        Ok(replaced)
    }

    pub async fn watch(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "rules refresh failed; applying the previous version");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// `ImportCalendar`: a year's schedule (or several) in holiday-cn JSON or ICS; each year
    /// given replaces what was stored or shipped for it.
    pub async fn import_calendar(
        &self,
        format: CalendarFormat,
        data: &[u8],
        now: DateTime<Utc>,
    ) -> DomainResult<(Vec<i32>, usize)> {
        if data.is_empty() {
            return Err(DomainError::invalid("data", "is empty"));
        }
        if data.len() > MAX_CALENDAR_BYTES {
            return Err(DomainError::invalid(
                "data",
                format!("{} bytes; the limit is {MAX_CALENDAR_BYTES}", data.len()),
            ));
        }
        let (years, name) = match format {
            CalendarFormat::HolidayCnJson => (
                vec![
                    calendar::parse_holiday_cn_json(data)
                        .map_err(|e| DomainError::invalid("data", e))?,
                ],
                "holiday-cn-json",
            ),
            CalendarFormat::Ics => (
                calendar::parse_ics(data).map_err(|e| DomainError::invalid("data", e))?,
                "ics",
            ),
        };
        if years.is_empty() {
            return Err(DomainError::invalid("data", "holds no days"));
        }
        for (year, _) in &years {
            if !(2000..=2100).contains(year) {
                return Err(DomainError::invalid(
                    "data",
                    format!("year {year} is outside 2000–2100"),
                ));
            }
        }
        storage::rules::import_calendar(&self.db, name, &years, now).await?;
        self.refresh().await?;
        let days = years.iter().map(|(_, d)| d.len()).sum();
        Ok((years.iter().map(|(y, _)| *y).collect(), days))
    }

    /// `SetCalendarDay`: an override for one day; no kind removes the override.
    pub async fn set_day(
        &self,
        date: &str,
        kind: Option<DayKind>,
        name: &str,
    ) -> DomainResult<CalendarDay> {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| DomainError::invalid("day.date", format!("{date:?} is not YYYY-MM-DD")))?;
        if !(2000..=2100).contains(&date.year()) {
            return Err(DomainError::invalid("day.date", "year outside 2000–2100"));
        }
        let name = name.trim();
        if name.chars().count() > 100 {
            return Err(DomainError::invalid(
                "day.name",
                "longer than 100 characters",
            ));
        }
        storage::rules::set_override(&self.db, date, kind.map(|k| (k, name.to_owned()))).await?;
        self.refresh().await?;
        let rules = self.snapshot();
        Ok(rules.calendar.day(date).cloned().unwrap_or(CalendarDay {
            date,
            kind: if rules.calendar.is_working_day(date) {
                DayKind::Working
            } else {
                DayKind::Off
            },
            name: String::new(),
            is_override: false,
        }))
    }

    /// `SetSlaPolicy`.
    pub async fn set_policy(&self, rule: PolicyRule, now: DateTime<Utc>) -> DomainResult<()> {
        storage::rules::set_policy(&self.db, &rule, now).await?;
        self.refresh().await?;
        Ok(())
    }

    /// `SetRoutingOverride`: checked against the directory; no unit removes the override.
    pub async fn set_routing_override(
        &self,
        directory: &Directory,
        region_code: &str,
        category_code: &str,
        unit_code: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        if directory.region(region_code).is_none() {
            return Err(DomainError::invalid(
                "region_code",
                format!("unknown region {region_code:?}"),
            ));
        }
        if directory.category(category_code).is_none() {
            return Err(DomainError::invalid(
                "category_code",
                format!("unknown category {category_code:?}"),
            ));
        }
        let unit = if unit_code.is_empty() {
            None
        } else {
            if directory.unit(unit_code).is_none() {
                return Err(DomainError::invalid(
                    "unit_code",
                    format!("unknown unit {unit_code:?}"),
                ));
            }
            Some(unit_code)
        };
        storage::rules::set_routing_override(&self.db, region_code, category_code, unit, now)
            .await?;
        self.refresh().await?;
        Ok(())
    }
}

/// The formats `ImportCalendar` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarFormat {
    HolidayCnJson,
    Ics,
}
