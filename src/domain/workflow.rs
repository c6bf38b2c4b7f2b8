//! The case state machine (DESIGN.md "Case lifecycle"), in one place: which command fits which
//! state, who may give it, and what it changes. Storage and the gRPC layer only carry it out.

use chrono::{DateTime, Utc};

use super::{
    Caller, DomainError, DomainResult, Role,
    case::{Assist, Case, CaseStatus, NewEvent},
    directory::{Directory, Tier, center_code},
    event::{Details, EventKind, SlaEscalation, SlaLevelDetails},
    sla::{Clock, Level, clock_unit},
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
    /// 退回: not ours.
    Return {
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
    /// 评价.
    Evaluate {
        satisfaction: Satisfaction,
        comment: String,
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
    match (actor, command) {
        (Actor::Supervisor, Command::SlaLevel { clock, level }) => {
            Ok(sla_level(case, &clock, level, directory, now))
        }
        (Actor::Supervisor, other) => Err(DomainError::internal(anyhow::anyhow!(
            "the SLA supervisor cannot {} case {}",
            other.name(),
            case.code
        ))),
        (Actor::Person(_), Command::SlaLevel { .. }) => Err(DomainError::PermissionDenied(
            "SLA levels are fired by gridcase's supervisor only".into(),
        )),
        (Actor::Person(caller), command) => by_person(case, caller, directory, command, now),
    }
}

/// Whether the change moves the case: every change does but the SLA warnings and notices,
/// which only record, so that no one's command is refused as stale for them.
pub fn moves_case(events: &[NewEvent]) -> bool {
    events
        .iter()
        .any(|e| !matches!(e.kind, EventKind::SlaWarning | EventKind::SlaBreach))
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
        Command::Return { reason } => {
            lead()?;
            if !matches!(case.status, Dispatched | Accepted) {
                return Err(refuse(case, &Command::Return { reason }));
            }
            let reason = require("reason", &reason)?;
            next.status = Returned;
            vec![
                event(EventKind::Returned)
                    .transition(from, Returned)
                    .reason(reason),
            ]
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
        } => {
            if case.reporter_sub != caller.sub {
                return Err(DomainError::PermissionDenied(
                    "only the reporter, or the gateway that brought the case, evaluates it".into(),
                ));
            }
            if case.status != Resolved {
                return Err(refuse(
                    case,
                    &Command::Evaluate {
                        satisfaction,
                        comment,
                    },
                ));
            }
            next.evaluation = Some(super::case::Evaluation {
                satisfaction,
                comment: comment.trim().to_owned(),
                by_sub: caller.sub.clone(),
                at: now,
            });
            let mut events = vec![
                event(EventKind::Evaluated)
                    .reason(comment.trim().to_owned())
                    .details(Details::Evaluated { satisfaction }),
            ];
            if satisfaction == Satisfaction::Dissatisfied {
                // 不满意 reopens the case for a new cycle; the second reopen goes up a tier.
                next.status = Dispatched;
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
            vec![
                event(EventKind::Supplement)
                    .reason(text)
                    .details(Details::Attachments { attachment_ids }),
            ]
        }
        Command::SlaLevel { .. } => {
            return Err(DomainError::PermissionDenied(
                "SLA levels are fired by gridcase's supervisor only".into(),
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
    Ok((next, events))
}
