//! The rules every replica applies and an admin changes without a release: the working-time
//! calendar (years of published schedules and single-day overrides), SLA policy rules and
//! routing overrides. Every change bumps the `rules` sequence, which replicas poll.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait, sea_query::OnConflict,
};

use super::{StorageError, begin_write, entities::*, sql};
use crate::domain::{
    calendar::{CalendarDay, DayKind, SlaDuration},
    directory::{Severity, Tier},
    rules::{RoutingOverride, RulesParts},
    sla::{ClockKind, PolicyRule},
};

pub async fn version(db: &impl ConnectionTrait) -> Result<i64, StorageError> {
    let row = db
        .query_one_raw(sql(
            db.get_database_backend(),
            "SELECT value FROM sequences WHERE name = 'rules'",
            vec![],
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    })
}

async fn bump(txn: &impl ConnectionTrait) -> Result<(), StorageError> {
    txn.execute_raw(sql(
        txn.get_database_backend(),
        "UPDATE sequences SET value = value + 1 WHERE name = 'rules'",
        vec![],
    ))
    .await?;
    Ok(())
}

fn day_of(m: calendar_day::Model) -> Result<CalendarDay, StorageError> {
    let corrupt = StorageError::Corrupt;
    Ok(CalendarDay {
        date: NaiveDate::parse_from_str(&m.date, "%Y-%m-%d")
            .map_err(|e| corrupt(format!("calendar day {:?}: {e}", m.date)))?,
        kind: m
            .kind
            .parse::<DayKind>()
            .map_err(|e| corrupt(format!("calendar day {}: {e}", m.date)))?,
        name: m.name,
        is_override: m.source == "override",
    })
}

/// The stored rules, read in one transaction.
pub async fn load(db: &DatabaseConnection) -> Result<RulesParts, StorageError> {
    let txn = db.begin().await?;
    let parts = read(&txn).await?;
    txn.commit().await?;
    Ok(parts)
}

/// The stored rules as a transaction already open sees them.
pub async fn read(txn: &impl ConnectionTrait) -> Result<RulesParts, StorageError> {
    let version = version(txn).await?;
    let years = calendar_year::Entity::find()
        .all(txn)
        .await?
        .into_iter()
        .map(|y| y.year)
        .collect();
    let mut parts = RulesParts {
        version,
        years,
        ..RulesParts::default()
    };
    for m in calendar_day::Entity::find().all(txn).await? {
        let day = day_of(m)?;
        if day.is_override {
            parts.overrides.push(day);
        } else {
            parts.data_days.push(day);
        }
    }
    for p in sla_policy::Entity::find().all(txn).await? {
        parts.policies.push(
            policy_rule(&p).map_err(|e| StorageError::corrupt(format!("SLA policy {p:?}: {e}")))?,
        );
    }
    parts.routing = routing_override::Entity::find()
        .all(txn)
        .await?
        .into_iter()
        .map(|r| RoutingOverride {
            region_code: r.region_code,
            category_code: r.category_code,
            unit_code: r.unit_code,
        })
        .collect();
    Ok(parts)
}

/// Replaces the stored schedule of each year given (all in one transaction).
pub async fn import_calendar(
    db: &DatabaseConnection,
    format: &str,
    years: &[(i32, Vec<CalendarDay>)],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = begin_write(db).await?;
    for (year, days) in years {
        calendar_day::Entity::delete_many()
            .filter(calendar_day::Column::Source.eq("data"))
            .filter(calendar_day::Column::Date.starts_with(format!("{year:04}-")))
            .exec(&txn)
            .await?;
        let rows: Vec<calendar_day::ActiveModel> = days
            .iter()
            .map(|d| calendar_day::ActiveModel {
                date: Set(d.date.format("%Y-%m-%d").to_string()),
                source: Set("data".into()),
                kind: Set(d.kind.as_str().into()),
                name: Set(d.name.clone()),
            })
            .collect();
        for chunk in rows.chunks(200) {
            calendar_day::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
        calendar_year::Entity::insert(calendar_year::ActiveModel {
            year: Set(*year),
            format: Set(format.into()),
            imported_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(calendar_year::Column::Year)
                .update_columns([
                    calendar_year::Column::Format,
                    calendar_year::Column::ImportedAt,
                ])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
    }
    bump(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Sets an override for one day; `None` removes it (the year's schedule decides again).
pub async fn set_override(
    db: &DatabaseConnection,
    date: NaiveDate,
    day: Option<(DayKind, String)>,
) -> Result<(), StorageError> {
    let txn = begin_write(db).await?;
    let key = date.format("%Y-%m-%d").to_string();
    calendar_day::Entity::delete_many()
        .filter(calendar_day::Column::Source.eq("override"))
        .filter(calendar_day::Column::Date.eq(key.as_str()))
        .exec(&txn)
        .await?;
    if let Some((kind, name)) = day {
        calendar_day::Entity::insert(calendar_day::ActiveModel {
            date: Set(key),
            source: Set("override".into()),
            kind: Set(kind.as_str().into()),
            name: Set(name),
        })
        .exec(&txn)
        .await?;
    }
    bump(&txn).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn set_policy(
    db: &DatabaseConnection,
    rule: &PolicyRule,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let row = sla_policy::Model {
        clock: rule.clock.as_str().into(),
        category_code: rule.category_code.clone().unwrap_or_default(),
        tier: rule.tier.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        severity: rule
            .severity
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        duration: rule.duration.to_string(),
        updated_at: now,
    };
    let txn = begin_write(db).await?;
    sla_policy::Entity::insert(sea_orm::IntoActiveModel::into_active_model(row))
        .on_conflict(
            OnConflict::columns([
                sla_policy::Column::Clock,
                sla_policy::Column::CategoryCode,
                sla_policy::Column::Tier,
                sla_policy::Column::Severity,
            ])
            .update_columns([sla_policy::Column::Duration, sla_policy::Column::UpdatedAt])
            .to_owned(),
        )
        .exec(&txn)
        .await?;
    bump(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Sets (or, with `None`, removes) the unit that leads a category's cases in a subtree.
pub async fn set_routing_override(
    db: &DatabaseConnection,
    region_code: &str,
    category_code: &str,
    unit_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = begin_write(db).await?;
    routing_override::Entity::delete_many()
        .filter(routing_override::Column::RegionCode.eq(region_code))
        .filter(routing_override::Column::CategoryCode.eq(category_code))
        .exec(&txn)
        .await?;
    if let Some(unit) = unit_code {
        routing_override::Entity::insert(routing_override::ActiveModel {
            region_code: Set(region_code.into()),
            category_code: Set(category_code.into()),
            unit_code: Set(unit.into()),
            updated_at: Set(now),
        })
        .exec(&txn)
        .await?;
    }
    bump(&txn).await?;
    txn.commit().await?;
    Ok(())
}

fn policy_rule(p: &sla_policy::Model) -> Result<PolicyRule, String> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(PolicyRule {
        clock: p.clock.parse::<ClockKind>()?,
        category_code: opt(&p.category_code),
        tier: opt(&p.tier).map(|t| t.parse::<Tier>()).transpose()?,
        severity: opt(&p.severity)
            .map(|s| s.parse::<Severity>())
            .transpose()?,
        duration: p.duration.parse::<SlaDuration>()?,
    })
}
