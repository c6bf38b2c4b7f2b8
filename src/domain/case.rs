//! Cases (诉求 / 事件): their states and sources, the case as stored, case codes and severity.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};

use super::directory::{Category, Severity, Tier};
use crate::geo::CoordSystem;

pub use super::{
    duplicates::{
        DUPLICATE_RADIUS_M, DUPLICATE_WINDOW_HOURS, duplicate_box, duplicate_cells, geo_cell,
        geo_cells, nearest_duplicate,
    },
    event::{Event, GENESIS, NewEvent, SYSTEM_ROLE, SYSTEM_SUB, chain, event_hash},
    routing::{Routed, route, triage},
};

/// The states of DESIGN.md "Case lifecycle".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    Submitted,
    Registered,
    Dispatched,
    Accepted,
    InProgress,
    Resolved,
    Closed,
    Returned,
    Merged,
    Cancelled,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 10] = [
        CaseStatus::Submitted,
        CaseStatus::Registered,
        CaseStatus::Dispatched,
        CaseStatus::Accepted,
        CaseStatus::InProgress,
        CaseStatus::Resolved,
        CaseStatus::Closed,
        CaseStatus::Returned,
        CaseStatus::Merged,
        CaseStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Submitted => "submitted",
            CaseStatus::Registered => "registered",
            CaseStatus::Dispatched => "dispatched",
            CaseStatus::Accepted => "accepted",
            CaseStatus::InProgress => "in_progress",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Closed => "closed",
            CaseStatus::Returned => "returned",
            CaseStatus::Merged => "merged",
            CaseStatus::Cancelled => "cancelled",
        }
    }

    /// Closed, merged and cancelled cases take no more work.
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            CaseStatus::Closed | CaseStatus::Merged | CaseStatus::Cancelled
        )
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown case status {s:?}"))
    }
}

/// Where a case came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Handset,
    Hotline12345,
    Wechat,
    Sms,
    WalkIn,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Handset,
        Source::Hotline12345,
        Source::Wechat,
        Source::Sms,
        Source::WalkIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Handset => "handset",
            Source::Hotline12345 => "hotline_12345",
            Source::Wechat => "wechat",
            Source::Sms => "sms",
            Source::WalkIn => "walk_in",
        }
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?}"))
    }
}

/// A position as sent, with the WGS-84 position used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub reported_lat: f64,
    pub reported_lon: f64,
    pub coord_system: CoordSystem,
    pub accuracy_m: f64,
    pub lat: f64,
    pub lon: f64,
}

/// One case as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub code: String,
    pub status: CaseStatus,
    pub source: Source,
    pub category_code: String,
    pub severity: Severity,
    pub description: String,
    /// City, district, township, community and grid codes of the case's place, as far as known.
    pub chain: [Option<String>; 5],
    pub region_code: String,
    pub tier: Tier,
    pub unit_code: String,
    pub position: Option<Position>,
    pub snapped: bool,
    pub snap_distance_m: f64,
    pub address: Option<String>,
    pub reporter_sub: String,
    pub reporter_phone: Option<String>,
    pub reporter_name: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub cycle: i32,
    pub reopen_count: i32,
    pub escalation_level: i32,
    pub red_card: bool,
    pub merged_into: Option<String>,
    pub possible_duplicate_of: Option<String>,
    pub resolution_text: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub client_report_id: Option<String>,
    pub request_hash: String,
    pub attachment_ids: Vec<String>,
    pub last_event_hash: String,
    /// Units summoned by a whistle (吹哨报到), each with its check-in.
    pub assisting: Vec<Assist>,
    /// When the case was resolved in its current cycle.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The last evaluation (评价) of the case.
    pub evaluation: Option<Evaluation>,
    /// Since when the case waits on the reporter: the lead unit asked a question
    /// (`AwaitReporter`) and its resolve clock is paused until the reporter's supplement, the
    /// unit's `ResumeCase` or the end of the longest wait (`max_reporter_wait`). `None`: not
    /// waiting. Only an accepted or in-progress case waits; any change that takes it out of
    /// those states ends the wait.
    pub awaiting_since: Option<DateTime<Utc>>,
    /// When the case was last sent to its lead unit (dispatched, escalated by hand to a center,
    /// or reopened): a unit returns it as not theirs within `return_window` of this on its own
    /// word, later only with the center's approval. `None` for a case never dispatched.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// What the lead unit asked of the holding center and the center has not yet decided (an
    /// extension, a late return); at most one at a time. A change that takes the case out of
    /// the lead unit's hands (resolved, returned, escalated, merged, cancelled) drops it.
    pub request: Option<Request>,
}

/// A request of the lead unit that the holding center decides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    #[serde(flatten)]
    pub kind: RequestKind,
    pub reason: String,
    /// Who asked, and for which unit.
    pub by_sub: String,
    pub unit_code: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestKind {
    /// 延期: more time for the resolve clock.
    Extension {
        duration: super::calendar::SlaDuration,
    },
    /// 退回 after the return window: the case is not the unit's.
    Return,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Extension { .. } => "extension",
            RequestKind::Return => "return",
        }
    }
}

/// An evaluation by the reporter, or recorded on the reporter's word after a callback (回访).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub satisfaction: super::workflow::Satisfaction,
    pub comment: String,
    /// Who recorded it: the reporter, or whoever called the reporter back.
    pub by_sub: String,
    pub at: DateTime<Utc>,
    /// Recorded after a callback (回访), on the reporter's word.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_callback: bool,
}

/// An assisting unit (协办) of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assist {
    pub unit_code: String,
    pub summoned_at: DateTime<Utc>,
    pub checked_in_at: Option<DateTime<Utc>>,
}

impl Case {
    pub fn grid_code(&self) -> Option<&str> {
        self.chain[4].as_deref()
    }

    /// The case's place at `tier`, if known.
    pub fn region_at(&self, tier: Tier) -> Option<&str> {
        let i = Tier::ALL.iter().position(|t| *t == tier)?;
        self.chain[i].as_deref()
    }
}

/// A case as a pin on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    pub id: String,
    pub code: String,
    pub status: CaseStatus,
    pub lat: f64,
    pub lon: f64,
    pub category_code: String,
    pub unit_code: String,
    pub severity: Severity,
    pub grid_code: Option<String>,
    pub received_at: DateTime<Utc>,
    pub sla: super::sla::SlaState,
}

/// 统一编码: `{district code}{yyyymmdd}{6-digit sequence}`.
pub fn case_code(district_code: &str, day: chrono::NaiveDate, sequence: i64) -> String {
    format!("{district_code}{}{sequence:06}", day.format("%Y%m%d"))
}

/// The severity of a case: the category's, raised (never lowered) by the reporter's urgency.
pub fn severity(category: &Category, urgency: Option<Severity>) -> Severity {
    urgency.map_or(category.severity, |u| u.max(category.severity))
}

/// Now, to the microsecond: what both databases store exactly, so hashes verify after a read.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_codes_have_district_day_and_six_digits() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(case_code("371102", day, 42), "37110220261123000042");
    }

    #[test]
    fn every_status_and_source_round_trips() {
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>(), Ok(s));
        }
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
        }
    }

    #[test]
    fn urgency_raises_severity_but_never_lowers_it() {
        let category = Category {
            code: "x".into(),
            name: "x".into(),
            class_code: "c".into(),
            class_name: "c".into(),
            unit_kind: "police".into(),
            handling_tier: Tier::Community,
            severity: Severity::Complex,
        };
        assert_eq!(severity(&category, None), Severity::Complex);
        assert_eq!(
            severity(&category, Some(Severity::Urgent)),
            Severity::Urgent
        );
        assert_eq!(
            severity(&category, Some(Severity::General)),
            Severity::Complex
        );
    }
}
