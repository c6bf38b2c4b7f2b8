//! The case state machine (DESIGN.md "Case lifecycle"), in one place: which command fits which
//! state, who may give it, and what it changes. Storage and the gRPC layer only carry it out.

use chrono::{DateTime, Utc};

use super::{
    Caller, DomainError, DomainResult, Role,
    alerts::AlertKind,
    case::{Assist, Case, CaseStatus, NewEvent},
    case::{Request, RequestKind},
    directory::{Directory, Tier, center_code},
    event::{self, AlertDetails, Details, EventKind, ResumedBy, SlaEscalation, SlaLevelDetails},
    sla::{Clock, ExtensionRoom, Level, clock_unit},
};

/// 满意 / 基本满意 / 不满意.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
}

impl Satisfaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "satisfied",
            Satisfaction::BasicallySatisfied => "basically_satisfied",
            Satisfaction::Dissatisfied => "dissatisfied",
        }
    }

    /// 满意 and 基本满意 count as satisfied in the satisfaction rate.
    pub fn is_satisfied(self) -> bool {
        self != Satisfaction::Dissatisfied
    }
}

impl std::str::FromStr for Satisfaction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Satisfaction::Satisfied,
            Satisfaction::BasicallySatisfied,
            Satisfaction::Dissatisfied,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("unknown satisfaction {s:?}"))
    }
}

/// What someone asks to do to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// 分流交办: to the routed lead unit, or to `unit_code` overriding routing.
    Dispatch {
        unit_code: Option<String>,
        reason: String,
    },
    /// 签收.
    Accept,
    /// 退回: not ours. Within the return window (`window_ends_at`: `return_window` after the
    /// case was dispatched, worked out by the service with the calendar; `None` when the case
    /// has no dispatch time) the case is returned at once; later the return becomes a request
    /// the holding center decides ([`Command::DecideReturn`]).
    Return {
        reason: String,
        window_ends_at: Option<DateTime<Utc>>,
    },
    /// 延期申请: the lead unit asks the holding center for more time on the resolve clock;
    /// `room` is what the extension would do, worked out by the service from the case's clocks.
    RequestExtension {
        reason: String,
        room: ExtensionRoom,
    },
    /// The holding center's dispatcher approves or refuses the extension asked; `room` is
    /// worked out for the duration asked (`None` when none is asked).
    DecideExtension {
        approve: bool,
        reason: String,
        room: Option<ExtensionRoom>,
    },
    /// The holding center's dispatcher approves or refuses a late return.
    DecideReturn {
        approve: bool,
        reason: String,
    },
    Progress {
        note: String,
        attachment_ids: Vec<String>,
    },
    /// 办结.
    Resolve {
        result: String,
        attachment_ids: Vec<String>,
    },
    /// 反馈: the reporter was told.
    Feedback {
        note: String,
    },
    /// 评价: by the reporter, or on the reporter's word after a callback (回访): by a
    /// dispatcher whose scope holds the case, or by the gateway that brought it.
    Evaluate {
        satisfaction: Satisfaction,
        comment: String,
        by_callback: bool,
    },
    Close {
        reason: String,
    },
    Merge {
        into: Box<Case>,
        reason: String,
    },
    Cancel {
        reason: String,
    },
    /// Up one tier by hand: the parent region's center takes the case over.
    Escalate {
        reason: String,
    },
    /// 吹哨报到: summon assisting units; each checks in with `Accept`.
    Whistle {
        unit_codes: Vec<String>,
        reason: String,
    },
    /// The reporter adds text or photos to an open case of theirs.
    Supplement {
        text: String,
        attachment_ids: Vec<String>,
    },
    /// The SLA supervisor: a level of a clock has come (warning, 督办 notice, escalation).
    SlaLevel {
        clock: Box<Clock>,
        level: Level,
    },
    /// The lead unit asks the reporter a question; the case waits on the reporter (its resolve
    /// clock pauses) until `ResumeCase`, the reporter's supplement, or `until` (the pause's
    /// start plus `max_reporter_wait`, worked out by the service with the calendar).
    AwaitReporter {
        question: String,
        until: DateTime<Utc>,
    },
    /// The lead unit ends the wait on the reporter.
    Resume {
        note: String,
    },
    /// The SLA supervisor: a wait on the reporter reached its limit at `resumed_at` and ends by
    /// itself, counting against no one.
    PauseEnded {
        paused_at: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
    },
    /// gridcase's early warning: the case crossed a threshold (`domain::alerts`); the alert is
    /// recorded on its chain and changes nothing of it.
    RaiseAlert {
        kind: AlertKind,
        details: Box<AlertDetails>,
    },
}

/// Who gives a command.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A member or a service identity whose token the auth layer verified.
    Person(&'a Caller),
    /// gridcase's own SLA supervisor.
    Supervisor,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Dispatch { .. } => "dispatch",
            Command::Accept => "accept",
            Command::Return { .. } => "return",
            Command::Progress { .. } => "update progress on",
            Command::Resolve { .. } => "resolve",
            Command::Feedback { .. } => "record feedback on",
            Command::Evaluate { .. } => "evaluate",
            Command::Close { .. } => "close",
            Command::Merge { .. } => "merge",
            Command::Cancel { .. } => "cancel",
            Command::Escalate { .. } => "escalate",
            Command::Whistle { .. } => "whistle for",
            Command::Supplement { .. } => "add a supplement to",
            Command::SlaLevel { .. } => "fire an SLA level on",
            Command::AwaitReporter { .. } => "ask the reporter of",
            Command::Resume { .. } => "resume",
            Command::PauseEnded { .. } => "end the wait on the reporter of",
            Command::RequestExtension { .. } => "ask for an extension of",
            Command::DecideExtension { .. } => "decide an extension of",
            Command::DecideReturn { .. } => "decide a return of",
            Command::RaiseAlert { .. } => "raise an alert on",
        }
    }
}

/// A case reopened this many times goes to the next tier's center.
pub const REOPENS_BEFORE_ESCALATION: i32 = 2;

fn refuse(case: &Case, command: &Command) -> DomainError {
    DomainError::FailedPrecondition(format!(
        "cannot {} case {}: it is {}",
        command.name(),
        case.code,
        case.status
    ))
}

fn require(field: &str, text: &str) -> DomainResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > 2000 {
        return Err(DomainError::invalid(field, "longer than 2000 characters"));
    }
    Ok(text.to_owned())
}

/// The member's unit, if the caller is unit staff.
fn unit_of<'a>(caller: &Caller, directory: &'a Directory) -> Option<&'a str> {
    directory
        .member(&caller.sub)
        .filter(|m| m.role == Role::UnitStaff)
        .and_then(|m| m.unit_code.as_deref())
}

/// Applies `command` by `actor` to `case` (already known to be in a person's scope). Returns
/// the case as it will be stored (version not yet bumped: see [`moves_case`]) and the events to
/// append. Every change of a case goes through here: people's commands, supplements, and the
/// SLA supervisor's levels.
pub fn apply(
    case: &Case,
    actor: Actor<'_>,
    directory: &Directory,
    command: Command,
    now: DateTime<Utc>,
) -> DomainResult<(Case, Vec<NewEvent>)> {
    let (after, mut events) = match (actor, command) {
        (Actor::Supervisor, Command::SlaLevel { clock, level }) => {
            sla_level(case, &clock, level, directory, now)
        }
        (
            Actor::Supervisor,
            Command::PauseEnded {
                paused_at,
                resumed_at,
            },
        ) => {
            // The scan found the case's paused clock at its limit (and claimed it): the wait
            // ends, whatever the case row says of it.
            let mut next = case.clone();
            next.awaiting_since = None;
            next.updated_at = now;
            let event = NewEvent::system(EventKind::Resumed, now)
                .reason("the wait on the reporter reached its limit")
                .details(Details::Resumed {
                    by: ResumedBy::Limit,
                    paused_at,
                    resumed_at,
                });
            (next, vec![event])
        }
        (Actor::Supervisor, Command::RaiseAlert { kind, details }) => {
            let (event_kind, reason) = match kind {
                AlertKind::Hotspot => (
                    EventKind::Hotspot,
                    format!(
                        "{} {} cases in {} within the window: 研判预警",
                        details.case_ids.len(),
                        details.class_name.as_deref().unwrap_or("same-class"),
                        details.region_code
                    ),
                ),
                AlertKind::RepeatReporter => (
                    EventKind::RepeatReporter,
                    format!(
                        "the same reporter on {} cases within the window: call them back",
                        details.case_ids.len()
                    ),
                ),
            };
            let event = NewEvent::system(event_kind, now)
                .reason(reason)
                .details(Details::Alert(*details));
            (case.clone(), vec![event])
        }
        (Actor::Supervisor, other) => {
            return Err(DomainError::internal(anyhow::anyhow!(
                "the SLA supervisor cannot {} case {}",
                other.name(),
                case.code
            )));
        }
        (
            Actor::Person(_),
            Command::SlaLevel { .. } | Command::PauseEnded { .. } | Command::RaiseAlert { .. },
        ) => {
            return Err(DomainError::PermissionDenied(
                "SLA levels and alerts are raised by gridcase's supervisor only".into(),
            ));
        }
        (Actor::Person(caller), command) => by_person(case, caller, directory, command, now)?,
    };
    event::address(&mut events, case, &after);
    Ok((after, events))
}

/// Whether the change moves the case: every change does but the SLA warnings and notices and
/// the alerts, which only record, so that no one's command is refused as stale for them.
pub fn moves_case(events: &[NewEvent]) -> bool {
    events.iter().any(|e| {
        !matches!(
            e.kind,
            EventKind::SlaWarning
                | EventKind::SlaBreach
                | EventKind::Hotspot
                | EventKind::RepeatReporter
        )
    })
}

/// A level of an SLA clock has come. A warning tells the unit; a 督办 notice tells the unit and
/// its region's center; an escalation hands supervision of the case to the next center up
/// (`region_code` moves to the parent region: see ARCHITECTURE.md "Escalation") and flags the
/// unit's leader for an interview (约谈); a case's second escalation is a red card.
fn sla_level(
    case: &Case,
    clock: &Clock,
    level: Level,
    directory: &Directory,
    now: DateTime<Utc>,
) -> (Case, Vec<NewEvent>) {
    let mut next = case.clone();
    let mut more = Vec::new();
    let escalation = level.is_escalation().then(|| {
        let from_region = next.region_code.clone();
        if let Some(parent) = directory
            .region(&next.region_code)
            .and_then(|r| r.parent_code.clone())
        {
            next.region_code = parent;
        }
        next.escalation_level += 1;
        next.updated_at = now;
        if next.escalation_level >= 2 && !next.red_card {
            next.red_card = true;
            more.push(
                NewEvent::system(EventKind::RedCard, now)
                    .reason("second escalation: red card")
                    .details(Details::RedCard {
                        escalation_level: next.escalation_level,
                        unit_code: next.unit_code.clone(),
                    }),
            );
        }
        SlaEscalation {
            from_region,
            to_region: next.region_code.clone(),
            supervising_center: center_code(&next.region_code),
            escalation_level: next.escalation_level,
        }
    });
    let unit = clock_unit(clock, &next).to_owned();
    let notify = match level {
        Level::Warning => vec![unit.clone()],
        // 督办: the unit and its region's center.
        Level::Breach => {
            let center = directory
                .unit(&unit)
                .map(|u| center_code(&u.region_code))
                .unwrap_or_else(|| center_code(&next.region_code));
            let mut notify = vec![unit.clone()];
            if center != unit {
                notify.push(center);
            }
            notify
        }
        Level::Escalation | Level::SecondEscalation => Vec::new(),
    };
    let reason = match level {
        Level::Warning => format!("{} clock at 80 %", clock.kind),
        Level::Breach => format!("{} clock overdue: 督办", clock.kind),
        Level::Escalation => format!("{} clock overdue by half its time: escalated", clock.kind),
        Level::SecondEscalation => format!(
            "{} clock overdue by its whole time again: escalated",
            clock.kind
        ),
    };
    let mut events = vec![
        NewEvent::system(level.event_kind(), now)
            .reason(reason)
            .details(Details::SlaLevel(SlaLevelDetails {
                clock: clock.kind,
                cycle: clock.cycle,
                unit_code: unit,
                level,
                due_at: clock.schedule.due_at,
                level_at: clock.schedule.at(level),
                notify,
                escalation,
            })),
    ];
    events.extend(more);
    (next, events)
}

/// A person's command.
fn by_person(
    case: &Case,
    caller: &Caller,
    directory: &Directory,
    command: Command,
    now: DateTime<Utc>,
) -> DomainResult<(Case, Vec<NewEvent>)> {
    use CaseStatus::*;
    let mut next = case.clone();
    next.updated_at = now;
    let event = |kind: EventKind| NewEvent::new(kind, &caller.sub, caller.role, now);
    let lead = || {
        if unit_of(caller, directory) == Some(case.unit_code.as_str()) {
            Ok(())
        } else {
            Err(DomainError::PermissionDenied(format!(
                "only staff of the lead unit {} may do this",
                case.unit_code
            )))
        }
    };
    // The holding center decides what the lead unit asks; the dispatcher's scope was checked
    // when the case was read.
    let center = || {
        if caller.role == Role::Dispatcher {
            Ok(())
        } else {
            Err(DomainError::PermissionDenied(
                "the holding center's dispatcher decides what the lead unit asks".into(),
            ))
        }
    };
    let from = Some(case.status);
    let events = match command {
        Command::Dispatch { unit_code, reason } => {
            if !matches!(case.status, Registered | Returned | Dispatched) {
                return Err(refuse(case, &Command::Dispatch { unit_code, reason }));
            }
            if let Some(code) = unit_code {
                let unit = directory.unit(&code).ok_or_else(|| {
                    DomainError::invalid("unit_code", format!("unknown unit {code:?}"))
                })?;
                if unit.retired {
                    return Err(DomainError::invalid(
                        "unit_code",
                        format!("unit {code} is retired"),
                    ));
                }
                let region = directory.region(&unit.region_code).ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!("unit {code} has no region"))
                })?;
                next.unit_code = unit.code;
                next.tier = region.tier;
            }
            next.status = Dispatched;
            next.dispatched_at = Some(now);
            vec![
                event(EventKind::Dispatched)
                    .transition(from, Dispatched)
                    .reason(reason)
                    .details(Details::Dispatched {
                        unit_code: next.unit_code.clone(),
                        tier: next.tier,
                    }),
            ]
        }
        Command::Accept => {
            let unit = unit_of(caller, directory);
            if let Some(i) = case.assisting.iter().position(|a| {
                Some(a.unit_code.as_str()) == unit && unit != Some(case.unit_code.as_str())
            }) {
                // An assisting unit checking in (报到); the case's state is the lead unit's.
                if case.assisting[i].checked_in_at.is_some() {
                    return Err(DomainError::FailedPrecondition(format!(
                        "{} has already checked in on case {}",
                        case.assisting[i].unit_code, case.code
                    )));
                }
                next.assisting[i].checked_in_at = Some(now);
                vec![event(EventKind::CheckedIn).details(Details::CheckedIn {
                    unit_code: case.assisting[i].unit_code.clone(),
                })]
            } else {
                lead()?;
                if case.status != Dispatched {
                    return Err(refuse(case, &Command::Accept));
                }
                next.status = Accepted;
                vec![event(EventKind::Accepted).transition(from, Accepted)]
            }
        }
        Command::Return {
            reason,
            window_ends_at,
        } => {
            lead()?;
            if !matches!(case.status, Dispatched | Accepted) {
                return Err(refuse(
                    case,
                    &Command::Return {
                        reason,
                        window_ends_at,
                    },
                ));
            }
            let reason = require("reason", &reason)?;
            no_request_pending(case)?;
            match window_ends_at {
                // Past the window: the center decides.
                Some(end) if now > end => {
                    next.request = Some(Request {
                        kind: RequestKind::Return,
                        reason: reason.clone(),
                        by_sub: caller.sub.clone(),
                        unit_code: case.unit_code.clone(),
                        at: now,
                    });
                    vec![event(EventKind::ReturnRequested).reason(reason).details(
                        Details::ReturnRequested {
                            window_ended_at: end,
                        },
                    )]
                }
                _ => {
                    next.status = Returned;
                    vec![
                        event(EventKind::Returned)
                            .transition(from, Returned)
                            .reason(reason),
                    ]
                }
            }
        }
        Command::DecideReturn { approve, reason } => {
            center()?;
            let Some(asked) = case
                .request
                .as_ref()
                .filter(|r| r.kind == RequestKind::Return)
            else {
                return Err(DomainError::FailedPrecondition(format!(
                    "cannot decide a return of case {}: its lead unit has not asked for one",
                    case.code
                )));
            };
            next.request = None;
            if approve {
                next.status = Returned;
                vec![
                    event(EventKind::ReturnDecided)
                        .reason(reason.trim().to_owned())
                        .details(Details::ReturnDecided { approved: true }),
                    event(EventKind::Returned)
                        .transition(from, Returned)
                        .reason(asked.reason.clone()),
                ]
            } else {
                vec![
                    event(EventKind::ReturnDecided)
                        .reason(require("reason", &reason)?)
                        .details(Details::ReturnDecided { approved: false }),
                ]
            }
        }
        Command::RequestExtension { reason, room } => {
            lead()?;
            if !matches!(case.status, Accepted | InProgress) {
                return Err(refuse(case, &Command::RequestExtension { reason, room }));
            }
            let reason = require("reason", &reason)?;
            no_request_pending(case)?;
            let due = room.check(&case.code, true, now)?;
            next.request = Some(Request {
                kind: RequestKind::Extension {
                    duration: room.duration,
                },
                reason: reason.clone(),
                by_sub: caller.sub.clone(),
                unit_code: case.unit_code.clone(),
                at: now,
            });
            vec![event(EventKind::ExtensionRequested).reason(reason).details(
                Details::ExtensionRequested {
                    duration: room.duration,
                    due_at: due.due_at,
                    extended_due_at: due.extended_due_at,
                },
            )]
        }
        Command::DecideExtension {
            approve,
            reason,
            room,
        } => {
            center()?;
            let Some(RequestKind::Extension { duration }) = case.request.as_ref().map(|r| r.kind)
            else {
                return Err(DomainError::FailedPrecondition(format!(
                    "cannot decide an extension of case {}: its lead unit has not asked for one",
                    case.code
                )));
            };
            next.request = None;
            let (reason, moved) = if approve {
                let room = room.filter(|r| r.duration == duration).ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!(
                        "no extension room worked out for {duration} on case {}",
                        case.code
                    ))
                })?;
                let due = room.check(&case.code, false, now)?;
                (
                    reason.trim().to_owned(),
                    Some((due.due_at, due.extended_due_at)),
                )
            } else {
                (require("reason", &reason)?, None)
            };
            vec![event(EventKind::ExtensionDecided).reason(reason).details(
                Details::ExtensionDecided {
                    approved: approve,
                    duration,
                    moved,
                },
            )]
        }
        Command::Progress {
            note,
            attachment_ids,
        } => {
            lead()?;
            if !matches!(case.status, Accepted | InProgress) {
                return Err(refuse(
                    case,
                    &Command::Progress {
                        note,
                        attachment_ids,
                    },
                ));
            }
            let note = require("note", &note)?;
            next.status = InProgress;
            next.attachment_ids.extend(attachment_ids.iter().cloned());
            vec![
                event(EventKind::Progress)
                    .transition(from, InProgress)
                    .reason(note)
                    .details(Details::Attachments { attachment_ids }),
            ]
        }
        Command::Resolve {
            result,
            attachment_ids,
        } => {
            let on_the_spot = caller.role == Role::GridMember;
            if on_the_spot {
                // 小事不出网格: a grid member settles a grid-tier item of their own grid, with a photo.
                let theirs = directory.member(&caller.sub).is_some_and(|m| {
                    case.grid_code()
                        .is_some_and(|g| m.grid_codes.iter().any(|x| x == g))
                });
                if case.tier != Tier::Grid || !theirs {
                    return Err(DomainError::PermissionDenied(
                        "grid members resolve only grid-tier cases of their own grids".into(),
                    ));
                }
                if attachment_ids.is_empty() {
                    return Err(DomainError::invalid(
                        "attachment_ids",
                        "resolving on the spot needs a photo",
                    ));
                }
                if !matches!(case.status, Registered | Dispatched | Accepted | InProgress) {
                    return Err(refuse(
                        case,
                        &Command::Resolve {
                            result,
                            attachment_ids,
                        },
                    ));
                }
            } else {
                lead()?;
                if !matches!(case.status, Accepted | InProgress) {
                    return Err(refuse(
                        case,
                        &Command::Resolve {
                            result,
                            attachment_ids,
                        },
                    ));
                }
            }
            let result = require("result", &result)?;
            next.status = Resolved;
            next.resolved_at = Some(now);
            next.resolution_text = Some(result.clone());
            next.attachment_ids.extend(attachment_ids.iter().cloned());
            vec![
                event(EventKind::Resolved)
                    .transition(from, Resolved)
                    .reason(result)
                    .details(Details::Resolved {
                        attachment_ids,
                        on_the_spot,
                    }),
            ]
        }
        Command::Feedback { note } => {
            if caller.role == Role::UnitStaff {
                lead()?;
            }
            if case.status != Resolved {
                return Err(refuse(case, &Command::Feedback { note }));
            }
            let note = require("note", &note)?;
            vec![event(EventKind::Feedback).reason(note)]
        }
        Command::Evaluate {
            satisfaction,
            comment,
            by_callback,
        } => {
            match (caller.role, by_callback) {
                // The holding center calls hotline reporters back; its scope was checked
                // when the case was read.
                (Role::Dispatcher, true) => {}
                (Role::Dispatcher, false) => {
                    return Err(DomainError::PermissionDenied(
                        "a dispatcher records a reporter's evaluation only after a callback \
                         (回访): set by_callback"
                            .into(),
                    ));
                }
                (Role::Gateway, _) | (_, false) if case.reporter_sub == caller.sub => {}
                (Role::Gateway, _) | (_, false) => {
                    return Err(DomainError::PermissionDenied(
                        "only the reporter, the gateway that brought the case, or a dispatcher \
                         after a callback evaluates it"
                            .into(),
                    ));
                }
                (_, true) => {
                    return Err(DomainError::invalid(
                        "by_callback",
                        "a callback (回访) is recorded by the holding center's dispatcher or the \
                         gateway that brought the case, not by the reporter",
                    ));
                }
            }
            if case.status != Resolved {
                return Err(refuse(
                    case,
                    &Command::Evaluate {
                        satisfaction,
                        comment,
                        by_callback,
                    },
                ));
            }
            next.evaluation = Some(super::case::Evaluation {
                satisfaction,
                comment: comment.trim().to_owned(),
                by_sub: caller.sub.clone(),
                at: now,
                by_callback,
            });
            let mut events = vec![
                event(EventKind::Evaluated)
                    .reason(comment.trim().to_owned())
                    .details(Details::Evaluated {
                        satisfaction,
                        by_callback,
                    }),
            ];
            if satisfaction == Satisfaction::Dissatisfied {
                // 不满意 reopens the case for a new cycle; the second reopen goes up a tier.
                next.status = Dispatched;
                next.dispatched_at = Some(now);
                next.cycle += 1;
                next.reopen_count += 1;
                next.resolution_text = None;
                next.resolved_at = None;
                let mut to_center = None;
                if next.reopen_count >= REOPENS_BEFORE_ESCALATION
                    && let Some(parent) = directory
                        .region(&case.region_code)
                        .and_then(|r| r.parent_code.as_deref())
                        .and_then(|p| directory.region(p))
                    && let Some(center) = directory.unit(&center_code(&parent.code))
                {
                    next.region_code = parent.code.clone();
                    next.tier = parent.tier;
                    next.unit_code = center.code;
                    to_center = Some(next.unit_code.clone());
                }
                events.push(
                    event(EventKind::Reopened)
                        .transition(from, Dispatched)
                        .reason("the reporter is dissatisfied")
                        .details(Details::Reopened {
                            cycle: next.cycle,
                            to_center,
                        }),
                );
            }
            events
        }
        Command::Close { reason } => {
            if case.status != Resolved {
                return Err(refuse(case, &Command::Close { reason }));
            }
            next.status = Closed;
            vec![
                event(EventKind::Closed)
                    .transition(from, Closed)
                    .reason(reason.trim().to_owned()),
            ]
        }
        Command::Merge { into, reason } => {
            if !case.status.is_open() {
                return Err(refuse(case, &Command::Merge { into, reason }));
            }
            if into.id == case.id {
                return Err(DomainError::invalid(
                    "into_case_id",
                    "a case cannot merge into itself",
                ));
            }
            if !into.status.is_open() {
                return Err(DomainError::FailedPrecondition(format!(
                    "cannot merge into case {}: it is {}",
                    into.code, into.status
                )));
            }
            next.status = Merged;
            next.merged_into = Some(into.id.clone());
            vec![
                event(EventKind::Merged)
                    .transition(from, Merged)
                    .reason(reason.trim().to_owned())
                    .details(Details::Merged {
                        into_case_id: into.id.clone(),
                        into_case_code: into.code.clone(),
                    }),
            ]
        }
        Command::Cancel { reason } => {
            if !case.status.is_open() {
                return Err(refuse(case, &Command::Cancel { reason }));
            }
            let reason = require("reason", &reason)?;
            next.status = Cancelled;
            vec![
                event(EventKind::Cancelled)
                    .transition(from, Cancelled)
                    .reason(reason),
            ]
        }
        Command::Whistle { unit_codes, reason } => {
            if !matches!(case.status, Dispatched | Accepted | InProgress) {
                return Err(refuse(case, &Command::Whistle { unit_codes, reason }));
            }
            if unit_codes.is_empty() {
                return Err(DomainError::invalid("unit_codes", "name at least one unit"));
            }
            for (i, code) in unit_codes.iter().enumerate() {
                if directory.active_unit(code).is_none() {
                    return Err(DomainError::invalid(
                        format!("unit_codes[{i}]"),
                        format!("unknown or retired unit {code:?}"),
                    ));
                }
                if *code == case.unit_code {
                    return Err(DomainError::invalid(
                        format!("unit_codes[{i}]"),
                        format!("{code} already leads the case"),
                    ));
                }
                if case.assisting.iter().any(|a| a.unit_code == *code)
                    || unit_codes[..i].contains(code)
                {
                    return Err(DomainError::invalid(
                        format!("unit_codes[{i}]"),
                        format!("{code} is already summoned"),
                    ));
                }
            }
            next.assisting.extend(unit_codes.iter().map(|code| Assist {
                unit_code: code.clone(),
                summoned_at: now,
                checked_in_at: None,
            }));
            vec![
                event(EventKind::Whistled)
                    .reason(reason.trim().to_owned())
                    .details(Details::Whistled { unit_codes }),
            ]
        }
        Command::Supplement {
            text,
            attachment_ids,
        } => {
            if case.reporter_sub != caller.sub {
                return Err(DomainError::PermissionDenied(
                    "only the reporter adds to a report".into(),
                ));
            }
            if !case.status.is_open() {
                return Err(DomainError::FailedPrecondition(format!(
                    "case {} is {}; supplements go to open cases",
                    case.code, case.status
                )));
            }
            next.attachment_ids.extend(attachment_ids.iter().cloned());
            let mut events = vec![
                event(EventKind::Supplement)
                    .reason(text)
                    .details(Details::Attachments { attachment_ids }),
            ];
            // The reporter's answer ends a wait on them.
            if let Some(paused_at) = case.awaiting_since {
                next.awaiting_since = None;
                events.push(
                    event(EventKind::Resumed)
                        .reason("the reporter added a supplement")
                        .details(Details::Resumed {
                            by: ResumedBy::Reporter,
                            paused_at,
                            resumed_at: now,
                        }),
                );
            }
            events
        }
        Command::AwaitReporter { question, until } => {
            lead()?;
            if !matches!(case.status, Accepted | InProgress) {
                return Err(refuse(case, &Command::AwaitReporter { question, until }));
            }
            if case.awaiting_since.is_some() {
                return Err(DomainError::FailedPrecondition(format!(
                    "cannot ask the reporter of case {}: it is {} and already waiting on the \
                     reporter",
                    case.code, case.status
                )));
            }
            let question = require("question", &question)?;
            next.awaiting_since = Some(now);
            vec![event(EventKind::AwaitingReporter).reason(question).details(
                Details::AwaitingReporter {
                    until: until.max(now),
                },
            )]
        }
        Command::Resume { note } => {
            lead()?;
            let Some(paused_at) = case.awaiting_since else {
                return Err(DomainError::FailedPrecondition(format!(
                    "cannot resume case {}: it is {} and not waiting on the reporter",
                    case.code, case.status
                )));
            };
            next.awaiting_since = None;
            vec![
                event(EventKind::Resumed)
                    .reason(note.trim().to_owned())
                    .details(Details::Resumed {
                        by: ResumedBy::Unit,
                        paused_at,
                        resumed_at: now,
                    }),
            ]
        }
        Command::SlaLevel { .. } | Command::PauseEnded { .. } | Command::RaiseAlert { .. } => {
            return Err(DomainError::PermissionDenied(
                "SLA levels and alerts are raised by gridcase's supervisor only".into(),
            ));
        }
        Command::Escalate { reason } => {
            if !matches!(
                case.status,
                Registered | Returned | Dispatched | Accepted | InProgress
            ) {
                return Err(refuse(case, &Command::Escalate { reason }));
            }
            let reason = require("reason", &reason)?;
            let parent = directory
                .region(&case.region_code)
                .and_then(|r| r.parent_code.as_deref())
                .and_then(|p| directory.region(p))
                .ok_or_else(|| {
                    DomainError::FailedPrecondition(format!(
                        "case {} is held at the top of the region tree ({}); there is no tier above",
                        case.code, case.region_code
                    ))
                })?;
            let center = directory.unit(&center_code(&parent.code)).ok_or_else(|| {
                DomainError::internal(anyhow::anyhow!("region {} has no center", parent.code))
            })?;
            next.region_code = parent.code.clone();
            next.tier = parent.tier;
            next.unit_code = center.code;
            next.escalation_level += 1;
            next.status = Dispatched;
            next.dispatched_at = Some(now);
            vec![
                event(EventKind::Escalated)
                    .transition(from, Dispatched)
                    .reason(reason)
                    .details(Details::Escalated {
                        from_region: case.region_code.clone(),
                        to_region: next.region_code.clone(),
                        unit_code: next.unit_code.clone(),
                        escalation_level: next.escalation_level,
                    }),
            ]
        }
    };
    // A wait on the reporter lasts only while the case is accepted or in progress: a change
    // that takes it elsewhere (resolved, returned, escalated, merged, cancelled) ends the wait,
    // and storage resumes the stopped clock at its stop (`sla::clock_changes`).
    if !matches!(next.status, Accepted | InProgress) {
        next.awaiting_since = None;
    }
    // A request stands while the unit that asked leads the case in a state where it may ask.
    if let Some(r) = &next.request {
        let asks_still = match r.kind {
            RequestKind::Extension { .. } => matches!(next.status, Accepted | InProgress),
            RequestKind::Return => matches!(next.status, Dispatched | Accepted),
        };
        if !asks_still || r.unit_code != next.unit_code {
            next.request = None;
        }
    }
    Ok((next, events))
}

/// One request at a time waits on the center.
fn no_request_pending(case: &Case) -> DomainResult<()> {
    match &case.request {
        Some(r) => Err(DomainError::FailedPrecondition(format!(
            "case {}: its {} request of {} waits on the holding center's decision",
            case.code,
            r.kind.as_str(),
            r.at.to_rfc3339()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        calendar::SlaDuration,
        case::Assist,
        fixtures::{self, *},
        sla::{ClockKind, ExtendedDue, ExtensionRules, Schedule},
    };

    /// What a command should come to, by the rules of DESIGN.md "Case lifecycle".
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        /// Applied; the case is then in this state.
        To(CaseStatus),
        /// PERMISSION_DENIED: this caller may not give it (whatever the state).
        Denied,
        /// FAILED_PRECONDITION: not in this state.
        NotNow,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Who {
        Reporter,
        OtherGridMember,
        LeadStaff,
        AssistingStaff,
        Dispatcher,
        Supervisor,
        Gateway,
    }

    const EVERYONE: [Who; 7] = [
        Who::Reporter,
        Who::OtherGridMember,
        Who::LeadStaff,
        Who::AssistingStaff,
        Who::Dispatcher,
        Who::Supervisor,
        Who::Gateway,
    ];

    fn caller_of(who: Who) -> Caller {
        match who {
            Who::Reporter => caller(REPORTER, Role::GridMember),
            Who::OtherGridMember => caller(OTHER_GRID_MEMBER, Role::GridMember),
            Who::LeadStaff => caller(JUSTICE_STAFF, Role::UnitStaff),
            Who::AssistingStaff => caller(POLICE_STAFF, Role::UnitStaff),
            Who::Dispatcher => caller(DISPATCHER, Role::Dispatcher),
            Who::Supervisor => caller(SUPERVISOR, Role::Supervisor),
            Who::Gateway => caller(GATEWAY, Role::Gateway),
        }
    }

    fn commands() -> Vec<(&'static str, Command)> {
        let mut other = fixtures::case(CaseStatus::Registered);
        other.id = "case-2".into();
        vec![
            (
                "dispatch",
                Command::Dispatch {
                    unit_code: None,
                    reason: "分流".into(),
                },
            ),
            ("accept", Command::Accept),
            (
                "return",
                Command::Return {
                    reason: "不属于本单位".into(),
                    window_ends_at: Some(t0() + chrono::Duration::days(2)),
                },
            ),
            (
                "request extension",
                Command::RequestExtension {
                    reason: "需协调多部门".into(),
                    room: room_for(SlaDuration::WorkingDays(3)),
                },
            ),
            (
                "decide extension",
                Command::DecideExtension {
                    approve: true,
                    reason: String::new(),
                    room: Some(room_for(SlaDuration::WorkingDays(3))),
                },
            ),
            (
                "decide return",
                Command::DecideReturn {
                    approve: true,
                    reason: String::new(),
                },
            ),
            (
                "progress",
                Command::Progress {
                    note: "处理中".into(),
                    attachment_ids: vec![],
                },
            ),
            (
                "resolve",
                Command::Resolve {
                    result: "已化解".into(),
                    attachment_ids: vec![],
                },
            ),
            (
                "feedback",
                Command::Feedback {
                    note: "已告知".into(),
                },
            ),
            (
                "evaluate satisfied",
                Command::Evaluate {
                    satisfaction: Satisfaction::Satisfied,
                    comment: String::new(),
                    by_callback: false,
                },
            ),
            (
                "evaluate dissatisfied",
                Command::Evaluate {
                    satisfaction: Satisfaction::Dissatisfied,
                    comment: String::new(),
                    by_callback: false,
                },
            ),
            (
                "close",
                Command::Close {
                    reason: String::new(),
                },
            ),
            (
                "merge",
                Command::Merge {
                    into: Box::new(other),
                    reason: "重复".into(),
                },
            ),
            (
                "cancel",
                Command::Cancel {
                    reason: "撤回".into(),
                },
            ),
            (
                "escalate",
                Command::Escalate {
                    reason: "跨街道".into(),
                },
            ),
            (
                "whistle",
                Command::Whistle {
                    unit_codes: vec!["371102.center".into()],
                    reason: "吹哨".into(),
                },
            ),
            (
                "supplement",
                Command::Supplement {
                    text: "补充".into(),
                    attachment_ids: vec![],
                },
            ),
            (
                "await reporter",
                Command::AwaitReporter {
                    question: "哪一栋楼？".into(),
                    until: t0() + chrono::Duration::days(7),
                },
            ),
            (
                "resume",
                Command::Resume {
                    note: String::new(),
                },
            ),
        ]
    }

    /// The rules, written down once more as a table: who may give each command (beyond the
    /// role table of the auth layer, which `apply` does not repeat), in which states, and the
    /// state it leaves. Who is checked before the state.
    fn expect(command: &str, status: CaseStatus, who: Who) -> Expect {
        use CaseStatus::*;
        use Expect::*;
        let open = status.is_open();
        let to = |allowed: &[CaseStatus], next: CaseStatus| {
            if allowed.contains(&status) {
                To(next)
            } else {
                NotNow
            }
        };
        match command {
            "dispatch" => to(&[Registered, Returned, Dispatched], Dispatched),
            // An assisting unit checks in whatever the case's state; the lead unit accepts.
            "accept" => match who {
                Who::AssistingStaff => To(status),
                Who::LeadStaff => to(&[Dispatched], Accepted),
                _ => Denied,
            },
            "return" if who == Who::LeadStaff => to(&[Dispatched, Accepted], Returned),
            "progress" if who == Who::LeadStaff => to(&[Accepted, InProgress], InProgress),
            // Grid members resolve only grid-tier cases: this one is the township's.
            "resolve" if who == Who::LeadStaff => to(&[Accepted, InProgress], Resolved),
            "return" | "progress" | "resolve" => Denied,
            "feedback" if who == Who::AssistingStaff => Denied,
            "feedback" => to(&[Resolved], status),
            "evaluate satisfied" if who == Who::Reporter => to(&[Resolved], Resolved),
            "evaluate dissatisfied" if who == Who::Reporter => to(&[Resolved], Dispatched),
            "evaluate satisfied" | "evaluate dissatisfied" => Denied,
            "close" => to(&[Resolved], Closed),
            "merge" if open => To(Merged),
            "cancel" if open => To(Cancelled),
            "merge" | "cancel" => NotNow,
            "escalate" => to(
                &[Registered, Returned, Dispatched, Accepted, InProgress],
                Dispatched,
            ),
            "whistle" => to(&[Dispatched, Accepted, InProgress], status),
            "supplement" if who != Who::Reporter => Denied,
            "supplement" if open => To(status),
            "supplement" => NotNow,
            // The lead unit asks while the resolve clock runs; no case here waits yet.
            "await reporter" if who == Who::LeadStaff => to(&[Accepted, InProgress], status),
            "resume" if who == Who::LeadStaff => NotNow,
            "await reporter" | "resume" => Denied,
            "request extension" if who == Who::LeadStaff => to(&[Accepted, InProgress], status),
            // Nothing is asked of the center in these cases yet.
            "decide extension" | "decide return" if who == Who::Dispatcher => NotNow,
            "request extension" | "decide extension" | "decide return" => Denied,
            other => panic!("no rule for {other}"),
        }
    }

    #[test]
    fn every_command_in_every_state_by_everyone_follows_the_lifecycle() {
        let directory = fixtures::directory();
        let mut checked = 0;
        for status in CaseStatus::ALL {
            let mut case = fixtures::case(status);
            case.assisting = vec![Assist {
                unit_code: POLICE.into(),
                summoned_at: t0(),
                checked_in_at: None,
            }];
            for who in EVERYONE {
                let by = caller_of(who);
                for (name, command) in commands() {
                    let got = apply(&case, Actor::Person(&by), &directory, command, t0());
                    let want = expect(name, status, who);
                    let what = format!("{name} by {who:?} when {status}");
                    match (want, got) {
                        (Expect::To(next), Ok((after, events))) => {
                            assert_eq!(after.status, next, "{what}");
                            assert!(!events.is_empty(), "{what}: no event");
                            assert!(
                                events.iter().all(|e| e.actor_sub == by.sub),
                                "{what}: events by someone else"
                            );
                            // A change of state is an event saying so.
                            if next != status {
                                assert!(
                                    events.iter().any(|e| e.to_status == Some(next)
                                        && e.from_status == Some(status)),
                                    "{what}: no transition event"
                                );
                            }
                        }
                        (Expect::Denied, Err(DomainError::PermissionDenied(_)))
                        | (Expect::NotNow, Err(DomainError::FailedPrecondition(_))) => {}
                        (want, got) => panic!("{what}: wanted {want:?}, got {got:?}"),
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 10 * 7 * 19);
    }

    #[test]
    fn sla_levels_are_the_supervisors_alone_and_people_commands_are_not_its() {
        let directory = fixtures::directory();
        let case = fixtures::case(CaseStatus::Accepted);
        let clock = resolve_clock(&case);
        let level = Command::SlaLevel {
            clock: Box::new(clock),
            level: Level::Warning,
        };
        let dispatcher = caller(DISPATCHER, Role::Dispatcher);
        assert!(matches!(
            apply(&case, Actor::Person(&dispatcher), &directory, level, t0()),
            Err(DomainError::PermissionDenied(_))
        ));
        assert!(matches!(
            apply(&case, Actor::Supervisor, &directory, Command::Accept, t0()),
            Err(DomainError::Internal(_))
        ));
    }

    /// Room for an extension of a resolve clock due a day after t0, never extended.
    fn room_for(duration: SlaDuration) -> ExtensionRoom {
        let due_at = t0() + chrono::Duration::days(1);
        ExtensionRoom {
            rules: ExtensionRules::default(),
            duration,
            granted: 0,
            clock: Some(ExtendedDue {
                due_at,
                extended_due_at: due_at + chrono::Duration::days(3),
                latest_due_at: due_at + chrono::Duration::days(14),
            }),
        }
    }

    fn resolve_clock(case: &Case) -> Clock {
        let schedule = Schedule {
            warn_at: t0() + chrono::Duration::hours(8),
            due_at: t0() + chrono::Duration::hours(10),
            escalate_at: t0() + chrono::Duration::hours(15),
            red_card_at: t0() + chrono::Duration::hours(20),
        };
        Clock {
            id: 7,
            case_id: case.id.clone(),
            kind: ClockKind::Resolve,
            cycle: 1,
            unit_code: String::new(),
            attempt: 0,
            duration: crate::domain::calendar::SlaDuration::Minutes(600),
            started_at: t0(),
            schedule,
            next_at: Some(schedule.warn_at),
            stage: 0,
            warned_at: None,
            breached_at: None,
            escalated_at: None,
            escalations: 0,
            stopped_at: None,
            paused_at: None,
            extensions: 0,
            base_due_at: None,
        }
    }

    fn fire(case: &Case, level: Level) -> (Case, Vec<NewEvent>) {
        let clock = resolve_clock(case);
        apply(
            case,
            Actor::Supervisor,
            &fixtures::directory(),
            Command::SlaLevel {
                clock: Box::new(clock),
                level,
            },
            t0() + chrono::Duration::hours(30),
        )
        .expect("the supervisor's level applies")
    }

    #[test]
    fn a_warning_tells_the_unit_and_a_notice_its_center_too_and_neither_moves_the_case() {
        let case = fixtures::case(CaseStatus::Accepted);
        let (after, events) = fire(&case, Level::Warning);
        assert_eq!(after, case, "a warning changes nothing of the case");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::SlaWarning);
        assert_eq!(events[0].actor_sub, crate::domain::event::SYSTEM_SUB);
        let Ok(Details::SlaLevel(d)) = events[0].parsed_details() else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(d.notify, [JUSTICE]);
        assert!(!moves_case(&events));

        let (after, events) = fire(&case, Level::Breach);
        assert_eq!(after, case);
        let Ok(Details::SlaLevel(d)) = events[0].parsed_details() else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(d.notify, [JUSTICE, "371102001.center"]);
        assert_eq!(d.due_at, t0() + chrono::Duration::hours(10));
        assert!(!moves_case(&events));
    }

    #[test]
    fn an_escalation_hands_supervision_up_a_tier_and_the_second_is_a_red_card() {
        let case = fixtures::case(CaseStatus::Accepted);
        let (once, events) = fire(&case, Level::Escalation);
        // One meaning of region_code: the region whose center holds (supervises) the case.
        // The lead unit and the handling tier stay: the unit still does the work.
        assert_eq!(once.region_code, DISTRICT);
        assert_eq!(once.unit_code, JUSTICE);
        assert_eq!(once.tier, Tier::Township);
        assert_eq!(once.status, CaseStatus::Accepted);
        assert_eq!(once.escalation_level, 1);
        assert!(!once.red_card);
        assert!(moves_case(&events));
        let Ok(Details::SlaLevel(d)) = events[0].parsed_details() else {
            panic!("{:?}", events[0]);
        };
        let escalation = d.escalation.expect("what the escalation moved");
        assert_eq!(
            (
                escalation.from_region.as_str(),
                escalation.to_region.as_str()
            ),
            (TOWNSHIP, DISTRICT)
        );
        assert_eq!(escalation.supervising_center, "371102.center");
        let (twice, events) = fire(&once, Level::SecondEscalation);
        assert_eq!(twice.region_code, CITY);
        assert!(twice.red_card);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::SlaEscalation, EventKind::RedCard]);
    }

    #[test]
    fn a_manual_escalation_hands_the_case_itself_to_the_center_above() {
        let directory = fixtures::directory();
        let case = fixtures::case(CaseStatus::Accepted);
        let dispatcher = caller(DISPATCHER, Role::Dispatcher);
        let (after, _) = apply(
            &case,
            Actor::Person(&dispatcher),
            &directory,
            Command::Escalate {
                reason: "跨街道".into(),
            },
            t0(),
        )
        .unwrap();
        // The holding region moves as with an SLA escalation; the work moves with it.
        assert_eq!(after.region_code, DISTRICT);
        assert_eq!(after.unit_code, "371102.center");
        assert_eq!(after.tier, Tier::District);
        assert_eq!(after.status, CaseStatus::Dispatched);
        assert_eq!(after.escalation_level, 1);
    }

    #[test]
    fn a_wait_on_the_reporter_is_asked_once_ended_once_and_ends_with_the_state() {
        let directory = fixtures::directory();
        let lead = caller(JUSTICE_STAFF, Role::UnitStaff);
        let reporter = caller(REPORTER, Role::GridMember);
        let case = fixtures::case(CaseStatus::InProgress);
        let until = t0() + chrono::Duration::days(7);
        let ask = || Command::AwaitReporter {
            question: "哪一栋楼？".into(),
            until,
        };
        let (waiting, events) =
            apply(&case, Actor::Person(&lead), &directory, ask(), t0()).unwrap();
        assert_eq!(waiting.awaiting_since, Some(t0()));
        assert_eq!(events[0].kind, EventKind::AwaitingReporter);
        assert_eq!(
            events[0].audience.as_ref().unwrap().notify_members,
            [REPORTER]
        );
        assert!(matches!(
            apply(&waiting, Actor::Person(&lead), &directory, ask(), t0()),
            Err(DomainError::FailedPrecondition(m)) if m.contains("already waiting")
        ));
        // The reporter's supplement ends it, in the same change.
        let later = t0() + chrono::Duration::hours(5);
        let supplement = Command::Supplement {
            text: "3号楼".into(),
            attachment_ids: vec![],
        };
        let (after, events) = apply(
            &waiting,
            Actor::Person(&reporter),
            &directory,
            supplement,
            later,
        )
        .unwrap();
        assert_eq!(after.awaiting_since, None);
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventKind::Supplement, EventKind::Resumed]
        );
        assert_eq!(
            events[1].parsed_details().unwrap(),
            Details::Resumed {
                by: ResumedBy::Reporter,
                paused_at: t0(),
                resumed_at: later,
            }
        );
        // Resolving while waiting ends the wait with the state.
        let resolve = Command::Resolve {
            result: "已化解".into(),
            attachment_ids: vec![],
        };
        let (resolved, _) =
            apply(&waiting, Actor::Person(&lead), &directory, resolve, later).unwrap();
        assert_eq!(resolved.awaiting_since, None);
        // Only the supervisor ends a wait by its limit.
        let ended = Command::PauseEnded {
            paused_at: t0(),
            resumed_at: until,
        };
        assert!(matches!(
            apply(
                &waiting,
                Actor::Person(&lead),
                &directory,
                ended.clone(),
                later
            ),
            Err(DomainError::PermissionDenied(_))
        ));
        let (after, events) = apply(&waiting, Actor::Supervisor, &directory, ended, until).unwrap();
        assert_eq!(after.awaiting_since, None);
        assert_eq!(events[0].actor_sub, event::SYSTEM_SUB);
    }

    #[test]
    fn an_alert_is_recorded_by_the_supervisor_only_and_changes_nothing_of_the_case() {
        let directory = fixtures::directory();
        let case = fixtures::case(CaseStatus::Dispatched);
        let center = center_code(COMMUNITY);
        let details = AlertDetails {
            alert_id: "a1".into(),
            region_code: COMMUNITY.into(),
            tier: Tier::Community,
            center: center.clone(),
            class_code: Some("dispute".into()),
            class_name: Some("矛盾纠纷".into()),
            phone_masked: None,
            case_ids: vec!["x".into(), "y".into(), case.id.clone()],
            case_codes: vec!["1".into(), "2".into(), case.code.clone()],
            from: t0(),
            until: t0(),
        };
        let raise = Command::RaiseAlert {
            kind: AlertKind::Hotspot,
            details: Box::new(details),
        };
        let dispatcher = caller(DISPATCHER, Role::Dispatcher);
        assert!(matches!(
            apply(
                &case,
                Actor::Person(&dispatcher),
                &directory,
                raise.clone(),
                t0()
            ),
            Err(DomainError::PermissionDenied(_))
        ));
        let (after, events) = apply(&case, Actor::Supervisor, &directory, raise, t0()).unwrap();
        assert_eq!(after, case, "the case is as it was");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Hotspot);
        assert_eq!(events[0].actor_sub, event::SYSTEM_SUB);
        assert!(
            !moves_case(&events),
            "no one's command is refused as stale for it"
        );
        let audience = events[0].audience.clone().unwrap();
        assert_eq!(audience.notify_units, std::slice::from_ref(&center));
        assert_eq!(audience.units, [center]);
    }
}
