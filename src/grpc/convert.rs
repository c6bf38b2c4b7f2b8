//! Conversions between the contract's messages and the domain's types.

use tonic::Status;

use crate::{
    domain::{
        Role,
        directory::{Category, Member, Region, Severity, Tier, Unit},
    },
    geo::CoordSystem,
    proto::v1 as pb,
};

impl From<Tier> for pb::Tier {
    fn from(t: Tier) -> Self {
        match t {
            Tier::City => pb::Tier::City,
            Tier::District => pb::Tier::District,
            Tier::Township => pb::Tier::Township,
            Tier::Community => pb::Tier::Community,
            Tier::Grid => pb::Tier::Grid,
        }
    }
}

impl From<Severity> for pb::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::General => pb::Severity::General,
            Severity::Complex => pb::Severity::Complex,
            Severity::Urgent => pb::Severity::Urgent,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::GridMember => pb::Role::GridMember,
            Role::UnitStaff => pb::Role::UnitStaff,
            Role::Dispatcher => pb::Role::Dispatcher,
            Role::Supervisor => pb::Role::Supervisor,
            Role::Gateway => pb::Role::Gateway,
            Role::Admin => pb::Role::Admin,
        }
    }
}

impl From<&Region> for pb::Region {
    fn from(r: &Region) -> Self {
        pb::Region {
            code: r.code.clone(),
            name: r.name.clone(),
            tier: pb::Tier::from(r.tier).into(),
            parent_code: r.parent_code.clone().unwrap_or_default(),
            retired: r.retired,
        }
    }
}

impl From<&Unit> for pb::Unit {
    fn from(u: &Unit) -> Self {
        pb::Unit {
            code: u.code.clone(),
            name: u.name.clone(),
            kind: u.kind.clone(),
            region_code: u.region_code.clone(),
            retired: u.retired,
        }
    }
}

impl From<&Category> for pb::Category {
    fn from(c: &Category) -> Self {
        pb::Category {
            code: c.code.clone(),
            name: c.name.clone(),
            class_code: c.class_code.clone(),
            class_name: c.class_name.clone(),
            unit_kind: c.unit_kind.clone(),
            handling_tier: pb::Tier::from(c.handling_tier).into(),
            severity: pb::Severity::from(c.severity).into(),
        }
    }
}

/// 138****1234: the first three and last four digits kept (the rule lives in the domain, which
/// masks the phone an alert's event records).
pub use crate::domain::alerts::mask_phone;

impl From<&Member> for pb::Member {
    fn from(m: &Member) -> Self {
        pb::Member {
            sub: m.sub.clone(),
            name: m.name.clone(),
            role: pb::Role::from(m.role).into(),
            phone: m.phone.clone(),
            grid_codes: m.grid_codes.clone(),
            unit_code: m.unit_code.clone().unwrap_or_default(),
            region_code: m.region_code.clone().unwrap_or_default(),
            retired: m.retired,
        }
    }
}

/// The request's coordinate system; an unknown enum value is INVALID_ARGUMENT.
pub fn coord_system(value: i32) -> Result<CoordSystem, Status> {
    match pb::CoordSystem::try_from(value) {
        Ok(pb::CoordSystem::Unspecified | pb::CoordSystem::Wgs84) => Ok(CoordSystem::Wgs84),
        Ok(pb::CoordSystem::Gcj02) => Ok(CoordSystem::Gcj02),
        Ok(pb::CoordSystem::Bd09) => Ok(CoordSystem::Bd09),
        Err(_) => Err(Status::invalid_argument(format!(
            "coord_system: {value} is not a known coordinate system (WGS84, GCJ02, BD09)"
        ))),
    }
}

/// Page size: 0 means 50; more than 500 is clamped.
pub fn page_size(page: Option<&pb::PageRequest>) -> Result<usize, Status> {
    let size = page.map_or(0, |p| p.page_size);
    match size {
        0 => Ok(50),
        1..=500 => Ok(usize::try_from(size).unwrap_or(50)),
        n if n > 500 => Ok(500),
        n => Err(Status::invalid_argument(format!(
            "page.page_size: {n} is negative"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the center holding a case sees the reporter's phone in full.
    #[test]
    fn only_the_holding_center_sees_the_reporters_phone() {
        use crate::domain::{
            Caller,
            case::{Case, CaseStatus, Source},
            directory::{Directory, DirectoryParts, Member, Region, Tier},
        };
        use ::geo::polygon;
        let square = ::geo::MultiPolygon(vec![polygon![
            (x: 119.0, y: 35.0), (x: 119.1, y: 35.0), (x: 119.1, y: 35.1), (x: 119.0, y: 35.0)
        ]]);
        let region = |code: &str, tier, parent: Option<&str>| {
            (
                Region {
                    code: code.into(),
                    name: code.into(),
                    tier,
                    parent_code: parent.map(Into::into),
                    retired: false,
                },
                crate::geo::Shape::new(square.clone()).unwrap(),
            )
        };
        let member = |sub: &str, role, unit: Option<&str>, region: Option<&str>| Member {
            sub: sub.into(),
            name: sub.into(),
            role,
            phone: String::new(),
            grid_codes: vec![],
            unit_code: unit.map(Into::into),
            region_code: region.map(Into::into),
            retired: false,
        };
        let directory = Directory::build(DirectoryParts {
            version: 1,
            regions: vec![
                region("371100", Tier::City, None),
                region("371102", Tier::District, Some("371100")),
                region("371103", Tier::District, Some("371100")),
            ],
            units: vec![],
            members: vec![
                member("disp-371102", Role::Dispatcher, None, Some("371102")),
                member("disp-371103", Role::Dispatcher, None, Some("371103")),
                member("disp-371100", Role::Dispatcher, None, Some("371100")),
                member("staff-center", Role::UnitStaff, Some("371102.center"), None),
                member("staff-police", Role::UnitStaff, Some("371102.police"), None),
                member("sup-371102", Role::Supervisor, None, Some("371102")),
            ],
            categories: vec![],
        });
        let now = chrono::Utc::now();
        let case = Case {
            id: "c".into(),
            code: "x".into(),
            status: CaseStatus::Registered,
            source: Source::Hotline12345,
            category_code: "k".into(),
            severity: Severity::General,
            description: "d".into(),
            chain: Default::default(),
            region_code: "371102".into(),
            tier: Tier::District,
            unit_code: "371102.center".into(),
            position: None,
            snapped: false,
            snap_distance_m: 0.0,
            address: None,
            reporter_sub: "gateway".into(),
            reporter_phone: Some("13912345678".into()),
            reporter_name: None,
            captured_at: None,
            received_at: now,
            updated_at: now,
            version: 1,
            cycle: 1,
            reopen_count: 0,
            escalation_level: 0,
            red_card: false,
            merged_into: None,
            possible_duplicate_of: None,
            resolution_text: None,
            external_source: None,
            external_id: None,
            client_report_id: None,
            request_hash: String::new(),
            attachment_ids: vec![],
            last_event_hash: String::new(),
            assisting: Vec::new(),
            resolved_at: None,
            evaluation: None,
            awaiting_since: None,
            dispatched_at: None,
            request: None,
        };
        let phone_for = |sub: &str, role| {
            case_for(
                &case,
                &Caller {
                    sub: sub.into(),
                    role,
                },
                &directory,
            )
            .reporter_phone
        };
        assert_eq!(phone_for("disp-371102", Role::Dispatcher), "13912345678");
        assert_eq!(phone_for("staff-center", Role::UnitStaff), "13912345678");
        for (sub, role) in [
            ("disp-371103", Role::Dispatcher),
            ("disp-371100", Role::Dispatcher),
            ("staff-police", Role::UnitStaff),
            ("sup-371102", Role::Supervisor),
            ("gateway", Role::Gateway),
        ] {
            assert_eq!(phone_for(sub, role), "139****5678", "{sub}");
        }
    }

    #[test]
    fn phones_are_masked_in_the_middle() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("12345"), "*****");
    }
}

mod cases {
    use chrono::{DateTime, Utc};

    use super::mask_phone;
    use crate::{
        domain::{
            Caller, Role,
            case::{Case, CaseStatus, Event, Pin, RequestKind, Source},
            directory::{Directory, center_code},
            sla::{Clock, ClockKind, SlaState, local_tier},
            workflow::Satisfaction,
        },
        geo::CoordSystem,
        proto::v1 as pb,
    };

    pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        }
    }

    impl From<CaseStatus> for pb::CaseStatus {
        fn from(s: CaseStatus) -> Self {
            match s {
                CaseStatus::Submitted => pb::CaseStatus::Submitted,
                CaseStatus::Registered => pb::CaseStatus::Registered,
                CaseStatus::Dispatched => pb::CaseStatus::Dispatched,
                CaseStatus::Accepted => pb::CaseStatus::Accepted,
                CaseStatus::InProgress => pb::CaseStatus::InProgress,
                CaseStatus::Resolved => pb::CaseStatus::Resolved,
                CaseStatus::Closed => pb::CaseStatus::Closed,
                CaseStatus::Returned => pb::CaseStatus::Returned,
                CaseStatus::Merged => pb::CaseStatus::Merged,
                CaseStatus::Cancelled => pb::CaseStatus::Cancelled,
            }
        }
    }

    impl From<Source> for pb::Source {
        fn from(s: Source) -> Self {
            match s {
                Source::Handset => pb::Source::Handset,
                Source::Hotline12345 => pb::Source::Hotline12345,
                Source::Wechat => pb::Source::Wechat,
                Source::Sms => pb::Source::Sms,
                Source::WalkIn => pb::Source::WalkIn,
            }
        }
    }

    /// Whether `viewer` works for the center that holds the case: only they see the
    /// reporter's phone unmasked (DESIGN.md "Access").
    pub fn is_holding_center(viewer: &Caller, case: &Case, directory: &Directory) -> bool {
        let Some(member) = directory.member(&viewer.sub) else {
            return false;
        };
        match viewer.role {
            Role::Dispatcher => member.region_code.as_deref() == Some(case.region_code.as_str()),
            Role::UnitStaff => {
                member.unit_code.as_deref() == Some(center_code(&case.region_code).as_str())
            }
            _ => false,
        }
    }

    impl From<CoordSystem> for pb::CoordSystem {
        fn from(s: CoordSystem) -> Self {
            match s {
                CoordSystem::Wgs84 => pb::CoordSystem::Wgs84,
                CoordSystem::Gcj02 => pb::CoordSystem::Gcj02,
                CoordSystem::Bd09 => pb::CoordSystem::Bd09,
            }
        }
    }

    impl From<ClockKind> for pb::ClockKind {
        fn from(k: ClockKind) -> Self {
            match k {
                ClockKind::Register => pb::ClockKind::Register,
                ClockKind::Dispatch => pb::ClockKind::Dispatch,
                ClockKind::OnSite => pb::ClockKind::OnSite,
                ClockKind::WhistleCheckIn => pb::ClockKind::WhistleCheckIn,
                ClockKind::Resolve => pb::ClockKind::Resolve,
                ClockKind::Feedback => pb::ClockKind::Feedback,
            }
        }
    }

    /// One SLA clock for `GetCase`.
    pub fn clock_for(c: &Clock) -> pb::SlaClock {
        pb::SlaClock {
            kind: pb::ClockKind::from(c.kind).into(),
            cycle: c.cycle,
            unit_code: c.unit_code.clone(),
            started_at: Some(timestamp(c.started_at)),
            due_at: Some(timestamp(c.schedule.due_at)),
            warned_at: c.warned_at.map(timestamp),
            breached_at: c.breached_at.map(timestamp),
            escalated_at: c.escalated_at.map(timestamp),
            stopped_at: c.stopped_at.map(timestamp),
            // Set while the case waits on the reporter (`AwaitReporter`).
            paused_at: c.paused_at.map(timestamp),
            escalations: c.escalations,
            extensions: c.extensions,
            original_due_at: c.base_due_at.map(timestamp),
        }
    }

    impl From<SlaState> for pb::SlaState {
        fn from(s: SlaState) -> Self {
            match s {
                SlaState::OnTime => pb::SlaState::OnTime,
                SlaState::Warned => pb::SlaState::Warned,
                SlaState::Breached => pb::SlaState::Breached,
                SlaState::Escalated => pb::SlaState::Escalated,
                SlaState::RedCard => pb::SlaState::RedCard,
            }
        }
    }

    /// A case as a map pin.
    pub fn pin_for(p: &Pin) -> pb::CasePin {
        pb::CasePin {
            id: p.id.clone(),
            code: p.code.clone(),
            status: pb::CaseStatus::from(p.status).into(),
            lat: p.lat,
            lon: p.lon,
            sla_state: pb::SlaState::from(p.sla).into(),
            category_code: p.category_code.clone(),
            unit_code: p.unit_code.clone(),
            severity: pb::Severity::from(p.severity).into(),
            grid_code: p.grid_code.clone().unwrap_or_default(),
            received_at: Some(timestamp(p.received_at)),
        }
    }

    /// A reference from a case to another one, as `viewer` may see it: a gateway reaches only
    /// the cases it brought in, and learns nothing of any other, not even that it exists
    /// (DESIGN.md "Integrations").
    fn other_case(viewer: &Caller, id: Option<&String>) -> String {
        match id {
            Some(id) if viewer.role != Role::Gateway => id.clone(),
            _ => String::new(),
        }
    }

    /// The keys of event details that name another case.
    const OTHER_CASE_KEYS: [&str; 3] = ["into_case_id", "into_case_code", "possible_duplicate_of"];

    /// An event as `viewer` may see it: for a gateway, details that name another case lose
    /// those names (its hash is of the stored event, so a gateway cannot re-check such an
    /// event's hash; every other event is sent as stored).
    pub fn event_for_viewer(e: &Event, case_code: &str, viewer: &Caller) -> pb::CaseEvent {
        let mut out = event_for(e, case_code);
        if viewer.role == Role::Gateway
            && OTHER_CASE_KEYS.iter().any(|k| out.details_json.contains(k))
            && let Ok(serde_json::Value::Object(mut details)) =
                serde_json::from_str::<serde_json::Value>(&out.details_json)
        {
            for key in OTHER_CASE_KEYS {
                details.remove(key);
            }
            out.details_json = serde_json::Value::Object(details).to_string();
        }
        out
    }

    /// A case as `viewer` may see it.
    pub fn case_for(case: &Case, viewer: &Caller, directory: &Directory) -> pb::Case {
        let phone = case.reporter_phone.as_deref().map(|p| {
            if is_holding_center(viewer, case, directory) {
                p.to_owned()
            } else {
                mask_phone(p)
            }
        });
        pb::Case {
            id: case.id.clone(),
            code: case.code.clone(),
            status: pb::CaseStatus::from(case.status).into(),
            grid_code: case.grid_code().unwrap_or_default().to_owned(),
            tier: pb::Tier::from(case.tier).into(),
            unit_code: case.unit_code.clone(),
            category_code: case.category_code.clone(),
            region_code: case.region_code.clone(),
            description: case.description.clone(),
            severity: pb::Severity::from(case.severity).into(),
            source: pb::Source::from(case.source).into(),
            reported_location: case.position.map(|p| pb::Location {
                lat: p.reported_lat,
                lon: p.reported_lon,
                coord_system: pb::CoordSystem::from(p.coord_system).into(),
                accuracy_m: p.accuracy_m,
            }),
            location: case.position.map(|p| pb::Location {
                lat: p.lat,
                lon: p.lon,
                coord_system: pb::CoordSystem::Wgs84.into(),
                accuracy_m: p.accuracy_m,
            }),
            snapped: case.snapped,
            snap_distance_m: case.snap_distance_m,
            address: case.address.clone().unwrap_or_default(),
            reporter_sub: case.reporter_sub.clone(),
            reporter_phone: phone.unwrap_or_default(),
            assisting_units: case
                .assisting
                .iter()
                .map(|a| pb::AssistingUnit {
                    unit_code: a.unit_code.clone(),
                    summoned_at: Some(timestamp(a.summoned_at)),
                    checked_in_at: a.checked_in_at.map(timestamp),
                })
                .collect(),
            attachment_ids: case.attachment_ids.clone(),
            captured_at: case.captured_at.map(timestamp),
            received_at: Some(timestamp(case.received_at)),
            updated_at: Some(timestamp(case.updated_at)),
            version: case.version,
            cycle: case.cycle,
            reopen_count: case.reopen_count,
            escalation_level: case.escalation_level,
            red_card: case.red_card,
            merged_into_case_id: other_case(viewer, case.merged_into.as_ref()),
            possible_duplicate_of: other_case(viewer, case.possible_duplicate_of.as_ref()),
            resolution_text: case.resolution_text.clone().unwrap_or_default(),
            evaluation: case.evaluation.as_ref().map(|e| pb::Evaluation {
                satisfaction: match e.satisfaction {
                    Satisfaction::Satisfied => pb::Satisfaction::Satisfied,
                    Satisfaction::BasicallySatisfied => pb::Satisfaction::BasicallySatisfied,
                    Satisfaction::Dissatisfied => pb::Satisfaction::Dissatisfied,
                }
                .into(),
                comment: e.comment.clone(),
                by_sub: e.by_sub.clone(),
                at: Some(timestamp(e.at)),
                by_callback: e.by_callback,
            }),
            clocks: Vec::new(),
            external_id: case.external_id.clone().unwrap_or_default(),
            // Filled in where the case's clocks are read (GetCase, ListCases).
            sla_state: pb::SlaState::Unspecified.into(),
            awaiting_reporter_since: case.awaiting_since.map(timestamp),
            pending_request: case.request.as_ref().map(|r| pb::PendingRequest {
                kind: r.kind.as_str().to_owned(),
                duration: match r.kind {
                    RequestKind::Extension { duration } => duration.to_string(),
                    RequestKind::Return => String::new(),
                },
                reason: r.reason.clone(),
                by_sub: r.by_sub.clone(),
                unit_code: r.unit_code.clone(),
                at: Some(timestamp(r.at)),
            }),
            dispatched_at: case.dispatched_at.map(timestamp),
            resolved_locally: matches!(case.status, CaseStatus::Resolved | CaseStatus::Closed)
                && local_tier(case.tier)
                && case.escalation_level == 0,
        }
    }

    pub fn event_for(e: &Event, case_code: &str) -> pb::CaseEvent {
        let role = e
            .event
            .actor_role
            .parse::<Role>()
            .map_or(pb::Role::Unspecified, pb::Role::from);
        pb::CaseEvent {
            sequence: e.seq,
            case_id: e.case_id.clone(),
            case_code: case_code.to_owned(),
            kind: e.event.kind.as_str().to_owned(),
            actor_sub: e.event.actor_sub.clone(),
            actor_role: role.into(),
            at: Some(timestamp(e.event.at)),
            from_status: e
                .event
                .from_status
                .map_or(pb::CaseStatus::Unspecified, pb::CaseStatus::from)
                .into(),
            to_status: e
                .event
                .to_status
                .map_or(pb::CaseStatus::Unspecified, pb::CaseStatus::from)
                .into(),
            reason: e.event.reason.clone(),
            details_json: e.event.details.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
            notify_units: e
                .event
                .audience
                .as_ref()
                .map(|a| a.notify_units.clone())
                .unwrap_or_default(),
            notify_members: e
                .event
                .audience
                .as_ref()
                .map(|a| a.notify_members.clone())
                .unwrap_or_default(),
        }
    }
}

pub use cases::{
    case_for, clock_for, event_for, event_for_viewer, is_holding_center, pin_for, timestamp,
};

/// A protobuf timestamp to a time; out of range is INVALID_ARGUMENT naming the field.
pub fn time_of(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|n| chrono::DateTime::from_timestamp(t.seconds, n))
            .ok_or_else(|| Status::invalid_argument(format!("{field}: not a valid time")))
    })
    .transpose()
}

/// The urgency of a request: unspecified keeps the category's severity.
pub fn urgency(value: i32) -> Result<Option<Severity>, Status> {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::Unspecified) => Ok(None),
        Ok(pb::Severity::General) => Ok(Some(Severity::General)),
        Ok(pb::Severity::Complex) => Ok(Some(Severity::Complex)),
        Ok(pb::Severity::Urgent) => Ok(Some(Severity::Urgent)),
        Err(_) => Err(Status::invalid_argument(format!(
            "urgency: {value} is not a severity"
        ))),
    }
}

/// A request's location, converted and checked later by the service.
pub fn position(
    l: Option<&pb::Location>,
) -> Result<Option<crate::service::intake::PositionInput>, Status> {
    l.map(|l| {
        Ok(crate::service::intake::PositionInput {
            lat: l.lat,
            lon: l.lon,
            system: coord_system(l.coord_system)?,
            accuracy_m: l.accuracy_m,
        })
    })
    .transpose()
}
