//! Events: what happened to a case, who did it and when, in a hash chain per case.
//!
//! Each kind of event is an [`EventKind`], and what it records beyond who, when and from what
//! state to what is a typed [`Details`]. Its JSON text is the stored, hashed form: every
//! producer builds a `Details`, every reader parses one, and the text of events stored before
//! is never rewritten (the chain hashes it).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    Role,
    calendar::SlaDuration,
    case::{Case, CaseStatus, Source},
    directory::{Tier, center_code},
    sla::{ClockKind, Level},
    workflow::Satisfaction,
};

/// The kinds of event. The strings are the contract (`CaseEvent.kind`) and part of every
/// event's hash: they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Submitted,
    Registered,
    Dispatched,
    Accepted,
    /// An assisting unit checking in after a whistle (报到).
    CheckedIn,
    Returned,
    Progress,
    Resolved,
    Feedback,
    Evaluated,
    Reopened,
    Closed,
    Merged,
    Cancelled,
    Whistled,
    /// A dispatcher's escalation by hand.
    Escalated,
    Supplement,
    SlaWarning,
    /// 督办: a clock ran out.
    SlaBreach,
    SlaEscalation,
    RedCard,
    /// The lead unit asked the reporter a question (the event's reason); the resolve clock
    /// pauses until the case is resumed.
    AwaitingReporter,
    /// The wait on the reporter ended (by the unit, by the reporter's supplement, or by itself
    /// after `max_reporter_wait`); the resolve clock runs again, its times moved by the wait.
    Resumed,
    /// The lead unit asked the holding center for more time (延期申请).
    ExtensionRequested,
    /// The holding center approved or refused it; approved, the resolve clock's due time (and
    /// its warning and escalation times with it) moved.
    ExtensionDecided,
    /// The lead unit asked to return the case after the return window: the center decides.
    ReturnRequested,
    /// The holding center approved (the case is returned) or refused a late return.
    ReturnDecided,
    /// 研判预警: cases of one class piling up in a community or township (an alert appended to
    /// the chain of the case that crossed the threshold, addressed to the region's center).
    Hotspot,
    /// 研判预警: one citizen's phone on several cases within the window, a person the center
    /// should call; appended to the latest case's chain, addressed to its holding center.
    RepeatReporter,
}

impl EventKind {
    pub const ALL: [EventKind; 29] = [
        EventKind::Submitted,
        EventKind::Registered,
        EventKind::Dispatched,
        EventKind::Accepted,
        EventKind::CheckedIn,
        EventKind::Returned,
        EventKind::Progress,
        EventKind::Resolved,
        EventKind::Feedback,
        EventKind::Evaluated,
        EventKind::Reopened,
        EventKind::Closed,
        EventKind::Merged,
        EventKind::Cancelled,
        EventKind::Whistled,
        EventKind::Escalated,
        EventKind::Supplement,
        EventKind::SlaWarning,
        EventKind::SlaBreach,
        EventKind::SlaEscalation,
        EventKind::RedCard,
        EventKind::AwaitingReporter,
        EventKind::Resumed,
        EventKind::ExtensionRequested,
        EventKind::ExtensionDecided,
        EventKind::ReturnRequested,
        EventKind::ReturnDecided,
        EventKind::Hotspot,
        EventKind::RepeatReporter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Registered => "registered",
            EventKind::Dispatched => "dispatched",
            EventKind::Accepted => "accepted",
            EventKind::CheckedIn => "checked_in",
            EventKind::Returned => "returned",
            EventKind::Progress => "progress",
            EventKind::Resolved => "resolved",
            EventKind::Feedback => "feedback",
            EventKind::Evaluated => "evaluated",
            EventKind::Reopened => "reopened",
            EventKind::Closed => "closed",
            EventKind::Merged => "merged",
            EventKind::Cancelled => "cancelled",
            EventKind::Whistled => "whistled",
            EventKind::Escalated => "escalated",
            EventKind::Supplement => "supplement",
            EventKind::SlaWarning => "sla_warning",
            EventKind::SlaBreach => "sla_breach",
            EventKind::SlaEscalation => "sla_escalation",
            EventKind::RedCard => "red_card",
            EventKind::AwaitingReporter => "awaiting_reporter",
            EventKind::Resumed => "resumed",
            EventKind::ExtensionRequested => "extension_requested",
            EventKind::ExtensionDecided => "extension_decided",
            EventKind::ReturnRequested => "return_requested",
            EventKind::ReturnDecided => "return_decided",
            EventKind::Hotspot => "hotspot",
            EventKind::RepeatReporter => "repeat_reporter",
        }
    }

    /// The early-warning kinds: seen by the centers of the region alerted and above (and the
    /// center's own staff), never by the case's reporter, gateway or units.
    pub fn is_alert(self) -> bool {
        matches!(self, EventKind::Hotspot | EventKind::RepeatReporter)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// What an SLA level records: the clock, the level, when it was due and when the level came,
/// whom it notifies (a warning: the unit; a 督办 notice: the unit and its center) or whose
/// leader it flags for an interview (an escalation), and what an escalation moved.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaLevelDetails {
    pub clock: ClockKind,
    pub cycle: i32,
    pub unit_code: String,
    pub level: Level,
    pub due_at: DateTime<Utc>,
    pub level_at: DateTime<Utc>,
    /// Warnings and notices: who is told.
    pub notify: Vec<String>,
    /// Escalations: what moved.
    pub escalation: Option<SlaEscalation>,
}

/// An SLA escalation: the higher center takes over supervising the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEscalation {
    pub from_region: String,
    pub to_region: String,
    pub supervising_center: String,
    pub escalation_level: i32,
}

/// Who ended a wait on the reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumedBy {
    /// The lead unit (`ResumeCase`).
    Unit,
    /// The reporter's supplement.
    Reporter,
    /// gridcase, when the wait reached `max_reporter_wait`.
    Limit,
}

impl ResumedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ResumedBy::Unit => "unit",
            ResumedBy::Reporter => "reporter",
            ResumedBy::Limit => "limit",
        }
    }
}

impl FromStr for ResumedBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [ResumedBy::Unit, ResumedBy::Reporter, ResumedBy::Limit]
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown resumer {s:?}"))
    }
}

/// What an alert records (`hotspot`, `repeat_reporter`): the alert, the region and its center,
/// what piled up, and the cases counted. A repeat reporter's phone is recorded masked: the
/// event reaches every center above the holding one, which must not see it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDetails {
    pub alert_id: String,
    /// The community or township of a hotspot; the region holding the latest case of a repeat
    /// reporter.
    pub region_code: String,
    pub tier: Tier,
    /// The center asked to look (`{region_code}.center`).
    pub center: String,
    /// A hotspot's category class.
    pub class_code: Option<String>,
    pub class_name: Option<String>,
    /// A repeat reporter's phone, masked.
    pub phone_masked: Option<String>,
    /// The cases counted, oldest first.
    pub case_ids: Vec<String>,
    pub case_codes: Vec<String>,
    /// The window counted, `(from, at]`, and the end of the alert's own window, before which
    /// no alert of the same region and subject is raised again.
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What each kind of event records beyond who, when and from what state to what.
#[derive(Debug, Clone, PartialEq)]
pub enum Details {
    /// Accepted, returned, feedback, closed, cancelled: nothing more (`{}`).
    None,
    Submitted {
        source: Source,
        client_report_id: Option<String>,
        external_id: Option<String>,
    },
    Registered {
        unit_code: String,
        tier: Tier,
        region_code: String,
        grid_code: Option<String>,
        /// How far the position was snapped into its grid, if it was.
        snap_distance_m: Option<f64>,
    },
    Dispatched {
        unit_code: String,
        tier: Tier,
    },
    CheckedIn {
        unit_code: String,
    },
    /// Progress and supplements.
    Attachments {
        attachment_ids: Vec<String>,
    },
    Resolved {
        attachment_ids: Vec<String>,
        on_the_spot: bool,
    },
    Evaluated {
        satisfaction: Satisfaction,
        /// Recorded after a callback (回访) by the event's actor; written only when true, so
        /// the events stored before callbacks existed keep their exact text.
        by_callback: bool,
    },
    Reopened {
        cycle: i32,
        /// The higher center the case went to on its second reopen.
        to_center: Option<String>,
    },
    Merged {
        into_case_id: String,
        into_case_code: String,
    },
    Whistled {
        unit_codes: Vec<String>,
    },
    Escalated {
        from_region: String,
        to_region: String,
        unit_code: String,
        escalation_level: i32,
    },
    SlaLevel(SlaLevelDetails),
    RedCard {
        escalation_level: i32,
        unit_code: String,
    },
    /// The question is the event's reason; the wait ends by itself at `until` (the pause
    /// started at the event's time plus `max_reporter_wait`, by the calendar).
    AwaitingReporter {
        until: DateTime<Utc>,
    },
    /// The resolve clock ran again from `resumed_at` (the event's time, or for an end by itself
    /// the limit's time), its times moved by `resumed_at − paused_at`.
    Resumed {
        by: ResumedBy,
        paused_at: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
    },
    /// An extension asked (the reason is the event's): `duration` past the resolve clock's due
    /// time `due_at`, which would move it to `extended_due_at`.
    ExtensionRequested {
        duration: SlaDuration,
        due_at: DateTime<Utc>,
        extended_due_at: DateTime<Utc>,
    },
    /// The center's decision (its reason is the event's); approved, the resolve clock's due
    /// time moved from the first time of `moved` to the second.
    ExtensionDecided {
        approved: bool,
        duration: SlaDuration,
        moved: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
    /// A late return asked (the reason is the event's): the window closed at `window_ended_at`.
    ReturnRequested {
        window_ended_at: DateTime<Utc>,
    },
    /// The center's decision on a late return; approved, a `returned` event follows.
    ReturnDecided {
        approved: bool,
    },
    /// Hotspots and repeat reporters.
    Alert(AlertDetails),
}

impl Details {
    /// The stored, hashed form: a JSON object with its keys in order (serde_json's map is
    /// sorted), exactly as gridcase has always written it.
    pub fn to_json(&self) -> String {
        use serde_json::json;
        let value = match self {
            Details::None => json!({}),
            Details::Submitted {
                source,
                client_report_id,
                external_id,
            } => json!({
                "source": source.as_str(),
                "client_report_id": client_report_id,
                "external_id": external_id,
            }),
            Details::Registered {
                unit_code,
                tier,
                region_code,
                grid_code,
                snap_distance_m,
            } => json!({
                "unit_code": unit_code,
                "tier": tier.as_str(),
                "region_code": region_code,
                "grid_code": grid_code,
                "snapped": snap_distance_m.is_some(),
                "snap_distance_m": snap_distance_m,
            }),
            Details::Dispatched { unit_code, tier } => {
                json!({ "unit_code": unit_code, "tier": tier.as_str() })
            }
            Details::CheckedIn { unit_code } => json!({ "unit_code": unit_code }),
            Details::Attachments { attachment_ids } => json!({ "attachment_ids": attachment_ids }),
            Details::Resolved {
                attachment_ids,
                on_the_spot,
            } => json!({ "attachment_ids": attachment_ids, "on_the_spot": on_the_spot }),
            Details::Evaluated {
                satisfaction,
                by_callback,
            } => {
                let mut value = json!({ "satisfaction": satisfaction.as_str() });
                if *by_callback {
                    value["by_callback"] = json!(true);
                }
                value
            }
            Details::Reopened { cycle, to_center } => {
                let mut value = json!({ "cycle": cycle });
                if let Some(center) = to_center {
                    value["to_center"] = json!(center);
                }
                value
            }
            Details::Merged {
                into_case_id,
                into_case_code,
            } => json!({ "into_case_id": into_case_id, "into_case_code": into_case_code }),
            Details::Whistled { unit_codes } => json!({ "unit_codes": unit_codes }),
            Details::Escalated {
                from_region,
                to_region,
                unit_code,
                escalation_level,
            } => json!({
                "from_region": from_region,
                "to_region": to_region,
                "unit_code": unit_code,
                "escalation_level": escalation_level,
            }),
            Details::SlaLevel(d) => {
                let mut value = json!({
                    "clock": d.clock.as_str(),
                    "cycle": d.cycle,
                    "unit_code": d.unit_code,
                    "level": d.level.as_str(),
                    "due_at": d.due_at.to_rfc3339(),
                    "level_at": d.level_at.to_rfc3339(),
                });
                if d.level.is_escalation() {
                    value["interview_unit"] = json!(d.unit_code);
                } else {
                    value["notify"] = json!(d.notify);
                }
                if let Some(e) = &d.escalation {
                    value["from_region"] = json!(e.from_region);
                    value["to_region"] = json!(e.to_region);
                    value["supervising_center"] = json!(e.supervising_center);
                    value["escalation_level"] = json!(e.escalation_level);
                }
                value
            }
            Details::RedCard {
                escalation_level,
                unit_code,
            } => json!({ "escalation_level": escalation_level, "unit_code": unit_code }),
            Details::AwaitingReporter { until } => json!({ "until": until.to_rfc3339() }),
            Details::Resumed {
                by,
                paused_at,
                resumed_at,
            } => json!({
                "by": by.as_str(),
                "paused_at": paused_at.to_rfc3339(),
                "resumed_at": resumed_at.to_rfc3339(),
                "paused_seconds": (*resumed_at - *paused_at).num_seconds(),
            }),
            Details::ExtensionRequested {
                duration,
                due_at,
                extended_due_at,
            } => json!({
                "duration": duration.to_string(),
                "due_at": due_at.to_rfc3339(),
                "extended_due_at": extended_due_at.to_rfc3339(),
            }),
            Details::ExtensionDecided {
                approved,
                duration,
                moved,
            } => {
                let mut value = json!({ "approved": approved, "duration": duration.to_string() });
                if let Some((due_at, extended_due_at)) = moved {
                    value["due_at"] = json!(due_at.to_rfc3339());
                    value["extended_due_at"] = json!(extended_due_at.to_rfc3339());
                }
                value
            }
            Details::ReturnRequested { window_ended_at } => {
                json!({ "window_ended_at": window_ended_at.to_rfc3339() })
            }
            Details::ReturnDecided { approved } => json!({ "approved": approved }),
            Details::Alert(a) => {
                let mut value = json!({
                    "alert_id": a.alert_id,
                    "region_code": a.region_code,
                    "tier": a.tier.as_str(),
                    "center": a.center,
                    "count": a.case_ids.len(),
                    "case_ids": a.case_ids,
                    "case_codes": a.case_codes,
                    "from": a.from.to_rfc3339(),
                    "until": a.until.to_rfc3339(),
                });
                if let Some(c) = &a.class_code {
                    value["class_code"] = json!(c);
                }
                if let Some(c) = &a.class_name {
                    value["class_name"] = json!(c);
                }
                if let Some(p) = &a.phone_masked {
                    value["phone"] = json!(p);
                }
                value
            }
        };
        value.to_string()
    }

    /// The details of a stored event of `kind`. Keys this reader does not know (an older
    /// event's `possible_duplicate_of`, say) are left aside; a key it needs that is missing
    /// or of the wrong type is an error.
    pub fn parse(kind: EventKind, text: &str) -> Result<Details, String> {
        use EventKind as K;
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{kind} details: {e}"))?;
        let field = |key: &str| -> Result<&serde_json::Value, String> {
            v.get(key)
                .ok_or_else(|| format!("{kind} details lack {key:?}"))
        };
        let string = |key: &str| -> Result<String, String> {
            field(key)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{kind} details: {key:?} is not a string"))
        };
        let optional = |key: &str| -> Option<String> {
            v.get(key).and_then(|x| x.as_str()).map(str::to_owned)
        };
        let strings = |key: &str| -> Result<Vec<String>, String> {
            serde_json::from_value(field(key)?.clone())
                .map_err(|e| format!("{kind} details: {key:?}: {e}"))
        };
        let int = |key: &str| -> Result<i32, String> {
            field(key)?
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| format!("{kind} details: {key:?} is not a number"))
        };
        let time = |key: &str| -> Result<DateTime<Utc>, String> {
            DateTime::parse_from_rfc3339(&string(key)?)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{kind} details: {key:?}: {e}"))
        };
        let boolean = |key: &str| -> Result<bool, String> {
            field(key)?
                .as_bool()
                .ok_or_else(|| format!("{kind} details: {key:?} is not true or false"))
        };
        Ok(match kind {
            K::Accepted | K::Returned | K::Feedback | K::Closed | K::Cancelled => Details::None,
            K::Submitted => Details::Submitted {
                source: string("source")?.parse()?,
                client_report_id: optional("client_report_id"),
                external_id: optional("external_id"),
            },
            K::Registered => Details::Registered {
                unit_code: string("unit_code")?,
                tier: string("tier")?.parse()?,
                region_code: string("region_code")?,
                grid_code: optional("grid_code"),
                snap_distance_m: v.get("snap_distance_m").and_then(serde_json::Value::as_f64),
            },
            K::Dispatched => Details::Dispatched {
                unit_code: string("unit_code")?,
                tier: string("tier")?.parse()?,
            },
            K::CheckedIn => Details::CheckedIn {
                unit_code: string("unit_code")?,
            },
            K::Progress | K::Supplement => Details::Attachments {
                attachment_ids: strings("attachment_ids")?,
            },
            K::Resolved => Details::Resolved {
                attachment_ids: strings("attachment_ids")?,
                on_the_spot: field("on_the_spot")?.as_bool().unwrap_or(false),
            },
            K::Evaluated => Details::Evaluated {
                satisfaction: string("satisfaction")?.parse()?,
                by_callback: v
                    .get("by_callback")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            },
            K::Reopened => Details::Reopened {
                cycle: int("cycle")?,
                to_center: optional("to_center"),
            },
            K::Merged => Details::Merged {
                into_case_id: string("into_case_id")?,
                into_case_code: string("into_case_code")?,
            },
            K::Whistled => Details::Whistled {
                unit_codes: strings("unit_codes")?,
            },
            K::Escalated => Details::Escalated {
                from_region: string("from_region")?,
                to_region: string("to_region")?,
                unit_code: string("unit_code")?,
                escalation_level: int("escalation_level")?,
            },
            K::SlaWarning | K::SlaBreach | K::SlaEscalation => {
                let level: Level = string("level")?.parse()?;
                Details::SlaLevel(SlaLevelDetails {
                    clock: string("clock")?.parse()?,
                    cycle: int("cycle")?,
                    unit_code: string("unit_code")?,
                    level,
                    due_at: time("due_at")?,
                    level_at: time("level_at")?,
                    notify: if level.is_escalation() {
                        Vec::new()
                    } else {
                        strings("notify")?
                    },
                    escalation: match (optional("from_region"), optional("to_region")) {
                        (Some(from_region), Some(to_region)) => Some(SlaEscalation {
                            from_region,
                            to_region,
                            supervising_center: string("supervising_center")?,
                            escalation_level: int("escalation_level")?,
                        }),
                        _ => None,
                    },
                })
            }
            K::RedCard => Details::RedCard {
                escalation_level: int("escalation_level")?,
                unit_code: string("unit_code")?,
            },
            K::AwaitingReporter => Details::AwaitingReporter {
                until: time("until")?,
            },
            K::Resumed => Details::Resumed {
                by: string("by")?.parse()?,
                paused_at: time("paused_at")?,
                resumed_at: time("resumed_at")?,
            },
            K::ExtensionRequested => Details::ExtensionRequested {
                duration: string("duration")?.parse()?,
                due_at: time("due_at")?,
                extended_due_at: time("extended_due_at")?,
            },
            K::ExtensionDecided => Details::ExtensionDecided {
                approved: boolean("approved")?,
                duration: string("duration")?.parse()?,
                moved: match v.get("due_at") {
                    Some(_) => Some((time("due_at")?, time("extended_due_at")?)),
                    None => None,
                },
            },
            K::ReturnRequested => Details::ReturnRequested {
                window_ended_at: time("window_ended_at")?,
            },
            K::ReturnDecided => Details::ReturnDecided {
                approved: boolean("approved")?,
            },
            K::Hotspot | K::RepeatReporter => Details::Alert(AlertDetails {
                alert_id: string("alert_id")?,
                region_code: string("region_code")?,
                tier: string("tier")?.parse()?,
                center: string("center")?,
                class_code: optional("class_code"),
                class_name: optional("class_name"),
                phone_masked: optional("phone"),
                case_ids: strings("case_ids")?,
                case_codes: strings("case_codes")?,
                from: time("from")?,
                until: time("until")?,
            }),
        })
    }
}

/// Who an event reaches beyond its case's place and reporter, and whom it asks to act. Decided
/// when the event is made (from the case before and after it), stored beside the event, never
/// hashed: it says who is told, not what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Audience {
    /// The units whose scope reaches the case at this event: its lead and assisting units before
    /// and after it. A unit a case moves away from sees the event that moves it; one it moves
    /// to sees it from that event on.
    pub units: Vec<String>,
    /// Units asked to act (a region's center is the unit `{region}.center`).
    pub notify_units: Vec<String>,
    /// Members (subjects) asked to act or told: the reporter, of the result.
    pub notify_members: Vec<String>,
}

/// Fills in each event's [`Audience`], from the case before the change that made the events and
/// after it. Whom each kind of event asks to act (ARCHITECTURE.md "Addressees"):
///
/// | event | asks |
/// | --- | --- |
/// | registered, returned | the holding center, to dispatch |
/// | dispatched, reopened, supplement | the lead unit |
/// | whistled | each summoned unit |
/// | sla_warning | the clock's unit |
/// | sla_breach (督办) | the unit and its region's center |
/// | sla_escalation, escalated, red_card | the higher center, now holding the case |
/// | resolved, feedback, closed, merged, cancelled | the reporter, told |
/// | awaiting_reporter | the reporter, asked |
/// | resumed | the lead unit, whose resolve clock runs again |
/// | extension_requested, return_requested | the holding center, to decide |
/// | extension_decided, return_decided | the unit that asked |
/// | hotspot, repeat_reporter | the alert's center; reaching that center only among units |
pub fn address(events: &mut [NewEvent], before: &Case, after: &Case) {
    let mut units: Vec<String> = [&before.unit_code, &after.unit_code]
        .into_iter()
        .chain(before.assisting.iter().map(|a| &a.unit_code))
        .chain(after.assisting.iter().map(|a| &a.unit_code))
        .cloned()
        .collect();
    units.sort();
    units.dedup();
    let holder = center_code(&after.region_code);
    for e in events {
        let details = e.parsed_details().unwrap_or(Details::None);
        if e.kind.is_alert() {
            // An alert is the center's, not the case's units' (nor its reporter's).
            let center = match details {
                Details::Alert(a) => vec![a.center],
                _ => vec![],
            };
            e.audience = Some(Audience {
                units: center.clone(),
                notify_units: center,
                notify_members: vec![],
            });
            continue;
        }
        let (notify_units, notify_members): (Vec<String>, Vec<String>) = match e.kind {
            EventKind::Registered
            | EventKind::Returned
            | EventKind::ExtensionRequested
            | EventKind::ReturnRequested => (vec![holder.clone()], vec![]),
            EventKind::ExtensionDecided | EventKind::ReturnDecided => {
                (vec![before.unit_code.clone()], vec![])
            }
            EventKind::Dispatched
            | EventKind::Reopened
            | EventKind::Supplement
            | EventKind::Resumed => (vec![after.unit_code.clone()], vec![]),
            EventKind::Whistled => match details {
                Details::Whistled { unit_codes } => (unit_codes, vec![]),
                _ => (vec![], vec![]),
            },
            EventKind::SlaWarning | EventKind::SlaBreach => match details {
                Details::SlaLevel(d) => (d.notify, vec![]),
                _ => (vec![], vec![]),
            },
            EventKind::SlaEscalation | EventKind::Escalated | EventKind::RedCard => {
                (vec![holder.clone()], vec![])
            }
            EventKind::Resolved
            | EventKind::Feedback
            | EventKind::Closed
            | EventKind::Merged
            | EventKind::Cancelled
            | EventKind::AwaitingReporter => (vec![], vec![after.reporter_sub.clone()]),
            EventKind::Submitted
            | EventKind::Accepted
            | EventKind::CheckedIn
            | EventKind::Progress
            | EventKind::Evaluated
            | EventKind::Hotspot
            | EventKind::RepeatReporter => (vec![], vec![]),
        };
        e.audience = Some(Audience {
            units: units.clone(),
            notify_units,
            notify_members,
        });
    }
}

/// What happened to a case, before it is chained and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub actor_sub: String,
    pub actor_role: String,
    pub at: DateTime<Utc>,
    pub from_status: Option<CaseStatus>,
    pub to_status: Option<CaseStatus>,
    pub reason: String,
    /// The details' stored, hashed JSON text ([`Details::to_json`]); read it with
    /// [`NewEvent::parsed_details`].
    pub details: String,
    /// Who the event reaches and asks to act ([`address`]); `None` for events stored before
    /// audiences were.
    pub audience: Option<Audience>,
}

impl NewEvent {
    pub fn new(kind: EventKind, actor_sub: &str, actor_role: Role, at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            kind,
            actor_sub: actor_sub.to_owned(),
            actor_role: actor_role.as_str().to_owned(),
            at,
            from_status: None,
            to_status: None,
            reason: String::new(),
            details: Details::None.to_json(),
            audience: None,
        }
    }

    /// An event done by gridcase itself (the SLA scheduler), not by a member.
    pub fn system(kind: EventKind, at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            actor_sub: SYSTEM_SUB.to_owned(),
            actor_role: SYSTEM_ROLE.to_owned(),
            ..NewEvent::new(kind, SYSTEM_SUB, Role::Admin, at)
        }
    }

    pub fn transition(mut self, from: Option<CaseStatus>, to: CaseStatus) -> Self {
        self.from_status = from;
        self.to_status = Some(to);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    pub fn details(mut self, details: Details) -> Self {
        self.details = details.to_json();
        self
    }

    /// The typed details; an error names what in the stored text does not read.
    pub fn parsed_details(&self) -> Result<Details, String> {
        Details::parse(self.kind, &self.details)
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub case_id: String,
    pub event: NewEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// A stored event with what a follower of the event stream needs of its case.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub event: Event,
    pub case_code: String,
    pub chain: [Option<String>; 5],
    pub reporter_sub: String,
    /// The units that may see the event: its audience's, or for an event stored before
    /// audiences were, the case's lead and assisting units now.
    pub units: Vec<String>,
}

impl FeedEvent {
    pub fn place(&self) -> super::scope::EventPlace<'_> {
        super::scope::EventPlace {
            chain: &self.chain,
            reporter_sub: &self.reporter_sub,
            units: &self.units,
            alert_tier: alert_tier(&self.event.event),
        }
    }
}

/// The tier of the region an alert event is about; `None` for every other event.
pub fn alert_tier(e: &NewEvent) -> Option<Tier> {
    if !e.kind.is_alert() {
        return None;
    }
    match e.parsed_details() {
        Ok(Details::Alert(a)) => Some(a.tier),
        // Details gridcase wrote always read; were they not, only the top tier would see it.
        _ => Some(Tier::City),
    }
}

/// Who events done by gridcase itself are recorded as.
pub const SYSTEM_SUB: &str = "gridcase-sla";
pub const SYSTEM_ROLE: &str = "system";

/// The hash of the chain's start, before a case's first event.
pub const GENESIS: &str = "genesis";

/// The hash of one event: sha256 over the previous hash and the event's fields in a fixed
/// form, hex. Changing any field, reordering or dropping an event changes every hash after it.
///
/// The global `seq` is not hashed: it is a delivery position (what `WatchEvents` resumes
/// from), numbered under a lock held to commit, and leaving it out lets a writer finish every
/// hash before it takes that lock. Order within a case is the chain itself.
pub fn event_hash(prev_hash: &str, case_id: &str, e: &NewEvent) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        prev: &'a str,
        case: &'a str,
        kind: &'a str,
        actor: &'a str,
        role: &'a str,
        at_us: i64,
        from: Option<&'a str>,
        to: Option<&'a str>,
        reason: &'a str,
        details: &'a str,
    }
    let canonical = Canonical {
        prev: prev_hash,
        case: case_id,
        kind: e.kind.as_str(),
        actor: &e.actor_sub,
        role: &e.actor_role,
        at_us: e.at.timestamp_micros(),
        from: e.from_status.map(CaseStatus::as_str),
        to: e.to_status.map(CaseStatus::as_str),
        reason: &e.reason,
        details: &e.details,
    };
    // Serialising plain strings and numbers cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Chains `events` after `prev_hash`, numbering them from `first_seq`.
pub fn chain(case_id: &str, prev_hash: &str, first_seq: i64, events: Vec<NewEvent>) -> Vec<Event> {
    let mut prev = prev_hash.to_owned();
    events
        .into_iter()
        .enumerate()
        .map(|(k, event)| {
            let seq = first_seq + i64::try_from(k).unwrap_or(i64::MAX);
            let hash = event_hash(&prev, case_id, &event);
            Event {
                seq,
                case_id: case_id.to_owned(),
                event,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::case::now;

    #[test]
    fn a_chain_links_each_event_to_the_one_before() {
        let at = now();
        let events = chain(
            "c1",
            GENESIS,
            10,
            vec![
                NewEvent::new(EventKind::Submitted, "gm-1", Role::GridMember, at),
                NewEvent::new(EventKind::Registered, "gm-1", Role::GridMember, at),
            ],
        );
        assert_eq!(events[0].prev_hash, GENESIS);
        assert_eq!(events[1].prev_hash, events[0].hash);
        assert_eq!(events[1].seq, 11);
        assert_eq!(events[0].hash, event_hash(GENESIS, "c1", &events[0].event));
        let mut tampered = events[0].event.clone();
        tampered.reason = "edited".into();
        assert_ne!(event_hash(GENESIS, "c1", &tampered), events[0].hash);
        // The same events numbered elsewhere in the global sequence hash the same.
        let renumbered = chain("c1", GENESIS, 99, vec![events[0].event.clone()]);
        assert_eq!(renumbered[0].hash, events[0].hash);
    }
}

#[cfg(test)]
mod addressees {
    use super::*;
    use crate::domain::{
        case::Assist,
        fixtures::{self, *},
    };
    use crate::domain::{
        case::CaseStatus,
        directory::Tier,
        sla::{ClockKind, Level},
    };

    fn addressed(kind: EventKind, details: Details, before: &Case, after: &Case) -> Audience {
        let mut events = vec![NewEvent::new(kind, "x", Role::Dispatcher, t0()).details(details)];
        address(&mut events, before, after);
        events.remove(0).audience.expect("addressed")
    }

    fn alert(center: &str) -> Details {
        Details::Alert(AlertDetails {
            alert_id: "a1".into(),
            region_code: "371102001001".into(),
            tier: Tier::Community,
            center: center.into(),
            class_code: Some("dispute".into()),
            class_name: Some("矛盾纠纷".into()),
            phone_masked: None,
            case_ids: vec!["c1".into(), "c2".into(), "c3".into()],
            case_codes: vec!["k1".into(), "k2".into(), "k3".into()],
            from: t0(),
            until: t0(),
        })
    }

    /// An alert reaches its center alone among units, whatever units the case has; its
    /// details read back as written.
    #[test]
    fn an_alert_is_the_centers_alone() {
        let mut before = fixtures::case(CaseStatus::Dispatched);
        before.assisting = vec![Assist {
            unit_code: "371102.center".into(),
            summoned_at: t0(),
            checked_in_at: None,
        }];
        let center = "371102001001.center".to_owned();
        let a = addressed(EventKind::Hotspot, alert(&center), &before, &before);
        assert_eq!(a.units, std::slice::from_ref(&center));
        assert_eq!(a.notify_units, std::slice::from_ref(&center));
        assert!(a.notify_members.is_empty());
        let text = alert(&center).to_json();
        assert_eq!(
            Details::parse(EventKind::Hotspot, &text),
            Ok(alert(&center))
        );
        assert!(text.contains("\"count\":3"), "{text}");
    }

    /// The table of ARCHITECTURE.md "Addressees", kind by kind.
    #[test]
    fn each_event_that_asks_someone_to_act_names_them() {
        let before = fixtures::case(CaseStatus::Registered);
        let mut after = before.clone();
        after.unit_code = POLICE.into();
        let center = "371102001.center".to_owned();
        let reporter = vec![REPORTER.to_owned()];
        let level = |level: Level, notify: Vec<String>| {
            Details::SlaLevel(SlaLevelDetails {
                clock: ClockKind::Resolve,
                cycle: 1,
                unit_code: JUSTICE.into(),
                level,
                due_at: t0(),
                level_at: t0(),
                notify,
                escalation: None,
            })
        };
        let table: Vec<(EventKind, Details, Vec<String>, Vec<String>)> = vec![
            (EventKind::Submitted, Details::None, vec![], vec![]),
            (
                EventKind::Registered,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::Dispatched,
                Details::None,
                vec![POLICE.into()],
                vec![],
            ),
            (EventKind::Accepted, Details::None, vec![], vec![]),
            (
                EventKind::Returned,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::Whistled,
                Details::Whistled {
                    unit_codes: vec!["a".into(), "b".into()],
                },
                vec!["a".into(), "b".into()],
                vec![],
            ),
            (
                EventKind::SlaWarning,
                level(Level::Warning, vec![JUSTICE.into()]),
                vec![JUSTICE.into()],
                vec![],
            ),
            (
                EventKind::SlaBreach,
                level(Level::Breach, vec![JUSTICE.into(), center.clone()]),
                vec![JUSTICE.into(), center.clone()],
                vec![],
            ),
            (
                EventKind::SlaEscalation,
                level(Level::Escalation, vec![]),
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::Escalated,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::RedCard,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (EventKind::Resolved, Details::None, vec![], reporter.clone()),
            (EventKind::Feedback, Details::None, vec![], reporter.clone()),
            (EventKind::Closed, Details::None, vec![], reporter.clone()),
            (EventKind::Merged, Details::None, vec![], reporter.clone()),
            (
                EventKind::Cancelled,
                Details::None,
                vec![],
                reporter.clone(),
            ),
            (
                EventKind::Reopened,
                Details::None,
                vec![POLICE.into()],
                vec![],
            ),
            (
                EventKind::Supplement,
                Details::None,
                vec![POLICE.into()],
                vec![],
            ),
            (EventKind::Evaluated, Details::None, vec![], vec![]),
            (EventKind::Progress, Details::None, vec![], vec![]),
            (EventKind::CheckedIn, Details::None, vec![], vec![]),
            (
                EventKind::AwaitingReporter,
                Details::None,
                vec![],
                reporter.clone(),
            ),
            (
                EventKind::Resumed,
                Details::None,
                vec![POLICE.into()],
                vec![],
            ),
            (
                EventKind::ExtensionRequested,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::ReturnRequested,
                Details::None,
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::ExtensionDecided,
                Details::None,
                vec![JUSTICE.into()],
                vec![],
            ),
            (
                EventKind::ReturnDecided,
                Details::None,
                vec![JUSTICE.into()],
                vec![],
            ),
            (
                EventKind::Hotspot,
                alert(&center),
                vec![center.clone()],
                vec![],
            ),
            (
                EventKind::RepeatReporter,
                alert(&center),
                vec![center.clone()],
                vec![],
            ),
        ];
        assert_eq!(table.len(), EventKind::ALL.len(), "every kind has its row");
        for (kind, details, units, members) in table {
            let a = addressed(kind, details, &before, &after);
            assert_eq!(a.notify_units, units, "{kind}");
            assert_eq!(a.notify_members, members, "{kind}");
        }
    }

    #[test]
    fn an_event_reaches_the_units_the_case_leaves_and_the_ones_it_goes_to() {
        let mut before = fixtures::case(CaseStatus::Dispatched);
        before.assisting = vec![Assist {
            unit_code: "371102.center".into(),
            summoned_at: t0(),
            checked_in_at: None,
        }];
        let mut after = before.clone();
        after.unit_code = POLICE.into();
        let a = addressed(EventKind::Dispatched, Details::None, &before, &after);
        assert_eq!(a.units, ["371102.center", POLICE, JUSTICE]);
    }
}
