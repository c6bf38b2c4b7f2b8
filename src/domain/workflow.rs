//! The case state machine (DESIGN.md "Case lifecycle"), in one place: which command fits which
//! state, who may give it, and what it changes. Storage and the gRPC layer only carry it out.

use chrono::{DateTime, Utc};

use super::{
    Caller, DomainError, DomainResult, Role,
    case::{Assist, Case, CaseStatus, NewEvent},
    directory::{Directory, Tier, center_code},
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

/// Applies `command` by `caller` to `case` (already known to be in the caller's scope).
/// Returns the case as it will be stored (version not yet bumped) and the events to append.
pub fn apply(
    case: &Case,
    caller: &Caller,
    directory: &Directory,
    command: Command,
    now: DateTime<Utc>,
) -> DomainResult<(Case, Vec<NewEvent>)> {
    use CaseStatus::*;
    let mut next = case.clone();
    next.updated_at = now;
    let event = |kind: &str| NewEvent::new(kind, &caller.sub, caller.role, now);
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
                event("dispatched")
                    .transition(from, Dispatched)
                    .reason(reason)
                    .details(&serde_json::json!({ "unit_code": next.unit_code, "tier": next.tier.as_str() })),
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
                vec![
                    event("checked_in")
                        .details(&serde_json::json!({ "unit_code": case.assisting[i].unit_code })),
                ]
            } else {
                lead()?;
                if case.status != Dispatched {
                    return Err(refuse(case, &Command::Accept));
                }
                next.status = Accepted;
                vec![event("accepted").transition(from, Accepted)]
            }
        }
        Command::Return { reason } => {
            lead()?;
            if !matches!(case.status, Dispatched | Accepted) {
                return Err(refuse(case, &Command::Return { reason }));
            }
            let reason = require("reason", &reason)?;
            next.status = Returned;
            vec![event("returned").transition(from, Returned).reason(reason)]
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
                event("progress")
                    .transition(from, InProgress)
                    .reason(note)
                    .details(&serde_json::json!({ "attachment_ids": attachment_ids })),
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
                event("resolved")
                    .transition(from, Resolved)
                    .reason(result)
                    .details(&serde_json::json!({
                        "attachment_ids": attachment_ids,
                        "on_the_spot": on_the_spot,
                    })),
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
            vec![event("feedback").reason(note)]
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
                event("evaluated")
                    .reason(comment.trim().to_owned())
                    .details(&serde_json::json!({ "satisfaction": satisfaction.as_str() })),
            ];
            if satisfaction == Satisfaction::Dissatisfied {
                // 不满意 reopens the case for a new cycle; the second reopen goes up a tier.
                next.status = Dispatched;
                next.cycle += 1;
                next.reopen_count += 1;
                next.resolution_text = None;
                next.resolved_at = None;
                let mut details = serde_json::json!({ "cycle": next.cycle });
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
                    details["to_center"] = serde_json::json!(next.unit_code);
                }
                events.push(
                    event("reopened")
                        .transition(from, Dispatched)
                        .reason("the reporter is dissatisfied")
                        .details(&details),
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
                event("closed")
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
                event("merged")
                    .transition(from, Merged)
                    .reason(reason.trim().to_owned())
                    .details(&serde_json::json!({ "into_case_id": into.id, "into_case_code": into.code })),
            ]
        }
        Command::Cancel { reason } => {
            if !case.status.is_open() {
                return Err(refuse(case, &Command::Cancel { reason }));
            }
            let reason = require("reason", &reason)?;
            next.status = Cancelled;
            vec![
                event("cancelled")
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
                event("whistled")
                    .reason(reason.trim().to_owned())
                    .details(&serde_json::json!({ "unit_codes": unit_codes })),
            ]
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
                event("escalated")
                    .transition(from, Dispatched)
                    .reason(reason)
                    .details(&serde_json::json!({
                        "from_region": case.region_code,
                        "to_region": next.region_code,
                        "unit_code": next.unit_code,
                        "escalation_level": next.escalation_level,
                    })),
            ]
        }
    };
    Ok((next, events))
}
