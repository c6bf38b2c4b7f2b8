//! SLA clocks (DESIGN.md "SLA clocks"): which clocks a transition starts and stops, how long each
//! runs by category, tier and severity, and the levels each fires — warning at 80 %, supervision
//! notice (督办) at 100 %, escalation at 150 %, a second escalation (red card) at 200 %.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};

use super::{
    DomainError,
    calendar::{Calendar, SlaDuration},
    case::{Case, NewEvent, Source},
    directory::{Severity, Tier},
    event::{Details, EventKind},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClockKind {
    /// 1 小时内登记: from receipt to registration.
    Register,
    /// From registration (or a return) to dispatch.
    Dispatch,
    /// Urgent cases: from dispatch to the unit's first report from the scene.
    OnSite,
    /// 吹哨报到: each summoned unit, from the whistle to its check-in.
    WhistleCheckIn,
    /// From acceptance (or a reopen) to resolution.
    Resolve,
    /// From resolution until the reporter is told the result.
    Feedback,
}

impl ClockKind {
    pub const ALL: [ClockKind; 6] = [
        ClockKind::Register,
        ClockKind::Dispatch,
        ClockKind::OnSite,
        ClockKind::WhistleCheckIn,
        ClockKind::Resolve,
        ClockKind::Feedback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Register => "register",
            ClockKind::Dispatch => "dispatch",
            ClockKind::OnSite => "on_site",
            ClockKind::WhistleCheckIn => "whistle_check_in",
            ClockKind::Resolve => "resolve",
            ClockKind::Feedback => "feedback",
        }
    }
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClockKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClockKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown clock {s:?}"))
    }
}

/// The levels a clock fires, in order, each exactly once per clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// 80 % of the time gone.
    Warning = 1,
    /// Due: a supervision notice (督办) to the unit and its region's center.
    Breach = 2,
    /// Due plus half the time again: one tier up.
    Escalation = 3,
    /// Due plus the whole time again: the clock's second escalation.
    SecondEscalation = 4,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Warning,
        Level::Breach,
        Level::Escalation,
        Level::SecondEscalation,
    ];

    /// The stage a clock is in once this level has fired.
    pub fn stage(self) -> i32 {
        self as i32
    }

    pub fn after_stage(stage: i32) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.stage() == stage + 1)
    }

    /// The share of the clock's time at which the level fires.
    pub fn fraction(self) -> f64 {
        match self {
            Level::Warning => 0.8,
            Level::Breach => 1.0,
            Level::Escalation => 1.5,
            Level::SecondEscalation => 2.0,
        }
    }

    pub fn event_kind(self) -> EventKind {
        match self {
            Level::Warning => EventKind::SlaWarning,
            Level::Breach => EventKind::SlaBreach,
            Level::Escalation | Level::SecondEscalation => EventKind::SlaEscalation,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Breach => "breach",
            Level::Escalation => "escalation",
            Level::SecondEscalation => "second_escalation",
        }
    }

    /// The levels that move a case one tier up.
    pub fn is_escalation(self) -> bool {
        matches!(self, Level::Escalation | Level::SecondEscalation)
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown SLA level {s:?}"))
    }
}

/// One rule of the SLA policy: a duration for a clock, narrowed by category, tier and severity
/// (`None`: any). The most specific rule that matches wins; category counts most, then tier,
/// then severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub clock: ClockKind,
    pub category_code: Option<String>,
    pub tier: Option<Tier>,
    pub severity: Option<Severity>,
    pub duration: SlaDuration,
}

impl PolicyRule {
    fn matches(&self, category: &str, tier: Tier, severity: Severity) -> bool {
        self.category_code.as_deref().is_none_or(|c| c == category)
            && self.tier.is_none_or(|t| t == tier)
            && self.severity.is_none_or(|s| s == severity)
    }

    fn specificity(&self) -> u8 {
        u8::from(self.category_code.is_some()) * 4
            + u8::from(self.tier.is_some()) * 2
            + u8::from(self.severity.is_some())
    }

    fn same_key(&self, other: &PolicyRule) -> bool {
        self.clock == other.clock
            && self.category_code == other.category_code
            && self.tier == other.tier
            && self.severity == other.severity
    }
}

/// The SLA policy: DESIGN.md's defaults with the admins' rules laid over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The defaults no admin rule replaced, then the admins' rules.
    rules: Vec<PolicyRule>,
    /// How many of `rules`, from the front, are defaults.
    defaults: usize,
}

/// Where a rule of the policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrigin {
    /// DESIGN.md's table.
    Default,
    /// An admin's `SetSlaPolicy`.
    Admin,
}

fn rule(clock: ClockKind, severity: Option<Severity>, duration: SlaDuration) -> PolicyRule {
    PolicyRule {
        clock,
        category_code: None,
        tier: None,
        severity,
        duration,
    }
}

impl Default for Policy {
    /// DESIGN.md's table. The on-site clock has a rule for urgent cases only, so it runs for
    /// nothing else unless an admin adds one.
    fn default() -> Self {
        use SlaDuration::{Minutes, WorkingDays};
        let rules = vec![
            rule(ClockKind::Register, None, Minutes(60)),
            rule(ClockKind::Dispatch, None, Minutes(24 * 60)),
            rule(ClockKind::Dispatch, Some(Severity::Urgent), Minutes(60)),
            rule(ClockKind::OnSite, Some(Severity::Urgent), Minutes(15)),
            rule(ClockKind::WhistleCheckIn, None, Minutes(30)),
            rule(ClockKind::Resolve, None, WorkingDays(7)),
            rule(ClockKind::Resolve, Some(Severity::Complex), WorkingDays(15)),
            rule(ClockKind::Feedback, None, Minutes(24 * 60)),
        ];
        Policy {
            defaults: rules.len(),
            rules,
        }
    }
}

impl Policy {
    /// The defaults with `rules` laid over them (a rule with a default's key replaces it).
    pub fn with_rules(rules: impl IntoIterator<Item = PolicyRule>) -> Policy {
        let mut policy = Policy::default();
        for r in rules {
            let replaced_defaults = policy.rules[..policy.defaults]
                .iter()
                .filter(|x| x.same_key(&r))
                .count();
            policy.defaults -= replaced_defaults;
            policy.rules.retain(|x| !x.same_key(&r));
            policy.rules.push(r);
        }
        policy
    }

    /// How long `clock` runs for such a case; `None` when no rule applies (the clock does not run).
    pub fn duration(
        &self,
        clock: ClockKind,
        category: &str,
        tier: Tier,
        severity: Severity,
    ) -> Option<SlaDuration> {
        self.rules
            .iter()
            .filter(|r| r.clock == clock && r.matches(category, tier, severity))
            .max_by_key(|r| r.specificity())
            .map(|r| r.duration)
    }

    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// Every rule in force and where it comes from, by clock, then category, tier and severity
    /// ("any" before each single one): the order an admin reads the policy in.
    pub fn rules_in_order(&self) -> Vec<(&PolicyRule, RuleOrigin)> {
        let mut listed: Vec<(&PolicyRule, RuleOrigin)> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let origin = if i < self.defaults {
                    RuleOrigin::Default
                } else {
                    RuleOrigin::Admin
                };
                (r, origin)
            })
            .collect();
        listed.sort_by(|(a, _), (b, _)| {
            (a.clock, &a.category_code, a.tier, a.severity).cmp(&(
                b.clock,
                &b.category_code,
                b.tier,
                b.severity,
            ))
        });
        listed
    }
}

/// What a transition does to a case's clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockOp {
    /// Start the clock unless one of this kind (and unit) already runs in the case's cycle.
    Start {
        kind: ClockKind,
        unit_code: String,
        at: DateTime<Utc>,
    },
    /// Stop the running clocks of this kind (and unit, when given; every kind when `None`).
    Stop {
        kind: Option<ClockKind>,
        unit_code: Option<String>,
        at: DateTime<Utc>,
    },
    /// Stop a clock that started and stopped at once (a registration's register clock).
    Completed {
        kind: ClockKind,
        started_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Pause the running, unpaused clock of this kind at `at` (the case waits on the reporter):
    /// it fires nothing until resumed, and resumes by itself at `until`.
    Pause {
        kind: ClockKind,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// Resume the paused clock of this kind at `at`: its times move by the paused span.
    Resume { kind: ClockKind, at: DateTime<Utc> },
    /// An approved extension (延期): the running lead-unit clock of this kind falls due at
    /// `due_at` instead, its warning and escalation times moved with it.
    Extend {
        kind: ClockKind,
        due_at: DateTime<Utc>,
    },
}

fn start(kind: ClockKind, at: DateTime<Utc>) -> ClockOp {
    ClockOp::Start {
        kind,
        unit_code: String::new(),
        at,
    }
}

fn stop(kind: ClockKind, at: DateTime<Utc>) -> ClockOp {
    ClockOp::Stop {
        kind: Some(kind),
        unit_code: None,
        at,
    }
}

/// When the register clock of a new case started: a gateway's own receipt time for its
/// tickets (the 12345 operator took the call then), gridcase's receipt time otherwise.
pub fn register_started(case: &Case) -> DateTime<Utc> {
    if case.source != Source::Handset && case.external_id.is_some() {
        case.captured_at
            .filter(|at| *at <= case.received_at)
            .unwrap_or(case.received_at)
    } else {
        case.received_at
    }
}

/// The clock operations of a transition, from the events it appends (in order), applied to
/// the case as it is after the transition.
pub fn plan(after: &Case, events: &[NewEvent]) -> Vec<ClockOp> {
    use ClockKind::*;
    let urgent = after.severity == Severity::Urgent;
    let mut ops = Vec::new();
    for e in events {
        let at = e.at;
        match e.kind {
            EventKind::Registered => {
                ops.push(ClockOp::Completed {
                    kind: Register,
                    started_at: register_started(after),
                    at,
                });
                ops.push(start(Dispatch, at));
            }
            EventKind::Dispatched => {
                ops.push(stop(Dispatch, at));
                if urgent {
                    ops.push(start(OnSite, at));
                }
            }
            EventKind::Accepted => ops.push(start(Resolve, at)),
            EventKind::Returned => {
                ops.push(stop(OnSite, at));
                ops.push(stop(Resolve, at));
                ops.push(start(Dispatch, at));
            }
            EventKind::Progress => ops.push(stop(OnSite, at)),
            EventKind::Resolved => {
                ops.push(stop(OnSite, at));
                ops.push(stop(Resolve, at));
                ops.push(ClockOp::Stop {
                    kind: Some(WhistleCheckIn),
                    unit_code: None,
                    at,
                });
                ops.push(start(Feedback, at));
            }
            EventKind::Feedback => ops.push(stop(Feedback, at)),
            // A new cycle: what ran in the last one stops; the lead unit's resolve clock
            // restarts at once (DESIGN.md "restarts on reopen"), as does on-site when urgent.
            EventKind::Reopened => {
                ops.push(ClockOp::Stop {
                    kind: None,
                    unit_code: None,
                    at,
                });
                ops.push(start(Resolve, at));
                if urgent {
                    ops.push(start(OnSite, at));
                }
            }
            // A manual escalation hands the case to the higher center, which dispatches anew.
            EventKind::Escalated => {
                ops.push(stop(OnSite, at));
                ops.push(stop(Resolve, at));
                if urgent {
                    ops.push(start(OnSite, at));
                }
            }
            EventKind::Whistled => {
                if let Ok(Details::Whistled { unit_codes }) = e.parsed_details() {
                    for unit_code in unit_codes {
                        ops.push(ClockOp::Start {
                            kind: WhistleCheckIn,
                            unit_code,
                            at,
                        });
                    }
                }
            }
            EventKind::CheckedIn => {
                if let Ok(Details::CheckedIn { unit_code }) = e.parsed_details() {
                    ops.push(ClockOp::Stop {
                        kind: Some(WhistleCheckIn),
                        unit_code: Some(unit_code),
                        at,
                    });
                }
            }
            EventKind::Closed | EventKind::Merged | EventKind::Cancelled => {
                ops.push(ClockOp::Stop {
                    kind: None,
                    unit_code: None,
                    at,
                })
            }
            // Waiting on the reporter pauses the resolve clock; the end of the wait resumes it
            // from the time the wait ended (for an end by itself, the limit's time).
            EventKind::AwaitingReporter => {
                if let Ok(Details::AwaitingReporter { until }) = e.parsed_details() {
                    ops.push(ClockOp::Pause {
                        kind: Resolve,
                        at,
                        until,
                    });
                }
            }
            EventKind::Resumed => {
                if let Ok(Details::Resumed { resumed_at, .. }) = e.parsed_details() {
                    ops.push(ClockOp::Resume {
                        kind: Resolve,
                        at: resumed_at,
                    });
                }
            }
            EventKind::ExtensionDecided => {
                if let Ok(Details::ExtensionDecided {
                    approved: true,
                    moved: Some((_, due_at)),
                    ..
                }) = e.parsed_details()
                {
                    ops.push(ClockOp::Extend {
                        kind: Resolve,
                        due_at,
                    });
                }
            }
            EventKind::Submitted
            | EventKind::ExtensionRequested
            | EventKind::ReturnRequested
            | EventKind::ReturnDecided
            | EventKind::Evaluated
            | EventKind::Supplement
            | EventKind::SlaWarning
            | EventKind::SlaBreach
            | EventKind::SlaEscalation
            | EventKind::RedCard
            | EventKind::Hotspot
            | EventKind::RepeatReporter => {}
        }
    }
    ops
}

/// A clock's schedule: when each level falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub due_at: DateTime<Utc>,
    pub warn_at: DateTime<Utc>,
    pub escalate_at: DateTime<Utc>,
    pub red_card_at: DateTime<Utc>,
}

impl Schedule {
    pub fn new(calendar: &Calendar, started_at: DateTime<Utc>, d: SlaDuration) -> Schedule {
        Schedule {
            warn_at: calendar.at_fraction(started_at, d, Level::Warning.fraction()),
            due_at: calendar.due(started_at, d),
            escalate_at: calendar.at_fraction(started_at, d, Level::Escalation.fraction()),
            red_card_at: calendar.at_fraction(started_at, d, Level::SecondEscalation.fraction()),
        }
    }

    pub fn at(&self, level: Level) -> DateTime<Utc> {
        match level {
            Level::Warning => self.warn_at,
            Level::Breach => self.due_at,
            Level::Escalation => self.escalate_at,
            Level::SecondEscalation => self.red_card_at,
        }
    }

    /// When the level after `stage` falls; `None` once every level has fired.
    pub fn next_after(&self, stage: i32) -> Option<DateTime<Utc>> {
        Level::after_stage(stage).map(|l| self.at(l))
    }

    /// Every level's time moved by `span`.
    pub fn shifted(&self, span: chrono::TimeDelta) -> Schedule {
        Schedule {
            due_at: self.due_at + span,
            warn_at: self.warn_at + span,
            escalate_at: self.escalate_at + span,
            red_card_at: self.red_card_at + span,
        }
    }
}

/// One clock of one case as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub id: i64,
    pub case_id: String,
    pub kind: ClockKind,
    pub cycle: i32,
    pub unit_code: String,
    pub attempt: i32,
    pub duration: SlaDuration,
    pub started_at: DateTime<Utc>,
    pub schedule: Schedule,
    pub next_at: Option<DateTime<Utc>>,
    pub stage: i32,
    pub warned_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalations: i32,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Since when the clock is paused (the case waits on the reporter). A paused clock fires
    /// nothing: its `next_at` holds the time its pause ends by itself, not a level's.
    pub paused_at: Option<DateTime<Utc>>,
    /// Extensions (延期) granted to this clock, and its due time before the first of them
    /// (moved by pauses as the due time is); `None` while never extended.
    pub extensions: i32,
    pub base_due_at: Option<DateTime<Utc>>,
}

impl Clock {
    /// The clock resumed at `at`: every level's time moves by the paused span `at − paused_at`
    /// (wall-clock: the wait is given back exactly as it passed, whatever working days it
    /// spanned), and `next_at` is the next level that has not fired. Levels fired before the
    /// pause stay fired. A clock that is not paused is returned as it is.
    pub fn resumed(&self, at: DateTime<Utc>) -> Clock {
        let Some(paused_at) = self.paused_at else {
            return self.clone();
        };
        let span = (at - paused_at).max(chrono::TimeDelta::zero());
        let schedule = self.schedule.shifted(span);
        Clock {
            schedule,
            base_due_at: self.base_due_at.map(|b| b + span),
            next_at: if self.stopped_at.is_some() {
                None
            } else {
                schedule.next_after(self.stage)
            },
            paused_at: None,
            ..self.clone()
        }
    }

    /// The clock extended to fall due at `due_at`: every level's time moves by as much as the
    /// due time does, levels already fired stay fired, and a paused clock stays paused (its
    /// `next_at` is its pause's end).
    pub fn extended(&self, due_at: DateTime<Utc>) -> Clock {
        let schedule = self.schedule.shifted(due_at - self.schedule.due_at);
        Clock {
            schedule,
            next_at: if self.stopped_at.is_some() {
                None
            } else if self.paused_at.is_some() {
                self.next_at
            } else {
                schedule.next_after(self.stage)
            },
            extensions: self.extensions + 1,
            base_due_at: Some(self.base_due_at.unwrap_or(self.schedule.due_at)),
            ..self.clone()
        }
    }

    /// Past due at `now` while running, or stopped after its due time.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        match self.stopped_at {
            Some(stopped) => stopped > self.schedule.due_at,
            None => now >= self.schedule.due_at,
        }
    }
}

/// The unit a clock's notices go to: a check-in clock's summoned unit, else the lead unit.
pub fn clock_unit<'a>(clock: &'a Clock, case: &'a Case) -> &'a str {
    if clock.unit_code.is_empty() {
        &case.unit_code
    } else {
        &clock.unit_code
    }
}

/// What a transition does to a case's clocks: the clocks it starts (id 0, not yet stored), and
/// the stored clocks it stops, with when.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClockChanges {
    pub started: Vec<Clock>,
    pub stopped: Vec<(i64, DateTime<Utc>)>,
    /// Stored clocks paused or resumed (their schedule, `next_at` and `paused_at` as they are
    /// now), written after the stops.
    pub updated: Vec<Clock>,
}

/// The clocks `ops` leave a case with, given the clocks it has (running and stopped: a clock's
/// attempt counts the earlier ones of its kind, unit and cycle). A clock the policy gives no
/// duration for does not run; a clock already running is not started twice.
pub fn clock_changes(
    case: &Case,
    existing: &[Clock],
    ops: &[ClockOp],
    policy: &Policy,
    calendar: &Calendar,
) -> ClockChanges {
    let mut clocks: Vec<Clock> = existing.to_vec();
    let first_new = clocks.len();
    let make = |clocks: &[Clock], kind: ClockKind, unit: &str, started: DateTime<Utc>| {
        let d = policy.duration(kind, &case.category_code, case.tier, case.severity)?;
        let attempt = clocks
            .iter()
            .filter(|c| c.kind == kind && c.unit_code == unit && c.cycle == case.cycle)
            .count();
        let schedule = Schedule::new(calendar, started, d);
        Some(Clock {
            id: 0,
            case_id: case.id.clone(),
            kind,
            cycle: case.cycle,
            unit_code: unit.to_owned(),
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            duration: d,
            started_at: started,
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
        })
    };
    let mut stopped: Vec<(usize, DateTime<Utc>)> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    for op in ops {
        match op {
            ClockOp::Start {
                kind,
                unit_code,
                at,
            } => {
                let running = clocks.iter().any(|c| {
                    c.kind == *kind
                        && c.unit_code == *unit_code
                        && c.cycle == case.cycle
                        && c.stopped_at.is_none()
                });
                if !running && let Some(c) = make(&clocks, *kind, unit_code, *at) {
                    clocks.push(c);
                }
            }
            ClockOp::Completed {
                kind,
                started_at,
                at,
            } => {
                if let Some(mut c) = make(&clocks, *kind, "", *started_at) {
                    c.stopped_at = Some(*at);
                    c.next_at = None;
                    clocks.push(c);
                }
            }
            ClockOp::Stop {
                kind,
                unit_code,
                at,
            } => {
                for (i, c) in clocks.iter_mut().enumerate() {
                    if c.stopped_at.is_none()
                        && kind.is_none_or(|k| k == c.kind)
                        && unit_code.as_deref().is_none_or(|u| u == c.unit_code)
                    {
                        // A clock stopped while paused is resumed at the stop first: the wait
                        // counts against no one.
                        if c.paused_at.is_some() {
                            *c = c.resumed(*at);
                            touched.push(i);
                        }
                        c.stopped_at = Some(*at);
                        c.next_at = None;
                        stopped.push((i, *at));
                    }
                }
            }
            ClockOp::Pause { kind, at, until } => {
                for (i, c) in clocks.iter_mut().enumerate() {
                    if c.stopped_at.is_none() && c.paused_at.is_none() && c.kind == *kind {
                        c.paused_at = Some(*at);
                        c.next_at = Some(*until);
                        touched.push(i);
                    }
                }
            }
            ClockOp::Extend { kind, due_at } => {
                for (i, c) in clocks.iter_mut().enumerate() {
                    if c.stopped_at.is_none()
                        && c.kind == *kind
                        && c.unit_code.is_empty()
                        && c.cycle == case.cycle
                    {
                        *c = c.extended(*due_at);
                        touched.push(i);
                    }
                }
            }
            ClockOp::Resume { kind, at } => {
                for (i, c) in clocks.iter_mut().enumerate() {
                    if c.stopped_at.is_none() && c.paused_at.is_some() && c.kind == *kind {
                        *c = c.resumed(*at);
                        touched.push(i);
                    }
                }
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let updated = touched
        .into_iter()
        .filter(|i| *i < first_new)
        .map(|i| clocks[i].clone())
        .collect();
    let stopped = stopped
        .into_iter()
        .filter(|(i, _)| *i < first_new)
        .map(|(i, at)| (clocks[i].id, at))
        .collect();
    ClockChanges {
        started: clocks.split_off(first_new),
        stopped,
        updated,
    }
}

/// How far a case's resolve clock may be extended (延期), by configuration: at most `per_cycle`
/// extensions in a cycle, together moving the due time at most `ceiling` past where it fell
/// before the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionRules {
    pub per_cycle: u32,
    pub ceiling: SlaDuration,
}

impl Default for ExtensionRules {
    /// One extension per cycle, 10 working days in all: the common 12345 rule.
    fn default() -> Self {
        ExtensionRules {
            per_cycle: 1,
            ceiling: SlaDuration::WorkingDays(10),
        }
    }
}

/// What an extension of `duration` would do to a case's running resolve clock, worked out by
/// the calendar before the workflow judges it ([`ExtensionRoom::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionRoom {
    pub rules: ExtensionRules,
    pub duration: SlaDuration,
    /// Extensions granted to the cycle's resolve clocks so far.
    pub granted: u32,
    /// The running resolve clock: its due time now, where `duration` moves it, and the latest
    /// the ceiling allows. `None` when no resolve clock of the cycle runs.
    pub clock: Option<ExtendedDue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedDue {
    pub due_at: DateTime<Utc>,
    pub extended_due_at: DateTime<Utc>,
    pub latest_due_at: DateTime<Utc>,
}

/// `d` past the due time `due_at`: `3wd` is three working days later. A due time at 24:00 (the
/// end of a working-day clock's last day, stored as the next day's 00:00) belongs to the day it
/// ends, so working days count from the day after that one, not from the day after midnight.
fn later(calendar: &Calendar, due_at: DateTime<Utc>, d: SlaDuration) -> DateTime<Utc> {
    match d {
        SlaDuration::WorkingDays(_) => calendar.due(due_at - chrono::TimeDelta::microseconds(1), d),
        SlaDuration::Minutes(_) | SlaDuration::WorkingHours(_) => calendar.due(due_at, d),
    }
}

impl ExtensionRoom {
    /// From the case's clocks (every kind and cycle, as stored).
    pub fn of(
        case: &Case,
        clocks: &[Clock],
        duration: SlaDuration,
        rules: ExtensionRules,
        calendar: &Calendar,
    ) -> ExtensionRoom {
        let resolve = |c: &&Clock| {
            c.kind == ClockKind::Resolve && c.cycle == case.cycle && c.unit_code.is_empty()
        };
        let granted = clocks
            .iter()
            .filter(resolve)
            .map(|c| u32::try_from(c.extensions).unwrap_or(0))
            .sum();
        let clock = clocks
            .iter()
            .filter(resolve)
            .find(|c| c.stopped_at.is_none())
            .map(|c| ExtendedDue {
                due_at: c.schedule.due_at,
                extended_due_at: later(calendar, c.schedule.due_at, duration),
                latest_due_at: later(
                    calendar,
                    c.base_due_at.unwrap_or(c.schedule.due_at),
                    rules.ceiling,
                ),
            });
        ExtensionRoom {
            rules,
            duration,
            granted,
            clock,
        }
    }

    /// Whether the extension may be granted at `now`: FAILED_PRECONDITION names the rule that
    /// refuses it. An extension is asked before the due time (办理时限届满前), and decided
    /// whenever the center gets to it.
    pub fn check(
        &self,
        code: &str,
        asking: bool,
        now: DateTime<Utc>,
    ) -> Result<ExtendedDue, DomainError> {
        let clock = self.clock.ok_or_else(|| {
            DomainError::FailedPrecondition(format!(
                "case {code} has no running resolve clock to extend"
            ))
        })?;
        if asking && now >= clock.due_at {
            return Err(DomainError::FailedPrecondition(format!(
                "an extension is asked before the due time: case {code} fell due at {}",
                clock.due_at.to_rfc3339()
            )));
        }
        if self.granted >= self.rules.per_cycle {
            return Err(DomainError::FailedPrecondition(format!(
                "extensions_per_cycle: at most {} extension(s) per cycle, and case {code} has \
                 had {} in this one",
                self.rules.per_cycle, self.granted
            )));
        }
        if clock.extended_due_at > clock.latest_due_at {
            return Err(DomainError::FailedPrecondition(format!(
                "extension_ceiling: extensions add at most {} to a cycle; {} would move case \
                 {code}'s due time to {}, past {}",
                self.rules.ceiling,
                self.duration,
                clock.extended_due_at.to_rfc3339(),
                clock.latest_due_at.to_rfc3339()
            )));
        }
        Ok(clock)
    }
}

/// What one scan does to a due clock: the levels that have come, in order, and the clock as it
/// is after them. The scan stores it with a compare-and-set on `from_stage`, so a level whose
/// stage another replica moved meanwhile is never fired twice.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockMove {
    pub clock: Clock,
    pub levels: Vec<Level>,
    pub from_stage: i32,
    pub stage: i32,
    pub next_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalations: i32,
}

/// A paused clock whose wait has reached its limit (`next_at`, set when it paused): the scan
/// resumes it as of that limit, so the whole wait counts against no one, with a compare-and-set
/// on `paused_at` (exactly once across replicas).
#[derive(Debug, Clone, PartialEq)]
pub struct ClockResume {
    /// The clock as it was read, paused.
    pub clock: Clock,
    /// The clock resumed.
    pub resumed: Clock,
    pub paused_at: DateTime<Utc>,
    pub resumed_at: DateTime<Utc>,
}

/// The end by itself of `clock`'s pause, when its limit has come by `now`; `None` for a clock
/// that is not paused, or whose wait may go on.
pub fn pause_ended(clock: &Clock, now: DateTime<Utc>) -> Option<ClockResume> {
    let paused_at = clock.paused_at?;
    let until = clock.next_at?;
    if clock.stopped_at.is_some() || until > now {
        return None;
    }
    Some(ClockResume {
        resumed: clock.resumed(until),
        clock: clock.clone(),
        paused_at,
        resumed_at: until,
    })
}

/// The levels of `clock` that have come by `now` and not fired yet; `None` when none has, and
/// always for a paused clock (its `next_at` is the end of its pause: see [`pause_ended`]).
pub fn due_levels(clock: &Clock, now: DateTime<Utc>) -> Option<ClockMove> {
    if clock.paused_at.is_some() {
        return None;
    }
    let mut stage = clock.stage;
    let mut levels: Vec<Level> = Vec::new();
    while let Some(level) = Level::after_stage(stage)
        && clock.schedule.at(level) <= now
    {
        levels.push(level);
        stage = level.stage();
    }
    if levels.is_empty() {
        return None;
    }
    let fired = |level: Level| levels.contains(&level).then_some(now);
    let escalations = levels.iter().filter(|l| l.is_escalation()).count();
    Some(ClockMove {
        from_stage: clock.stage,
        stage,
        next_at: clock.schedule.next_after(stage),
        warned_at: clock.warned_at.or(fired(Level::Warning)),
        breached_at: clock.breached_at.or(fired(Level::Breach)),
        escalated_at: if escalations > 0 {
            Some(now)
        } else {
            clock.escalated_at
        },
        escalations: clock.escalations + i32::try_from(escalations).unwrap_or(0),
        levels,
        clock: clock.clone(),
    })
}

/// How late a case's running clocks are now: 2 when one is past due, 1 when one is past its
/// warning, 0 otherwise.
pub fn lateness(clocks: &[Clock], now: DateTime<Utc>) -> u8 {
    clocks
        .iter()
        .filter(|c| c.stopped_at.is_none())
        .map(|c| {
            // A paused clock stands where it stood when it paused.
            let now = c.paused_at.map_or(now, |p| p.min(now));
            if c.schedule.due_at <= now {
                2
            } else if c.schedule.warn_at <= now {
                1
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// How a case stands against its clocks, worst first (what the console colours it by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlaState {
    OnTime,
    Warned,
    Breached,
    Escalated,
    RedCard,
}

impl SlaState {
    /// From a case's red card, its escalations and its running clocks' [`lateness`].
    pub fn of(red_card: bool, escalation_level: i32, lateness: u8) -> SlaState {
        if red_card {
            SlaState::RedCard
        } else if escalation_level > 0 {
            SlaState::Escalated
        } else if lateness >= 2 {
            SlaState::Breached
        } else if lateness == 1 {
            SlaState::Warned
        } else {
            SlaState::OnTime
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::OnTime => "on_time",
            SlaState::Warned => "warned",
            SlaState::Breached => "breached",
            SlaState::Escalated => "escalated",
            SlaState::RedCard => "red_card",
        }
    }
}

/// How a case's tier counts for 就地化解: settled at township tier or below.
pub fn local_tier(tier: Tier) -> bool {
    matches!(tier, Tier::Township | Tier::Community | Tier::Grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_follow_design_md() {
        let p = Policy::default();
        let d = |clock, severity| p.duration(clock, "dispute.neighbor", Tier::Community, severity);
        use SlaDuration::*;
        assert_eq!(d(ClockKind::Register, Severity::General), Some(Minutes(60)));
        assert_eq!(
            d(ClockKind::Dispatch, Severity::General),
            Some(Minutes(1440))
        );
        assert_eq!(d(ClockKind::Dispatch, Severity::Urgent), Some(Minutes(60)));
        assert_eq!(d(ClockKind::OnSite, Severity::General), None);
        assert_eq!(d(ClockKind::OnSite, Severity::Urgent), Some(Minutes(15)));
        assert_eq!(
            d(ClockKind::WhistleCheckIn, Severity::Complex),
            Some(Minutes(30))
        );
        assert_eq!(
            d(ClockKind::Resolve, Severity::General),
            Some(WorkingDays(7))
        );
        assert_eq!(
            d(ClockKind::Resolve, Severity::Complex),
            Some(WorkingDays(15))
        );
        assert_eq!(
            d(ClockKind::Feedback, Severity::Urgent),
            Some(Minutes(1440))
        );
    }

    #[test]
    fn the_most_specific_rule_wins_and_a_rule_replaces_the_default_of_its_key() {
        let p = Policy::with_rules([
            PolicyRule {
                clock: ClockKind::Resolve,
                category_code: Some("safety.fire_hazard".into()),
                tier: None,
                severity: None,
                duration: SlaDuration::WorkingDays(3),
            },
            PolicyRule {
                clock: ClockKind::Resolve,
                category_code: None,
                tier: Some(Tier::District),
                severity: Some(Severity::Complex),
                duration: SlaDuration::WorkingDays(20),
            },
            PolicyRule {
                clock: ClockKind::Register,
                category_code: None,
                tier: None,
                severity: None,
                duration: SlaDuration::Minutes(30),
            },
        ]);
        let d = |cat, tier, sev| p.duration(ClockKind::Resolve, cat, tier, sev);
        // Category beats tier + severity.
        assert_eq!(
            d("safety.fire_hazard", Tier::District, Severity::Complex),
            Some(SlaDuration::WorkingDays(3))
        );
        assert_eq!(
            d("city.litter", Tier::District, Severity::Complex),
            Some(SlaDuration::WorkingDays(20))
        );
        assert_eq!(
            d("city.litter", Tier::Township, Severity::Complex),
            Some(SlaDuration::WorkingDays(15))
        );
        assert_eq!(
            p.duration(ClockKind::Register, "x", Tier::Grid, Severity::General),
            Some(SlaDuration::Minutes(30))
        );
        assert_eq!(
            p.rules()
                .iter()
                .filter(|r| r.clock == ClockKind::Register)
                .count(),
            1
        );
    }

    #[test]
    fn the_policy_reads_back_in_order_with_each_rules_origin() {
        let admin = |clock, category: Option<&str>, tier, severity, duration| PolicyRule {
            clock,
            category_code: category.map(str::to_owned),
            tier,
            severity,
            duration,
        };
        let p = Policy::with_rules([
            admin(
                ClockKind::Resolve,
                Some("safety.fire_hazard"),
                None,
                None,
                SlaDuration::WorkingDays(3),
            ),
            admin(
                ClockKind::Resolve,
                None,
                Some(Tier::District),
                None,
                SlaDuration::WorkingHours(40),
            ),
            // A default's key: the admin's rule takes the default's place.
            admin(
                ClockKind::Dispatch,
                None,
                None,
                Some(Severity::Urgent),
                SlaDuration::Minutes(30),
            ),
        ]);
        let any = "*";
        let listed: Vec<String> = p
            .rules_in_order()
            .into_iter()
            .map(|(r, origin)| {
                format!(
                    "{} {} {} {} {} {origin:?}",
                    r.clock,
                    r.category_code.as_deref().unwrap_or(any),
                    r.tier.map_or(any, Tier::as_str),
                    r.severity.map_or(any, Severity::as_str),
                    r.duration,
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                "register * * * 1h Default",
                "dispatch * * * 24h Default",
                "dispatch * * urgent 30m Admin",
                "on_site * * urgent 15m Default",
                "whistle_check_in * * * 30m Default",
                "resolve * * * 7wd Default",
                "resolve * * complex 15wd Default",
                "resolve * district * 40wh Admin",
                "resolve safety.fire_hazard * * 3wd Admin",
                "feedback * * * 24h Default",
            ]
        );
    }

    #[test]
    fn levels_follow_each_other_and_end() {
        assert_eq!(Level::after_stage(0), Some(Level::Warning));
        assert_eq!(Level::after_stage(3), Some(Level::SecondEscalation));
        assert_eq!(Level::after_stage(4), None);
        for k in ClockKind::ALL {
            assert_eq!(k.as_str().parse::<ClockKind>(), Ok(k));
        }
        assert!("soon".parse::<ClockKind>().is_err());
    }
}

#[cfg(test)]
mod decisions {
    use super::*;
    use crate::domain::{
        case::CaseStatus,
        fixtures::{self, t0},
    };

    fn policy_and_calendar() -> (Policy, Calendar) {
        (Policy::default(), Calendar::builtin())
    }

    #[test]
    fn clocks_start_once_stop_when_told_and_count_their_attempts() {
        let (policy, calendar) = policy_and_calendar();
        let case = fixtures::case(CaseStatus::Dispatched);
        let at = t0();
        let start = |kind| ClockOp::Start {
            kind,
            unit_code: String::new(),
            at,
        };
        let first = clock_changes(
            &case,
            &[],
            &[start(ClockKind::Dispatch), start(ClockKind::Dispatch)],
            &policy,
            &calendar,
        );
        assert_eq!(
            first.started.len(),
            1,
            "a running clock is not started twice"
        );
        let dispatch = Clock {
            id: 11,
            ..first.started[0].clone()
        };
        assert_eq!(dispatch.schedule.due_at, at + chrono::Duration::hours(24));
        assert_eq!(dispatch.next_at, Some(dispatch.schedule.warn_at));
        // Stopping it, then starting it again in the same cycle: a second attempt.
        let stop = ClockOp::Stop {
            kind: Some(ClockKind::Dispatch),
            unit_code: None,
            at,
        };
        let again = clock_changes(
            &case,
            std::slice::from_ref(&dispatch),
            &[stop, start(ClockKind::Dispatch)],
            &policy,
            &calendar,
        );
        assert_eq!(again.stopped, [(11, at)]);
        assert_eq!(again.started.len(), 1);
        assert_eq!(again.started[0].attempt, 1);
        // No rule, no clock: on-site runs for urgent cases only.
        let none = clock_changes(&case, &[], &[start(ClockKind::OnSite)], &policy, &calendar);
        assert!(none.started.is_empty());
    }

    #[test]
    fn levels_fire_in_order_each_once_and_several_at_a_time_after_downtime() {
        let (policy, calendar) = policy_and_calendar();
        let case = fixtures::case(CaseStatus::Registered);
        let clock = clock_changes(
            &case,
            &[],
            &[ClockOp::Start {
                kind: ClockKind::Dispatch,
                unit_code: String::new(),
                at: t0(),
            }],
            &policy,
            &calendar,
        )
        .started
        .remove(0);
        let s = clock.schedule;
        assert_eq!(
            due_levels(&clock, s.warn_at - chrono::Duration::seconds(1)),
            None
        );
        let warned = due_levels(&clock, s.warn_at).expect("the warning has come");
        assert_eq!(warned.levels, [Level::Warning]);
        assert_eq!((warned.from_stage, warned.stage), (0, 1));
        assert_eq!(warned.next_at, Some(s.due_at));
        assert_eq!(warned.warned_at, Some(s.warn_at));
        // After the warning fired, only later levels come.
        let after = Clock {
            stage: warned.stage,
            warned_at: warned.warned_at,
            next_at: warned.next_at,
            ..clock.clone()
        };
        assert_eq!(due_levels(&after, s.warn_at), None);
        // Down across every deadline: every level at once, in order.
        let late = s.red_card_at + chrono::Duration::hours(1);
        let all = due_levels(&clock, late).expect("all have come");
        assert_eq!(all.levels, Level::ALL);
        assert_eq!(all.stage, 4);
        assert_eq!(all.next_at, None);
        assert_eq!(all.escalations, 2);
        assert_eq!(all.escalated_at, Some(late));
    }

    #[test]
    fn an_extension_moves_the_levels_and_the_ceiling_counts_from_the_first_due_time() {
        use chrono::TimeZone;
        let (policy, calendar) = policy_and_calendar();
        let case = fixtures::case(CaseStatus::Accepted);
        let sh = |d: u32| {
            chrono::FixedOffset::east_opt(8 * 3600)
                .unwrap()
                .with_ymd_and_hms(2025, 11, d, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let start = ClockOp::Start {
            kind: ClockKind::Resolve,
            unit_code: String::new(),
            // Monday 3 November 2025, noon: due at 24:00 on Wednesday 12 November (7wd).
            at: sh(3) + chrono::Duration::hours(12),
        };
        let clock = Clock {
            id: 7,
            ..clock_changes(&case, &[], &[start], &policy, &calendar).started[0].clone()
        };
        assert_eq!(clock.schedule.due_at, sh(13));
        let rules = ExtensionRules {
            per_cycle: 2,
            ceiling: SlaDuration::WorkingDays(5),
        };
        // Three working days past 24:00 on the 12th: the 13th, 14th and 17th.
        let room = ExtensionRoom::of(
            &case,
            std::slice::from_ref(&clock),
            SlaDuration::WorkingDays(3),
            rules,
            &calendar,
        );
        let due = room.check(&case.code, true, sh(4)).unwrap();
        assert_eq!(due.extended_due_at, sh(18));
        assert_eq!(due.latest_due_at, sh(20));
        let extend = ClockOp::Extend {
            kind: ClockKind::Resolve,
            due_at: due.extended_due_at,
        };
        let changes = clock_changes(
            &case,
            std::slice::from_ref(&clock),
            &[extend],
            &policy,
            &calendar,
        );
        let extended = changes.updated[0].clone();
        let moved = sh(18) - sh(13);
        assert_eq!(extended.schedule, clock.schedule.shifted(moved));
        assert_eq!(extended.next_at, Some(clock.schedule.warn_at + moved));
        assert_eq!(
            (extended.extensions, extended.base_due_at),
            (1, Some(sh(13)))
        );
        // The ceiling is measured from the first due time: 2wd more reach it, 3wd pass it.
        let two = ExtensionRoom::of(
            &case,
            std::slice::from_ref(&extended),
            SlaDuration::WorkingDays(2),
            rules,
            &calendar,
        );
        assert_eq!(two.granted, 1);
        assert_eq!(
            two.check(&case.code, true, sh(4)).unwrap().extended_due_at,
            sh(20)
        );
        let three = ExtensionRoom::of(
            &case,
            std::slice::from_ref(&extended),
            SlaDuration::WorkingDays(3),
            rules,
            &calendar,
        );
        let refused = three.check(&case.code, true, sh(4)).unwrap_err();
        assert!(
            refused.to_string().contains("extension_ceiling"),
            "{refused}"
        );
        // Asked after the due time, or past the per-cycle count: refused, naming the rule.
        let late = room.check(&case.code, true, sh(13)).unwrap_err();
        assert!(late.to_string().contains("before the due time"), "{late}");
        assert!(
            room.check(&case.code, false, sh(13)).is_ok(),
            "decided late is fine"
        );
        let once = ExtensionRules {
            per_cycle: 1,
            ..rules
        };
        let again = ExtensionRoom::of(
            &case,
            &[extended],
            SlaDuration::WorkingDays(1),
            once,
            &calendar,
        );
        let refused = again.check(&case.code, true, sh(4)).unwrap_err();
        assert!(
            refused.to_string().contains("extensions_per_cycle"),
            "{refused}"
        );
    }

    #[test]
    fn a_paused_clock_fires_nothing_and_resumes_with_its_times_moved_by_the_wait() {
        let (policy, calendar) = policy_and_calendar();
        let case = fixtures::case(CaseStatus::Accepted);
        let at = t0();
        let start = ClockOp::Start {
            kind: ClockKind::Resolve,
            unit_code: String::new(),
            at,
        };
        let resolve = Clock {
            id: 7,
            ..clock_changes(&case, &[], &[start], &policy, &calendar).started[0].clone()
        };
        let paused_at = at + chrono::Duration::hours(1);
        let until = at + chrono::Duration::days(10);
        let pause = ClockOp::Pause {
            kind: ClockKind::Resolve,
            at: paused_at,
            until,
        };
        let changes = clock_changes(
            &case,
            std::slice::from_ref(&resolve),
            &[pause],
            &policy,
            &calendar,
        );
        let paused = changes.updated[0].clone();
        assert_eq!(paused.paused_at, Some(paused_at));
        assert_eq!(
            paused.next_at,
            Some(until),
            "next_at is the end of the wait"
        );
        assert_eq!(paused.schedule, resolve.schedule);
        // Long past every level: nothing fires while paused, until the wait's limit.
        let late = resolve.schedule.red_card_at + chrono::Duration::hours(1);
        assert_eq!(due_levels(&paused, late), None);
        assert_eq!(
            pause_ended(&paused, until - chrono::Duration::seconds(1)),
            None
        );
        let ended = pause_ended(&paused, until + chrono::Duration::hours(3)).unwrap();
        assert_eq!(ended.resumed_at, until);
        let span = until - paused_at;
        assert_eq!(ended.resumed.schedule, resolve.schedule.shifted(span));
        assert_eq!(ended.resumed.paused_at, None);
        assert_eq!(ended.resumed.next_at, Some(resolve.schedule.warn_at + span));
        // A person's resume moves it by the wait so far.
        let back = paused_at + chrono::Duration::hours(30);
        let resume = ClockOp::Resume {
            kind: ClockKind::Resolve,
            at: back,
        };
        let resumed = clock_changes(
            &case,
            std::slice::from_ref(&paused),
            &[resume],
            &policy,
            &calendar,
        )
        .updated[0]
            .clone();
        assert_eq!(
            resumed.schedule.due_at,
            resolve.schedule.due_at + chrono::Duration::hours(30)
        );
        // Stopped while paused: resumed at the stop first, so the wait counts against no one.
        let stop = ClockOp::Stop {
            kind: Some(ClockKind::Resolve),
            unit_code: None,
            at: back,
        };
        let stopped = clock_changes(
            &case,
            std::slice::from_ref(&paused),
            &[stop],
            &policy,
            &calendar,
        );
        assert_eq!(stopped.stopped, [(7, back)]);
        assert_eq!(stopped.updated[0].schedule, resumed.schedule);
        assert_eq!(stopped.updated[0].next_at, None);
    }
}
