//! SLA clocks through the real server, with time under the test's control: clocks started and
//! stopped by the lifecycle and shown by GetCase; warning → 督办 notice → escalation → red card,
//! each exactly once; overdue lists; catching up after downtime; two servers on one database
//! firing 1,000 breaches exactly once; a working-hours (`4wh`) policy on office hours; a policy
//! change in force on another replica as soon as the call returns.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AcceptCaseRequest, Case, ClockKind, DispatchCaseRequest, RecordFeedbackRequest,
        ResolveCaseRequest, SlaClock, WhistleCaseRequest, case_service_client::CaseServiceClient,
    },
    service::time::ManualTime,
    storage,
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::transport::Channel;

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

fn clock(case: &Case, kind: ClockKind) -> Vec<SlaClock> {
    case.clocks
        .iter()
        .filter(|c| c.kind == i32::from(kind))
        .cloned()
        .collect()
}

async fn warning_notice_escalation_and_red_card_fire_once_each_on_time(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0); // a Monday
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    // A grid-tier item: held by the grid's center, dispatch clock 24 h.
    let case = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    assert_eq!(case.region_code, "371102001001001");
    let (c, _) = case_with_events(&app, &case.id).await;
    let dispatch = clock(&c, ClockKind::Dispatch);
    assert_eq!(dispatch.len(), 1);
    assert_eq!(
        dispatch[0].due_at,
        Some(ts(t0 + chrono::Duration::hours(24)))
    );
    let register = clock(&c, ClockKind::Register);
    assert_eq!(register.len(), 1);
    assert!(register[0].stopped_at.is_some(), "registered at once");

    // Nothing before 80 %.
    time.set(t0 + chrono::Duration::minutes(19 * 60 + 12) - chrono::Duration::seconds(1));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 0);
    assert!(overdue_ids(&app).await.is_empty());
    // 80 % of 24 h is 19 h 12 min.
    time.set(t0 + chrono::Duration::minutes(19 * 60 + 12));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 1);
    assert_eq!(
        app.supervisor.run_due().await.unwrap(),
        0,
        "a warning fires once"
    );
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(sla_kinds(&events), ["sla_warning"]);
    assert_eq!(
        c.version, case.version,
        "a warning leaves the version alone"
    );

    // Due: the supervision notice (督办), to the unit (here also its region's center).
    time.set(t0 + chrono::Duration::hours(24));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 1);
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(sla_kinds(&events), ["sla_warning", "sla_breach"]);
    let breach = events.iter().find(|e| e.kind == "sla_breach").unwrap();
    let details: serde_json::Value = serde_json::from_str(&breach.details_json).unwrap();
    assert_eq!(details["clock"], "dispatch");
    assert_eq!(details["notify"][0], "371102001001001.center");
    assert_eq!(breach.actor_sub, "gridcase-sla");
    assert!(clock(&c, ClockKind::Dispatch)[0].breached_at.is_some());
    assert_eq!(overdue_ids(&app).await, vec![case.id.clone()]);

    // Due plus half the time again: one tier up; the higher center supervises.
    time.set(t0 + chrono::Duration::hours(36));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 1);
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(
        sla_kinds(&events),
        ["sla_warning", "sla_breach", "sla_escalation"]
    );
    assert_eq!(c.escalation_level, 1);
    assert_eq!(c.region_code, "371102001001");
    assert!(!c.red_card);
    assert_eq!(c.version, case.version + 1, "an escalation moves the case");

    // Due plus the whole time again: the second escalation is a red card.
    time.set(t0 + chrono::Duration::hours(48));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 1);
    time.set(t0 + chrono::Duration::hours(500));
    assert_eq!(
        app.supervisor.run_due().await.unwrap(),
        0,
        "no level is left"
    );
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(
        sla_kinds(&events),
        [
            "sla_warning",
            "sla_breach",
            "sla_escalation",
            "sla_escalation",
            "red_card"
        ]
    );
    assert_eq!(c.escalation_level, 2);
    assert!(c.red_card);
    assert_eq!(c.region_code, "371102001");
    let d = &clock(&c, ClockKind::Dispatch)[0];
    assert_eq!(d.escalations, 2);
    assert!(d.warned_at.is_some() && d.escalated_at.is_some() && d.stopped_at.is_none());

    // Dispatching stops the clock: the case is no longer overdue.
    let token = app.token(DISPATCHER, Role::Dispatcher);
    cases(&app)
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: c.id.clone(),
                expected_version: c.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(overdue_ids(&app).await.is_empty());
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

async fn the_lifecycle_starts_and_stops_the_clocks(backend: Backend) {
    // Friday before National Day 2025.
    let t0 = shanghai(2025, 9, 26, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let justice = app.token(JUSTICE_STAFF, Role::UnitStaff);
    // Community tier, led by the township's justice office.
    let case = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    time.set(t0 + chrono::Duration::hours(1));
    let case = cases(&app)
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    time.set(t0 + chrono::Duration::hours(2));
    let case = cases(&app)
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
            &justice,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    let d = &clock(&c, ClockKind::Dispatch)[0];
    assert_eq!(d.stopped_at, Some(ts(t0 + chrono::Duration::hours(1))));
    assert!(
        clock(&c, ClockKind::OnSite).is_empty(),
        "on-site is for urgent cases"
    );
    // Accepted Friday 12:00: 7 working days from Saturday, past National Day and its make-up
    // Sunday 28 September and Saturday 11 October, fall due at 24:00 on 13 October.
    let r = &clock(&c, ClockKind::Resolve)[0];
    assert_eq!(r.started_at, Some(ts(t0 + chrono::Duration::hours(2))));
    assert_eq!(r.due_at, Some(ts(shanghai(2025, 10, 14, 0, 0))));
    assert!(r.stopped_at.is_none());

    // A whistle: each summoned unit gets a 30-minute check-in clock.
    time.set(t0 + chrono::Duration::hours(3));
    let case = cases(&app)
        .whistle_case(authed(
            WhistleCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                unit_codes: vec!["371102.police".into()],
                reason: "需要公安协助".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    let w = &clock(&c, ClockKind::WhistleCheckIn)[0];
    assert_eq!(w.unit_code, "371102.police");
    assert_eq!(
        w.due_at,
        Some(ts(t0
            + chrono::Duration::hours(3)
            + chrono::Duration::minutes(30)))
    );
    time.set(t0 + chrono::Duration::hours(3) + chrono::Duration::minutes(10));
    let police = app.token(UNIT_STAFF, Role::UnitStaff);
    let case = cases(&app)
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
            &police,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    assert_eq!(
        clock(&c, ClockKind::WhistleCheckIn)[0].stopped_at,
        Some(ts(t0
            + chrono::Duration::hours(3)
            + chrono::Duration::minutes(10)))
    );

    // Resolved: the resolve clock stops, the feedback clock (24 h) starts; feedback stops it.
    time.set(shanghai(2025, 10, 9, 9, 0));
    let case = cases(&app)
        .resolve_case(authed(
            ResolveCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                result: "已调解".into(),
                attachment_ids: vec![],
            },
            &justice,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    time.set(shanghai(2025, 10, 9, 11, 0));
    cases(&app)
        .record_feedback(authed(
            RecordFeedbackRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: "已电话告知".into(),
            },
            &justice,
        ))
        .await
        .unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    let r = &clock(&c, ClockKind::Resolve)[0];
    assert_eq!(r.stopped_at, Some(ts(shanghai(2025, 10, 9, 9, 0))));
    let f = &clock(&c, ClockKind::Feedback)[0];
    assert_eq!(f.due_at, Some(ts(shanghai(2025, 10, 10, 9, 0))));
    assert_eq!(f.stopped_at, Some(ts(shanghai(2025, 10, 9, 11, 0))));
    assert!(c.clocks.iter().all(|k| k.stopped_at.is_some()));
    // Nothing is due any more, however late it gets.
    time.set(shanghai(2026, 1, 1, 0, 0));
    assert_eq!(app.supervisor.run_due().await.unwrap(), 0);
    assert!(overdue_ids(&app).await.is_empty());
    app.stop().await.unwrap();
}

async fn a_server_down_across_the_deadlines_catches_up_once_on_start(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let db = TestDb::new(&backend).await;
    let first = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    import(&first, &small_bundle()).await;
    let case = submit(&first, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    first.stop().await.unwrap();

    // A week passes with no server running: every level of the dispatch clock comes.
    time.set(t0 + chrono::Duration::days(7));
    let second = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    // The catch-up runs at start-up, by itself.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = case_with_events(&second, &case.id).await.1;
        if events.iter().any(|e| e.kind == "red_card") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sla_kinds(&events),
        [
            "sla_warning",
            "sla_breach",
            "sla_escalation",
            "sla_escalation",
            "red_card"
        ],
        "oldest first, each once"
    );
    assert_eq!(second.supervisor.run_due().await.unwrap(), 0);
    // A third start finds nothing left to do.
    second.stop().await.unwrap();
    let third = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    assert_eq!(third.supervisor.run_due().await.unwrap(), 0);
    assert_eq!(
        sla_kinds(&case_with_events(&third, &case.id).await.1).len(),
        5
    );
    audit_verifies(&db.url).await;
    third.stop().await.unwrap();
}

async fn count(url: &str, sql: &str) -> i64 {
    let db = storage::connect(url, 1).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn two_servers_fire_a_thousand_breaches_exactly_once(backend: Backend) {
    const CASES: usize = 1000;
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let db = TestDb::new(&backend).await;
    let a = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    let b = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    import(&a, &small_bundle()).await;
    wait_for_directory(&b).await;
    // Both replicas take reports.
    let mut created = 0;
    for chunk in 0..CASES / 50 {
        let app = if chunk % 2 == 0 { &a } else { &b };
        let reports = (0..50).map(|i| {
            let lon = 119.01 + 0.0017 * f64::from(u32::try_from(i).unwrap());
            submit(
                app,
                GRID_MEMBER,
                "city.litter",
                35.05 + 0.002 * chunk as f64,
                lon,
            )
        });
        created += futures_util::future::join_all(reports).await.len();
    }
    assert_eq!(created, CASES);

    // Every dispatch clock is past due (but not yet at escalation): both replicas scan at once.
    time.set(t0 + chrono::Duration::hours(25));
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    let (fa, fb) = (fa.unwrap(), fb.unwrap());
    // The scheduled ticks may have fired some too; the database holds the truth.
    assert!(fa + fb <= 2 * CASES);
    let url = &db.url;
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'sla_breach'"
        )
        .await,
        CASES as i64
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'sla_warning'"
        )
        .await,
        CASES as i64
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM (SELECT case_id, kind FROM case_events \
             WHERE kind LIKE 'sla%' GROUP BY case_id, kind HAVING COUNT(*) > 1) AS doubles"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM sla_clocks WHERE kind = 'dispatch' AND stage = 2"
        )
        .await,
        CASES as i64
    );
    // Again, from both: nothing.
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    assert_eq!(fa.unwrap() + fb.unwrap(), 0);
    audit_verifies(url).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// A city.litter dispatch clock of `duration` ("4wh"), set through SetSlaPolicy.
async fn set_dispatch_policy(app: &TestApp, duration: &str) -> Result<(), tonic::Status> {
    use gridcase::proto::v1::{
        SetSlaPolicyRequest, Severity, Tier, directory_service_client::DirectoryServiceClient,
    };
    let admin = app.token("ops-admin", Role::Admin);
    DirectoryServiceClient::new(app.channel.clone())
        .set_sla_policy(authed(
            SetSlaPolicyRequest {
                clock: ClockKind::Dispatch.into(),
                category_code: "city.litter".into(),
                tier: Tier::Unspecified.into(),
                severity: Severity::Unspecified.into(),
                duration: duration.into(),
            },
            &admin,
        ))
        .await
        .map(|_| ())
}

async fn a_working_hours_policy_runs_on_office_hours(backend: Backend) {
    // Friday 26 September 2025, 16:30: one office hour is left that day (08:30–12:00 and
    // 13:30–17:30 by default); Saturday 27 is off, Sunday 28 a make-up working day (调休).
    let t0 = shanghai(2025, 9, 26, 16, 30);
    let time = Arc::new(ManualTime::new(t0));
    // Scans only when the test says (and once at start-up).
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::new(&backend).await, quiet, Some(time.clone())).await;
    import(&app, &small_bundle()).await;
    for bad in ["0wh", "1.5wh", "2921wh", "4 wh"] {
        let status = set_dispatch_policy(&app, bad).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
        assert!(status.message().starts_with("duration"), "{status:?}");
    }
    set_dispatch_policy(&app, "4wh").await.unwrap();
    // Stored as written, and the clock keeps its duration as text too.
    let policies = "SELECT COUNT(*) FROM sla_policies WHERE duration = '4wh'";
    assert_eq!(count(&app.db.url, policies).await, 1);

    let case = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    let (c, _) = case_with_events(&app, &case.id).await;
    let dispatch = clock(&c, ClockKind::Dispatch);
    assert_eq!(dispatch.len(), 1);
    assert_eq!(dispatch[0].started_at, Some(ts(t0)));
    // 1 h on Friday, 3 h of Sunday from 08:30.
    assert_eq!(dispatch[0].due_at, Some(ts(shanghai(2025, 9, 28, 11, 30))));
    let clocks = "SELECT COUNT(*) FROM sla_clocks WHERE duration = '4wh'";
    assert_eq!(count(&app.db.url, clocks).await, 1);

    // Each level when its share of the office time has passed, and not a minute before:
    // 80 % (3 h 12) at 10:42 on Sunday, due at 11:30, 150 % (6 h: 1 h, 3 h 30 of Sunday
    // morning, 1 h 30 after lunch) at 15:00, 200 % (8 h) at 17:00.
    let levels = [
        "sla_warning",
        "sla_breach",
        "sla_escalation",
        "sla_escalation",
        "red_card",
    ];
    for (day, hour, minute, fired) in [
        // Saturday noon: four wall-clock hours would have run out long ago.
        (27, 12, 0, 0),
        (28, 10, 41, 0),
        (28, 10, 42, 1),
        (28, 11, 29, 1),
        (28, 11, 30, 2),
        (28, 14, 59, 2),
        (28, 15, 0, 3),
        (28, 16, 59, 3),
        // The second escalation is the red card.
        (28, 17, 0, 5),
    ] {
        time.set(shanghai(2025, 9, day, hour, minute));
        app.supervisor.run_due().await.unwrap();
        let (_, events) = case_with_events(&app, &case.id).await;
        assert_eq!(
            sla_kinds(&events),
            levels[..fired],
            "09-{day} {hour}:{minute:02}"
        );
    }
    assert_eq!(overdue_ids(&app).await, vec![case.id.clone()]);
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();

    // Another deployment's office hours, 09:00–17:00 without lunch: 30 min on Friday, then
    // 3 h 30 of Sunday from 09:00.
    let time = Arc::new(ManualTime::new(t0));
    let nine_to_five = |s: &mut gridcase::config::Settings| {
        s.sla_tick = Duration::from_secs(3600);
        s.office_hours = "09:00-17:00".parse().unwrap();
    };
    let app = TestApp::spawn_full(TestDb::new(&backend).await, nine_to_five, Some(time)).await;
    import(&app, &small_bundle()).await;
    set_dispatch_policy(&app, "4wh").await.unwrap();
    let case = submit(&app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    let (c, _) = case_with_events(&app, &case.id).await;
    assert_eq!(
        clock(&c, ClockKind::Dispatch)[0].due_at,
        Some(ts(shanghai(2025, 9, 28, 12, 30)))
    );
    app.stop().await.unwrap();
}

/// A policy changed on one replica is in force on the other as soon as the call returns, for
/// reports (the dispatch clock intake starts) and for commands (the resolve clock acceptance
/// starts), although the other replica's snapshot catches up only every two seconds. Each change
/// is followed at once by the other replica's use of it, five times in a row, so a replica
/// answering from a stale snapshot is caught however its refresh falls.
async fn a_policy_change_is_in_force_on_every_replica_when_the_call_returns(backend: Backend) {
    use gridcase::proto::v1::{
        SetSlaPolicyRequest, Severity, Tier, directory_service_client::DirectoryServiceClient,
    };
    // Monday 22 September 2025, 10:00.
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let db = TestDb::new(&backend).await;
    let a = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    let b = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    import(&a, &small_bundle()).await;
    wait_for_directory(&b).await;
    let admin = a.token("ops-admin", Role::Admin);
    let dispatcher = b.token(DISPATCHER, Role::Dispatcher);
    let justice = b.token(JUSTICE_STAFF, Role::UnitStaff);
    let resolve_policy = |duration: String| SetSlaPolicyRequest {
        clock: ClockKind::Resolve.into(),
        category_code: "dispute.neighbor".into(),
        tier: Tier::Unspecified.into(),
        severity: Severity::Unspecified.into(),
        duration,
    };
    for (round, minutes) in [30i64, 45, 90, 120, 150].into_iter().enumerate() {
        set_dispatch_policy(&a, &format!("{minutes}m"))
            .await
            .unwrap();
        let litter = submit(&b, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
        let (c, _) = case_with_events(&b, &litter.id).await;
        assert_eq!(
            clock(&c, ClockKind::Dispatch)[0].due_at,
            Some(ts(t0 + chrono::Duration::minutes(minutes))),
            "round {round}: the report through replica b got the old dispatch clock"
        );

        let dispute = submit(&b, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
        let dispatched = dispatch_routed(&b, &dispute, &dispatcher).await;
        DirectoryServiceClient::new(a.channel.clone())
            .set_sla_policy(authed(resolve_policy(format!("{}h", round + 2)), &admin))
            .await
            .unwrap();
        accept(&b, &dispatched, &justice).await;
        let (c, _) = case_with_events(&b, &dispute.id).await;
        let hours = i64::try_from(round).unwrap() + 2;
        assert_eq!(
            clock(&c, ClockKind::Resolve)[0].due_at,
            Some(ts(t0 + chrono::Duration::hours(hours))),
            "round {round}: acceptance through replica b started the old resolve clock"
        );
    }
    audit_verifies(&db.url).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

on_both_databases!(
    a_policy_change_is_in_force_on_every_replica_when_the_call_returns,
    a_working_hours_policy_runs_on_office_hours,
    warning_notice_escalation_and_red_card_fire_once_each_on_time,
    the_lifecycle_starts_and_stops_the_clocks,
    a_server_down_across_the_deadlines_catches_up_once_on_start,
    two_servers_fire_a_thousand_breaches_exactly_once,
);

/// Two `gridcase serve` processes on one PostgreSQL database, in real time: 1,000 cases whose
/// one-minute dispatch clocks run out together are each noticed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_notice_a_thousand_breaches_exactly_once() {
    use gridcase::proto::v1::{
        ImportDirectoryRequest, ListCategoriesRequest, SetSlaPolicyRequest, Severity, Tier,
        directory_service_client::DirectoryServiceClient,
    };
    const CASES: usize = 1000;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let db = TestDb::new(&backend).await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (free_port(), free_port());
    let _a = ServerProcess::start(&db.url, pa, dirs.0.path());
    let _b = ServerProcess::start(&db.url, pb, dirs.1.path());
    let (ca, cb) = (connect(pa).await, connect(pb).await);
    let settings = test_settings(&db.url, dirs.0.path().to_owned());
    let minter = gridcase::auth::Minter::new(&settings.jwt, settings.jwt.secret.as_ref()).unwrap();
    let token = |sub: &str, role| minter.mint(sub, role, Duration::from_secs(600)).unwrap();
    let admin = token("ops-admin", Role::Admin);
    DirectoryServiceClient::new(ca.clone())
        .max_encoding_message_size(64 << 20)
        .import_directory(authed(
            ImportDirectoryRequest {
                bundle: serde_json::to_vec(&small_bundle()).unwrap(),
                ..ImportDirectoryRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap();
    DirectoryServiceClient::new(ca.clone())
        .set_sla_policy(authed(
            SetSlaPolicyRequest {
                clock: ClockKind::Dispatch.into(),
                category_code: "city.litter".into(),
                tier: Tier::Unspecified.into(),
                severity: Severity::Unspecified.into(),
                duration: "1m".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    // The second process picks the directory up by polling.
    for _ in 0..100 {
        let categories = DirectoryServiceClient::new(cb.clone())
            .list_categories(authed(ListCategoriesRequest {}, &admin))
            .await
            .unwrap()
            .into_inner()
            .categories;
        if !categories.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1,000 reports through the first process, as fast as it takes them.
    let reporter = token(GRID_MEMBER, Role::GridMember);
    let started = std::time::Instant::now();
    for chunk in 0..CASES / 50 {
        let reports = (0..50u32).map(|i| {
            let mut client =
                gridcase::proto::v1::report_service_client::ReportServiceClient::new(ca.clone());
            let reporter = reporter.clone();
            async move {
                client
                    .submit_report(authed(
                        report_request(
                            "city.litter",
                            "垃圾堆放",
                            35.05 + 0.002 * chunk as f64,
                            119.01 + 0.0017 * f64::from(i),
                        ),
                        &reporter,
                    ))
                    .await
                    .unwrap()
            }
        });
        futures_util::future::join_all(reports).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the cases must be stored well before the first ones breach"
    );

    // Both processes scan every second; wait for the breaches, then a little longer for doubles.
    let url = &db.url;
    let mut breaches = 0;
    for _ in 0..120 {
        breaches = count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'sla_breach'",
        )
        .await;
        if breaches >= CASES as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'sla_breach'"
        )
        .await,
        CASES as i64,
        "after {breaches} seen"
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM (SELECT case_id, kind FROM case_events \
             WHERE kind LIKE 'sla%' AND details NOT LIKE '%second_escalation%' \
             GROUP BY case_id, kind HAVING COUNT(*) > 1) AS doubles"
        )
        .await,
        0
    );
    audit_verifies(url).await;
}
