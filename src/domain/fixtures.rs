//! A small directory and cases for the domain's unit tests: one city, district, township and
//! community, two grids; a district police unit and a township justice office; a member of each
//! person role; three categories.

use chrono::{DateTime, TimeZone, Utc};

use super::{
    Caller, Role,
    case::{Case, CaseStatus, Position, Source},
    directory::{Category, Directory, DirectoryParts, Member, Region, Severity, Tier, Unit},
};
use crate::geo::{CoordSystem, Shape};

pub const CITY: &str = "371100";
pub const DISTRICT: &str = "371102";
pub const TOWNSHIP: &str = "371102001";
pub const COMMUNITY: &str = "371102001001";
pub const GRID1: &str = "371102001001001";
pub const GRID2: &str = "371102001001002";
pub const POLICE: &str = "371102.police";
pub const JUSTICE: &str = "371102001.justice";

pub const REPORTER: &str = "gm-1";
pub const OTHER_GRID_MEMBER: &str = "gm-2";
pub const POLICE_STAFF: &str = "staff-police";
pub const JUSTICE_STAFF: &str = "staff-justice";
pub const DISPATCHER: &str = "disp-371102";
pub const SUPERVISOR: &str = "sup-371100";
pub const GATEWAY: &str = "gateway-12345";

fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Shape {
    Shape::new(geo::MultiPolygon(vec![geo::Polygon::new(
        geo::LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
        vec![],
    )]))
    .expect("a square is a valid shape")
}

fn region(code: &str, tier: Tier, parent: Option<&str>, shape: Shape) -> (Region, Shape) {
    (
        Region {
            code: code.into(),
            name: code.into(),
            tier,
            parent_code: parent.map(Into::into),
            retired: false,
        },
        shape,
    )
}

fn member(sub: &str, role: Role) -> Member {
    Member {
        sub: sub.into(),
        name: sub.into(),
        role,
        phone: "13800000000".into(),
        grid_codes: Vec::new(),
        unit_code: None,
        region_code: None,
        retired: false,
    }
}

pub fn directory() -> Directory {
    Directory::build(directory_parts())
}

/// The parts [`directory`] is built from, for a test that changes one.
pub fn directory_parts() -> DirectoryParts {
    let all = || square(119.0, 35.0, 119.2, 35.2);
    let unit = |code: &str, kind: &str, region: &str| Unit {
        code: code.into(),
        name: code.into(),
        kind: kind.into(),
        region_code: region.into(),
        retired: false,
    };
    let category = |code: &str, kind: &str, tier: Tier, severity: Severity| Category {
        code: code.into(),
        name: code.into(),
        class_code: code.split('.').next().unwrap_or(code).into(),
        class_name: "class".into(),
        unit_kind: kind.into(),
        handling_tier: tier,
        severity,
    };
    DirectoryParts {
        version: 1,
        regions: vec![
            region(CITY, Tier::City, None, all()),
            region(DISTRICT, Tier::District, Some(CITY), all()),
            region(TOWNSHIP, Tier::Township, Some(DISTRICT), all()),
            region(COMMUNITY, Tier::Community, Some(TOWNSHIP), all()),
            region(
                GRID1,
                Tier::Grid,
                Some(COMMUNITY),
                square(119.0, 35.0, 119.1, 35.2),
            ),
            region(
                GRID2,
                Tier::Grid,
                Some(COMMUNITY),
                square(119.1, 35.0, 119.2, 35.2),
            ),
        ],
        units: vec![
            unit(POLICE, "police", DISTRICT),
            unit(JUSTICE, "justice", TOWNSHIP),
        ],
        members: vec![
            Member {
                grid_codes: vec![GRID1.into()],
                ..member(REPORTER, Role::GridMember)
            },
            Member {
                grid_codes: vec![GRID2.into()],
                ..member(OTHER_GRID_MEMBER, Role::GridMember)
            },
            Member {
                unit_code: Some(POLICE.into()),
                ..member(POLICE_STAFF, Role::UnitStaff)
            },
            Member {
                unit_code: Some(JUSTICE.into()),
                ..member(JUSTICE_STAFF, Role::UnitStaff)
            },
            Member {
                region_code: Some(DISTRICT.into()),
                ..member(DISPATCHER, Role::Dispatcher)
            },
            Member {
                region_code: Some(CITY.into()),
                ..member(SUPERVISOR, Role::Supervisor)
            },
        ],
        categories: vec![
            category(
                "dispute.neighbor",
                "justice",
                Tier::Community,
                Severity::General,
            ),
            category("city.litter", "urban_mgmt", Tier::Grid, Severity::General),
        ],
    }
}

pub fn caller(sub: &str, role: Role) -> Caller {
    Caller {
        sub: sub.into(),
        role,
    }
}

/// Monday 22 September 2025, 10:00 in Shanghai.
pub fn t0() -> DateTime<Utc> {
    super::calendar::SHANGHAI
        .with_ymd_and_hms(2025, 9, 22, 10, 0, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// A dispute in grid 1, reported by [`REPORTER`], led by the township's justice office and held
/// by the township's center, in `status`.
pub fn case(status: CaseStatus) -> Case {
    let at = t0();
    Case {
        id: "case-1".into(),
        code: "37110220250922000001".into(),
        status,
        source: Source::Handset,
        category_code: "dispute.neighbor".into(),
        severity: Severity::General,
        description: "邻里纠纷".into(),
        chain: [
            Some(CITY.into()),
            Some(DISTRICT.into()),
            Some(TOWNSHIP.into()),
            Some(COMMUNITY.into()),
            Some(GRID1.into()),
        ],
        region_code: TOWNSHIP.into(),
        tier: Tier::Township,
        unit_code: JUSTICE.into(),
        position: Some(Position {
            reported_lat: 35.1,
            reported_lon: 119.05,
            coord_system: CoordSystem::Wgs84,
            accuracy_m: 5.0,
            lat: 35.1,
            lon: 119.05,
        }),
        snapped: false,
        snap_distance_m: 0.0,
        address: None,
        reporter_sub: REPORTER.into(),
        reporter_phone: Some("13800000000".into()),
        reporter_name: None,
        captured_at: None,
        received_at: at,
        updated_at: at,
        version: 3,
        cycle: 1,
        reopen_count: 0,
        escalation_level: 0,
        red_card: false,
        merged_into: None,
        possible_duplicate_of: None,
        resolution_text: None,
        external_source: None,
        external_id: None,
        client_report_id: Some("00000000-0000-4000-8000-000000000001".into()),
        request_hash: "h".into(),
        attachment_ids: Vec::new(),
        last_event_hash: super::event::GENESIS.into(),
        assisting: Vec::new(),
        resolved_at: None,
        evaluation: None,
        awaiting_since: None,
        dispatched_at: None,
        request: None,
    }
}
