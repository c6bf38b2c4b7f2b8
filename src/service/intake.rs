//! Intake: reports from handsets and tickets from gateways become located, routed, registered
//! cases — exactly one per report, however often a flaky network retries it.
//!
//! Here requests are validated and located, concurrently; the domain registers each as a
//! draft ([`intake::register`]), and the storage writer stores whatever has queued up meanwhile
//! in one transaction (group commit, [`storage::intake::Writer`]). Each caller is answered only
//! after the transaction holding its case has committed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{LiveDirectory, events::Wake, rules::LiveRules, time::TimeSource};
use crate::{
    domain::{
        Caller, DomainError, DomainResult, Role,
        case::{self, Case, Position, Source},
        directory::{Category, Directory, Region, Severity, Tier},
        intake::{self, Outcome, Place, Report},
        workflow::{self, Actor, Command},
    },
    geo::{self, CoordSystem},
    storage::{
        self,
        intake::{IntakeWriters, Writer},
    },
};

/// The longest description or supplement text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

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

/// The intake service.
#[derive(Debug)]
pub struct Intake {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
    writer: Writer,
    wake: Wake,
}

impl Intake {
    /// Starts the writer ([`Writer::start`]); it ends when the last `Intake` is dropped.
    pub fn start(
        db: DatabaseConnection,
        writers: IntakeWriters,
        directory: Arc<LiveDirectory>,
        rules: Arc<LiveRules>,
        time: Arc<dyn TimeSource>,
        wake: Wake,
    ) -> Intake {
        Intake {
            db,
            directory,
            rules,
            time,
            writer: Writer::start(writers),
            wake,
        }
    }

    pub fn directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    /// Reports and tickets waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.writer.queued()
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
            place_of(&directory, convert(p)?, None)
        } else {
            return Err(DomainError::invalid(
                "location",
                "a report needs a location or a grid_code",
            ));
        };
        let member = directory.member(&caller.sub);
        let report = Report {
            id: uuid::Uuid::now_v7().to_string(),
            reporter: caller,
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
            received_at: self.time.now(),
            attachment_ids: input.attachment_ids.clone(),
            client_report_id: Some(client_report_id),
            external_id: None,
            request_hash: request_hash(&input),
        };
        self.store(&directory, report).await
    }

    /// `IngestTicket`: one case per (gateway, source, external id).
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
            Some(p) => place_of(&directory, convert(p)?, named_region),
            None => Place::Triage {
                region: named_region,
                position: None,
            },
        };
        let report = Report {
            id: uuid::Uuid::now_v7().to_string(),
            reporter: caller,
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
            received_at: self.time.now(),
            attachment_ids: input.attachment_ids.clone(),
            client_report_id: None,
            external_id: Some(external_id),
            request_hash: request_hash(&input),
        };
        self.store(&directory, report).await
    }

    /// Attachment ids must exist and belong to the caller.
    pub async fn check_attachments(&self, caller: &Caller, ids: &[String]) -> DomainResult<()> {
        super::attachments::check_owned(&self.db, caller, ids).await
    }

    /// Registers the report and stores it with whatever else has queued.
    ///
    /// A report registered under rules that changed before its batch was stored is registered
    /// again under the stored ones: a rules change is in force for every report stored after
    /// the change's call returned, whichever replica took it.
    async fn store(&self, directory: &Directory, report: Report<'_>) -> DomainResult<(Case, bool)> {
        for _ in 0..3 {
            let draft = intake::register(directory, &self.rules.snapshot(), report.clone())?;
            match self.writer.store(draft).await? {
                Outcome::Created(c) => {
                    self.wake.events_committed();
                    return Ok((c, true));
                }
                Outcome::Existing(c) => return Ok((c, false)),
                Outcome::Conflict(message) => return Err(DomainError::AlreadyExists(message)),
                Outcome::RulesMoved(version) => {
                    tracing::debug!(version, "rules moved under a report; registering it again");
                    self.rules.refresh().await?;
                }
            }
        }
        Err(DomainError::Aborted(
            "the rules kept changing while the report was stored; try again".into(),
        ))
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
                self.wake.events_committed();
                return Ok((case, event));
            }
        }
        Err(DomainError::Aborted(
            "the case kept changing; try again".into(),
        ))
    }
}

pub(crate) fn convert(p: PositionInput) -> DomainResult<Position> {
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

/// Where a position lands: in the grid that covers it (or lies within 50 m), else in triage:
/// the region named, else the lowest active region covering it.
fn place_of(directory: &Directory, p: Position, fallback: Option<Region>) -> Place {
    match directory.locate(p.lon, p.lat) {
        Some(hit) => Place::Grid {
            grid: hit.grid.clone(),
            position: Some(p),
            snapped: hit.snapped.then_some(hit.distance_m),
        },
        None => Place::Triage {
            region: fallback,
            position: Some(p),
        },
    }
}

/// The category item a request names; an unknown one is INVALID_ARGUMENT.
fn category_of(directory: &Directory, code: &str) -> DomainResult<Category> {
    directory
        .category(code)
        .cloned()
        .ok_or_else(|| DomainError::invalid("category_code", format!("unknown category {code:?}")))
}

pub(crate) fn check_text(field: &str, text: &str, required: bool) -> DomainResult<String> {
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
