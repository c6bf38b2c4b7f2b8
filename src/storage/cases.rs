//! The case tables: cases and events to rows and back, reads within a scope, appending a
//! transition's events, and the audit walk over every chain. Intake's batches are in
//! [`super::intake`].

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::{StorageError, begin_write, entities::*, sql};
use crate::domain::{
    case::{self as rules, Case, CaseStatus, Event, NewEvent, Pin, Position},
    directory::Tier,
    event::FeedEvent,
    rules::Rules,
    scope::Scope,
    sla as sla_rules,
};

fn db_err(e: sea_orm::DbErr) -> StorageError {
    StorageError::from(e)
}

/// Whether the error is a unique-constraint violation (a concurrent duplicate).
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Reserves `count` consecutive event sequence numbers; returns the first. The row lock it
/// takes is held to commit, so sequence order is commit order (what WatchEvents relies on).
pub(crate) async fn reserve_events(
    txn: &impl ConnectionTrait,
    count: usize,
) -> Result<i64, StorageError> {
    let n = i64::try_from(count).unwrap_or(i64::MAX);
    let row = txn
        .query_one_raw(sql(
            txn.get_database_backend(),
            "UPDATE sequences SET value = value + $1 WHERE name = 'events' RETURNING value",
            vec![n.into()],
        ))
        .await
        .map_err(db_err)?
        .ok_or_else(|| StorageError::corrupt("no events sequence"))?;
    let last: i64 = row.try_get_by_index(0).map_err(db_err)?;
    Ok(last - n + 1)
}

pub(crate) fn event_active(e: &Event) -> case_event::ActiveModel {
    sea_orm::IntoActiveModel::into_active_model(case_event::Model {
        seq: e.seq,
        case_id: e.case_id.clone(),
        kind: e.event.kind.as_str().to_owned(),
        actor_sub: e.event.actor_sub.clone(),
        actor_role: e.event.actor_role.clone(),
        at: e.event.at,
        from_status: e.event.from_status.map(|s| s.as_str().to_owned()),
        to_status: e.event.to_status.map(|s| s.as_str().to_owned()),
        reason: e.event.reason.clone(),
        details: e.event.details.clone(),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
        audience: e
            .event
            .audience
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok()),
    })
}

fn to_model(c: &Case) -> case::Model {
    let p = c.position;
    case::Model {
        id: c.id.clone(),
        code: c.code.clone(),
        status: c.status.as_str().to_owned(),
        source: c.source.as_str().to_owned(),
        category_code: c.category_code.clone(),
        severity: c.severity.as_str().to_owned(),
        description: c.description.clone(),
        city_code: c.chain[0].clone(),
        district_code: c.chain[1].clone(),
        township_code: c.chain[2].clone(),
        community_code: c.chain[3].clone(),
        grid_code: c.chain[4].clone(),
        region_code: c.region_code.clone(),
        tier: c.tier.as_str().to_owned(),
        unit_code: c.unit_code.clone(),
        lat: p.map(|p| p.lat),
        lon: p.map(|p| p.lon),
        geo_cell: p.map(|p| rules::geo_cell(p.lon, p.lat)),
        reported_lat: p.map(|p| p.reported_lat),
        reported_lon: p.map(|p| p.reported_lon),
        reported_coord_system: p.map(|p| p.coord_system.as_str().to_owned()),
        accuracy_m: p.map(|p| p.accuracy_m),
        snapped: c.snapped,
        snap_distance_m: c.snap_distance_m,
        address: c.address.clone(),
        reporter_sub: c.reporter_sub.clone(),
        reporter_phone: c.reporter_phone.clone(),
        reporter_name: c.reporter_name.clone(),
        captured_at: c.captured_at,
        received_at: c.received_at,
        updated_at: c.updated_at,
        version: c.version,
        cycle: c.cycle,
        reopen_count: c.reopen_count,
        escalation_level: c.escalation_level,
        red_card: c.red_card,
        merged_into: c.merged_into.clone(),
        possible_duplicate_of: c.possible_duplicate_of.clone(),
        resolution_text: c.resolution_text.clone(),
        external_source: c.external_source.clone(),
        external_id: c.external_id.clone(),
        client_report_id: c.client_report_id.clone(),
        request_hash: c.request_hash.clone(),
        attachment_ids: serde_json::to_string(&c.attachment_ids).unwrap_or_else(|_| "[]".into()),
        last_event_hash: c.last_event_hash.clone(),
        resolved_at: c.resolved_at,
        satisfaction: c
            .evaluation
            .as_ref()
            .map(|e| e.satisfaction.as_str().to_owned()),
        evaluation: c
            .evaluation
            .as_ref()
            .and_then(|e| serde_json::to_string(e).ok()),
        awaiting_since: c.awaiting_since,
        dispatched_at: c.dispatched_at,
        pending_request: c
            .request
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok()),
    }
}

pub(crate) fn to_active(c: &Case) -> case::ActiveModel {
    sea_orm::IntoActiveModel::into_active_model(to_model(c))
}

/// A stored row back to a case; a row that does not parse is corrupt storage.
pub fn to_case(m: case::Model) -> Result<Case, String> {
    let bad = |what: &str, e: String| format!("case {} {what}: {e}", m.id);
    let position = match (m.lat, m.lon, m.reported_lat, m.reported_lon) {
        (Some(lat), Some(lon), Some(reported_lat), Some(reported_lon)) => Some(Position {
            reported_lat,
            reported_lon,
            coord_system: m
                .reported_coord_system
                .as_deref()
                .unwrap_or("(none)")
                .parse()
                .map_err(|e| bad("reported_coord_system", e))?,
            accuracy_m: m.accuracy_m.unwrap_or(0.0),
            lat,
            lon,
        }),
        _ => None,
    };
    let evaluation = m
        .evaluation
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| bad("evaluation", e.to_string()))?;
    let request = m
        .pending_request
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| bad("pending_request", e.to_string()))?;
    Ok(Case {
        status: m.status.parse().map_err(|e| bad("status", e))?,
        source: m.source.parse().map_err(|e| bad("source", e))?,
        severity: m.severity.parse().map_err(|e| bad("severity", e))?,
        tier: m.tier.parse::<Tier>().map_err(|e| bad("tier", e))?,
        attachment_ids: serde_json::from_str(&m.attachment_ids)
            .map_err(|e| bad("attachments", e.to_string()))?,
        position,
        chain: [
            m.city_code,
            m.district_code,
            m.township_code,
            m.community_code,
            m.grid_code,
        ],
        id: m.id,
        code: m.code,
        category_code: m.category_code,
        description: m.description,
        region_code: m.region_code,
        unit_code: m.unit_code,
        snapped: m.snapped,
        snap_distance_m: m.snap_distance_m,
        address: m.address,
        reporter_sub: m.reporter_sub,
        reporter_phone: m.reporter_phone,
        reporter_name: m.reporter_name,
        captured_at: m.captured_at,
        received_at: m.received_at,
        updated_at: m.updated_at,
        version: m.version,
        cycle: m.cycle,
        reopen_count: m.reopen_count,
        escalation_level: m.escalation_level,
        red_card: m.red_card,
        merged_into: m.merged_into,
        possible_duplicate_of: m.possible_duplicate_of,
        resolution_text: m.resolution_text,
        external_source: m.external_source,
        external_id: m.external_id,
        client_report_id: m.client_report_id,
        request_hash: m.request_hash,
        last_event_hash: m.last_event_hash,
        assisting: Vec::new(),
        resolved_at: m.resolved_at,
        evaluation,
        awaiting_since: m.awaiting_since,
        dispatched_at: m.dispatched_at,
        request,
    })
}

/// Fills in the assisting units of `cases` (one query).
async fn attach_assists(db: &impl ConnectionTrait, cases: &mut [Case]) -> Result<(), StorageError> {
    if cases.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let rows = case_assist::Entity::find()
        .filter(case_assist::Column::CaseId.is_in(ids))
        .order_by_asc(case_assist::Column::SummonedAt)
        .order_by_asc(case_assist::Column::UnitCode)
        .all(db)
        .await?;
    for row in rows {
        if let Some(c) = cases.iter_mut().find(|c| c.id == row.case_id) {
            c.assisting.push(rules::Assist {
                unit_code: row.unit_code,
                summoned_at: row.summoned_at,
                checked_in_at: row.checked_in_at,
            });
        }
    }
    Ok(())
}

pub(crate) fn corrupt(e: String) -> StorageError {
    StorageError::Corrupt(e)
}

/// Locks a case's row until the transaction ends (PostgreSQL; SQLite's write transaction is
/// the lock already), so the SLA scan and a transition never chain events onto the same hash.
pub(crate) async fn lock_case(txn: &impl ConnectionTrait, id: &str) -> Result<(), StorageError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(sql(
            DbBackend::Postgres,
            "SELECT id FROM cases WHERE id = $1 FOR UPDATE",
            vec![id.into()],
        ))
        .await?;
    }
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Case>, StorageError> {
    let Some(mut case) = case::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(to_case)
        .transpose()
        .map_err(corrupt)?
    else {
        return Ok(None);
    };
    attach_assists(db, std::slice::from_mut(&mut case)).await?;
    Ok(Some(case))
}

/// A reporter's cases, newest first, after the `(received_at, id)` cursor.
pub async fn by_reporter(
    db: &impl ConnectionTrait,
    reporter_sub: &str,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<Case>, StorageError> {
    let filter = CaseFilter {
        scope: Scope::Reporter(reporter_sub.to_owned()),
        statuses: Vec::new(),
        region: None,
        unit_code: None,
        category_code: None,
        received_from: None,
        received_to: None,
        overdue_at: None,
    };
    list(db, &filter, after, limit).await
}

/// Appends events to a case whose stored version is `expected_version`, writing `updated` (the
/// case after the change, version bumped) in the same transaction. `Ok(None)`: the version moved.
pub async fn append(
    db: &DatabaseConnection,
    rules: &Rules,
    updated: &Case,
    expected_version: i64,
    events: Vec<NewEvent>,
) -> Result<Option<(Case, Vec<Event>)>, StorageError> {
    let txn = begin_write(db).await?;
    lock_case(&txn, &updated.id).await?;
    let Some(current) = get(&txn, &updated.id).await? else {
        return Ok(None);
    };
    if current.version != expected_version {
        return Ok(None);
    }
    let ops = sla_rules::plan(updated, &events);
    let first = reserve_events(&txn, events.len()).await?;
    let chained = rules::chain(&updated.id, &current.last_event_hash, first, events);
    let mut case = updated.clone();
    case.version = expected_version + 1;
    if let Some(last) = chained.last() {
        case.last_event_hash = last.hash.clone();
    }
    let result = case::Entity::update_many()
        .set(to_active_all(&case))
        .filter(case::Column::Id.eq(case.id.as_str()))
        .filter(case::Column::Version.eq(expected_version))
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        return Ok(None);
    }
    case_event::Entity::insert_many(chained.iter().map(event_active).collect::<Vec<_>>())
        .exec(&txn)
        .await?;
    if let Some(last) = chained.last() {
        notify_events(&txn, last.seq).await?;
    }
    if case.assisting != current.assisting {
        case_assist::Entity::delete_many()
            .filter(case_assist::Column::CaseId.eq(case.id.as_str()))
            .exec(&txn)
            .await?;
        if !case.assisting.is_empty() {
            case_assist::Entity::insert_many(case.assisting.iter().map(|a| {
                sea_orm::IntoActiveModel::into_active_model(case_assist::Model {
                    case_id: case.id.clone(),
                    unit_code: a.unit_code.clone(),
                    summoned_at: a.summoned_at,
                    checked_in_at: a.checked_in_at,
                })
            }))
            .exec(&txn)
            .await?;
        }
    }
    // The clocks this change starts run by the rules stored now, whichever replica changed
    // them: a snapshot that has not caught up yet is read afresh (rarely: only in the seconds
    // after a change).
    let fresh;
    let rules = if super::rules::version(&txn).await? > rules.version {
        fresh = Rules::build(
            super::rules::read(&txn).await?,
            rules.calendar.office_hours(),
        );
        &fresh
    } else {
        rules
    };
    super::sla::apply(&txn, &case, &ops, rules).await?;
    txn.commit().await?;
    Ok(Some((case, chained)))
}

fn to_active_all(c: &Case) -> case::ActiveModel {
    sea_orm::ActiveModelTrait::reset_all(to_active(c))
}

/// Every case's events in chain order, for `gridcase audit verify`; `case_id` narrows to one.
pub async fn events_of(db: &DatabaseConnection, case_id: &str) -> Result<Vec<Event>, StorageError> {
    case_event::Entity::find()
        .filter(case_event::Column::CaseId.eq(case_id))
        .order_by_asc(case_event::Column::Seq)
        .all(db)
        .await?
        .into_iter()
        .map(event_from)
        .collect::<Result<_, _>>()
        .map_err(corrupt)
}

pub fn event_from(m: case_event::Model) -> Result<Event, String> {
    let status = |s: Option<String>| -> Result<Option<CaseStatus>, String> {
        s.map(|s| s.parse()).transpose()
    };
    Ok(Event {
        seq: m.seq,
        case_id: m.case_id,
        prev_hash: m.prev_hash,
        hash: m.hash,
        event: NewEvent {
            kind: m.kind.parse()?,
            actor_sub: m.actor_sub,
            actor_role: m.actor_role,
            at: m.at,
            from_status: status(m.from_status)?,
            to_status: status(m.to_status)?,
            reason: m.reason,
            details: m.details,
            audience: m
                .audience
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| format!("event {} audience: {e}", m.seq))?,
        },
    })
}

/// Case ids and their chain anchors, in id order, after `after`, for walking every chain.
pub async fn anchors(
    db: &DatabaseConnection,
    after: &str,
    limit: u64,
) -> Result<Vec<(String, String, String)>, StorageError> {
    Ok(case::Entity::find()
        .select_only()
        .column(case::Column::Id)
        .column(case::Column::Code)
        .column(case::Column::LastEventHash)
        .filter(case::Column::Id.gt(after))
        .order_by_asc(case::Column::Id)
        .limit(limit)
        .into_tuple::<(String, String, String)>()
        .all(db)
        .await?)
}

/// Reads a case within its own read transaction (a consistent view of row and events).
pub async fn with_events(
    db: &DatabaseConnection,
    id: &str,
) -> Result<Option<(Case, Vec<Event>)>, StorageError> {
    let txn = db.begin().await?;
    let Some(case) = get(&txn, id).await? else {
        return Ok(None);
    };
    let events = case_event::Entity::find()
        .filter(case_event::Column::CaseId.eq(id))
        .order_by_asc(case_event::Column::Seq)
        .all(&txn)
        .await?
        .into_iter()
        .map(event_from)
        .collect::<Result<_, _>>()
        .map_err(corrupt)?;
    txn.commit().await?;
    Ok(Some((case, events)))
}

pub async fn insert_attachment(
    db: &impl ConnectionTrait,
    a: attachment::Model,
) -> Result<(), StorageError> {
    attachment::Entity::insert(sea_orm::IntoActiveModel::into_active_model(a))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn attachments(
    db: &impl ConnectionTrait,
    ids: &[String],
) -> Result<Vec<attachment::Model>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(attachment::Entity::find()
        .filter(attachment::Column::Id.is_in(ids.to_vec()))
        .all(db)
        .await?)
}

/// What `ListCases` asks for, within the caller's scope.
#[derive(Debug, Clone)]
pub struct CaseFilter {
    pub scope: Scope,
    pub statuses: Vec<CaseStatus>,
    /// A region subtree: the region's tier and code.
    pub region: Option<(Tier, String)>,
    pub unit_code: Option<String>,
    pub category_code: Option<String>,
    pub received_from: Option<DateTime<Utc>>,
    pub received_to: Option<DateTime<Utc>>,
    /// Only cases with a running SLA clock due at or before this time.
    pub overdue_at: Option<DateTime<Utc>>,
}

/// The column holding a case's region at `tier`.
fn tier_column(tier: Tier) -> case::Column {
    match tier {
        Tier::City => case::Column::CityCode,
        Tier::District => case::Column::DistrictCode,
        Tier::Township => case::Column::TownshipCode,
        Tier::Community => case::Column::CommunityCode,
        Tier::Grid => case::Column::GridCode,
    }
}

fn scope_condition(scope: &Scope) -> Condition {
    match scope {
        Scope::Grids { grids, reporter } => Condition::any()
            .add(case::Column::GridCode.is_in(grids.clone()))
            .add(case::Column::ReporterSub.eq(reporter.as_str())),
        Scope::Unit(unit) => Condition::any()
            .add(case::Column::UnitCode.eq(unit.as_str()))
            .add(
                case::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(case_assist::Column::CaseId)
                        .from(case_assist::Entity)
                        .and_where(case_assist::Column::UnitCode.eq(unit.as_str()))
                        .to_owned(),
                ),
            ),
        Scope::Region { code, tier } => Condition::all().add(tier_column(*tier).eq(code.as_str())),
        Scope::Reporter(sub) => Condition::all().add(case::Column::ReporterSub.eq(sub.as_str())),
        Scope::All => Condition::all(),
    }
}

/// The query for the cases matching `filter`.
fn filtered(filter: &CaseFilter) -> sea_orm::Select<case::Entity> {
    let mut query = case::Entity::find().filter(scope_condition(&filter.scope));
    if let Some(now) = filter.overdue_at {
        query = query.filter(super::sla::overdue_condition(now));
    }
    if !filter.statuses.is_empty() {
        query = query.filter(
            case::Column::Status.is_in(
                filter
                    .statuses
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
        );
    }
    if let Some((tier, code)) = &filter.region {
        query = query.filter(tier_column(*tier).eq(code.as_str()));
    }
    if let Some(unit) = &filter.unit_code {
        query = query.filter(case::Column::UnitCode.eq(unit.as_str()));
    }
    if let Some(category) = &filter.category_code {
        query = query.filter(case::Column::CategoryCode.eq(category.as_str()));
    }
    if let Some(from) = filter.received_from {
        query = query.filter(case::Column::ReceivedAt.gte(from));
    }
    if let Some(to) = filter.received_to {
        query = query.filter(case::Column::ReceivedAt.lt(to));
    }
    query
}

/// Cases matching `filter`, newest first, after the `(received_at, id)` cursor.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &CaseFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<Case>, StorageError> {
    let mut query = filtered(filter);
    if let Some((at, id)) = after {
        // `received_at <= at` says nothing the `OR` below does not, but the planner can bound
        // the scope index's scan with it: without it, page k read and discarded the k - 1
        // pages before it (a whole export of 1,000,000 cases: minutes of PostgreSQL time).
        query = query.filter(case::Column::ReceivedAt.lte(at)).filter(
            Condition::any().add(case::Column::ReceivedAt.lt(at)).add(
                Condition::all()
                    .add(case::Column::ReceivedAt.eq(at))
                    .add(case::Column::Id.lt(id)),
            ),
        );
    }
    let mut cases: Vec<Case> = query
        .order_by_desc(case::Column::ReceivedAt)
        .order_by_desc(case::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_case)
        .collect::<Result<_, _>>()
        .map_err(corrupt)?;
    attach_assists(db, &mut cases).await?;
    Ok(cases)
}

/// How late each case's running clocks are at `now` ([`sla_rules::lateness`], by the database):
/// for the cases of a page of a list.
pub async fn lateness_of(
    db: &impl ConnectionTrait,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, u8>, StorageError> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        // Each placeholder once, in order (SQLite's are positional): `now` twice.
        let mut values: Vec<sea_orm::Value> = vec![now.into(), now.into()];
        values.extend(chunk.iter().map(|id| id.as_str().into()));
        let rows = db
            .query_all_raw(sql(
                db.get_database_backend(),
                &format!(
                    "SELECT case_id, MAX(CASE WHEN due_at <= COALESCE(paused_at, $1) THEN 2 \
                     WHEN warn_at <= COALESCE(paused_at, $2) THEN 1 ELSE 0 END) \
                     FROM sla_clocks WHERE stopped_at IS NULL AND case_id IN ({}) \
                     GROUP BY case_id",
                    placeholders.join(", ")
                ),
                values,
            ))
            .await?;
        for r in rows {
            let id: String = r.try_get_by_index(0)?;
            let late: i32 = r.try_get_by_index(1)?;
            out.insert(id, u8::try_from(late).unwrap_or(0));
        }
    }
    Ok(out)
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct PinRow {
    id: String,
    code: String,
    status: String,
    lat: Option<f64>,
    lon: Option<f64>,
    category_code: String,
    unit_code: String,
    severity: String,
    grid_code: Option<String>,
    received_at: DateTime<Utc>,
    escalation_level: i32,
    red_card: bool,
}

/// The cases matching `filter` that have a position, newest first, at most `limit`, as pins.
pub async fn pins(
    db: &impl ConnectionTrait,
    filter: &CaseFilter,
    open_only: bool,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Pin>, StorageError> {
    let mut query = filtered(filter).filter(case::Column::Lat.is_not_null());
    if open_only {
        query = query.filter(
            case::Column::Status.is_in(
                CaseStatus::ALL
                    .into_iter()
                    .filter(|s| s.is_open())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
        );
    }
    let rows: Vec<PinRow> = query
        .select_only()
        .columns([
            case::Column::Id,
            case::Column::Code,
            case::Column::Status,
            case::Column::Lat,
            case::Column::Lon,
            case::Column::CategoryCode,
            case::Column::UnitCode,
            case::Column::Severity,
            case::Column::GridCode,
            case::Column::ReceivedAt,
            case::Column::EscalationLevel,
            case::Column::RedCard,
        ])
        .order_by_desc(case::Column::ReceivedAt)
        .order_by_desc(case::Column::Id)
        .limit(limit)
        .into_model::<PinRow>()
        .all(db)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let late = lateness_of(db, &ids, now).await?;
    rows.into_iter()
        .map(|r| {
            let bad = |what: &str, e: String| corrupt(format!("case {} {what}: {e}", r.id));
            Ok(Pin {
                status: r.status.parse().map_err(|e| bad("status", e))?,
                severity: r.severity.parse().map_err(|e| bad("severity", e))?,
                lat: r.lat.unwrap_or_default(),
                lon: r.lon.unwrap_or_default(),
                sla: sla_rules::SlaState::of(
                    r.red_card,
                    r.escalation_level,
                    late.get(&r.id).copied().unwrap_or(0),
                ),
                id: r.id,
                code: r.code,
                category_code: r.category_code,
                unit_code: r.unit_code,
                grid_code: r.grid_code,
                received_at: r.received_at,
            })
        })
        .collect()
}

/// The channel every replica listens on (PostgreSQL): each transaction that appends events
/// notifies it with the last sequence it took, delivered at commit, in commit order.
pub const EVENTS_CHANNEL: &str = "gridcase_events";

/// Tells every replica's event feed that events up to `last_seq` are committed once the
/// transaction commits (PostgreSQL; SQLite's feed is woken in-process).
pub(crate) async fn notify_events(
    txn: &impl ConnectionTrait,
    last_seq: i64,
) -> Result<(), StorageError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(sql(
            DbBackend::Postgres,
            &format!("SELECT pg_notify('{EVENTS_CHANNEL}', $1)"),
            vec![last_seq.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// The last sequence number committed events hold (0 before any).
pub async fn last_event_seq(db: &impl ConnectionTrait) -> Result<i64, StorageError> {
    let row = db
        .query_one_raw(sql(
            db.get_database_backend(),
            "SELECT value FROM sequences WHERE name = 'events'",
            vec![],
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    })
}

/// Every event after `after`, in sequence order, at most `limit`, with what a follower needs of
/// its case: what the event feed reads and filters by scope.
pub async fn feed_after(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<FeedEvent>, StorageError> {
    let rows = db
        .query_all_raw(sql(
            db.get_database_backend(),
            "SELECT e.seq, e.case_id, e.kind, e.actor_sub, e.actor_role, e.at, e.from_status, \
             e.to_status, e.reason, e.details, e.prev_hash, e.hash, e.audience, c.code, \
             c.city_code, c.district_code, c.township_code, c.community_code, c.grid_code, \
             c.reporter_sub, c.unit_code \
             FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
            vec![
                after.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut legacy: Vec<String> = Vec::new();
    for r in rows {
        let m = case_event::Model {
            seq: r.try_get_by_index(0)?,
            case_id: r.try_get_by_index(1)?,
            kind: r.try_get_by_index(2)?,
            actor_sub: r.try_get_by_index(3)?,
            actor_role: r.try_get_by_index(4)?,
            at: r.try_get_by_index(5)?,
            from_status: r.try_get_by_index(6)?,
            to_status: r.try_get_by_index(7)?,
            reason: r.try_get_by_index(8)?,
            details: r.try_get_by_index(9)?,
            prev_hash: r.try_get_by_index(10)?,
            hash: r.try_get_by_index(11)?,
            audience: r.try_get_by_index(12)?,
        };
        let event = event_from(m).map_err(corrupt)?;
        let units = match &event.event.audience {
            Some(a) => a.units.clone(),
            None => {
                legacy.push(event.case_id.clone());
                vec![r.try_get_by_index::<String>(20)?]
            }
        };
        out.push(FeedEvent {
            case_code: r.try_get_by_index(13)?,
            chain: [
                r.try_get_by_index(14)?,
                r.try_get_by_index(15)?,
                r.try_get_by_index(16)?,
                r.try_get_by_index(17)?,
                r.try_get_by_index(18)?,
            ],
            reporter_sub: r.try_get_by_index(19)?,
            units,
            event,
        });
    }
    // Events stored before audiences were: the case's assisting units now stand in.
    if !legacy.is_empty() {
        legacy.sort();
        legacy.dedup();
        for row in case_assist::Entity::find()
            .filter(case_assist::Column::CaseId.is_in(legacy))
            .all(db)
            .await?
        {
            for f in out
                .iter_mut()
                .filter(|f| f.event.case_id == row.case_id && f.event.event.audience.is_none())
            {
                f.units.push(row.unit_code.clone());
            }
        }
    }
    Ok(out)
}
