//! Cases (诉求 / 事件): their states and sources, routing (DESIGN.md "Routing"), case codes, and
//! the hash chain of their events.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    Role,
    directory::{Category, Directory, Region, Severity, Tier, Unit, center_code},
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
    pub coord_system: &'static str,
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
}

/// An evaluation by the reporter, or by a gateway on the reporter's behalf.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub satisfaction: super::workflow::Satisfaction,
    pub comment: String,
    pub by_sub: String,
    pub at: DateTime<Utc>,
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

/// Where routing sends a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The lead unit (主办).
    pub unit: Unit,
    pub tier: Tier,
    /// The region whose center holds and dispatches the case.
    pub region_code: String,
}

/// DESIGN.md "Routing": from grid `grid_code`, for `category`.
pub fn route(directory: &Directory, grid_code: &str, category: &Category) -> Option<Routed> {
    if category.handling_tier == Tier::Grid {
        return Some(Routed {
            unit: directory.active_unit(&center_code(grid_code))?,
            tier: Tier::Grid,
            region_code: grid_code.to_owned(),
        });
    }
    let start = directory.ancestor_at(grid_code, category.handling_tier)?;
    let chain = directory.chain(&start.code);
    for region in chain.iter().rev() {
        if let Some(unit) = directory.unit_of_kind_at(&region.code, &category.unit_kind) {
            return Some(Routed {
                unit,
                tier: region.tier,
                region_code: region.code.clone(),
            });
        }
    }
    Some(Routed {
        unit: directory.unit(&center_code(&start.code))?,
        tier: category.handling_tier,
        region_code: start.code.clone(),
    })
}

/// A case that no grid holds waits in the triage queue of `region`'s center.
pub fn triage(directory: &Directory, region: &Region) -> Option<Routed> {
    Some(Routed {
        unit: directory.unit(&center_code(&region.code))?,
        tier: region.tier,
        region_code: region.code.clone(),
    })
}

/// 统一编码: `{district code}{yyyymmdd}{6-digit sequence}`.
pub fn case_code(district_code: &str, day: chrono::NaiveDate, sequence: i64) -> String {
    format!("{district_code}{}{sequence:06}", day.format("%Y%m%d"))
}

/// The severity of a case: the category's, raised (never lowered) by the reporter's urgency.
pub fn severity(category: &Category, urgency: Option<Severity>) -> Severity {
    urgency.map_or(category.severity, |u| u.max(category.severity))
}

/// What happened to a case, before it is chained and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub actor_sub: String,
    pub actor_role: String,
    pub at: DateTime<Utc>,
    pub from_status: Option<CaseStatus>,
    pub to_status: Option<CaseStatus>,
    pub reason: String,
    /// JSON object with event-specific details.
    pub details: String,
}

impl NewEvent {
    pub fn new(kind: &str, actor_sub: &str, actor_role: Role, at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            kind: kind.to_owned(),
            actor_sub: actor_sub.to_owned(),
            actor_role: actor_role.as_str().to_owned(),
            at,
            from_status: None,
            to_status: None,
            reason: String::new(),
            details: "{}".to_owned(),
        }
    }

    /// An event done by gridcase itself (the SLA scheduler), not by a member.
    pub fn system(kind: &str, at: DateTime<Utc>) -> NewEvent {
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

    pub fn details(mut self, details: &serde_json::Value) -> Self {
        self.details = details.to_string();
        self
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
        kind: &e.kind,
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

/// A new case within this distance and time of an open case of the same item is flagged as a
/// possible duplicate, for a dispatcher to merge; never merged automatically.
pub const DUPLICATE_RADIUS_M: f64 = 100.0;
pub const DUPLICATE_WINDOW_HOURS: i64 = 72;

/// The box (lon0, lat0, lon1, lat1) around a position that holds every point within
/// [`DUPLICATE_RADIUS_M`] of it.
pub fn duplicate_box(p: &Position) -> (f64, f64, f64, f64) {
    let (mx, my) = metres_per_degree(p.lat);
    let (dx, dy) = (
        DUPLICATE_RADIUS_M * 1.01 / mx,
        DUPLICATE_RADIUS_M * 1.01 / my,
    );
    (p.lon - dx, p.lat - dy, p.lon + dx, p.lat + dy)
}

fn metres_per_degree(lat: f64) -> (f64, f64) {
    let per_degree = 6_371_008.8 * std::f64::consts::PI / 180.0;
    (per_degree * lat.to_radians().cos().max(0.01), per_degree)
}

/// The nearest of `candidates` (id, lon, lat) within [`DUPLICATE_RADIUS_M`] of `p`.
pub fn nearest_duplicate<'a>(
    p: &Position,
    candidates: impl IntoIterator<Item = (&'a str, f64, f64)>,
) -> Option<String> {
    let (mx, my) = metres_per_degree(p.lat);
    candidates
        .into_iter()
        .filter_map(|(id, lon, lat)| {
            // The shorter way round, so neighbours across the antimeridian are near.
            let dlon = (lon - p.lon + 540.0).rem_euclid(360.0) - 180.0;
            let d = (dlon * mx).hypot((lat - p.lat) * my);
            (d <= DUPLICATE_RADIUS_M).then_some((d, id))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id.to_owned())
}

/// The side of a duplicate-search cell, in degrees (about 110 m north–south): a 100 m search
/// box touches at most 3 × 3 of them where a degree of longitude is longer than about 50 km
/// (everywhere south of 63° N or S, so all of China).
pub const GEO_CELL_DEG: f64 = 0.001;

/// Cells around the world (east–west) and from pole to pole.
const CELLS_X: i64 = 360_000;
const CELLS_Y: i64 = 180_000;

/// The most columns and rows of cells one duplicate search reads, whatever the position: near
/// the poles a 100 m box spans ever more columns of a thousandth of a degree (at the pole
/// itself, all of them), and a search must cost what any other search costs. Where the box is
/// wider than this, the search reads the columns nearest the position and may miss a duplicate
/// at the box's edge; the flag is a hint for a dispatcher, not a merge.
pub const MAX_SEARCH_COLUMNS: i64 = 5;
pub const MAX_SEARCH_ROWS: i64 = 3;

/// A cell's column: longitudes wrap at the antimeridian, so 180° and −180° share a column.
// Within range by construction (rem_euclid, clamp); a non-finite input saturates harmlessly.
#[allow(clippy::cast_possible_truncation)]
fn cell_x(lon: f64) -> i64 {
    (((lon + 180.0) / GEO_CELL_DEG).floor() as i64).rem_euclid(CELLS_X)
}

/// A cell's row: the poles' rows are the last ones, nothing lies beyond them.
#[allow(clippy::cast_possible_truncation)]
fn cell_y(lat: f64) -> i64 {
    (((lat + 90.0) / GEO_CELL_DEG).floor() as i64).clamp(0, CELLS_Y - 1)
}

/// The cell of a WGS-84 position, as one integer.
pub fn geo_cell(lon: f64, lat: f64) -> i64 {
    cell_y(lat) * 1_000_000 + cell_x(lon)
}

/// The cells a box (lon0, lat0, lon1, lat1) touches, at most [`MAX_SEARCH_COLUMNS`] ×
/// [`MAX_SEARCH_ROWS`] of them around its middle. A box may reach past the antimeridian (its
/// columns wrap) or past a pole (its rows stop there).
#[allow(clippy::cast_possible_truncation)]
pub fn geo_cells(lon0: f64, lat0: f64, lon1: f64, lat1: f64) -> Vec<i64> {
    // Unwrapped column numbers: a box across the antimeridian stays one run of columns.
    let column = |lon: f64| ((lon + 180.0) / GEO_CELL_DEG).floor() as i64;
    let (mut x0, mut x1) = (column(lon0), column(lon1));
    if x1 - x0 + 1 > MAX_SEARCH_COLUMNS || x1 < x0 {
        let middle = column((lon0 + lon1) / 2.0);
        (x0, x1) = (
            middle - MAX_SEARCH_COLUMNS / 2,
            middle + MAX_SEARCH_COLUMNS / 2,
        );
    }
    let (mut y0, mut y1) = (cell_y(lat0), cell_y(lat1));
    if y1 - y0 + 1 > MAX_SEARCH_ROWS || y1 < y0 {
        let middle = cell_y((lat0 + lat1) / 2.0);
        (y0, y1) = (
            (middle - MAX_SEARCH_ROWS / 2).max(0),
            (middle + MAX_SEARCH_ROWS / 2).min(CELLS_Y - 1),
        );
    }
    let mut out = Vec::with_capacity(((x1 - x0 + 1) * (y1 - y0 + 1)).unsigned_abs() as usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            out.push(y * 1_000_000 + x.rem_euclid(CELLS_X));
        }
    }
    out
}

/// The cells the duplicate search around `p` reads.
pub fn duplicate_cells(p: &Position) -> Vec<i64> {
    let (lon0, lat0, lon1, lat1) = duplicate_box(p);
    geo_cells(lon0, lat0, lon1, lat1)
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
    fn a_chain_links_each_event_to_the_one_before() {
        let at = now();
        let events = chain(
            "c1",
            GENESIS,
            10,
            vec![
                NewEvent::new("submitted", "gm-1", Role::GridMember, at),
                NewEvent::new("registered", "gm-1", Role::GridMember, at),
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

    #[test]
    fn a_box_touches_the_cells_of_its_corners_and_between() {
        let cells = geo_cells(119.0001, 35.0001, 119.0021, 35.0011);
        assert_eq!(cells.len(), 3 * 2);
        assert!(cells.contains(&geo_cell(119.0001, 35.0001)));
        assert!(cells.contains(&geo_cell(119.0021, 35.0011)));
        assert!(cells.contains(&geo_cell(119.0011, 35.0005)));
        assert!(!cells.contains(&geo_cell(119.0031, 35.0005)));
    }

    fn at(lat: f64, lon: f64) -> Position {
        Position {
            reported_lat: lat,
            reported_lon: lon,
            coord_system: "wgs84",
            accuracy_m: 0.0,
            lat,
            lon,
        }
    }

    #[test]
    fn a_search_reads_a_bounded_number_of_cells_wherever_it_is() {
        for (lat, lon) in [
            (-90.0, 0.0),
            (-89.9999, 0.0),
            (90.0, 180.0),
            (89.99, -179.9995),
            (0.0, 180.0),
            (0.0, -180.0),
            (35.42, 119.46),
            (53.5, 122.3),
            (-45.0, 179.9999),
        ] {
            let p = at(lat, lon);
            let cells = duplicate_cells(&p);
            assert!(
                !cells.is_empty() && cells.len() <= (MAX_SEARCH_COLUMNS * MAX_SEARCH_ROWS) as usize,
                "({lat}, {lon}): {} cells",
                cells.len()
            );
            assert!(
                cells.contains(&geo_cell(lon, lat)),
                "({lat}, {lon}) misses its own cell"
            );
            for cell in &cells {
                let (x, y) = (cell % 1_000_000, cell / 1_000_000);
                assert!(
                    (0..CELLS_X).contains(&x) && (0..CELLS_Y).contains(&y),
                    "{cell}"
                );
            }
        }
    }

    #[test]
    fn a_search_across_the_antimeridian_reads_both_sides() {
        let cells = duplicate_cells(&at(0.0, 179.99995));
        assert!(cells.contains(&geo_cell(-179.9995, 0.0)), "{cells:?}");
        assert!(cells.contains(&geo_cell(179.9995, 0.0)), "{cells:?}");
        assert_eq!(geo_cell(180.0, 0.0), geo_cell(-180.0, 0.0));
    }

    #[test]
    fn a_search_in_china_reads_every_cell_of_its_box() {
        // At 53.5° N, China's northern tip, a 100 m box is still inside 3 × 3 cells.
        let p = at(53.5004, 122.3004);
        let (lon0, lat0, lon1, lat1) = duplicate_box(&p);
        let cells = duplicate_cells(&p);
        for (lon, lat) in [(lon0, lat0), (lon1, lat0), (lon0, lat1), (lon1, lat1)] {
            assert!(cells.contains(&geo_cell(lon, lat)), "({lat}, {lon})");
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
