//! Cases within the caller's scope: reading them (`GetCase`, `ListCases`) and moving them
//! through the lifecycle, each change appended to the case's event chain under optimistic
//! concurrency on the case's version.

use std::{collections::HashMap, sync::Arc};

use sea_orm::DatabaseConnection;

use super::{LiveDirectory, events::Wake, paging, rules::LiveRules, time::TimeSource};
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        calendar::SlaDuration,
        case::{Case, Event, Pin, RequestKind},
        scope::Scope,
        sla::{Clock, ExtensionRoom, ExtensionRules, SlaState},
        workflow::{self, Actor, Command},
    },
    storage::{self, cases::CaseFilter},
};

/// What `ListCases` may narrow by, besides the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub statuses: Vec<crate::domain::case::CaseStatus>,
    pub region_code: String,
    pub unit_code: String,
    pub category_code: String,
    pub received_from: Option<chrono::DateTime<chrono::Utc>>,
    pub received_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only cases with a running SLA clock past its due time.
    pub overdue_only: bool,
    pub page_size: usize,
    pub page_token: String,
}

#[derive(Debug, Clone)]
pub struct CaseQueries {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
    wake: Wake,
    limits: WorkflowLimits,
}

/// The workflow's configured limits (settings, the same on every replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowLimits {
    /// The longest a case waits on the reporter before its wait ends by itself.
    pub max_reporter_wait: SlaDuration,
    pub extensions: ExtensionRules,
    /// How long after dispatch a unit returns a case on its own word.
    pub return_window: SlaDuration,
}

impl Default for WorkflowLimits {
    fn default() -> Self {
        WorkflowLimits {
            max_reporter_wait: DEFAULT_MAX_REPORTER_WAIT,
            extensions: ExtensionRules::default(),
            return_window: DEFAULT_RETURN_WINDOW,
        }
    }
}

impl CaseQueries {
    pub fn new(
        db: DatabaseConnection,
        directory: Arc<LiveDirectory>,
        rules: Arc<LiveRules>,
        time: Arc<dyn TimeSource>,
        wake: Wake,
    ) -> Self {
        CaseQueries {
            db,
            directory,
            rules,
            time,
            wake,
            limits: WorkflowLimits::default(),
        }
    }

    /// The workflow's limits as configured.
    pub fn with_limits(mut self, limits: WorkflowLimits) -> Self {
        self.limits = limits;
        self
    }

    /// A case's SLA clocks, oldest first (for `GetCase`; the caller has already been let see it).
    pub async fn clocks(&self, case_id: &str) -> DomainResult<Vec<Clock>> {
        storage::sla::clocks_of(&self.db, case_id)
            .await
            .map_err(DomainError::from)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.time.now()
    }

    pub fn directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    /// `GetCase`: a case out of the caller's scope is NOT_FOUND, as if it did not exist.
    pub async fn get(
        &self,
        caller: &Caller,
        case_id: &str,
        include_events: bool,
    ) -> DomainResult<(Case, Vec<Event>)> {
        let scope = Scope::of(caller, &self.directory.snapshot())?;
        let not_found = || DomainError::NotFound(format!("no case {case_id:?}"));
        let (case, events) = if include_events {
            storage::cases::with_events(&self.db, case_id)
                .await?
                .ok_or_else(not_found)?
        } else {
            let case = storage::cases::get(&self.db, case_id)
                .await?
                .ok_or_else(not_found)?;
            (case, Vec::new())
        };
        if !scope.reaches(&case) {
            return Err(not_found());
        }
        // Alerts on the case's chain are the centers' (`Scope::sees`), not everyone's who
        // reaches the case.
        let events = events
            .into_iter()
            .filter(|e| scope.sees_event_of(&case, &e.event))
            .collect();
        Ok((case, events))
    }

    /// The caller's scope narrowed to `region_code` (empty: all of it), as `ListCases` reads it.
    fn narrowed(&self, caller: &Caller, region_code: &str) -> DomainResult<CaseFilter> {
        let directory = self.directory.snapshot();
        let scope = Scope::of(caller, &directory)?;
        let region = if region_code.is_empty() {
            None
        } else {
            let region = directory.region(region_code).ok_or_else(|| {
                DomainError::invalid("region_code", format!("unknown region {region_code:?}"))
            })?;
            Some((region.tier, region.code.clone()))
        };
        Ok(CaseFilter {
            scope,
            statuses: Vec::new(),
            region,
            unit_code: None,
            category_code: None,
            received_from: None,
            received_to: None,
            overdue_at: None,
        })
    }

    /// `ListCases`' filters as storage reads them: the caller's scope narrowed by `r`, overdue
    /// as of `now`.
    fn filter(
        &self,
        caller: &Caller,
        r: &ListRequest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> DomainResult<CaseFilter> {
        Ok(CaseFilter {
            statuses: r.statuses.clone(),
            unit_code: (!r.unit_code.is_empty()).then(|| r.unit_code.clone()),
            category_code: (!r.category_code.is_empty()).then(|| r.category_code.clone()),
            received_from: r.received_from,
            received_to: r.received_to,
            overdue_at: r.overdue_only.then_some(now),
            ..self.narrowed(caller, &r.region_code)?
        })
    }

    /// `ListCases`: newest first, within the caller's scope; cases outside it are simply absent.
    pub async fn list(&self, caller: &Caller, r: ListRequest) -> DomainResult<(Vec<Case>, String)> {
        let filter = self.filter(caller, &r, self.time.now())?;
        let after = paging::cursor(&r.page_token)?;
        let limit = u64::try_from(r.page_size).unwrap_or(50) + 1;
        let cases = storage::cases::list(&self.db, &filter, after, limit).await?;
        Ok(paging::page(cases, r.page_size))
    }

    /// `ExportCases`: every case `ListCases` would list for `r` (its page size and token are
    /// not used), read page by page as [`CaseExport::next_page`] is called. The scope, the
    /// filters and "now" (for `overdue_only` and the SLA states) are fixed here, when the
    /// export begins; a bad filter is refused here, before anything is sent.
    pub fn export(&self, caller: &Caller, r: &ListRequest) -> DomainResult<CaseExport> {
        let now = self.time.now();
        Ok(CaseExport {
            db: self.db.clone(),
            filter: self.filter(caller, r, now)?,
            now,
            after: None,
            done: false,
        })
    }

    /// How each of `cases` stands against its clocks now.
    pub async fn sla_states(&self, cases: &[Case]) -> DomainResult<HashMap<String, SlaState>> {
        sla_states_at(&self.db, cases, self.time.now()).await
    }

    /// `ListCasePins`: every case of the caller's scope (narrowed to a region) that has a
    /// position, newest first, at most [`MAX_PINS`]; `true` when there were more.
    pub async fn pins(
        &self,
        caller: &Caller,
        region_code: &str,
        include_closed: bool,
    ) -> DomainResult<(Vec<Pin>, bool)> {
        let filter = self.narrowed(caller, region_code)?;
        let mut pins = storage::cases::pins(
            &self.db,
            &filter,
            !include_closed,
            self.time.now(),
            MAX_PINS + 1,
        )
        .await?;
        let truncated = pins.len() as u64 > MAX_PINS;
        pins.truncate(usize::try_from(MAX_PINS).unwrap_or(usize::MAX));
        Ok((pins, truncated))
    }
}

/// How each of `cases` stands against its clocks at `now`.
async fn sla_states_at(
    db: &DatabaseConnection,
    cases: &[Case],
    now: chrono::DateTime<chrono::Utc>,
) -> DomainResult<HashMap<String, SlaState>> {
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let late = storage::cases::lateness_of(db, &ids, now).await?;
    Ok(cases
        .iter()
        .map(|c| {
            let lateness = late.get(&c.id).copied().unwrap_or(0);
            (
                c.id.clone(),
                SlaState::of(c.red_card, c.escalation_level, lateness),
            )
        })
        .collect())
}

/// How many cases an export reads from the database at a time: the most it holds at once.
pub const EXPORT_PAGE: usize = 1000;

/// An export of cases under way: `ListCases`' query, read a page at a time by keyset paging
/// (`service::paging`), so that what it holds does not grow with the number of cases. Not a
/// snapshot: each page is read when asked for. Since a case's `received_at` never changes,
/// each case comes at most once, and every case stored before the export began that matches
/// the filters throughout comes exactly once.
#[derive(Debug)]
pub struct CaseExport {
    db: DatabaseConnection,
    filter: CaseFilter,
    now: chrono::DateTime<chrono::Utc>,
    after: Option<(chrono::DateTime<chrono::Utc>, String)>,
    done: bool,
}

impl CaseExport {
    /// The next page of cases, newest first, each with how it stands against its clocks as of
    /// the export's start; `None` once every case has come.
    pub async fn next_page(&mut self) -> DomainResult<Option<Vec<(Case, SlaState)>>> {
        if self.done {
            return Ok(None);
        }
        let limit = u64::try_from(EXPORT_PAGE).unwrap_or(1000) + 1;
        let fetched =
            storage::cases::list(&self.db, &self.filter, self.after.take(), limit).await?;
        let (cases, next) = paging::page(fetched, EXPORT_PAGE);
        self.after = paging::cursor(&next)?;
        self.done = self.after.is_none();
        if cases.is_empty() {
            return Ok(None);
        }
        let mut states = sla_states_at(&self.db, &cases, self.now).await?;
        Ok(Some(
            cases
                .into_iter()
                .map(|c| {
                    let state = states.remove(&c.id).unwrap_or(SlaState::OnTime);
                    (c, state)
                })
                .collect(),
        ))
    }
}

/// How long a case waits on the reporter at most, unless configured: 5 working days.
pub const DEFAULT_MAX_REPORTER_WAIT: SlaDuration = SlaDuration::WorkingDays(5);

/// How long after dispatch a unit returns a case on its own word, unless configured: 2
/// working days (the 12345 rule).
pub const DEFAULT_RETURN_WINDOW: SlaDuration = SlaDuration::WorkingDays(2);

/// The most pins one answer carries.
pub const MAX_PINS: u64 = 50_000;

impl CaseQueries {
    /// Gives `command` to the case at `expected_version`. A stale version is ABORTED and changes
    /// nothing; so does losing a race to a concurrent change.
    pub async fn act(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        command: Command,
    ) -> DomainResult<Case> {
        version_given(expected_version)?;
        if let Command::Progress { attachment_ids, .. } | Command::Resolve { attachment_ids, .. } =
            &command
        {
            super::attachments::check_owned(&self.db, caller, attachment_ids).await?;
        }
        let current = self.read_at(caller, case_id, expected_version).await?;
        self.commit(caller, current, command).await
    }

    /// The case in the caller's scope, at `expected_version` (else ABORTED): what a command
    /// is given to, read once.
    async fn read_at(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
    ) -> DomainResult<Case> {
        version_given(expected_version)?;
        let (current, _) = self.get(caller, case_id, false).await?;
        if current.version != expected_version {
            return Err(stale(&current));
        }
        Ok(current)
    }

    /// Gives `command` to `current` (read at the version the caller gave) and appends what the
    /// workflow makes of it, unless the case changed meanwhile.
    async fn commit(&self, caller: &Caller, current: Case, command: Command) -> DomainResult<Case> {
        let expected_version = current.version;
        let case_id = current.id.clone();
        let directory = self.directory.snapshot();
        let (updated, events) = workflow::apply(
            &current,
            Actor::Person(caller),
            &directory,
            command,
            self.time.now(),
        )?;
        match storage::cases::append(
            &self.db,
            &self.rules.snapshot(),
            &updated,
            expected_version,
            events,
        )
        .await?
        {
            Some((case, _)) => {
                self.wake.events_committed();
                Ok(case)
            }
            None => {
                let now = storage::cases::get(&self.db, &case_id)
                    .await?
                    .unwrap_or(current);
                Err(stale(&now))
            }
        }
    }

    /// `AwaitReporter`: the lead unit asks the reporter `question`; the wait ends by itself
    /// `max_reporter_wait` after now, by the calendar of the rules in force (stored in the
    /// event, so every replica ends it at the same time).
    pub async fn await_reporter(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        question: String,
    ) -> DomainResult<Case> {
        let until = self
            .rules
            .snapshot()
            .calendar
            .due(self.time.now(), self.limits.max_reporter_wait);
        self.act(
            caller,
            case_id,
            expected_version,
            Command::AwaitReporter { question, until },
        )
        .await
    }

    /// `ReturnCase`: within `return_window` of the case's dispatch (by the calendar of the
    /// rules in force) the case is returned; later the return is a request the center decides.
    pub async fn return_case(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        reason: String,
    ) -> DomainResult<Case> {
        let case = self.read_at(caller, case_id, expected_version).await?;
        let window_ends_at = case.dispatched_at.map(|at| {
            self.rules
                .snapshot()
                .calendar
                .due(at, self.limits.return_window)
        });
        let command = Command::Return {
            reason,
            window_ends_at,
        };
        self.commit(caller, case, command).await
    }

    /// What an extension of `duration` would do to `case`'s resolve clock, by its clocks as
    /// stored and the calendar in force. The case was read at the version the command is given
    /// at, and its clocks move only with its version (a level fired meanwhile moves no due time).
    async fn extension_room(
        &self,
        case: &Case,
        duration: SlaDuration,
    ) -> DomainResult<ExtensionRoom> {
        let clocks = self.clocks(&case.id).await?;
        Ok(ExtensionRoom::of(
            case,
            &clocks,
            duration,
            self.limits.extensions,
            &self.rules.snapshot().calendar,
        ))
    }

    /// `RequestExtension`: the lead unit asks for `duration` more on the resolve clock.
    pub async fn request_extension(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        duration: SlaDuration,
        reason: String,
    ) -> DomainResult<Case> {
        let case = self.read_at(caller, case_id, expected_version).await?;
        let room = self.extension_room(&case, duration).await?;
        self.commit(caller, case, Command::RequestExtension { reason, room })
            .await
    }

    /// `DecideExtension`: the holding center approves or refuses the extension asked.
    pub async fn decide_extension(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        approve: bool,
        reason: String,
    ) -> DomainResult<Case> {
        let case = self.read_at(caller, case_id, expected_version).await?;
        let room = match case.request.as_ref().map(|r| r.kind) {
            Some(RequestKind::Extension { duration }) => {
                Some(self.extension_room(&case, duration).await?)
            }
            Some(RequestKind::Return) | None => None,
        };
        let command = Command::DecideExtension {
            approve,
            reason,
            room,
        };
        self.commit(caller, case, command).await
    }

    /// `MergeCase`: both cases must be in the caller's scope.
    pub async fn merge(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        into_case_id: &str,
        reason: String,
    ) -> DomainResult<Case> {
        // The case itself first: out of scope, it is NOT_FOUND whatever `into` is.
        self.get(caller, case_id, false).await?;
        let (into, _) = self
            .get(caller, into_case_id, false)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(m) => DomainError::invalid("into_case_id", m),
                other => other,
            })?;
        self.act(
            caller,
            case_id,
            expected_version,
            Command::Merge {
                into: Box::new(into),
                reason,
            },
        )
        .await
    }
}

/// A change names the version of the case it is based on.
fn version_given(expected_version: i64) -> DomainResult<()> {
    if expected_version <= 0 {
        return Err(DomainError::invalid(
            "expected_version",
            "required: the version of the case this change is based on",
        ));
    }
    Ok(())
}

fn stale(current: &Case) -> DomainError {
    DomainError::Aborted(format!(
        "case {} changed meanwhile: it is now version {} ({}); read it again",
        current.code, current.version, current.status
    ))
}
