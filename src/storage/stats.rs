//! Reading cohorts for statistics, and the monthly snapshots with the claim that makes each
//! month's run happen once across replicas.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, sea_query::OnConflict,
};

use super::{StorageError, begin_write, cases::is_unique_violation, entities::*, sql};
use crate::domain::{
    case::{CaseStatus, Evaluation},
    directory::Tier,
    event::EventKind,
    stats::CohortCase,
};

/// Which cases a cohort is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CohortScope {
    /// A region subtree: the region's tier and code.
    Region(Tier, String),
    /// Cases a unit leads.
    Unit(String),
    /// Every case (the monthly job splits them up itself).
    All,
}

/// One cohort case with where it belongs: its region chain and lead unit.
#[derive(Debug, Clone)]
pub struct CohortRow {
    pub case: CohortCase,
    pub chain: [Option<String>; 5],
    pub unit_code: String,
}

fn scope_sql(scope: &CohortScope) -> (String, Option<String>) {
    match scope {
        CohortScope::Region(tier, code) => {
            let column = match tier {
                Tier::City => "city_code",
                Tier::District => "district_code",
                Tier::Township => "township_code",
                Tier::Community => "community_code",
                Tier::Grid => "grid_code",
            };
            (format!(" AND c.{column} = $3"), Some(code.clone()))
        }
        CohortScope::Unit(code) => (" AND c.unit_code = $3".into(), Some(code.clone())),
        CohortScope::All => (String::new(), None),
    }
}

fn values(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    code: &Option<String>,
    extra: Option<DateTime<Utc>>,
) -> Vec<sea_orm::Value> {
    let mut v: Vec<sea_orm::Value> = vec![from.into(), to.into()];
    if let Some(c) = code {
        v.push(c.as_str().into());
    }
    if let Some(e) = extra {
        v.push(e.into());
    }
    v
}

/// The cases received in `[from, to)` in `scope` (merged duplicates left out), with whether a
/// clock of theirs ran past due as of `now`, and their escalations and returns.
pub async fn cohort(
    db: &DatabaseConnection,
    scope: &CohortScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<CohortRow>, StorageError> {
    let backend = db.get_database_backend();
    let (cond, code) = scope_sql(scope);
    let cohort =
        format!("c.received_at >= $1 AND c.received_at < $2 AND c.status <> 'merged'{cond}");
    let now_param = if code.is_some() { "$4" } else { "$3" };
    let rows = db
        .query_all_raw(sql(
            backend,
            &format!(
                "SELECT c.id, c.status, c.received_at, c.resolved_at, c.tier, c.escalation_level, \
                 c.satisfaction, c.reopen_count, c.city_code, c.district_code, c.township_code, \
                 c.community_code, c.grid_code, c.unit_code, c.evaluation FROM cases c \
                 WHERE {cohort}"
            ),
            values(from, to, &code, None),
        ))
        .await?;
    // An extended clock's due time is the extended one.
    let overdue: std::collections::HashSet<String> = db
        .query_all_raw(sql(
            backend,
            &format!(
                "SELECT DISTINCT k.case_id FROM sla_clocks k JOIN cases c ON c.id = k.case_id \
                 WHERE {cohort} AND ((k.stopped_at IS NULL \
                 AND k.due_at <= COALESCE(k.paused_at, {now_param})) OR k.stopped_at > k.due_at)"
            ),
            values(from, to, &code, Some(now)),
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    // The cases with an extended clock, and whether one stopped past the due time it had
    // before its extension (only a stopped clock can make a resolved case on time by its
    // extension: a resolved case's resolve clock has stopped).
    let mut extended: HashMap<String, bool> = HashMap::new();
    for r in db
        .query_all_raw(sql(
            backend,
            &format!(
                "SELECT k.case_id, \
                 MAX(CASE WHEN k.stopped_at > k.base_due_at THEN 1 ELSE 0 END) \
                 FROM sla_clocks k JOIN cases c ON c.id = k.case_id \
                 WHERE {cohort} AND k.extensions > 0 GROUP BY k.case_id"
            ),
            values(from, to, &code, None),
        ))
        .await?
    {
        extended.insert(r.try_get_by_index(0)?, r.try_get_by_index::<i32>(1)? > 0);
    }
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    for r in db
        .query_all_raw(sql(
            backend,
            &format!(
                "SELECT e.case_id, e.kind, COUNT(*) FROM case_events e JOIN cases c \
                 ON c.id = e.case_id WHERE {cohort} \
                 AND e.kind IN ('{escalated}', '{sla_escalation}', '{returned}') \
                 GROUP BY e.case_id, e.kind",
                // Constants of ours, never input.
                escalated = EventKind::Escalated.as_str(),
                sla_escalation = EventKind::SlaEscalation.as_str(),
                returned = EventKind::Returned.as_str(),
            ),
            values(from, to, &code, None),
        ))
        .await?
    {
        let id: String = r.try_get_by_index(0)?;
        let kind: EventKind = r
            .try_get_by_index::<String>(1)?
            .parse()
            .map_err(StorageError::Corrupt)?;
        let n: i64 = r.try_get_by_index(2)?;
        let entry = counts.entry(id).or_default();
        if kind == EventKind::Returned {
            entry.1 += n;
        } else {
            entry.0 += n;
        }
    }
    let corrupt = StorageError::Corrupt;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get_by_index(0)?;
        let status: String = r.try_get_by_index(1)?;
        let tier: String = r.try_get_by_index(4)?;
        let satisfaction: Option<String> = r.try_get_by_index(6)?;
        let evaluation: Option<String> = r.try_get_by_index(14)?;
        let by_callback = match evaluation
            .as_deref()
            .map(serde_json::from_str::<Evaluation>)
        {
            Some(Ok(e)) => e.by_callback,
            Some(Err(e)) => return Err(corrupt(format!("case {id}: evaluation: {e}"))),
            None => false,
        };
        let (escalations, returns) = counts.get(&id).copied().unwrap_or_default();
        let late_but_for_extension = extended.get(&id).copied();
        out.push(CohortRow {
            case: CohortCase {
                status: status.parse::<CaseStatus>().map_err(corrupt)?,
                received_at: r.try_get_by_index(2)?,
                resolved_at: r.try_get_by_index(3)?,
                tier: tier.parse::<Tier>().map_err(corrupt)?,
                escalation_level: r.try_get_by_index(5)?,
                satisfied: satisfaction.map(|s| s != "dissatisfied"),
                by_callback,
                reopen_count: r.try_get_by_index(7)?,
                overdue: overdue.contains(&id),
                extended: late_but_for_extension.is_some(),
                late_but_for_extension: late_but_for_extension.unwrap_or(false),
                escalations,
                returns,
            },
            chain: [
                r.try_get_by_index(8)?,
                r.try_get_by_index(9)?,
                r.try_get_by_index(10)?,
                r.try_get_by_index(11)?,
                r.try_get_by_index(12)?,
            ],
            unit_code: r.try_get_by_index(13)?,
        });
    }
    Ok(out)
}

/// A stored monthly snapshot: the figures as JSON and when they were computed.
pub async fn snapshot(
    db: &impl ConnectionTrait,
    month: &str,
    scope_kind: &str,
    scope_code: &str,
) -> Result<Option<stats_snapshot::Model>, StorageError> {
    Ok(stats_snapshot::Entity::find()
        .filter(stats_snapshot::Column::Month.eq(month))
        .filter(stats_snapshot::Column::ScopeKind.eq(scope_kind))
        .filter(stats_snapshot::Column::ScopeCode.eq(scope_code))
        .one(db)
        .await?)
}

/// How long a claim on a job run holds before another replica may take it over (the claimer
/// died mid-run).
pub const CLAIM_LEASE: chrono::Duration = chrono::Duration::hours(1);

/// Claims `(job, period)` for `by`: true if this caller now holds it. A finished run is never
/// claimed again; an unfinished one only after its lease ran out.
pub async fn claim(
    db: &DatabaseConnection,
    job: &str,
    period: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let inserted = job_run::Entity::insert(job_run::ActiveModel {
        job: Set(job.into()),
        period: Set(period.into()),
        claimed_by: Set(by.into()),
        claimed_at: Set(now),
        finished_at: Set(None),
    })
    .exec(db)
    .await;
    match inserted {
        Ok(_) => return Ok(true),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e.into()),
    }
    // Take over a stale claim: one statement, so only one replica wins it.
    let result = job_run::Entity::update_many()
        .col_expr(
            job_run::Column::ClaimedBy,
            sea_orm::sea_query::Expr::value(by),
        )
        .col_expr(
            job_run::Column::ClaimedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Period.eq(period))
        .filter(job_run::Column::FinishedAt.is_null())
        .filter(job_run::Column::ClaimedAt.lt(now - CLAIM_LEASE))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn finished(
    db: &impl ConnectionTrait,
    job: &str,
    period: &str,
) -> Result<bool, StorageError> {
    Ok(job_run::Entity::find()
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Period.eq(period))
        .filter(job_run::Column::FinishedAt.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// Stores a month's snapshots and marks the run finished, in one transaction — but only if
/// `by` still holds the claim.
pub async fn store_month(
    db: &DatabaseConnection,
    job: &str,
    month: &str,
    by: &str,
    rows: Vec<stats_snapshot::Model>,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let txn = begin_write(db).await?;
    let result = job_run::Entity::update_many()
        .col_expr(
            job_run::Column::FinishedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Period.eq(month))
        .filter(job_run::Column::ClaimedBy.eq(by))
        .filter(job_run::Column::FinishedAt.is_null())
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    let chunk = if db.get_database_backend() == DbBackend::Sqlite {
        100
    } else {
        500
    };
    for part in rows.chunks(chunk) {
        stats_snapshot::Entity::insert_many(
            part.iter()
                .cloned()
                .map(sea_orm::IntoActiveModel::into_active_model)
                .collect::<Vec<_>>(),
        )
        .on_conflict(
            OnConflict::columns([
                stats_snapshot::Column::Month,
                stats_snapshot::Column::ScopeKind,
                stats_snapshot::Column::ScopeCode,
            ])
            .update_columns([
                stats_snapshot::Column::Stats,
                stats_snapshot::Column::ComputedAt,
            ])
            .to_owned(),
        )
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}
