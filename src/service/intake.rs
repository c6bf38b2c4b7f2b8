//! Intake: reports from handsets and tickets from gateways become located, routed, registered
//! cases — exactly one per report, however often a flaky network retries it.
//!
//! Requests are validated and drafted concurrently, then handed to one writer task that stores
//! whatever has queued up meanwhile in a single transaction (group commit). Each caller is
//! answered only after the transaction holding its case has committed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::{
    LiveDirectory,
    rules::{LiveRules, Rules},
    time::TimeSource,
};
use crate::{
    domain::{
        Caller, DomainError, DomainResult, Role,
        case::{self, Case, CaseStatus, NewEvent, Position, Routed, Source},
        directory::{Category, Directory, Region, Severity, Tier},
        event::{Details, EventKind},
        workflow::{self, Actor, Command},
    },
    geo::{self, CoordSystem},
    storage::{
        self, IntakeWriters,
        cases::{CodeBlocks, Draft, Outcome},
    },
};

/// The longest description or supplement text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The most drafts one batch stores.
const MAX_BATCH: usize = 256;

/// A position in a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PositionInput {
    pub lat: f64,
    pub lon: f64,
    #[serde(serialize_with = "system_name")]
    pub system: CoordSystem,
    pub accuracy_m: f64,
}

/// The request hash reads the system by its stored name.
fn system_name<S: serde::Serializer>(s: &CoordSystem, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// `SubmitReport`, as the gRPC layer hands it over.
#[derive(Debug, Clone, Serialize)]
pub struct ReportInput {
    pub client_report_id: String,
    pub category_code: String,
    pub description: String,
    pub position: Option<PositionInput>,
    pub grid_code: String,
    pub captured_at: Option<DateTime<Utc>>,
    pub attachment_ids: Vec<String>,
    #[serde(skip)]
    pub urgency: Option<Severity>,
}

/// `IngestTicket`, as the gRPC layer hands it over.
#[derive(Debug, Clone, Serialize)]
pub struct TicketInput {
    #[serde(skip)]
    pub source: Source,
    pub external_id: String,
    pub category_code: String,
    pub description: String,
    pub caller_phone: String,
    pub caller_name: String,
    pub position: Option<PositionInput>,
    pub address: String,
    pub region_code: String,
    pub received_at: Option<DateTime<Utc>>,
    pub attachment_ids: Vec<String>,
    #[serde(skip)]
    pub urgency: Option<Severity>,
}

struct Job {
    draft: Draft,
    reply: oneshot::Sender<DomainResult<Outcome>>,
}

/// The intake service.
#[derive(Debug)]
pub struct Intake {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
    writer: mpsc::Sender<JobBox>,
}

/// A job behind a box, so the channel's element is small.
struct JobBox(Box<Job>);

impl std::fmt::Debug for JobBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Intake {
    /// Starts the writer task; it ends when the last `Intake` handle is dropped.
    ///
    /// One writer stores every batch, one write after the other, on both databases: while it
    /// stores one, the next gathers in the queue, and on PostgreSQL it is read meanwhile.
    /// Several writers on PostgreSQL queued on the `events` sequence row and cost more per
    /// report (see [`IntakeWriters`]).
    pub fn start(
        db: DatabaseConnection,
        writers: IntakeWriters,
        directory: Arc<LiveDirectory>,
        rules: Arc<LiveRules>,
        time: Arc<dyn TimeSource>,
    ) -> Intake {
        let (writer, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(writers, rules.clone(), jobs));
        Intake {
            db,
            directory,
            rules,
            time,
            writer,
        }
    }

    pub fn directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// `SubmitReport`: one case per `client_report_id`; `true` when this call created it.
    pub async fn submit_report(
        &self,
        caller: &Caller,
        input: ReportInput,
    ) -> DomainResult<(Case, bool)> {
        let client_report_id = uuid::Uuid::parse_str(&input.client_report_id)
            .map_err(|_| {
                DomainError::invalid(
                    "client_report_id",
                    format!("{:?} is not a UUID", input.client_report_id),
                )
            })?
            .hyphenated()
            .to_string();
        let directory = self.directory.snapshot();
        let category = category_of(&directory, &input.category_code)?;
        let description = check_text("description", &input.description, true)?;
        if let Some(at) = input.captured_at
            && at > self.time.now() + chrono::Duration::hours(24)
        {
            return Err(DomainError::invalid(
                "captured_at",
                "is more than a day in the future",
            ));
        }
        self.check_attachments(caller, &input.attachment_ids)
            .await?;
        let now = self.time.now();
        let place = if !input.grid_code.is_empty() {
            let grid = directory
                .region(&input.grid_code)
                .filter(|r| r.tier == Tier::Grid)
                .ok_or_else(|| {
                    DomainError::invalid(
                        "grid_code",
                        format!("{:?} is not a grid", input.grid_code),
                    )
                })?;
            if grid.retired {
                return Err(DomainError::invalid(
                    "grid_code",
                    format!("grid {} is retired; report by position", grid.code),
                ));
            }
            let position = input.position.map(convert).transpose()?;
            Place::Grid {
                grid: grid.clone(),
                position,
                snapped: None,
            }
        } else if let Some(p) = input.position {
            locate(&directory, convert(p)?, None)?
        } else {
            return Err(DomainError::invalid(
                "location",
                "a report needs a location or a grid_code",
            ));
        };
        let member = directory.member(&caller.sub);
        let draft = self
            .draft(
                &directory,
                DraftInput {
                    caller,
                    source: if caller.role == Role::Gateway {
                        Source::Wechat
                    } else {
                        Source::Handset
                    },
                    category: &category,
                    urgency: input.urgency,
                    description,
                    place,
                    address: None,
                    phone: member.map(|m| m.phone.clone()).filter(|p| !p.is_empty()),
                    name: member.map(|m| m.name.clone()),
                    captured_at: input.captured_at,
                    received_at: now,
                    attachment_ids: input.attachment_ids.clone(),
                    client_report_id: Some(client_report_id),
                    external: None,
                    request_hash: request_hash(&input),
                },
            )
            .await?;
        self.store(draft).await
    }

    /// `IngestTicket`: one case per (source, external id).
    pub async fn ingest_ticket(
        &self,
        caller: &Caller,
        input: TicketInput,
    ) -> DomainResult<(Case, bool)> {
        if input.source == Source::Handset {
            return Err(DomainError::invalid(
                "source",
                "a ticket comes from the hotline, WeChat, SMS or a walk-in window",
            ));
        }
        let external_id = input.external_id.trim().to_owned();
        if external_id.is_empty() || external_id.chars().count() > 128 {
            return Err(DomainError::invalid(
                "external_id",
                "must be 1 to 128 characters",
            ));
        }
        let directory = self.directory.snapshot();
        let category = category_of(&directory, &input.category_code)?;
        let description = check_text("description", &input.description, true)?;
        let phone = input.caller_phone.trim();
        if !phone.is_empty()
            && (phone.len() > 20
                || !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+'))
        {
            return Err(DomainError::invalid(
                "caller_phone",
                "must be digits (with + or -), at most 20",
            ));
        }
        let named_region = if input.region_code.is_empty() {
            None
        } else {
            Some(
                directory
                    .region(&input.region_code)
                    .filter(|r| !r.retired)
                    .ok_or_else(|| {
                        DomainError::invalid(
                            "region_code",
                            format!("unknown or retired region {:?}", input.region_code),
                        )
                    })?
                    .clone(),
            )
        };
        let address = check_text("address", &input.address, false)?;
        self.check_attachments(caller, &input.attachment_ids)
            .await?;
        let place = match input.position {
            Some(p) => locate(&directory, convert(p)?, named_region)?,
            None => Place::Triage {
                region: named_region,
                position: None,
            },
        };
        let now = self.time.now();
        let draft = self
            .draft(
                &directory,
                DraftInput {
                    caller,
                    source: input.source,
                    category: &category,
                    urgency: input.urgency,
                    description,
                    place,
                    address: (!address.is_empty()).then_some(address),
                    phone: (!phone.is_empty()).then(|| phone.to_owned()),
                    name: (!input.caller_name.trim().is_empty())
                        .then(|| input.caller_name.trim().to_owned()),
                    captured_at: input.received_at,
                    received_at: now,
                    attachment_ids: input.attachment_ids.clone(),
                    client_report_id: None,
                    external: Some((input.source.as_str().to_owned(), external_id)),
                    request_hash: request_hash(&input),
                },
            )
            .await?;
        self.store(draft).await
    }

    /// Attachment ids must exist and belong to the caller.
    pub async fn check_attachments(&self, caller: &Caller, ids: &[String]) -> DomainResult<()> {
        super::attachments::check_owned(&self.db, caller, ids).await
    }

    async fn draft(&self, directory: &Directory, d: DraftInput<'_>) -> DomainResult<Draft> {
        let (routed, grid, position, snapped) = match &d.place {
            Place::Grid {
                grid,
                position,
                snapped,
            } => {
                let mut routed =
                    case::route(directory, &grid.code, d.category).ok_or_else(|| {
                        DomainError::internal(anyhow::anyhow!(
                            "grid {} cannot be routed",
                            grid.code
                        ))
                    })?;
                // Regions may override the default routing per category (DESIGN.md "Routing").
                let chain = directory.chain(&grid.code);
                if let Some(unit) = self
                    .rules
                    .snapshot()
                    .routing_override(
                        chain.iter().rev().map(|r| r.code.as_str()),
                        &d.category.code,
                    )
                    .and_then(|u| directory.active_unit(u))
                    && let Some(region) = directory.region(&unit.region_code)
                {
                    routed = Routed {
                        tier: region.tier,
                        region_code: region.code.clone(),
                        unit,
                    };
                }
                (routed, Some(grid), *position, *snapped)
            }
            Place::Triage { region, position } => {
                let region = region
                    .clone()
                    .or_else(|| {
                        position.and_then(|p| directory.lowest_covering(p.lon, p.lat).cloned())
                    })
                    .or_else(|| {
                        directory
                            .roots()
                            .first()
                            .and_then(|c| directory.region(c))
                            .cloned()
                    })
                    .ok_or_else(|| {
                        DomainError::FailedPrecondition(
                            "the directory is empty: import one before taking reports".into(),
                        )
                    })?;
                let routed = case::triage(directory, &region).ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!("region {} has no center", region.code))
                })?;
                (routed, None, *position, None)
            }
        };
        let place_code = grid.map_or(routed.region_code.as_str(), |g| g.code.as_str());
        let mut chain: [Option<String>; 5] = Default::default();
        for region in directory.chain(place_code) {
            if let Some(i) = Tier::ALL.iter().position(|t| *t == region.tier) {
                chain[i] = Some(region.code.clone());
            }
        }
        let code_prefix = chain[1]
            .clone()
            .or_else(|| chain[0].clone())
            .unwrap_or_else(|| routed.region_code.clone());
        let id = uuid::Uuid::now_v7().to_string();
        let Routed {
            unit,
            tier,
            region_code,
        } = routed;
        let case = Case {
            id: id.clone(),
            code: String::new(),
            status: CaseStatus::Registered,
            source: d.source,
            category_code: d.category.code.clone(),
            severity: case::severity(d.category, d.urgency),
            description: d.description,
            chain,
            region_code: region_code.clone(),
            tier,
            unit_code: unit.code.clone(),
            position,
            snapped: snapped.is_some(),
            snap_distance_m: snapped.unwrap_or(0.0),
            address: d.address,
            reporter_sub: d.caller.sub.clone(),
            reporter_phone: d.phone,
            reporter_name: d.name,
            captured_at: d.captured_at,
            received_at: d.received_at,
            updated_at: d.received_at,
            version: 1,
            cycle: 1,
            reopen_count: 0,
            escalation_level: 0,
            red_card: false,
            merged_into: None,
            // Set by the writer, which sees stored cases and the rest of its batch.
            possible_duplicate_of: None,
            resolution_text: None,
            external_source: d.external.as_ref().map(|e| e.0.clone()),
            external_id: d.external.as_ref().map(|e| e.1.clone()),
            client_report_id: d.client_report_id.clone(),
            request_hash: d.request_hash,
            attachment_ids: d.attachment_ids,
            last_event_hash: case::GENESIS.to_owned(),
            assisting: Vec::new(),
            resolved_at: None,
            evaluation: None,
        };
        let reason = match grid {
            Some(g) => format!("grid {}; lead unit {} at {} tier", g.code, unit.code, tier),
            None => format!("no grid holds this position: triage at the center of {region_code}"),
        };
        let events = vec![
            NewEvent::new(
                EventKind::Submitted,
                &d.caller.sub,
                d.caller.role,
                d.received_at,
            )
            .transition(None, CaseStatus::Submitted)
            .details(Details::Submitted {
                source: d.source,
                client_report_id: d.client_report_id,
                external_id: case.external_id.clone(),
            }),
            NewEvent::new(
                EventKind::Registered,
                &d.caller.sub,
                d.caller.role,
                d.received_at,
            )
            .transition(Some(CaseStatus::Submitted), CaseStatus::Registered)
            .reason(reason)
            .details(Details::Registered {
                unit_code: unit.code.clone(),
                tier,
                region_code: region_code.clone(),
                grid_code: grid.map(|g| g.code.clone()),
                snap_distance_m: snapped,
            }),
        ];
        Ok(Draft {
            case,
            events,
            code_prefix,
            day: shanghai_day(d.received_at),
        })
    }

    async fn store(&self, draft: Draft) -> DomainResult<(Case, bool)> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(JobBox(Box::new(Job { draft, reply })))
            .await
            .map_err(|_| DomainError::Unavailable(anyhow::anyhow!("intake writer stopped")))?;
        let outcome = answer
            .await
            .map_err(|_| DomainError::Unavailable(anyhow::anyhow!("intake writer stopped")))??;
        match outcome {
            Outcome::Created(c) => Ok((c, true)),
            Outcome::Existing(c) => Ok((c, false)),
            Outcome::Conflict(message) => Err(DomainError::AlreadyExists(message)),
        }
    }

    /// `ListMyReports`: the caller's own cases, newest first.
    pub async fn my_reports(
        &self,
        caller: &Caller,
        page_size: usize,
        page_token: &str,
    ) -> DomainResult<(Vec<Case>, String)> {
        let after = super::paging::cursor(page_token)?;
        let limit = u64::try_from(page_size).unwrap_or(50);
        let cases = storage::cases::by_reporter(&self.db, &caller.sub, after, limit + 1).await?;
        Ok(super::paging::page(cases, page_size))
    }

    /// `AddSupplement`: the reporter adds text or photos to an open case of theirs.
    pub async fn add_supplement(
        &self,
        caller: &Caller,
        case_id: &str,
        text: &str,
        attachment_ids: Vec<String>,
    ) -> DomainResult<(Case, case::Event)> {
        let text = check_text("text", text, false)?;
        if text.is_empty() && attachment_ids.is_empty() {
            return Err(DomainError::invalid(
                "text",
                "a supplement needs text or attachments",
            ));
        }
        self.check_attachments(caller, &attachment_ids).await?;
        // No version comes with a supplement: read the case, apply, and store at the version
        // read; a concurrent change in between is read again.
        for _ in 0..5 {
            let current = storage::cases::get(&self.db, case_id)
                .await?
                .filter(|c| c.reporter_sub == caller.sub)
                .ok_or_else(|| DomainError::NotFound(format!("no case {case_id:?} of yours")))?;
            let (updated, events) = workflow::apply(
                &current,
                Actor::Person(caller),
                &self.directory.snapshot(),
                Command::Supplement {
                    text: text.clone(),
                    attachment_ids: attachment_ids.clone(),
                },
                self.time.now(),
            )?;
            if let Some((case, mut events)) = storage::cases::append(
                &self.db,
                &self.rules.snapshot(),
                &updated,
                current.version,
                events,
            )
            .await?
                && let Some(event) = events.pop()
            {
                return Ok((case, event));
            }
        }
        Err(DomainError::Aborted(
            "the case kept changing; try again".into(),
        ))
    }
}

/// Where a report landed.
enum Place {
    Grid {
        grid: Region,
        position: Option<Position>,
        snapped: Option<f64>,
    },
    /// No grid: the triage queue of the named region, else the lowest region covering the
    /// position, else the root.
    Triage {
        region: Option<Region>,
        position: Option<Position>,
    },
}

struct DraftInput<'a> {
    caller: &'a Caller,
    source: Source,
    category: &'a Category,
    urgency: Option<Severity>,
    description: String,
    place: Place,
    address: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    captured_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    attachment_ids: Vec<String>,
    client_report_id: Option<String>,
    external: Option<(String, String)>,
    request_hash: String,
}

fn convert(p: PositionInput) -> DomainResult<Position> {
    super::directory::check_position(p.lat, p.lon)?;
    if !p.accuracy_m.is_finite() || p.accuracy_m < 0.0 {
        return Err(DomainError::invalid(
            "location.accuracy_m",
            "must be a finite, non-negative number of metres",
        ));
    }
    let (lon, lat) = geo::to_wgs84(p.system, p.lon, p.lat);
    Ok(Position {
        reported_lat: p.lat,
        reported_lon: p.lon,
        coord_system: p.system,
        accuracy_m: p.accuracy_m,
        lat,
        lon,
    })
}

fn locate(directory: &Directory, p: Position, fallback: Option<Region>) -> DomainResult<Place> {
    match directory.grids().locate(p.lon, p.lat) {
        Some(hit) => {
            let grid = directory
                .region(hit.code)
                .ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!("grid {} vanished", hit.code))
                })?
                .clone();
            Ok(Place::Grid {
                grid,
                position: Some(p),
                snapped: hit.snapped.then_some(hit.distance_m),
            })
        }
        None => Ok(Place::Triage {
            region: fallback,
            position: Some(p),
        }),
    }
}

/// The category item a request names; an unknown one is INVALID_ARGUMENT.
fn category_of(directory: &Directory, code: &str) -> DomainResult<Category> {
    directory
        .category(code)
        .cloned()
        .ok_or_else(|| DomainError::invalid("category_code", format!("unknown category {code:?}")))
}

fn check_text(field: &str, text: &str, required: bool) -> DomainResult<String> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// sha256 of a request's content: what a retry must repeat exactly.
fn request_hash(input: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// The day (China Standard Time, UTC+8 all year) a moment falls on: what case codes carry.
fn shanghai_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    (at + chrono::Duration::hours(8)).date_naive()
}

/// The writer: takes what has queued, stores it as one batch, answers each caller.
async fn write_batches(
    writers: IntakeWriters,
    rules: Arc<LiveRules>,
    mut jobs: mpsc::Receiver<JobBox>,
) {
    let session = writers.session();
    let codes = CodeBlocks::default();
    if let storage::WriterSession::Postgres { reads, writes } = &session {
        return write_overlapped(&session, reads, writes, &codes, &rules, jobs).await;
    }
    let mut batch: Vec<JobBox> = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = jobs.recv_many(&mut batch, MAX_BATCH).await;
        if taken == 0 {
            return;
        }
        let started = std::time::Instant::now();
        let snapshot = rules.snapshot();
        let result =
            storage::cases::insert_batch(&session, &codes, &snapshot, drafts_of(&batch)).await;
        log_batch(batch.len(), started);
        answer(
            &session,
            &codes,
            &snapshot,
            std::mem::take(&mut batch),
            result,
        )
        .await;
    }
}

/// PostgreSQL: while one batch is being written, the next is read and planned on the other
/// connection, so a batch's read and its write no longer add up in every report's wait. Only
/// one write is in flight at a time: writes queue on the `events` row anyway.
async fn write_overlapped(
    session: &storage::WriterSession,
    reads: &storage::held::HeldConnection,
    writes: &storage::held::HeldConnection,
    codes: &CodeBlocks,
    rules: &LiveRules,
    mut jobs: mpsc::Receiver<JobBox>,
) {
    use storage::cases::{check_postgres, store_postgres};
    // A batch checked and waiting to be written, with its rules and when it was taken.
    let mut checked = None;
    loop {
        let Some((batch, snapshot, started, ready)) = checked.take() else {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            let started = std::time::Instant::now();
            let snapshot = rules.snapshot();
            match check_postgres(reads, codes, &snapshot, drafts_of(&batch)).await {
                Ok(ready) => checked = Some((batch, snapshot, started, ready)),
                Err(e) => answer(session, codes, &snapshot, batch, Err(e)).await,
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
                if taken == 0 {
                    (store.await, None)
                } else {
                    let next_started = std::time::Instant::now();
                    let next_snapshot = rules.snapshot();
                    let (stored, next_ready) = tokio::join!(
                        &mut store,
                        check_postgres(reads, codes, &next_snapshot, drafts_of(&next))
                    );
                    (stored, Some((next_snapshot, next_started, next_ready)))
                }
            }
        };
        log_batch(batch.len(), started);
        answer(session, codes, &snapshot, batch, stored).await;
        match next_checked {
            None => {}
            Some((next_snapshot, next_started, Ok(ready))) => {
                checked = Some((next, next_snapshot, next_started, ready));
            }
            Some((next_snapshot, _, Err(e))) => {
                answer(session, codes, &next_snapshot, next, Err(e)).await;
            }
        }
    }
}

fn drafts_of(batch: &[JobBox]) -> Vec<Draft> {
    batch.iter().map(|j| j.0.draft.clone()).collect()
}

fn log_batch(size: usize, started: std::time::Instant) {
    tracing::debug!(
        size,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "intake batch"
    );
}

/// Answers each caller of a batch; a failed batch is stored again draft by draft where that
/// may succeed.
async fn answer(
    session: &storage::WriterSession,
    codes: &CodeBlocks,
    rules: &Rules,
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
            if !storage::cases::is_unique_violation(&e) {
                tracing::warn!(error = %e, size = batch.len(), "intake batch failed; storing one by one");
            }
            for job in batch {
                let result = store_alone(session, codes, rules, job.0.draft.clone()).await;
                let _ = job.0.reply.send(result);
            }
        }
        Err(e) => {
            let e = storage::StorageError::during("storing a batch of cases", e);
            let unavailable = e.is_unavailable();
            let message = e.to_string();
            for job in batch {
                let _ = job.0.reply.send(Err(if unavailable {
                    DomainError::Unavailable(anyhow::anyhow!("{message}"))
                } else {
                    DomainError::internal(anyhow::anyhow!("{message}"))
                }));
            }
        }
    }
}

/// Whether storing a draft again may succeed where the batch failed: a unique violation alone
/// means a concurrent duplicate, which the next try finds stored; a cut connection is replaced
/// on the next try. A try whose connection was cut after its commit is found stored too.
fn worth_retrying(e: &sea_orm::DbErr) -> bool {
    storage::cases::is_unique_violation(e) || storage::held::is_connection_lost(e)
}

async fn store_alone(
    session: &storage::WriterSession,
    codes: &CodeBlocks,
    rules: &Rules,
    draft: Draft,
) -> DomainResult<Outcome> {
    // Three tries: each of the writer's two connections may be found cut in turn.
    let mut last = None;
    for _ in 0..3 {
        match storage::cases::insert_batch(session, codes, rules, vec![draft.clone()]).await {
            Ok(mut outcomes) => {
                return outcomes.pop().ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!("no outcome for a draft"))
                });
            }
            Err(e) if worth_retrying(&e) => last = Some(e),
            Err(e) => return Err(storage::StorageError::during("storing a case", e).into()),
        }
    }
    match last {
        Some(e) if !storage::cases::is_unique_violation(&e) => {
            Err(storage::StorageError::during("storing a case", e).into())
        }
        _ => Err(DomainError::Aborted(
            "a concurrent request with the same key is in flight; retry".into(),
        )),
    }
}
