//! The case tables: batched intake (all of a batch or none of it), reads, appending events, and
//! the audit walk over every chain.

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::{StorageError, TableJson, begin_write, entities::*, insert_json, insert_rows, sql};
use crate::domain::rules::Rules;
use crate::domain::{
    case::{self as rules, Case, CaseStatus, Event, NewEvent, Position},
    directory::Tier,
    scope::Scope,
    sla as sla_rules,
};

/// A case ready to be stored but for its code and its events' sequence numbers.
#[derive(Debug, Clone)]
pub struct Draft {
    pub case: Case,
    pub events: Vec<NewEvent>,
    /// The district (or, for cases outside every district, the root region) whose code the
    /// case code starts with, and the day (Asia/Shanghai) it was received.
    pub code_prefix: String,
    pub day: NaiveDate,
}

/// What became of one draft.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created(Case),
    /// A retry: the case made by the first try with the same key and content.
    Existing(Case),
    /// The same key was used before with different content.
    Conflict(String),
}

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

/// Case-code numbers handed out from blocks reserved in the database, so the counter row of a
/// district and day is locked for one short statement per block rather than for every intake
/// transaction. Codes stay unique across replicas; a block unused at shutdown leaves a gap.
#[derive(Debug, Default)]
pub struct CodeBlocks {
    /// scope → (next number, end of block, exclusive)
    blocks: std::sync::Mutex<HashMap<String, (i64, i64)>>,
}

/// Numbers reserved at a time per district and day.
const CODE_BLOCK: usize = 64;

impl CodeBlocks {
    /// `count` fresh numbers for `scope`.
    pub async fn take(
        &self,
        db: &impl ConnectionTrait,
        scope: &str,
        count: usize,
    ) -> Result<Vec<i64>, StorageError> {
        let mut out = Vec::with_capacity(count);
        loop {
            {
                let mut blocks = self
                    .blocks
                    .lock()
                    .map_err(|_| corrupt("code blocks poisoned".into()))?;
                if let Some((next, end)) = blocks.get_mut(scope) {
                    while out.len() < count && *next < *end {
                        out.push(*next);
                        *next += 1;
                    }
                }
                // Keep only today's scopes (and whatever is in use): older days never come back.
                if blocks.len() > 1024 {
                    blocks.retain(|_, (next, end)| next < end);
                }
            }
            if out.len() == count {
                return Ok(out);
            }
            let want = (count - out.len()).max(CODE_BLOCK);
            // Its own statement, committed at once: the counter row is locked only briefly.
            let first = reserve_codes(db, scope, want).await?;
            let end = first + i64::try_from(want).unwrap_or(i64::MAX);
            let mut blocks = self
                .blocks
                .lock()
                .map_err(|_| corrupt("code blocks poisoned".into()))?;
            blocks.insert(scope.to_owned(), (first, end));
        }
    }
}

/// Reserves `count` case codes for a prefix and day; returns the first sequence number.
async fn reserve_codes(
    txn: &impl ConnectionTrait,
    scope: &str,
    count: usize,
) -> Result<i64, StorageError> {
    let n = i64::try_from(count).unwrap_or(i64::MAX);
    let row = txn
        .query_one_raw(sql(
            txn.get_database_backend(),
            "INSERT INTO case_code_counters (scope, last) VALUES ($1, $2) \
             ON CONFLICT (scope) DO UPDATE SET last = case_code_counters.last + excluded.last \
             RETURNING last",
            vec![scope.into(), n.into()],
        ))
        .await
        .map_err(db_err)?
        .ok_or_else(|| StorageError::corrupt("no code counter"))?;
    let last: i64 = row.try_get_by_index(0).map_err(db_err)?;
    Ok(last - n + 1)
}

/// An idempotency key: kind 0 is [reporter, client report id], kind 1 is [gateway, source,
/// external id]. Tickets are keyed per gateway: two gateways of one source number their
/// tickets independently, and neither ever meets the other's case (DESIGN.md "Integrations").
type Key = (u8, Vec<String>);

/// The idempotency key of a draft: client report id per reporter, or ticket per gateway.
fn key_of(c: &Case) -> Option<Key> {
    if let Some(id) = &c.client_report_id {
        return Some((0, vec![c.reporter_sub.clone(), id.clone()]));
    }
    match (&c.external_source, &c.external_id) {
        (Some(s), Some(id)) => Some((1, vec![c.reporter_sub.clone(), s.clone(), id.clone()])),
        _ => None,
    }
}

/// The columns each kind of key matches, in the order of its parts; each kind has a unique
/// index over them.
const KEY_COLUMNS: [&[&str]; 2] = [
    &["reporter_sub", "client_report_id"],
    &["reporter_sub", "external_source", "external_id"],
];

/// A duplicate candidate: an open case's id, category item, longitude and latitude.
type Candidate = (String, String, f64, f64);

/// What the database holds that bears on a batch: the stored cases holding any of its keys,
/// and the open cases near its positions.
#[derive(Default)]
struct Found {
    stored: HashMap<Key, Case>,
    candidates: Vec<Candidate>,
}

impl Found {
    fn add_stored(&mut self, rows: Vec<case::Model>) -> Result<(), sea_orm::DbErr> {
        for m in rows {
            let c = to_case(m).map_err(sea_orm::DbErr::Custom)?;
            if let Some(k) = key_of(&c) {
                self.stored.insert(k, c);
            }
        }
        Ok(())
    }
}

/// The keys of one kind as arrays of their parts, for a JSON parameter.
fn pairs_of(keys: &[Key], kind: u8) -> Vec<&[String]> {
    keys.iter()
        .filter(|k| k.0 == kind)
        .map(|k| k.1.as_slice())
        .collect()
}

/// The duplicate search a batch needs: its (item, cell) pairs and the oldest `received_at` it
/// looks back to; `None` when no draft has a position.
struct NearbySearch {
    pairs: Vec<(String, i64)>,
    since: DateTime<Utc>,
}

impl NearbySearch {
    fn of(drafts: &[Draft]) -> Option<NearbySearch> {
        let mut pairs: Vec<(String, i64)> = Vec::new();
        let mut since: Option<DateTime<Utc>> = None;
        for d in drafts {
            let Some(p) = d.case.position else { continue };
            pairs.extend(
                rules::duplicate_cells(&p)
                    .into_iter()
                    .map(|cell| (d.case.category_code.clone(), cell)),
            );
            let from = d.case.received_at - chrono::Duration::hours(rules::DUPLICATE_WINDOW_HOURS);
            since = Some(since.map_or(from, |s| s.min(from)));
        }
        pairs.sort_unstable();
        pairs.dedup();
        Some(NearbySearch {
            pairs,
            since: since?,
        })
    }
}

/// Stores a batch of drafts: each is created, found to be a retry of a stored case, or a
/// conflict. Nothing of the batch is stored unless all of it is. A unique violation (another
/// writer stored the same key meanwhile) fails the whole batch; the caller retries its drafts
/// one by one.
///
/// On PostgreSQL a batch is two statements: one reads (keys and duplicate candidates), one
/// writes every row and commits on its own. Every round trip adds to every request of the
/// batch, and under load it wakes a backend and a task on cores the whole machine shares, so
/// it costs more than its network time. Reading outside the write changes nothing under READ
/// COMMITTED, where every statement of a transaction takes a fresh snapshot anyway; the
/// unique keys, not the read, keep a key to one case. On SQLite the batch is one immediate
/// transaction: statements are in-process calls there, and the write lock taken first makes
/// the reads exact.
pub async fn insert_batch(
    session: &super::WriterSession,
    codes: &CodeBlocks,
    rules: &Rules,
    drafts: Vec<Draft>,
) -> Result<Vec<Outcome>, sea_orm::DbErr> {
    match session {
        super::WriterSession::Postgres { reads, writes } => {
            let checked = check_postgres(reads, codes, rules, drafts).await?;
            store_postgres(writes, checked).await
        }
        super::WriterSession::Shared(db) => {
            let mut drafts = drafts;
            take_codes(db, codes, &mut drafts).await?;
            let keys: Vec<Key> = drafts.iter().filter_map(|d| key_of(&d.case)).collect();
            let nearby = NearbySearch::of(&drafts);
            let txn = begin_write(db).await?;
            let found = lookup_sqlite(&txn, &keys, nearby.as_ref()).await?;
            let mut batch = Batch::plan(&mut drafts, found);
            // One writer at a time: the events are numbered now.
            let seq = match batch.event_count(&drafts) {
                0 => 0,
                n => reserve_events(&txn, n)
                    .await
                    .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?,
            };
            if let Some(rows) = batch.rows(&mut drafts, rules, seq)? {
                insert_rows(&txn, rows.cases).await?;
                insert_rows(&txn, rows.events).await?;
                insert_rows(&txn, rows.clocks).await?;
            }
            txn.commit().await?;
            Ok(batch.finish(&drafts))
        }
    }
}

/// A PostgreSQL batch read and planned ([`check_postgres`]), ready to be written
/// ([`store_postgres`]).
pub struct Checked {
    drafts: Vec<Draft>,
    batch: Batch,
    /// The cases' and clocks' rows, and the events'; `None` when every draft was a retry.
    rows: Option<(Vec<TableJson>, Option<TableJson>)>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("drafts", &self.drafts.len())
            .finish_non_exhaustive()
    }
}

/// The first half of a PostgreSQL batch, on the read connection: case codes, the one read
/// (keys and duplicate candidates), and the rows to write. It reads only committed cases, so
/// it may run while the batch before is being written: a key that batch is storing is then
/// found by the unique index when this one is written, and the batch is retried draft by
/// draft, which finds it stored.
pub async fn check_postgres(
    reads: &super::held::HeldConnection,
    codes: &CodeBlocks,
    rules: &Rules,
    drafts: Vec<Draft>,
) -> Result<Checked, sea_orm::DbErr> {
    let mut drafts = drafts;
    take_codes(reads, codes, &mut drafts).await?;
    let keys: Vec<Key> = drafts.iter().filter_map(|d| key_of(&d.case)).collect();
    let nearby = NearbySearch::of(&drafts);
    let found = lookup_postgres(reads, &keys, nearby.as_ref()).await?;
    let mut batch = Batch::plan(&mut drafts, found);
    let rows = match batch.rows(&mut drafts, rules, 0)? {
        None => None,
        Some(rows) => {
            let tables = [TableJson::of(&rows.cases)?, TableJson::of(&rows.clocks)?];
            Some((
                tables.into_iter().flatten().collect(),
                TableJson::of(&rows.events)?,
            ))
        }
    };
    Ok(Checked {
        drafts,
        batch,
        rows,
    })
}

/// The second half of a PostgreSQL batch, on the write connection: one statement that stores
/// every row and commits. Every writer queues on the `events` sequence row, locked to commit:
/// the statement numbers and inserts the events last, once the other rows are in, and `seq`
/// holds offsets until then (hashes do not cover the global number).
pub async fn store_postgres(
    writes: &super::held::HeldConnection,
    checked: Checked,
) -> Result<Vec<Outcome>, sea_orm::DbErr> {
    let Checked {
        drafts,
        batch,
        rows,
    } = checked;
    if let Some((tables, events)) = rows {
        insert_json(writes, tables, events).await?;
    }
    Ok(batch.finish(&drafts))
}

/// Gives each draft its case code, per prefix and day, from blocks reserved before the batch
/// (on SQLite a reservation inside its transaction would wait on our own write lock). A draft
/// that turns out to be a retry leaves its number unused: codes are unique, not gap-free.
async fn take_codes(
    db: &impl ConnectionTrait,
    codes: &CodeBlocks,
    drafts: &mut [Draft],
) -> Result<(), sea_orm::DbErr> {
    let mut by_scope: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        by_scope
            .entry(format!("{}{}", d.code_prefix, d.day.format("%Y%m%d")))
            .or_default()
            .push(i);
    }
    for (scope, members) in by_scope {
        let numbers = codes
            .take(db, &scope, members.len())
            .await
            .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        for (&i, n) in members.iter().zip(numbers) {
            let d = &mut drafts[i];
            d.case.code = rules::case_code(&d.code_prefix, d.day, n);
        }
    }
    Ok(())
}

/// A batch's drafts sorted into the ones to create and the ones already answered.
struct Batch {
    outcomes: Vec<Option<Outcome>>,
    /// Indices of the drafts to create.
    new: Vec<usize>,
    /// The draft that creates each key of the batch.
    first_in_batch: HashMap<Key, usize>,
}

/// The rows a batch inserts.
struct Rows {
    cases: Vec<case::ActiveModel>,
    events: Vec<case_event::ActiveModel>,
    clocks: Vec<sla_clock::ActiveModel>,
}

impl Batch {
    /// Answers retries of stored cases; flags the rest as possible duplicates.
    fn plan(drafts: &mut [Draft], found: Found) -> Batch {
        let Found { stored, candidates } = found;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; drafts.len()];
        // Within the batch, the first draft of a key is the one created; later ones are
        // retries, answered in `finish` once the first one has its events.
        let mut first_in_batch: HashMap<Key, usize> = HashMap::new();
        let mut new: Vec<usize> = Vec::new();
        for (i, d) in drafts.iter().enumerate() {
            let Some(key) = key_of(&d.case) else {
                new.push(i);
                continue;
            };
            if let Some(existing) = stored.get(&key) {
                outcomes[i] = Some(resolve_retry(existing.clone(), &d.case));
            } else if let std::collections::hash_map::Entry::Vacant(slot) =
                first_in_batch.entry(key)
            {
                slot.insert(i);
                new.push(i);
            }
        }
        flag_duplicates(drafts, &new, candidates);
        Batch {
            outcomes,
            new,
            first_in_batch,
        }
    }

    fn event_count(&self, drafts: &[Draft]) -> usize {
        self.new.iter().map(|&i| drafts[i].events.len()).sum()
    }

    /// Chains the new drafts' events from `seq` and makes their rows; `None` if there are none.
    fn rows(
        &mut self,
        drafts: &mut [Draft],
        rules: &Rules,
        mut seq: i64,
    ) -> Result<Option<Rows>, sea_orm::DbErr> {
        if self.new.is_empty() {
            return Ok(None);
        }
        let with_ops: Vec<(&Case, Vec<sla_rules::ClockOp>)> = self
            .new
            .iter()
            .map(|&i| {
                (
                    &drafts[i].case,
                    sla_rules::plan(&drafts[i].case, &drafts[i].events),
                )
            })
            .collect();
        let clocks = super::sla::new_rows(&with_ops, rules);
        let mut events = Vec::with_capacity(self.event_count(drafts));
        for &i in &self.new {
            let d = &mut drafts[i];
            let chain = rules::chain(
                &d.case.id,
                rules::GENESIS,
                seq,
                std::mem::take(&mut d.events),
            );
            seq += i64::try_from(chain.len()).unwrap_or(0);
            if let Some(last) = chain.last() {
                d.case.last_event_hash = last.hash.clone();
            }
            events.extend(chain.iter().map(event_active));
            self.outcomes[i] = Some(Outcome::Created(d.case.clone()));
        }
        let cases = self
            .new
            .iter()
            .map(|&i| to_active(&drafts[i].case))
            .collect();
        Ok(Some(Rows {
            cases,
            events,
            clocks,
        }))
    }

    /// The outcomes, once the batch is stored: later drafts of a key created in this batch
    /// are answered as retries of the first.
    fn finish(mut self, drafts: &[Draft]) -> Vec<Outcome> {
        for (i, d) in drafts.iter().enumerate() {
            if self.outcomes[i].is_none()
                && let Some(first) = key_of(&d.case).and_then(|k| self.first_in_batch.get(&k))
                && let Some(Outcome::Created(c)) = &self.outcomes[*first]
            {
                self.outcomes[i] = Some(resolve_retry(c.clone(), &d.case));
            }
        }
        self.outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Conflict("not stored".into())))
            .collect()
    }
}

fn resolve_retry(existing: Case, attempt: &Case) -> Outcome {
    if existing.request_hash == attempt.request_hash {
        Outcome::Existing(existing)
    } else {
        let key = attempt
            .client_report_id
            .as_deref()
            .or(attempt.external_id.as_deref())
            .unwrap_or_default();
        Outcome::Conflict(format!(
            "{key} was already used for case {} with different content",
            existing.code
        ))
    }
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
    }
}

fn to_active(c: &Case) -> case::ActiveModel {
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

/// The newest open cases of one item in one cell that the duplicate check reads: a mass event
/// can pile thousands of reports into a few cells, and the newest are enough to flag a
/// duplicate, which is a hint for a dispatcher, not a merge.
const DUPLICATE_CANDIDATES_PER_CELL: usize = 32;

/// The duplicate search for one (item, cell) pair, its item, cell and `since` spelled by the
/// caller: the newest open cases in one backward range of the `cases_nearby` index.
fn nearby_sql(category: &str, cell: &str, since: &str) -> String {
    // The open statuses as literals: constants of ours, never input.
    let open = CaseStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT id, category_code, lon, lat FROM cases \
         WHERE category_code = {category} AND geo_cell = {cell} AND received_at >= {since} \
         AND status IN ({open}) ORDER BY received_at DESC LIMIT {DUPLICATE_CANDIDATES_PER_CELL}"
    )
}

/// PostgreSQL: the whole read of a batch as one statement. Keys and pairs arrive as JSON
/// parameters, so the text depends only on which parts the batch needs (each variant prepared
/// once per connection), and each key or (item, cell) pair is one lateral probe of its index.
/// A key found yields only the case's id (part 0 or 1); a retry's whole case is fetched
/// afterwards, and retries are rare. The lateral `LIMIT 1` (the keys are unique) keeps
/// PostgreSQL to one index probe per key: a plain join, planned while the table was nearly
/// empty, became a hash join over a sequential scan of every case.
///
/// The read is planned afresh for every batch (see [`super::WriterSession`]), so a part the
/// batch has nothing for is left out rather than planned: handsets' batches have no gateway
/// keys, and that saved about a fifth of the planning time.
fn lookup_postgres_sql(client_keys: bool, external_keys: bool, nearby: bool) -> &'static str {
    static VARIANTS: LazyLock<Vec<String>> = LazyLock::new(|| {
        (0..8u8)
            .map(|mask| {
                let mut parts = Vec::new();
                let mut n = 0;
                let mut next = || {
                    n += 1;
                    format!("${n}")
                };
                // Parts 0 and 1: a handset's key, a gateway's key.
                for (part, columns) in KEY_COLUMNS.iter().enumerate() {
                    if mask & (1 << part) != 0 {
                        let matches = columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| format!("{c} = k.v->>{i}"))
                            .collect::<Vec<_>>()
                            .join(" AND ");
                        parts.push(format!(
                            "SELECT {part} AS part, c.id, NULL::text AS category_code, \
                             NULL::float8 AS lon, NULL::float8 AS lat \
                             FROM jsonb_array_elements({}::jsonb) AS k(v) CROSS JOIN LATERAL \
                             (SELECT id FROM cases WHERE {matches} LIMIT 1) c",
                            next()
                        ));
                    }
                }
                if mask & 4 != 0 {
                    let (pairs, since) = (next(), next());
                    parts.push(format!(
                        "SELECT 2 AS part, n.* FROM jsonb_array_elements({pairs}::jsonb) AS k(v) \
                         CROSS JOIN LATERAL ({}) n",
                        nearby_sql("k.v->>0", "(k.v->>1)::bigint", &since)
                    ));
                }
                parts.join(" UNION ALL ")
            })
            .collect()
    });
    let mask =
        usize::from(client_keys) | (usize::from(external_keys) << 1) | (usize::from(nearby) << 2);
    &VARIANTS[mask]
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

async fn lookup_postgres(
    db: &impl ConnectionTrait,
    keys: &[Key],
    nearby: Option<&NearbySearch>,
) -> Result<Found, sea_orm::DbErr> {
    let client = pairs_of(keys, 0);
    let external = pairs_of(keys, 1);
    let text = lookup_postgres_sql(!client.is_empty(), !external.is_empty(), nearby.is_some());
    if text.is_empty() {
        return Ok(Found::default());
    }
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(4);
    for pairs in [client, external] {
        if !pairs.is_empty() {
            values.push(to_json(&pairs).into());
        }
    }
    if let Some(n) = nearby {
        values.push(to_json(&n.pairs).into());
        values.push(n.since.into());
    }
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            text,
            values,
        ))
        .await?;
    let mut found = Found::default();
    let mut hits: Vec<String> = Vec::new();
    for r in rows {
        let part: i32 = r.try_get_by_index(0)?;
        let id: String = r.try_get_by_index(1)?;
        if part == 2 {
            found.candidates.push((
                id,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
                r.try_get_by_index(4)?,
            ));
        } else {
            hits.push(id);
        }
    }
    if !hits.is_empty() {
        let stored = case::Entity::find()
            .filter(case::Column::Id.is_in(hits))
            .all(db)
            .await?;
        found.add_stored(stored)?;
    }
    Ok(found)
}

/// SQLite runs in-process, where a statement costs microseconds: a statement per key kind
/// and one per (item, cell) pair.
async fn lookup_sqlite(
    db: &impl ConnectionTrait,
    keys: &[Key],
    nearby: Option<&NearbySearch>,
) -> Result<Found, sea_orm::DbErr> {
    static NEARBY_SQLITE: LazyLock<String> = LazyLock::new(|| nearby_sql("?", "?", "?"));
    let mut found = Found::default();
    for (kind, columns) in KEY_COLUMNS.iter().enumerate() {
        let pairs = pairs_of(keys, u8::try_from(kind).unwrap_or(u8::MAX));
        if pairs.is_empty() {
            continue;
        }
        let on = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("c.{c} = json_extract(k.value, '$[{i}]')"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let stored = case::Entity::find()
            .from_raw_sql(sea_orm::Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("SELECT c.* FROM json_each(?) AS k JOIN cases c ON {on}"),
                vec![to_json(&pairs).into()],
            ))
            .all(db)
            .await?;
        found.add_stored(stored)?;
    }
    let Some(nearby) = nearby else {
        return Ok(found);
    };
    for (category, cell) in &nearby.pairs {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Sqlite,
                NEARBY_SQLITE.as_str(),
                vec![category.clone().into(), (*cell).into(), nearby.since.into()],
            ))
            .await?;
        for r in rows {
            found.candidates.push((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
            ));
        }
    }
    Ok(found)
}

/// Flags each new draft with the nearest open case of its item within 100 m and 72 h, stored
/// or earlier in this batch. The flag is a hint on the case for whoever dispatches it, not an
/// event: events are what a reporter's gateway may watch, and it must not learn of others'
/// cases.
fn flag_duplicates(drafts: &mut [Draft], new: &[usize], mut candidates: Vec<Candidate>) {
    for &i in new {
        let d = &mut drafts[i];
        let Some(p) = d.case.position else { continue };
        let found = rules::nearest_duplicate(
            &p,
            candidates
                .iter()
                .filter(|c| c.1 == d.case.category_code)
                .map(|c| (c.0.as_str(), c.2, c.3)),
        );
        d.case.possible_duplicate_of = found;
        // Later drafts of the batch see this one.
        candidates.push((
            d.case.id.clone(),
            d.case.category_code.clone(),
            p.lon,
            p.lat,
        ));
    }
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
    }
}

/// Cases matching `filter`, newest first, after the `(received_at, id)` cursor.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &CaseFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<Case>, StorageError> {
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
    if let Some((at, id)) = after {
        query = query.filter(
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

/// Events after `after` of the cases `reporter_sub` brought in, in sequence order, with each
/// event's case code: what `WatchEvents` streams to a gateway.
pub async fn events_after(
    db: &DatabaseConnection,
    reporter_sub: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<(Event, String)>, StorageError> {
    let rows = db
        .query_all_raw(sql(
            db.get_database_backend(),
            "SELECT e.seq, e.case_id, e.kind, e.actor_sub, e.actor_role, e.at, e.from_status, \
             e.to_status, e.reason, e.details, e.prev_hash, e.hash, c.code \
             FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE e.seq > $1 AND c.reporter_sub = $2 ORDER BY e.seq LIMIT $3",
            vec![
                after.into(),
                reporter_sub.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
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
        };
        let code: String = r.try_get_by_index(12)?;
        out.push((event_from(m).map_err(corrupt)?, code));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::lookup_postgres_sql;

    /// Each variant of the batch read numbers the parameters `lookup_postgres` binds for it, in
    /// order, and has exactly the parts it was asked for.
    #[test]
    fn each_lookup_variant_has_its_parts_and_numbers_what_is_bound() {
        for mask in 0..8u8 {
            let (client, external, nearby) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            let text = lookup_postgres_sql(client, external, nearby);
            assert_eq!(text.is_empty(), mask == 0, "mask {mask}");
            assert_eq!(
                text.contains("SELECT 0 AS part"),
                client,
                "mask {mask}: {text}"
            );
            assert_eq!(
                text.contains("SELECT 1 AS part"),
                external,
                "mask {mask}: {text}"
            );
            assert_eq!(
                text.contains("SELECT 2 AS part"),
                nearby,
                "mask {mask}: {text}"
            );
            let bound = usize::from(client) + usize::from(external) + 2 * usize::from(nearby);
            for n in 1..=bound {
                assert!(
                    text.contains(&format!("${n}")),
                    "mask {mask} lacks ${n}: {text}"
                );
            }
            assert!(
                !text.contains(&format!("${}", bound + 1)),
                "mask {mask} uses more than {bound}: {text}"
            );
            if nearby {
                // The cut-off time is the last parameter, after the cells.
                assert!(text.contains(&format!("received_at >= ${bound}")), "{text}");
            }
        }
    }
}
