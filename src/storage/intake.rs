//! The intake writer: drafts from every request queue up for one task, which stores whatever
//! has gathered as one batch (group commit) and then answers each caller. A report is
//! acknowledged only after the transaction holding its case has committed.
//!
//! What to create, what is a retry and what conflicts is the domain's decision
//! ([`domain::intake::Plan`]); this module reads what the plan needs (stored keys, nearby open
//! cases), hands out case codes, and writes the rows.

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
};
use tokio::sync::{mpsc, oneshot};

use super::redact_url;
use super::{
    StorageError, TableJson, begin_write,
    cases::{event_active, is_unique_violation, reserve_events, to_active, to_case},
    entities::{case as case_row, case_event, sla_clock},
    held::HeldConnection,
    insert_json, insert_rows, sql,
};
use crate::domain::{
    case::{self, CaseStatus},
    duplicates,
    event::{self, GENESIS},
    intake::{Candidate, Draft, Found, Key, Outcome, Plan},
};

/// What the intake writer stores batches with ([`insert_batch`]).
///
/// One writer stores every batch, on both databases. On PostgreSQL several overlapping
/// writers were measured against one (BENCHMARKS.md "Seventh session"): they queue on the
/// `events` sequence row anyway, and their smaller batches cost more per report in planning,
/// lock waits and commits. One writer used about a third less PostgreSQL time per report;
/// with the connections below it had the lower p50 at 50 and 1,200 reports/s in every
/// alternating pair, while the most it sustains closed loop fell by 5–9 %.
///
/// On PostgreSQL the writer holds two connections of its own ([`WriterSession`]), outside
/// every pool: a burst of reads (lists, statistics) never holds up a batch waiting for a
/// connection, and no round trip is spent handing a connection back between statements. On
/// SQLite the shared pool serves.
#[derive(Debug, Clone)]
pub enum IntakeWriters {
    /// SQLite: the shared pool.
    Shared(DatabaseConnection),
    /// PostgreSQL: how to open the writer's own connections.
    Postgres(Box<sea_orm::sqlx::postgres::PgConnectOptions>),
}

impl IntakeWriters {
    pub async fn connect(url: &str, shared: &DatabaseConnection) -> Result<Self, StorageError> {
        if shared.get_database_backend() != DbBackend::Postgres {
            return Ok(IntakeWriters::Shared(shared.clone()));
        }
        let connect_error =
            |source| StorageError::during(format!("cannot connect to {}", redact_url(url)), source);
        let options = url
            .parse::<sea_orm::sqlx::postgres::PgConnectOptions>()
            .map_err(|e| {
                connect_error(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
                    std::sync::Arc::new(e),
                )))
            })?;
        let writers = IntakeWriters::Postgres(Box::new(options));
        // Refuse to start, as a pool does, when the writer cannot connect.
        if let WriterSession::Postgres { reads, .. } = writers.session() {
            let checked = reads.execute_unprepared("SELECT 1").await;
            (*reads).close().await;
            checked.map_err(connect_error)?;
        }
        Ok(writers)
    }

    /// PostgreSQL: how to connect, for others who hold a connection of their own (the event
    /// feed's listener).
    pub fn postgres_options(&self) -> Option<sea_orm::sqlx::postgres::PgConnectOptions> {
        match self {
            IntakeWriters::Shared(_) => None,
            IntakeWriters::Postgres(options) => Some((**options).clone()),
        }
    }

    /// What the writer stores with: on PostgreSQL, connections of its own, opened when first
    /// used and held from batch to batch.
    pub fn session(&self) -> WriterSession {
        match self {
            IntakeWriters::Shared(db) => WriterSession::Shared(db.clone()),
            IntakeWriters::Postgres(options) => WriterSession::Postgres {
                reads: Box::new(HeldConnection::new(
                    options
                        .clone()
                        .options([("plan_cache_mode", "force_custom_plan")]),
                )),
                writes: Box::new(HeldConnection::new(
                    options
                        .clone()
                        .options([("plan_cache_mode", "force_generic_plan")]),
                )),
            },
        }
    }
}

/// The intake writer's connections.
#[derive(Debug)]
pub enum WriterSession {
    /// SQLite: the shared pool.
    Shared(DatabaseConnection),
    /// PostgreSQL: one connection for the batch's read, which plans every statement for the
    /// tables as they are now (`plan_cache_mode = force_custom_plan`): a generic plan cached
    /// while the cases table was nearly empty probed each reporter's `(reporter, received_at)`
    /// index and filtered every case of theirs, instead of the unique key. Planning is most
    /// of the read's time in PostgreSQL at low load.
    ///
    /// And one for the batch's write and case-code reservations, which plans each statement
    /// once (`force_generic_plan`): an insert of `json_populate_recordset` rows and an upsert
    /// of one counter row have one sensible plan whatever the tables hold, and planning the
    /// write afresh cost about 0.6 ms of PostgreSQL time per batch.
    Postgres {
        reads: Box<HeldConnection>,
        writes: Box<HeldConnection>,
    },
}

/// The most drafts one batch stores.
const MAX_BATCH: usize = 256;

struct Job {
    draft: Draft,
    reply: oneshot::Sender<Result<Outcome, StorageError>>,
}

/// A job behind a box, so the channel's element is small.
struct JobBox(Box<Job>);

impl std::fmt::Debug for JobBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// The handle requests store their drafts through.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<JobBox>,
}

impl Writer {
    /// Starts the writer task; it ends when the last handle is dropped.
    ///
    /// One writer stores every batch, one write after the other, on both databases: while it
    /// stores one, the next gathers in the queue, and on PostgreSQL it is read meanwhile.
    /// Several writers on PostgreSQL queued on the `events` sequence row and cost more per
    /// report (see [`IntakeWriters`]).
    pub fn start(writers: IntakeWriters) -> Writer {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(writers, queue));
        Writer { jobs }
    }

    /// Drafts waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Stores `draft` with whatever else has queued; answers once its batch has committed.
    pub async fn store(&self, draft: Draft) -> Result<Outcome, StorageError> {
        let stopped = || {
            StorageError::during(
                "the intake writer has stopped",
                sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed),
            )
        };
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(JobBox(Box::new(Job { draft, reply })))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer: takes what has queued, stores it as one batch, answers each caller.
async fn write_batches(writers: IntakeWriters, mut jobs: mpsc::Receiver<JobBox>) {
    let session = writers.session();
    let codes = CodeBlocks::default();
    if let WriterSession::Postgres { reads, writes } = &session {
        return write_overlapped(&session, reads, writes, &codes, jobs).await;
    }
    let mut batch: Vec<JobBox> = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = jobs.recv_many(&mut batch, MAX_BATCH).await;
        if taken == 0 {
            return;
        }
        drop_abandoned(&mut batch);
        if batch.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let result = insert_batch(&session, &codes, drafts_of(&batch)).await;
        log_batch(batch.len(), started);
        answer(&session, &codes, std::mem::take(&mut batch), result).await;
    }
}

/// PostgreSQL: while one batch is being written, the next is read and planned on the other
/// connection, so a batch's read and its write no longer add up in every report's wait. Only
/// one write is in flight at a time: writes queue on the `events` row anyway.
async fn write_overlapped(
    session: &WriterSession,
    reads: &HeldConnection,
    writes: &HeldConnection,
    codes: &CodeBlocks,
    mut jobs: mpsc::Receiver<JobBox>,
) {
    // A batch checked and waiting to be written, with when it was taken.
    let mut checked = None;
    loop {
        let Some((batch, started, ready)) = checked.take() else {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            drop_abandoned(&mut batch);
            if batch.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            match check_postgres(reads, codes, drafts_of(&batch)).await {
                Ok(ready) => checked = Some((batch, started, ready)),
                Err(e) => answer(session, codes, batch, Err(e)).await,
            }
            continue;
        };
        let store = store_postgres(writes, ready);
        tokio::pin!(store);
        let mut next = Vec::with_capacity(MAX_BATCH);
        let (stored, next_checked) = tokio::select! {
            biased;
            stored = &mut store => (stored, None),
            taken = jobs.recv_many(&mut next, MAX_BATCH) => {
                drop_abandoned(&mut next);
                if taken == 0 || next.is_empty() {
                    (store.await, None)
                } else {
                    let next_started = std::time::Instant::now();
                    let (stored, next_ready) = tokio::join!(
                        &mut store,
                        check_postgres(reads, codes, drafts_of(&next))
                    );
                    (stored, Some((next_started, next_ready)))
                }
            }
        };
        log_batch(batch.len(), started);
        answer(session, codes, batch, stored).await;
        match next_checked {
            None => {}
            Some((next_started, Ok(ready))) => {
                checked = Some((next, next_started, ready));
            }
            Some((_, Err(e))) => {
                answer(session, codes, next, Err(e)).await;
            }
        }
    }
}

/// Leaves out the drafts whose caller gave up (its deadline passed, it was cancelled) before the
/// writer took them: work for a request no one waits for is not started, and a retry finds
/// nothing stored, so it stores the report then. A draft already taken is stored whatever
/// happens to its caller: its retry finds it.
fn drop_abandoned(batch: &mut Vec<JobBox>) {
    let before = batch.len();
    batch.retain(|job| !job.0.reply.is_closed());
    let abandoned = before - batch.len();
    if abandoned > 0 {
        metrics::counter!("gridcase_intake_abandoned_total").increment(abandoned as u64);
    }
}

fn drafts_of(batch: &[JobBox]) -> Vec<Draft> {
    batch.iter().map(|j| j.0.draft.clone()).collect()
}

fn log_batch(size: usize, started: std::time::Instant) {
    metrics::histogram!("gridcase_intake_batch_size").record(size as f64);
    tracing::debug!(
        size,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "intake batch"
    );
}

/// Answers each caller of a batch; a failed batch is stored again draft by draft where that
/// may succeed.
async fn answer(
    session: &WriterSession,
    codes: &CodeBlocks,
    batch: Vec<JobBox>,
    result: Result<Vec<Outcome>, sea_orm::DbErr>,
) {
    match result {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.0.reply.send(Ok(outcome));
            }
        }
        Err(e) if batch.len() > 1 || worth_retrying(&e) => {
            // One draft spoiled the batch (most likely a key another replica, or the batch
            // before, stored meanwhile), or the connection was cut: store each alone, so only
            // a spoiling draft is affected, and on a fresh connection.
            if !is_unique_violation(&e) {
                tracing::warn!(error = %e, size = batch.len(), "intake batch failed; storing one by one");
            }
            for job in batch {
                let result = store_alone(session, codes, job.0.draft.clone()).await;
                let _ = job.0.reply.send(result);
            }
        }
        Err(e) => {
            let e = std::sync::Arc::new(e);
            for job in batch {
                let _ = job.0.reply.send(Err(StorageError::during(
                    "storing a batch of cases",
                    shared(&e),
                )));
            }
        }
    }
}

/// Whether storing a draft again may succeed where the batch failed: a unique violation alone
/// means a concurrent duplicate, which the next try finds stored; a cut connection is replaced
/// on the next try. A try whose connection was cut after its commit is found stored too.
fn worth_retrying(e: &sea_orm::DbErr) -> bool {
    is_unique_violation(e) || super::held::is_connection_lost(e)
}

async fn store_alone(
    session: &WriterSession,
    codes: &CodeBlocks,
    draft: Draft,
) -> Result<Outcome, StorageError> {
    // Three tries: each of the writer's two connections may be found cut in turn. A unique
    // violation that outlasts them is a concurrent request with the same key still in flight:
    // a conflict the caller retries.
    let mut last = None;
    for _ in 0..3 {
        match insert_batch(session, codes, vec![draft.clone()]).await {
            Ok(mut outcomes) => {
                return outcomes
                    .pop()
                    .ok_or_else(|| StorageError::corrupt("a batch of one answered nothing"));
            }
            Err(e) if worth_retrying(&e) => last = Some(e),
            Err(e) => return Err(StorageError::during("storing a case", e)),
        }
    }
    Err(match last {
        Some(e) => StorageError::during("storing a case", e),
        None => StorageError::corrupt("no try made"),
    })
}

/// A copy of a batch's error for each of its callers.
fn shared(e: &std::sync::Arc<sea_orm::DbErr>) -> sea_orm::DbErr {
    match e.as_ref() {
        sea_orm::DbErr::Conn(r) => sea_orm::DbErr::Conn(runtime(r)),
        sea_orm::DbErr::Exec(r) => sea_orm::DbErr::Exec(runtime(r)),
        sea_orm::DbErr::Query(r) => sea_orm::DbErr::Query(runtime(r)),
        sea_orm::DbErr::ConnectionAcquire(a) => sea_orm::DbErr::ConnectionAcquire(*a),
        other => sea_orm::DbErr::Custom(other.to_string()),
    }
}

fn runtime(r: &sea_orm::RuntimeErr) -> sea_orm::RuntimeErr {
    match r {
        sea_orm::RuntimeErr::SqlxError(inner) => sea_orm::RuntimeErr::SqlxError(inner.clone()),
        other => sea_orm::RuntimeErr::Internal(other.to_string()),
    }
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
                    .map_err(|_| StorageError::corrupt("code blocks poisoned"))?;
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
                .map_err(|_| StorageError::corrupt("code blocks poisoned"))?;
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
        .await?
        .ok_or_else(|| StorageError::corrupt("no code counter"))?;
    let last: i64 = row.try_get_by_index(0)?;
    Ok(last - n + 1)
}

/// The columns each kind of key matches, in the order of [`Key::parts`]; each kind has a
/// unique index over them.
const KEY_COLUMNS: [&[&str]; 2] = [
    &["reporter_sub", "client_report_id"],
    &["reporter_sub", "external_source", "external_id"],
];

/// Which of [`KEY_COLUMNS`] a key matches.
fn kind_of(key: &Key) -> u8 {
    match key {
        Key::Report { .. } => 0,
        Key::Ticket { .. } => 1,
    }
}

/// The keys of one kind as arrays of their parts, for a JSON parameter.
fn pairs_of(keys: &[Key], kind: u8) -> Vec<Vec<&str>> {
    keys.iter()
        .filter(|k| kind_of(k) == kind)
        .map(Key::parts)
        .collect()
}

/// Stored cases found by key.
fn add_stored(found: &mut Found, rows: Vec<case_row::Model>) -> Result<(), sea_orm::DbErr> {
    for m in rows {
        let c = to_case(m).map_err(sea_orm::DbErr::Custom)?;
        if let Some(k) = Key::of(&c) {
            found.stored.insert(k, c);
        }
    }
    Ok(())
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
                duplicates::duplicate_cells(&p)
                    .into_iter()
                    .map(|cell| (d.case.category_code.clone(), cell)),
            );
            let from =
                d.case.received_at - chrono::Duration::hours(duplicates::DUPLICATE_WINDOW_HOURS);
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
    session: &WriterSession,
    codes: &CodeBlocks,
    drafts: Vec<Draft>,
) -> Result<Vec<Outcome>, sea_orm::DbErr> {
    match session {
        WriterSession::Postgres { reads, writes } => {
            let checked = check_postgres(reads, codes, drafts).await?;
            store_postgres(writes, checked).await
        }
        WriterSession::Shared(db) => {
            let mut drafts = drafts;
            take_codes(db, codes, &mut drafts).await?;
            let keys: Vec<Key> = drafts.iter().filter_map(|d| Key::of(&d.case)).collect();
            let nearby = NearbySearch::of(&drafts);
            let txn = begin_write(db).await?;
            let mut found = lookup_sqlite(&txn, &keys, nearby.as_ref()).await?;
            found.rules_version = Some(
                super::rules::version(&txn)
                    .await
                    .map_err(StorageError::into_db_err)?,
            );
            let mut plan = Plan::of(&mut drafts, found);
            // One writer at a time: the events are numbered now.
            let seq = match plan.event_count(&drafts) {
                0 => 0,
                n => reserve_events(&txn, n)
                    .await
                    .map_err(StorageError::into_db_err)?,
            };
            if let Some(rows) = rows(&mut plan, &mut drafts, seq) {
                insert_rows(&txn, rows.cases).await?;
                insert_rows(&txn, rows.events).await?;
                insert_rows(&txn, rows.clocks).await?;
            }
            txn.commit().await?;
            Ok(plan.finish(&drafts))
        }
    }
}

/// A PostgreSQL batch read and planned ([`check_postgres`]), ready to be written
/// ([`store_postgres`]).
pub struct Checked {
    drafts: Vec<Draft>,
    plan: Plan,
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
    reads: &HeldConnection,
    codes: &CodeBlocks,
    drafts: Vec<Draft>,
) -> Result<Checked, sea_orm::DbErr> {
    let mut drafts = drafts;
    take_codes(reads, codes, &mut drafts).await?;
    let keys: Vec<Key> = drafts.iter().filter_map(|d| Key::of(&d.case)).collect();
    let nearby = NearbySearch::of(&drafts);
    let found = lookup_postgres(reads, &keys, nearby.as_ref()).await?;
    let mut plan = Plan::of(&mut drafts, found);
    let rows = match rows(&mut plan, &mut drafts, 0) {
        None => None,
        Some(rows) => {
            let tables = [TableJson::of(&rows.cases)?, TableJson::of(&rows.clocks)?];
            Some((
                tables.into_iter().flatten().collect(),
                TableJson::of(&rows.events)?,
            ))
        }
    };
    Ok(Checked { drafts, plan, rows })
}

/// The second half of a PostgreSQL batch, on the write connection: one statement that stores
/// every row and commits. Every writer queues on the `events` sequence row, locked to commit:
/// the statement numbers and inserts the events last, once the other rows are in, and `seq`
/// holds offsets until then (hashes do not cover the global number).
pub async fn store_postgres(
    writes: &HeldConnection,
    checked: Checked,
) -> Result<Vec<Outcome>, sea_orm::DbErr> {
    let Checked { drafts, plan, rows } = checked;
    if let Some((tables, events)) = rows {
        insert_json(writes, tables, events).await?;
    }
    Ok(plan.finish(&drafts))
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
            .map_err(StorageError::into_db_err)?;
        for (&i, n) in members.iter().zip(numbers) {
            let d = &mut drafts[i];
            d.case.code = case::case_code(&d.code_prefix, d.day, n);
        }
    }
    Ok(())
}

/// The rows a batch inserts.
struct Rows {
    cases: Vec<case_row::ActiveModel>,
    events: Vec<case_event::ActiveModel>,
    clocks: Vec<sla_clock::ActiveModel>,
}

/// Chains the events of the drafts to create from `seq`, records them as created, and makes
/// their rows; `None` if there are none.
fn rows(plan: &mut Plan, drafts: &mut [Draft], mut seq: i64) -> Option<Rows> {
    if plan.new.is_empty() {
        return None;
    }
    let mut events = Vec::with_capacity(plan.event_count(drafts));
    let mut clocks = Vec::new();
    let mut cases = Vec::with_capacity(plan.new.len());
    for i in plan.new.clone() {
        let d = &mut drafts[i];
        let chain = event::chain(&d.case.id, GENESIS, seq, std::mem::take(&mut d.events));
        seq += i64::try_from(chain.len()).unwrap_or(0);
        if let Some(last) = chain.last() {
            d.case.last_event_hash = last.hash.clone();
        }
        events.extend(chain.iter().map(event_active));
        clocks.extend(d.clocks.iter().map(super::sla::new_row));
        cases.push(to_active(&d.case));
        plan.created(i, d.case.clone());
    }
    Some(Rows {
        cases,
        events,
        clocks,
    })
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
/// The read is planned afresh for every batch (see [`WriterSession`]), so a part the
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
                // Part 3: the rules version, read with the batch (see `Found::rules_version`).
                parts.push(
                    "SELECT 3 AS part, value::text AS id, NULL::text AS category_code, \
                     NULL::float8 AS lon, NULL::float8 AS lat \
                     FROM sequences WHERE name = 'rules'"
                        .to_owned(),
                );
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
    let mut found = Found {
        // No row: the rules were never changed.
        rules_version: Some(0),
        ..Found::default()
    };
    let mut hits: Vec<String> = Vec::new();
    for r in rows {
        let part: i32 = r.try_get_by_index(0)?;
        let id: String = r.try_get_by_index(1)?;
        if part == 3 {
            found.rules_version = Some(id.parse().map_err(|_| {
                sea_orm::DbErr::Type(format!("rules version {id:?} is not a number"))
            })?);
        } else if part == 2 {
            found.candidates.push(Candidate {
                id,
                category_code: r.try_get_by_index(2)?,
                lon: r.try_get_by_index(3)?,
                lat: r.try_get_by_index(4)?,
            });
        } else {
            hits.push(id);
        }
    }
    if !hits.is_empty() {
        let stored = case_row::Entity::find()
            .filter(case_row::Column::Id.is_in(hits))
            .all(db)
            .await?;
        add_stored(&mut found, stored)?;
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
        let stored = case_row::Entity::find()
            .from_raw_sql(sea_orm::Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("SELECT c.* FROM json_each(?) AS k JOIN cases c ON {on}"),
                vec![to_json(&pairs).into()],
            ))
            .all(db)
            .await?;
        add_stored(&mut found, stored)?;
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
            found.candidates.push(Candidate {
                id: r.try_get_by_index(0)?,
                category_code: r.try_get_by_index(1)?,
                lon: r.try_get_by_index(2)?,
                lat: r.try_get_by_index(3)?,
            });
        }
    }
    Ok(found)
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
            // Never empty: every batch reads the rules version.
            assert!(!text.is_empty(), "mask {mask}");
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
            assert!(text.contains("SELECT 3 AS part"), "mask {mask}: {text}");
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
