//! What admins change without a release, through the real server: a new year's holiday
//! schedule and single-day overrides (picked up by every replica, and used by the clocks), SLA
//! policies per category, routing overrides, and both read back; the health entry that says a
//! year has no schedule; `gridcase calendar due` for operators.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{process::Command, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        CalendarDay, CalendarFormat, ClockKind, DayKind, GetCalendarRequest, GetCaseRequest,
        ImportCalendarRequest, ListRoutingOverridesRequest, ListRoutingOverridesResponse,
        ListSlaPoliciesRequest, ListSlaPoliciesResponse, SetCalendarDayRequest,
        SetRoutingOverrideRequest, SetSlaPolicyRequest, Severity, Tier,
        case_service_client::CaseServiceClient, directory_service_client::DirectoryServiceClient,
    },
    service::time::ManualTime,
};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn directory(app: &TestApp) -> DirectoryServiceClient<Channel> {
    DirectoryServiceClient::new(app.channel.clone())
}

async fn calendar_health(app: &TestApp) -> ServingStatus {
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "gridcase.calendar".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn has_data(app: &TestApp, year: i32) -> bool {
    let token = app.token(DISPATCHER, Role::Dispatcher);
    directory(app)
        .get_calendar(authed(GetCalendarRequest { year }, &token))
        .await
        .unwrap()
        .into_inner()
        .has_data
}

/// The due time of a new city.litter report's dispatch clock.
async fn dispatch_due(app: &TestApp) -> DateTime<Utc> {
    let case = submit(app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let case = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: case.id,
                include_events: false,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let clock = case
        .clocks
        .iter()
        .find(|c| c.kind == i32::from(ClockKind::Dispatch))
        .unwrap();
    let due = clock.due_at.unwrap();
    DateTime::from_timestamp(due.seconds, 0).unwrap()
}

/// A made-up schedule for 2027 in holiday-cn's format: Tuesday 2 March off, Saturday 6 March a
/// make-up working day.
fn schedule_2027() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "year": 2027,
        "papers": [],
        "days": [
            {"name": "测试节", "date": "2027-03-02", "isOffDay": true},
            {"name": "测试节", "date": "2027-03-06", "isOffDay": false}
        ]
    }))
    .unwrap()
}

async fn a_new_years_schedule_and_overrides_reach_every_replica_and_the_clocks(backend: Backend) {
    // Monday 1 March 2027, 10:00: no schedule for 2027 has been published yet.
    let time = Arc::new(ManualTime::new(shanghai(2027, 3, 1, 10, 0)));
    let db = TestDb::new(&backend).await;
    let a = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    let b = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    import(&a, &small_bundle()).await;
    wait_for_directory(&b).await;
    let admin = a.token("ops-admin", Role::Admin);
    // Working days here: 4 of them for a city.litter dispatch.
    directory(&a)
        .set_sla_policy(authed(
            SetSlaPolicyRequest {
                clock: ClockKind::Dispatch.into(),
                category_code: "city.litter".into(),
                tier: Tier::Unspecified.into(),
                severity: Severity::Unspecified.into(),
                duration: "4wd".into(),
            },
            &admin,
        ))
        .await
        .unwrap();

    assert!(!has_data(&a, 2027).await);
    assert_eq!(calendar_health(&a).await, ServingStatus::NotServing);
    // Monday–Friday fallback: Tue, Wed, Thu, Fri → due at 24:00 on Friday 5 March.
    assert_eq!(dispatch_due(&a).await, shanghai(2027, 3, 6, 0, 0));

    // Bad input changes nothing.
    for (request, field) in [
        (
            ImportCalendarRequest {
                format: CalendarFormat::Unspecified.into(),
                data: schedule_2027(),
            },
            "format",
        ),
        (
            ImportCalendarRequest {
                format: CalendarFormat::HolidayCnJson.into(),
                data: b"{\"year\": 2027, \"days\": [{\"date\": \"2027-02-30\"}]}".to_vec(),
            },
            "data",
        ),
        (
            ImportCalendarRequest {
                format: CalendarFormat::Ics.into(),
                data: b"not a calendar".to_vec(),
            },
            "data",
        ),
    ] {
        let status = directory(&a)
            .import_calendar(authed(request, &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    assert!(!has_data(&a, 2027).await);
    let dispatcher = a.token(DISPATCHER, Role::Dispatcher);
    let denied = directory(&a)
        .import_calendar(authed(
            ImportCalendarRequest {
                format: CalendarFormat::HolidayCnJson.into(),
                data: schedule_2027(),
            },
            &dispatcher,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // The schedule, loaded on one replica…
    let loaded = directory(&a)
        .import_calendar(authed(
            ImportCalendarRequest {
                format: CalendarFormat::HolidayCnJson.into(),
                data: schedule_2027(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loaded.years, [2027]);
    assert_eq!(loaded.days, 2);
    // …reaches the other within its poll.
    let mut seen = false;
    for _ in 0..50 {
        if has_data(&b, 2027).await && calendar_health(&b).await == ServingStatus::Serving {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "replica b did not pick up the 2027 schedule");
    // Tue 2 March is off, Sat 6 March is worked: Wed, Thu, Fri, Sat → due 24:00 Saturday.
    assert_eq!(dispatch_due(&b).await, shanghai(2027, 3, 7, 0, 0));

    // A single day overridden (a power cut closes the offices on Wednesday 3 March)…
    let set = directory(&a)
        .set_calendar_day(authed(
            SetCalendarDayRequest {
                day: Some(CalendarDay {
                    date: "2027-03-03".into(),
                    kind: DayKind::Off.into(),
                    name: "停电".into(),
                    r#override: false,
                }),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .day
        .unwrap();
    assert!(set.r#override);
    assert_eq!(set.kind, i32::from(DayKind::Off));
    // Thu, Fri, Sat, Mon → due 24:00 Monday 8 March.
    assert_eq!(dispatch_due(&a).await, shanghai(2027, 3, 9, 0, 0));
    // …and the override removed again.
    directory(&a)
        .set_calendar_day(authed(
            SetCalendarDayRequest {
                day: Some(CalendarDay {
                    date: "2027-03-03".into(),
                    kind: DayKind::Unspecified.into(),
                    name: String::new(),
                    r#override: false,
                }),
            },
            &admin,
        ))
        .await
        .unwrap();
    assert_eq!(dispatch_due(&a).await, shanghai(2027, 3, 7, 0, 0));
    let bad_day = directory(&a)
        .set_calendar_day(authed(
            SetCalendarDayRequest {
                day: Some(CalendarDay {
                    date: "2027-02-30".into(),
                    kind: DayKind::Off.into(),
                    name: String::new(),
                    r#override: false,
                }),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_day.code(), Code::InvalidArgument);

    // GetCalendar lists the days that differ from Monday–Friday.
    let token = a.token(SUPERVISOR, Role::Supervisor);
    let cal = directory(&a)
        .get_calendar(authed(GetCalendarRequest { year: 2025 }, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(cal.has_data, "2025 ships with the service");
    assert!(
        cal.days
            .iter()
            .any(|d| d.date == "2025-10-11" && d.kind == i32::from(DayKind::Working)),
        "the National Day make-up Saturday"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

async fn sla_policies_are_checked_and_most_specific_wins(backend: Backend) {
    let time = Arc::new(ManualTime::new(shanghai(2025, 9, 22, 10, 0)));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let admin = app.token("ops-admin", Role::Admin);
    let policy =
        |clock: ClockKind, category: &str, tier: Tier, duration: &str| SetSlaPolicyRequest {
            clock: clock.into(),
            category_code: category.into(),
            tier: tier.into(),
            severity: Severity::Unspecified.into(),
            duration: duration.into(),
        };
    for (request, field) in [
        (
            policy(ClockKind::Unspecified, "", Tier::Unspecified, "1h"),
            "clock",
        ),
        (
            policy(ClockKind::Dispatch, "no.such", Tier::Unspecified, "1h"),
            "category_code",
        ),
        (
            policy(ClockKind::Dispatch, "", Tier::Unspecified, "1.5h"),
            "duration",
        ),
        (
            policy(ClockKind::Dispatch, "", Tier::Unspecified, "0h"),
            "duration",
        ),
        (
            policy(ClockKind::Dispatch, "", Tier::Unspecified, "7d"),
            "duration",
        ),
    ] {
        let status = directory(&app)
            .set_sla_policy(authed(request, &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    // Defaults: 24 h.
    let t0 = shanghai(2025, 9, 22, 10, 0);
    assert_eq!(dispatch_due(&app).await, t0 + chrono::Duration::hours(24));
    // Any category at grid tier: 2 h; city.litter at any tier: 90 min (category wins).
    directory(&app)
        .set_sla_policy(authed(
            policy(ClockKind::Dispatch, "", Tier::Grid, "2h"),
            &admin,
        ))
        .await
        .unwrap();
    assert_eq!(dispatch_due(&app).await, t0 + chrono::Duration::hours(2));
    directory(&app)
        .set_sla_policy(authed(
            policy(ClockKind::Dispatch, "city.litter", Tier::Unspecified, "90m"),
            &admin,
        ))
        .await
        .unwrap();
    assert_eq!(dispatch_due(&app).await, t0 + chrono::Duration::minutes(90));
    app.stop().await.unwrap();
}

async fn routing_overrides_send_a_category_to_another_unit(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let admin = app.token("ops-admin", Role::Admin);
    let set = |unit: &str| SetRoutingOverrideRequest {
        region_code: "371102".into(),
        category_code: "city.litter".into(),
        unit_code: unit.into(),
    };
    let before = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    assert_eq!(before.unit_code, "371102001001001.center");
    let unknown = directory(&app)
        .set_routing_override(authed(set("no.such.unit"), &admin))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    directory(&app)
        .set_routing_override(authed(set("371102.police"), &admin))
        .await
        .unwrap();
    let routed = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    assert_eq!(routed.unit_code, "371102.police");
    assert_eq!(routed.tier, i32::from(Tier::District));
    // Other categories keep their routing.
    let other = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    assert_eq!(other.unit_code, "371102001.justice");
    // An empty unit removes the override.
    directory(&app)
        .set_routing_override(authed(set(""), &admin))
        .await
        .unwrap();
    let after = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    assert_eq!(after.unit_code, "371102001001001.center");
    app.stop().await.unwrap();
}

async fn sla_policies(app: &TestApp, token: &str) -> ListSlaPoliciesResponse {
    directory(app)
        .list_sla_policies(authed(ListSlaPoliciesRequest {}, token))
        .await
        .unwrap()
        .into_inner()
}

/// Each rule as `(clock, category, tier, severity, duration, builtin)`.
fn policy_rows(
    response: &ListSlaPoliciesResponse,
) -> Vec<(ClockKind, &str, Tier, Severity, &str, bool)> {
    response
        .policies
        .iter()
        .map(|p| {
            (
                p.clock(),
                p.category_code.as_str(),
                p.tier(),
                p.severity(),
                p.duration.as_str(),
                p.builtin,
            )
        })
        .collect()
}

async fn the_sla_policy_reads_back_its_defaults_and_the_latest_admin_rules(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let admin = app.token("ops-admin", Role::Admin);
    use ClockKind::*;
    let any = (Tier::Unspecified, Severity::Unspecified);

    // A fresh server: DESIGN.md's table, every rule built in.
    let fresh = sla_policies(&app, &admin).await;
    assert_eq!(
        policy_rows(&fresh),
        [
            (Register, "", any.0, any.1, "1h", true),
            (Dispatch, "", any.0, any.1, "24h", true),
            (Dispatch, "", any.0, Severity::Urgent, "1h", true),
            (OnSite, "", any.0, Severity::Urgent, "15m", true),
            (WhistleCheckIn, "", any.0, any.1, "30m", true),
            (Resolve, "", any.0, any.1, "7wd", true),
            (Resolve, "", any.0, Severity::Complex, "15wd", true),
            (Feedback, "", any.0, any.1, "24h", true),
        ]
    );

    let set = |clock: ClockKind, category: &str, tier: Tier, severity: Severity, duration: &str| {
        authed(
            SetSlaPolicyRequest {
                clock: clock.into(),
                category_code: category.into(),
                tier: tier.into(),
                severity: severity.into(),
                duration: duration.into(),
            },
            &admin,
        )
    };
    // A rule set, then changed: only the latest shows, on this replica as soon as the call
    // returns.
    directory(&app)
        .set_sla_policy(set(Dispatch, "city.litter", Tier::Grid, any.1, "4wd"))
        .await
        .unwrap();
    directory(&app)
        .set_sla_policy(set(Dispatch, "city.litter", Tier::Grid, any.1, "90m"))
        .await
        .unwrap();
    // A default's key: the admin's rule takes the default's place.
    directory(&app)
        .set_sla_policy(set(Resolve, "", any.0, Severity::Complex, "20wd"))
        .await
        .unwrap();
    // Working hours, for every category at district tier.
    directory(&app)
        .set_sla_policy(set(Resolve, "", Tier::District, any.1, "40wh"))
        .await
        .unwrap();
    let after = sla_policies(&app, &admin).await;
    assert_eq!(
        policy_rows(&after),
        [
            (Register, "", any.0, any.1, "1h", true),
            (Dispatch, "", any.0, any.1, "24h", true),
            (Dispatch, "", any.0, Severity::Urgent, "1h", true),
            (Dispatch, "city.litter", Tier::Grid, any.1, "90m", false),
            (OnSite, "", any.0, Severity::Urgent, "15m", true),
            (WhistleCheckIn, "", any.0, any.1, "30m", true),
            (Resolve, "", any.0, any.1, "7wd", true),
            (Resolve, "", any.0, Severity::Complex, "20wd", false),
            (Resolve, "", Tier::District, any.1, "40wh", false),
            (Feedback, "", any.0, any.1, "24h", true),
        ]
    );
    assert!(
        after.rules_version > fresh.rules_version,
        "{} after {}",
        after.rules_version,
        fresh.rules_version
    );

    // Dispatchers and supervisors read the policy their clocks run on; no one else does.
    for role in [Role::Dispatcher, Role::Supervisor] {
        let token = app.token(subject_for(role), role);
        assert_eq!(sla_policies(&app, &token).await, after, "{role:?}");
    }
    for role in [Role::GridMember, Role::UnitStaff, Role::Gateway] {
        let token = app.token(subject_for(role), role);
        let denied = directory(&app)
            .list_sla_policies(authed(ListSlaPoliciesRequest {}, &token))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{role:?}");
    }
    app.stop().await.unwrap();
}

async fn routing_overrides(
    app: &TestApp,
    token: &str,
    region_code: &str,
) -> Result<ListRoutingOverridesResponse, tonic::Status> {
    directory(app)
        .list_routing_overrides(authed(
            ListRoutingOverridesRequest {
                region_code: region_code.into(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Each override as `(category, region, unit)`.
fn override_rows(response: &ListRoutingOverridesResponse) -> Vec<(&str, &str, &str)> {
    response
        .overrides
        .iter()
        .map(|o| {
            (
                o.category_code.as_str(),
                o.region_code.as_str(),
                o.unit_code.as_str(),
            )
        })
        .collect()
}

async fn routing_overrides_read_back_within_each_readers_region(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let admin = app.token("ops-admin", Role::Admin);
    let fresh = routing_overrides(&app, &admin, "").await.unwrap();
    assert!(fresh.overrides.is_empty(), "{fresh:?}");

    let set = |region: &str, category: &str, unit: &str| {
        authed(
            SetRoutingOverrideRequest {
                region_code: region.into(),
                category_code: category.into(),
                unit_code: unit.into(),
            },
            &admin,
        )
    };
    for (region, category, unit) in [
        // Grid 01 only: outside the reach of grid 02's dispatcher and supervisor.
        ("371102001001001", "city.litter", "371102001.justice"),
        ("371102", "city.litter", "371102001.justice"),
        ("371100", "city.litter", "371102.police"),
        ("371102001", "dispute.neighbor", "371102.police"),
        // Set, then changed: only the latest shows.
        ("371102", "safety.fire_hazard", "371102001.justice"),
        ("371102", "safety.fire_hazard", "371102.police"),
        // Set, then removed.
        ("371102001001", "dispute.neighbor", "371102.police"),
        ("371102001001", "dispute.neighbor", ""),
    ] {
        directory(&app)
            .set_routing_override(set(region, category, unit))
            .await
            .unwrap();
    }
    // By category, then region tier: city first.
    let all = routing_overrides(&app, &admin, "").await.unwrap();
    assert_eq!(
        override_rows(&all),
        [
            ("city.litter", "371100", "371102.police"),
            ("city.litter", "371102", "371102001.justice"),
            ("city.litter", "371102001001001", "371102001.justice"),
            ("dispute.neighbor", "371102001", "371102.police"),
            ("safety.fire_hazard", "371102", "371102.police"),
        ]
    );
    assert!(all.rules_version > fresh.rules_version);

    // The district's dispatcher and the city's supervisor reach every override here.
    for (sub, role) in [
        (DISPATCHER, Role::Dispatcher),
        (SUPERVISOR, Role::Supervisor),
    ] {
        let token = app.token(sub, role);
        let seen = routing_overrides(&app, &token, "").await.unwrap();
        assert_eq!(seen, all, "{sub}");
    }
    // Grid 02's see those that route its cases (the ones above it), not grid 01's.
    let above_grid_02 = [
        ("city.litter", "371100", "371102.police"),
        ("city.litter", "371102", "371102001.justice"),
        ("dispute.neighbor", "371102001", "371102.police"),
        ("safety.fire_hazard", "371102", "371102.police"),
    ];
    for (sub, role) in [
        (GRID2_DISPATCHER, Role::Dispatcher),
        (GRID2_SUPERVISOR, Role::Supervisor),
    ] {
        let token = app.token(sub, role);
        let seen = routing_overrides(&app, &token, "").await.unwrap();
        assert_eq!(override_rows(&seen), above_grid_02, "{sub}");
        let outside = routing_overrides(&app, &token, "371102001001001")
            .await
            .unwrap_err();
        assert_eq!(outside.code(), Code::PermissionDenied, "{sub}");
    }
    // An admin narrows to a region the same way.
    let grid_02 = routing_overrides(&app, &admin, "371102001001002")
        .await
        .unwrap();
    assert_eq!(override_rows(&grid_02), above_grid_02);
    let unknown = routing_overrides(&app, &admin, "999999").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    for role in [Role::GridMember, Role::UnitStaff, Role::Gateway] {
        let token = app.token(subject_for(role), role);
        let denied = routing_overrides(&app, &token, "").await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{role:?}");
    }
    app.stop().await.unwrap();
}

on_both_databases!(
    a_new_years_schedule_and_overrides_reach_every_replica_and_the_clocks,
    sla_policies_are_checked_and_most_specific_wins,
    routing_overrides_send_a_category_to_another_unit,
    the_sla_policy_reads_back_its_defaults_and_the_latest_admin_rules,
    routing_overrides_read_back_within_each_readers_region,
);

fn gridcase(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridcase"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GRIDCASE_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir);
    cmd
}

#[test]
fn the_calendar_due_command_prints_the_due_time() {
    let dir = tempfile::tempdir().unwrap();
    for (start, duration, due) in [
        // Friday before National Day 2025: the make-up Sunday counts, the holiday does not.
        (
            "2025-09-26T10:00:00+08:00",
            "7wd",
            "2025-10-14T00:00:00+08:00",
        ),
        // Spring Festival 2026 with its make-up Saturdays 14 and 28 February.
        (
            "2026-02-13T09:00:00+08:00",
            "2wd",
            "2026-02-25T00:00:00+08:00",
        ),
        // Hours are wall-clock, holidays or not; START may be in any offset.
        ("2025-09-30T10:00:00Z", "24h", "2025-10-01T18:00:00+08:00"),
        (
            "2025-10-03T15:00:00+08:00",
            "15m",
            "2025-10-03T15:15:00+08:00",
        ),
        // Working hours (office hours 08:30–12:00, 13:30–17:30 by default): 1 h on Friday,
        // Saturday off, 3 h on the make-up Sunday 28 September.
        (
            "2025-09-26T16:30:00+08:00",
            "4wh",
            "2025-09-28T11:30:00+08:00",
        ),
        // Running out at the end of the morning: due at 12:00, not 13:30.
        (
            "2025-09-30T09:00:00+08:00",
            "3wh",
            "2025-09-30T12:00:00+08:00",
        ),
        // A start on a holiday counts from the first office hour after it (Thursday 9 October).
        (
            "2025-10-03T15:00:00+08:00",
            "4wh",
            "2025-10-09T14:00:00+08:00",
        ),
    ] {
        let out = gridcase(dir.path())
            .args(["calendar", "due", start, duration])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{start} {duration}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            due,
            "{start} {duration}"
        );
    }
    // A year with no schedule: the answer, and a warning on stderr.
    let out = gridcase(dir.path())
        .args(["calendar", "due", "2031-05-02T10:00:00+08:00", "1wd"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "2031-05-06T00:00:00+08:00"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no holiday schedule for 2031"));
    // The configured office hours, not the default ones: 09:00–17:00 without a lunch break
    // gives 30 min on Friday and 3 h 30 on Sunday.
    let out = gridcase(dir.path())
        .env("GRIDCASE_OFFICE_HOURS", "09:00-17:00")
        .args(["calendar", "due", "2025-09-26T16:30:00+08:00", "4wh"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "2025-09-28T12:30:00+08:00"
    );
    let config = dir.path().join("gridcase.toml");
    std::fs::write(
        &config,
        "office_hours = [\"08:00-12:00\", \"14:00-18:00\"]\n",
    )
    .unwrap();
    let out = gridcase(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["calendar", "due", "2025-09-26T16:30:00+08:00", "4wh"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1 h 30 on Friday, 2 h 30 on Sunday from 08:00.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "2025-09-28T10:30:00+08:00"
    );
    // Bad office hours stop the command with one line naming the setting.
    let out = gridcase(dir.path())
        .env("GRIDCASE_OFFICE_HOURS", "13:30-17:30,08:30-12:00")
        .args(["calendar", "due", "2025-09-26T16:30:00+08:00", "4wh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GRIDCASE_OFFICE_HOURS"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for (start, duration, named) in [
        ("2025-09-26 10:00", "7wd", "START"),
        ("2025-09-26T10:00:00+08:00", "7 days", "DURATION"),
        ("2025-09-26T10:00:00+08:00", "0h", "DURATION"),
        ("2025-09-26T10:00:00+08:00", "0wh", "DURATION"),
        ("2025-09-26T10:00:00+08:00", "1.5wh", "DURATION"),
    ] {
        let out = gridcase(dir.path())
            .args(["calendar", "due", start, duration])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{start} {duration}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(named),
            "{start} {duration}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
