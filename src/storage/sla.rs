//! The SLA clock table: clocks started and stopped in the same transaction as the transition
//! that moves them, and the scan that fires each level of each clock exactly once.
//!
//! Exactly once is the database's doing. A scan locks the cases it works on (on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so replicas split the work instead of queueing; on SQLite the write
//! transaction is the lock), then moves each clock's `stage` with a compare-and-set
//! (`WHERE stage = old`) in the same transaction as the events it appends. A level whose stage
//! moved is never fired again, by this replica or any other, however late it runs.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{
    StorageError, begin_write,
    cases::{corrupt, event_active, reserve_events, to_case},
    entities::*,
    sql,
};
use crate::domain::{
    case::Case,
    event::{self, NewEvent},
    rules::Rules,
    sla::{self, Clock, ClockMove, ClockOp, ClockResume, Schedule},
    workflow,
};

pub fn to_clock(m: sla_clock::Model) -> Result<Clock, String> {
    let bad = |what: &str, e: String| format!("clock {} {what}: {e}", m.id);
    Ok(Clock {
        kind: m.kind.parse().map_err(|e| bad("kind", e))?,
        duration: m.duration.parse().map_err(|e| bad("duration", e))?,
        id: m.id,
        case_id: m.case_id,
        cycle: m.cycle,
        unit_code: m.unit_code,
        attempt: m.attempt,
        started_at: m.started_at,
        schedule: Schedule {
            due_at: m.due_at,
            warn_at: m.warn_at,
            escalate_at: m.escalate_at,
            red_card_at: m.red_card_at,
        },
        next_at: m.next_at,
        stage: m.stage,
        warned_at: m.warned_at,
        breached_at: m.breached_at,
        escalated_at: m.escalated_at,
        escalations: m.escalations,
        stopped_at: m.stopped_at,
        paused_at: m.paused_at,
        extensions: m.extensions,
        base_due_at: m.base_due_at,
    })
}

pub(crate) fn new_row(c: &Clock) -> sla_clock::ActiveModel {
    sla_clock::ActiveModel {
        case_id: Set(c.case_id.clone()),
        kind: Set(c.kind.as_str().into()),
        cycle: Set(c.cycle),
        unit_code: Set(c.unit_code.clone()),
        attempt: Set(c.attempt),
        duration: Set(c.duration.to_string()),
        started_at: Set(c.started_at),
        due_at: Set(c.schedule.due_at),
        warn_at: Set(c.schedule.warn_at),
        escalate_at: Set(c.schedule.escalate_at),
        red_card_at: Set(c.schedule.red_card_at),
        next_at: Set(c.next_at),
        stage: Set(c.stage),
        warned_at: Set(None),
        breached_at: Set(None),
        escalated_at: Set(None),
        escalations: Set(0),
        stopped_at: Set(c.stopped_at),
        paused_at: Set(c.paused_at),
        extensions: Set(c.extensions),
        base_due_at: Set(c.base_due_at),
        ..Default::default()
    }
}

/// Every clock of a case, oldest first.
pub async fn clocks_of(
    db: &impl ConnectionTrait,
    case_id: &str,
) -> Result<Vec<Clock>, StorageError> {
    sla_clock::Entity::find()
        .filter(sla_clock::Column::CaseId.eq(case_id))
        .order_by_asc(sla_clock::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(to_clock)
        .collect::<Result<_, _>>()
        .map_err(corrupt)
}

/// Applies a transition's clock operations inside its transaction, as the domain plans them
/// from the case's clocks read here ([`sla::clock_changes`]).
pub async fn apply(
    txn: &impl ConnectionTrait,
    case: &Case,
    ops: &[ClockOp],
    rules: &Rules,
) -> Result<(), StorageError> {
    if ops.is_empty() {
        return Ok(());
    }
    // A case has a handful of clocks; attempts count the stopped ones too.
    let all = clocks_of(txn, &case.id).await?;
    let changes = sla::clock_changes(case, &all, ops, &rules.policy, &rules.calendar);
    for (id, at) in changes.stopped {
        sla_clock::Entity::update_many()
            .col_expr(sla_clock::Column::StoppedAt, Expr::value(at))
            .col_expr(
                sla_clock::Column::NextAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(sla_clock::Column::Id.eq(id))
            .filter(sla_clock::Column::StoppedAt.is_null())
            .exec(txn)
            .await?;
    }
    // Paused, resumed and extended clocks (a clock stopped while paused was resumed at its
    // stop first).
    for c in &changes.updated {
        rescheduled(c).exec(txn).await?;
    }
    if !changes.started.is_empty() {
        sla_clock::Entity::insert_many(changes.started.iter().map(new_row).collect::<Vec<_>>())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The update that stores a stored clock's times as `c` has them now (paused, resumed or
/// extended): its schedule, next level, pause and extensions.
fn rescheduled(c: &Clock) -> sea_orm::UpdateMany<sla_clock::Entity> {
    sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::DueAt, Expr::value(c.schedule.due_at))
        .col_expr(sla_clock::Column::WarnAt, Expr::value(c.schedule.warn_at))
        .col_expr(
            sla_clock::Column::EscalateAt,
            Expr::value(c.schedule.escalate_at),
        )
        .col_expr(
            sla_clock::Column::RedCardAt,
            Expr::value(c.schedule.red_card_at),
        )
        .col_expr(sla_clock::Column::NextAt, Expr::value(c.next_at))
        .col_expr(sla_clock::Column::PausedAt, Expr::value(c.paused_at))
        .col_expr(sla_clock::Column::Extensions, Expr::value(c.extensions))
        .col_expr(sla_clock::Column::BaseDueAt, Expr::value(c.base_due_at))
        .filter(sla_clock::Column::Id.eq(c.id))
}

/// The clock rows of newly created cases (no clocks yet), for inserting together.
pub fn new_rows(cases: &[(&Case, Vec<ClockOp>)], rules: &Rules) -> Vec<sla_clock::ActiveModel> {
    let mut rows = Vec::new();
    for (case, ops) in cases {
        let changes = sla::clock_changes(case, &[], ops, &rules.policy, &rules.calendar);
        rows.extend(changes.started.iter().map(new_row));
    }
    rows
}

/// What a scan found due, under its locks.
#[derive(Debug, Default)]
pub struct Due {
    /// The due clocks of the locked cases, oldest level first.
    pub clocks: Vec<Clock>,
    /// The locked cases, by id.
    pub cases: HashMap<String, Case>,
    /// Clocks found due before locking.
    pub due: usize,
    /// Due cases skipped because another replica holds them.
    pub skipped: usize,
}

/// One scan's transaction: the cases it works on are locked until it commits (on PostgreSQL
/// `FOR UPDATE SKIP LOCKED`, so replicas split the work; on SQLite the write transaction is
/// the lock), so neither another replica's scan nor a person's transition chains onto the
/// same hash meanwhile.
#[derive(Debug)]
pub struct Scan {
    txn: DatabaseTransaction,
}

/// Finds clocks due at `now` (oldest first, at most `limit`), locks their cases and reads them
/// and their due clocks. `None`: nothing is due.
pub async fn begin_scan(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Option<(Scan, Due)>, StorageError> {
    let backend = db.get_database_backend();
    let due: Vec<String> = sla_clock::Entity::find()
        .select_only()
        .column(sla_clock::Column::CaseId)
        .filter(sla_clock::Column::NextAt.lte(now))
        .order_by_asc(sla_clock::Column::NextAt)
        .limit(limit)
        .into_tuple::<String>()
        .all(db)
        .await?;
    if due.is_empty() {
        return Ok(None);
    }
    let wanted: BTreeSet<String> = due.iter().cloned().collect();
    let txn = begin_write(db).await?;
    let locked: Vec<String> = if backend == DbBackend::Postgres {
        let ids: Vec<sea_orm::Value> = wanted.iter().map(|s| s.as_str().into()).collect();
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        txn.query_all_raw(sql(
            backend,
            &format!(
                "SELECT id FROM cases WHERE id IN ({}) ORDER BY id FOR UPDATE SKIP LOCKED",
                placeholders.join(", ")
            ),
            ids,
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?
    } else {
        wanted.iter().cloned().collect()
    };
    let mut found = Due {
        due: due.len(),
        skipped: wanted.len() - locked.len(),
        ..Due::default()
    };
    if !locked.is_empty() {
        // Read after the locks: what other replicas committed before is seen here.
        found.clocks = sla_clock::Entity::find()
            .filter(sla_clock::Column::CaseId.is_in(locked.clone()))
            .filter(sla_clock::Column::NextAt.lte(now))
            .order_by_asc(sla_clock::Column::NextAt)
            .all(&txn)
            .await?
            .into_iter()
            .map(to_clock)
            .collect::<Result<_, _>>()
            .map_err(corrupt)?;
        for m in case::Entity::find()
            .filter(case::Column::Id.is_in(locked))
            .all(&txn)
            .await?
        {
            let c = to_case(m).map_err(corrupt)?;
            found.cases.insert(c.id.clone(), c);
        }
    }
    Ok(Some((Scan { txn }, found)))
}

impl Scan {
    /// Moves each clock to its new stage with a compare-and-set on the stage it was read at;
    /// returns the ids of the clocks moved. A level whose stage moved meanwhile is never fired
    /// again, by this replica or any other, however late it runs.
    pub async fn move_clocks(&self, moves: &[ClockMove]) -> Result<BTreeSet<i64>, StorageError> {
        let backend = self.txn.get_database_backend();
        let mut moved: BTreeSet<i64> = BTreeSet::new();
        for chunk in moves.chunks(SET_CHUNK) {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
            for m in chunk {
                values.extend([
                    m.clock.id.into(),
                    m.from_stage.into(),
                    m.stage.into(),
                    m.next_at.into(),
                    m.warned_at.into(),
                    m.breached_at.into(),
                    m.escalated_at.into(),
                    m.escalations.into(),
                ]);
            }
            let rows = self
                .txn
                .query_all_raw(sql(
                    backend,
                    &format!(
                        "WITH v (id, old_stage, stage, next_at, warned_at, breached_at, \
                         escalated_at, escalations) AS (VALUES {}) \
                         UPDATE sla_clocks SET stage = v.stage, next_at = v.next_at, \
                         warned_at = v.warned_at, breached_at = v.breached_at, \
                         escalated_at = v.escalated_at, escalations = v.escalations \
                         FROM v WHERE sla_clocks.id = v.id AND sla_clocks.stage = v.old_stage \
                         AND sla_clocks.stopped_at IS NULL AND sla_clocks.paused_at IS NULL \
                         RETURNING sla_clocks.id",
                        placeholders(chunk.len(), 8)
                    ),
                    values,
                ))
                .await?;
            for r in rows {
                moved.insert(r.try_get_by_index::<i64>(0)?);
            }
        }
        Ok(moved)
    }

    /// Ends the pauses that reached their limit: each clock resumed as the domain says
    /// ([`sla::pause_ended`]), with a compare-and-set on the `paused_at` it was read with, so a
    /// pause ends by itself once, on one replica, and never after a person resumed it. Returns
    /// the ids of the clocks resumed.
    pub async fn resume_clocks(
        &self,
        resumes: &[ClockResume],
    ) -> Result<BTreeSet<i64>, StorageError> {
        let mut resumed: BTreeSet<i64> = BTreeSet::new();
        for r in resumes {
            let c = &r.resumed;
            let result = rescheduled(c)
                .filter(sla_clock::Column::PausedAt.eq(r.paused_at))
                .filter(sla_clock::Column::StoppedAt.is_null())
                .exec(&self.txn)
                .await?;
            if result.rows_affected == 1 {
                resumed.insert(c.id);
            }
        }
        Ok(resumed)
    }

    /// Appends each case's events to its chain and stores the case as the domain left it
    /// ([`record`]).
    pub async fn record(&self, changes: Vec<(Case, Vec<NewEvent>)>) -> Result<(), StorageError> {
        record(&self.txn, changes).await
    }

    pub async fn commit(self) -> Result<(), StorageError> {
        Ok(self.txn.commit().await?)
    }
}

/// Appends each case's events to its chain and stores the case as the domain left it, in the
/// caller's transaction (which holds the cases' locks). The version moves only for a change
/// that moves the case ([`workflow::moves_case`]): no one's command is refused as stale for a
/// warning, a notice or an alert.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    changes: Vec<(Case, Vec<NewEvent>)>,
) -> Result<(), StorageError> {
    let backend = txn.get_database_backend();
    let total: usize = changes.iter().map(|(_, e)| e.len()).sum();
    if total == 0 {
        return Ok(());
    }
    let mut seq = reserve_events(txn, total).await?;
    let mut rows = Vec::with_capacity(total);
    let mut cases: Vec<Case> = Vec::with_capacity(changes.len());
    // Case order, so sequence numbers follow a stable order within the scan.
    let mut changes = changes;
    changes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (mut case, events) in changes {
        if events.is_empty() {
            continue;
        }
        if workflow::moves_case(&events) {
            case.version += 1;
        }
        let chained = event::chain(&case.id, &case.last_event_hash, seq, events);
        seq += i64::try_from(chained.len()).unwrap_or(0);
        if let Some(last) = chained.last() {
            case.last_event_hash = last.hash.clone();
        }
        rows.extend(chained.iter().map(event_active));
        cases.push(case);
    }
    for chunk in cases.chunks(SET_CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
        for c in chunk {
            values.extend([
                c.id.as_str().into(),
                c.last_event_hash.as_str().into(),
                c.region_code.as_str().into(),
                c.escalation_level.into(),
                c.red_card.into(),
                c.version.into(),
                c.updated_at.into(),
                c.awaiting_since.into(),
            ]);
        }
        txn.execute_raw(sql(
            backend,
            &format!(
                "WITH v (id, last_event_hash, region_code, escalation_level, red_card, \
                     version, updated_at, awaiting_since) AS (VALUES {}) \
                     UPDATE cases SET last_event_hash = v.last_event_hash, \
                     region_code = v.region_code, escalation_level = v.escalation_level, \
                     red_card = v.red_card, version = v.version, updated_at = v.updated_at, \
                     awaiting_since = v.awaiting_since \
                     FROM v WHERE cases.id = v.id",
                placeholders(chunk.len(), 8)
            ),
            values,
        ))
        .await?;
    }
    let last = seq - 1;
    for chunk in rows.chunks(64) {
        case_event::Entity::insert_many(chunk.to_vec())
            .exec(txn)
            .await?;
    }
    super::cases::notify_events(txn, last).await?;
    Ok(())
}

/// The SLA backlog at `now`: how many levels have come and wait to be fired, and since when
/// the oldest has.
pub async fn backlog(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<(i64, Option<DateTime<Utc>>), StorageError> {
    let row = db
        .query_one_raw(sql(
            db.get_database_backend(),
            "SELECT COUNT(*), MIN(next_at) FROM sla_clocks WHERE next_at <= $1",
            vec![now.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => (r.try_get_by_index(0)?, r.try_get_by_index(1)?),
        None => (0, None),
    })
}

/// Rows per set-based statement: 8 parameters a row stays far inside both databases' limits.
const SET_CHUNK: usize = 250;

/// `($1, $2, …), ($k, …)` for `rows` rows of `cols` parameters.
fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subquery condition "has a running clock past due at `now`", for overdue lists.
pub fn overdue_condition(now: DateTime<Utc>) -> sea_orm::Condition {
    use sea_orm::sea_query::Query;
    sea_orm::Condition::all().add(
        Expr::col((case::Entity, case::Column::Id)).in_subquery(
            Query::select()
                .column(sla_clock::Column::CaseId)
                .from(sla_clock::Entity)
                .and_where(Expr::col(sla_clock::Column::StoppedAt).is_null())
                .and_where(Expr::col(sla_clock::Column::DueAt).lte(now))
                // A paused clock stands where it stood when it paused.
                .cond_where(
                    sea_orm::Condition::any()
                        .add(Expr::col(sla_clock::Column::PausedAt).is_null())
                        .add(
                            Expr::col(sla_clock::Column::DueAt)
                                .lte(Expr::col(sla_clock::Column::PausedAt)),
                        ),
                )
                .to_owned(),
        ),
    )
}
