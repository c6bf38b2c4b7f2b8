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
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{
    StorageError, begin_write,
    cases::{corrupt, event_active, reserve_events, to_case},
    entities::*,
    sql,
};
use crate::domain::{
    case::{self as rules, Case, NewEvent},
    directory::{Directory, center_code},
    rules::Rules,
    sla::{Clock, ClockKind, ClockOp, Level, Schedule, clock_unit},
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
    })
}

fn new_row(c: &Clock) -> sla_clock::ActiveModel {
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

/// The clocks a transition leaves: `existing` with `ops` applied. Returns the new clocks (id 0)
/// and the ids of existing ones to stop, with when.
fn plan_rows(
    case: &Case,
    existing: &[Clock],
    ops: &[ClockOp],
    rules: &Rules,
) -> (Vec<Clock>, Vec<(i64, DateTime<Utc>)>) {
    let mut clocks: Vec<Clock> = existing.to_vec();
    let first_new = clocks.len();
    let make = |clocks: &[Clock], kind: ClockKind, unit: &str, started: DateTime<Utc>| {
        let d = rules
            .policy
            .duration(kind, &case.category_code, case.tier, case.severity)?;
        let attempt = clocks
            .iter()
            .filter(|c| c.kind == kind && c.unit_code == unit && c.cycle == case.cycle)
            .count();
        let schedule = Schedule::new(&rules.calendar, started, d);
        Some(Clock {
            id: 0,
            case_id: case.id.clone(),
            kind,
            cycle: case.cycle,
            unit_code: unit.to_owned(),
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            duration: d,
            started_at: started,
            schedule,
            next_at: Some(schedule.warn_at),
            stage: 0,
            warned_at: None,
            breached_at: None,
            escalated_at: None,
            escalations: 0,
            stopped_at: None,
        })
    };
    let mut stopped: Vec<(usize, DateTime<Utc>)> = Vec::new();
    for op in ops {
        match op {
            ClockOp::Start {
                kind,
                unit_code,
                at,
            } => {
                let running = clocks.iter().any(|c| {
                    c.kind == *kind
                        && c.unit_code == *unit_code
                        && c.cycle == case.cycle
                        && c.stopped_at.is_none()
                });
                if !running && let Some(c) = make(&clocks, *kind, unit_code, *at) {
                    clocks.push(c);
                }
            }
            ClockOp::Completed {
                kind,
                started_at,
                at,
            } => {
                if let Some(mut c) = make(&clocks, *kind, "", *started_at) {
                    c.stopped_at = Some(*at);
                    c.next_at = None;
                    clocks.push(c);
                }
            }
            ClockOp::Stop {
                kind,
                unit_code,
                at,
            } => {
                for (i, c) in clocks.iter_mut().enumerate() {
                    if c.stopped_at.is_none()
                        && kind.is_none_or(|k| k == c.kind)
                        && unit_code.as_deref().is_none_or(|u| u == c.unit_code)
                    {
                        c.stopped_at = Some(*at);
                        c.next_at = None;
                        stopped.push((i, *at));
                    }
                }
            }
        }
    }
    let stop_existing = stopped
        .into_iter()
        .filter(|(i, _)| *i < first_new)
        .map(|(i, at)| (clocks[i].id, at))
        .collect();
    (clocks.split_off(first_new), stop_existing)
}

/// Applies a transition's clock operations inside its transaction.
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
    let (new, stop) = plan_rows(case, &all, ops, rules);
    for (id, at) in stop {
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
    if !new.is_empty() {
        sla_clock::Entity::insert_many(new.iter().map(new_row).collect::<Vec<_>>())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The clocks of newly created cases (no clocks yet), inserted together.
pub fn new_rows(cases: &[(&Case, Vec<ClockOp>)], rules: &Rules) -> Vec<sla_clock::ActiveModel> {
    let mut rows = Vec::new();
    for (case, ops) in cases {
        let (new, _) = plan_rows(case, &[], ops, rules);
        rows.extend(new.iter().map(new_row));
    }
    rows
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
}

/// The event of one level; `escalation` holds what an escalation did to the case.
fn level_event(
    clock: &Clock,
    level: Level,
    case: &Case,
    directory: &Directory,
    now: DateTime<Utc>,
    escalation: Option<serde_json::Value>,
) -> NewEvent {
    let unit = clock_unit(clock, case).to_owned();
    let unit_center = directory
        .unit(&unit)
        .map(|u| center_code(&u.region_code))
        .unwrap_or_else(|| center_code(&case.region_code));
    let mut details = serde_json::json!({
        "clock": clock.kind.as_str(),
        "cycle": clock.cycle,
        "unit_code": unit,
        "level": match level {
            Level::Warning => "warning",
            Level::Breach => "breach",
            Level::Escalation => "escalation",
            Level::SecondEscalation => "second_escalation",
        },
        "due_at": clock.schedule.due_at.to_rfc3339(),
        "level_at": clock.schedule.at(level).to_rfc3339(),
    });
    match level {
        Level::Warning => {
            details["notify"] = serde_json::json!([unit]);
        }
        // 督办: the unit and its region's center.
        Level::Breach => {
            let mut notify = vec![unit.clone()];
            if unit_center != unit {
                notify.push(unit_center);
            }
            details["notify"] = serde_json::json!(notify);
        }
        Level::Escalation | Level::SecondEscalation => {
            // 约谈: the unit's leader is flagged.
            details["interview_unit"] = serde_json::json!(unit);
        }
    }
    let reason = match level {
        Level::Warning => format!("{} clock at 80 %", clock.kind),
        Level::Breach => format!("{} clock overdue: 督办", clock.kind),
        Level::Escalation => format!("{} clock overdue by half its time: escalated", clock.kind),
        Level::SecondEscalation => {
            format!(
                "{} clock overdue by its whole time again: escalated",
                clock.kind
            )
        }
    };
    if let (Some(map), Some(serde_json::Value::Object(extra))) =
        (details.as_object_mut(), escalation)
    {
        map.extend(extra);
    }
    NewEvent::system(level.event_kind(), now)
        .reason(reason)
        .details(&details)
}

/// Escalates `case` one tier up: the parent region's center supervises it. A case's second
/// escalation is a red card. Returns what the escalation did (for its event's details) and the
/// events to append after the escalation event.
fn escalate(
    case: &mut Case,
    directory: &Directory,
    now: DateTime<Utc>,
) -> (serde_json::Value, Vec<NewEvent>) {
    let from = case.region_code.clone();
    if let Some(parent) = directory
        .region(&case.region_code)
        .and_then(|r| r.parent_code.clone())
    {
        case.region_code = parent;
    }
    case.escalation_level += 1;
    let done = serde_json::json!({
        "from_region": from,
        "to_region": case.region_code,
        "supervising_center": center_code(&case.region_code),
        "escalation_level": case.escalation_level,
    });
    let mut more = Vec::new();
    if case.escalation_level >= 2 && !case.red_card {
        case.red_card = true;
        more.push(
            NewEvent::system("red_card", now)
                .reason("second escalation: red card")
                .details(&serde_json::json!({
                    "escalation_level": case.escalation_level,
                    "unit_code": case.unit_code,
                })),
        );
    }
    (done, more)
}

/// Finds clocks due at `now` (oldest first, at most `limit`), and fires every level of them
/// that has come, in one transaction.
pub async fn fire_due(
    db: &DatabaseConnection,
    directory: &Directory,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Fired, StorageError> {
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
        return Ok(Fired::default());
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
    let mut fired = Fired {
        due: due.len(),
        skipped: wanted.len() - locked.len(),
        ..Fired::default()
    };
    if locked.is_empty() {
        txn.commit().await?;
        return Ok(fired);
    }
    // Read after the locks: what other replicas committed before is seen here.
    let clocks: Vec<Clock> = sla_clock::Entity::find()
        .filter(sla_clock::Column::CaseId.is_in(locked.clone()))
        .filter(sla_clock::Column::NextAt.lte(now))
        .order_by_asc(sla_clock::Column::NextAt)
        .all(&txn)
        .await?
        .into_iter()
        .map(to_clock)
        .collect::<Result<_, _>>()
        .map_err(corrupt)?;
    let mut cases: HashMap<String, Case> = HashMap::new();
    for m in case::Entity::find()
        .filter(case::Column::Id.is_in(locked))
        .all(&txn)
        .await?
    {
        let c = to_case(m).map_err(corrupt)?;
        cases.insert(c.id.clone(), c);
    }
    // What each due clock moves to; then one compare-and-set per chunk for all of them.
    struct Move {
        clock: Clock,
        levels: Vec<Level>,
        stage: i32,
    }
    let mut moves: Vec<Move> = Vec::new();
    for clock in clocks {
        if !cases.contains_key(&clock.case_id) {
            continue;
        }
        let mut stage = clock.stage;
        let mut levels: Vec<Level> = Vec::new();
        while let Some(level) = Level::after_stage(stage)
            && clock.schedule.at(level) <= now
        {
            levels.push(level);
            stage = level.stage();
        }
        if !levels.is_empty() {
            moves.push(Move {
                clock,
                levels,
                stage,
            });
        }
    }
    let mut moved: BTreeSet<i64> = BTreeSet::new();
    for chunk in moves.chunks(SET_CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
        for m in chunk {
            let c = &m.clock;
            let escalations = m
                .levels
                .iter()
                .filter(|l| matches!(l, Level::Escalation | Level::SecondEscalation))
                .count();
            let at = |level: Level| m.levels.contains(&level).then_some(now);
            values.extend([
                c.id.into(),
                c.stage.into(),
                m.stage.into(),
                c.schedule.next_after(m.stage).into(),
                c.warned_at.or(at(Level::Warning)).into(),
                c.breached_at.or(at(Level::Breach)).into(),
                (if escalations > 0 {
                    Some(now)
                } else {
                    c.escalated_at
                })
                .into(),
                (c.escalations + i32::try_from(escalations).unwrap_or(0)).into(),
            ]);
        }
        let rows = txn
            .query_all_raw(sql(
                backend,
                &format!(
                    "WITH v (id, old_stage, stage, next_at, warned_at, breached_at, escalated_at, \
                     escalations) AS (VALUES {}) \
                     UPDATE sla_clocks SET stage = v.stage, next_at = v.next_at, \
                     warned_at = v.warned_at, breached_at = v.breached_at, \
                     escalated_at = v.escalated_at, escalations = v.escalations \
                     FROM v WHERE sla_clocks.id = v.id AND sla_clocks.stage = v.old_stage \
                     AND sla_clocks.stopped_at IS NULL RETURNING sla_clocks.id",
                    placeholders(chunk.len(), 8)
                ),
                values,
            ))
            .await?;
        for r in rows {
            moved.insert(r.try_get_by_index::<i64>(0)?);
        }
    }

    let mut events: HashMap<String, Vec<NewEvent>> = HashMap::new();
    let mut escalated: BTreeSet<String> = BTreeSet::new();
    for m in moves.iter().filter(|m| moved.contains(&m.clock.id)) {
        let Some(case) = cases.get_mut(&m.clock.case_id) else {
            continue;
        };
        let list = events.entry(case.id.clone()).or_default();
        for &level in &m.levels {
            let (done, more) = if matches!(level, Level::Escalation | Level::SecondEscalation) {
                escalated.insert(case.id.clone());
                let (done, more) = escalate(case, directory, now);
                (Some(done), more)
            } else {
                (None, Vec::new())
            };
            list.push(level_event(&m.clock, level, case, directory, now, done));
            list.extend(more);
            fired.levels += 1;
        }
    }
    let total: usize = events.values().map(Vec::len).sum();
    if total > 0 {
        let mut seq = reserve_events(&txn, total).await?;
        let mut rows = Vec::with_capacity(total);
        // Case order, so sequence numbers follow a stable order within the batch.
        let mut ids: Vec<&String> = events.keys().collect();
        ids.sort();
        let mut updates: Vec<&Case> = Vec::with_capacity(ids.len());
        for id in ids {
            let (Some(case), Some(list)) = (cases.get_mut(id), events.get(id)) else {
                continue;
            };
            let chained = rules::chain(id, &case.last_event_hash, seq, list.clone());
            seq += i64::try_from(chained.len()).unwrap_or(0);
            if let Some(last) = chained.last() {
                case.last_event_hash = last.hash.clone();
            }
            // Warnings and notices change nothing a client acts on: the version stays, so no
            // one's update is refused for them. An escalation moves the case: new version.
            if escalated.contains(id) {
                case.version += 1;
                case.updated_at = now;
            }
            rows.extend(chained.iter().map(event_active));
        }
        for id in events.keys() {
            if let Some(case) = cases.get(id) {
                updates.push(case);
            }
        }
        for chunk in updates.chunks(SET_CHUNK) {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
            for c in chunk {
                values.extend([
                    c.id.as_str().into(),
                    c.last_event_hash.as_str().into(),
                    c.region_code.as_str().into(),
                    c.escalation_level.into(),
                    c.red_card.into(),
                    c.version.into(),
                    c.updated_at.into(),
                ]);
            }
            txn.execute_raw(sql(
                backend,
                &format!(
                    "WITH v (id, last_event_hash, region_code, escalation_level, red_card, \
                     version, updated_at) AS (VALUES {}) \
                     UPDATE cases SET last_event_hash = v.last_event_hash, \
                     region_code = v.region_code, escalation_level = v.escalation_level, \
                     red_card = v.red_card, version = v.version, updated_at = v.updated_at \
                     FROM v WHERE cases.id = v.id",
                    placeholders(chunk.len(), 7)
                ),
                values,
            ))
            .await?;
        }
        for chunk in rows.chunks(64) {
            case_event::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(fired)
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
                .to_owned(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_events_are_marked() {
        let e = NewEvent::system("sla_warning", Utc::now());
        assert_eq!(e.actor_role, "system");
        assert_eq!(e.actor_sub, "gridcase-sla");
    }
}
